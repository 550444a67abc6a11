import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, request, DEMO, tokenFor, publish, event, demoConfig, tempDir } from "./harness.mjs";

let w, pms, pms2, ops, vendor;
before(async () => {
  w = await startWorker();
  [pms, pms2, ops, vendor] = await Promise.all([DEMO.pms1, DEMO.pms2, DEMO.ops, DEMO.app1].map((c) => tokenFor(w.base, c)));
});
after(async () => { await w?.dispose(); });

async function stats(base, token, chain) {
  const res = await request(base, "GET", `/admin/v1/chains/${chain}`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200, res.text);
  return res.json;
}

async function readAll(base, chain) {
  // Through the admin numbers only: the log's content is checked by the streaming suites.
  return stats(base, ops, chain);
}

test("8 concurrent publishers x 200 events give exactly offsets 1..1600, each publisher's order kept", async () => {
  const publishers = 8, perPublisher = 200;
  const results = await Promise.all(Array.from({ length: publishers }, async (_, p) => {
    const offsets = [];
    for (let i = 0; i < perPublisher; i++) {
      const res = await publish(w.base, pms, "TTE", event("TTE01", { uniqueEventId: `p${p}-e${i}` }));
      assert.equal(res.status, 200, res.text);
      offsets.push(Number(res.json.offsets[0]));
    }
    return offsets;
  }));
  for (const offsets of results) {
    for (let i = 1; i < offsets.length; i++) assert.ok(offsets[i] > offsets[i - 1], "a publisher's events keep their order");
  }
  const all = results.flat().sort((a, b) => a - b);
  assert.deepEqual(all, Array.from({ length: 1600 }, (_, i) => i + 1), "no offset missing or repeated");
  const s = await readAll(w.base, "TTE");
  assert.equal(s.headOffset, "1600");
  assert.equal(s.retainedEvents, 1600);
  assert.equal(s.oldestOffset, "1");
});

test("separate chains number independently; a batch returns one offset per event", async () => {
  const res = await publish(w.base, pms, "HTBTTE", [event("HTB01"), event("HTB01"), event("HTB01")]);
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(res.json.offsets, ["1", "2", "3"]);
  const oth = await publish(w.base, pms2, "OTH", event("OTH01"));
  assert.deepEqual(oth.json.offsets, ["1"]);
});

test("a duplicate uniqueEventId returns the original offset and is not stored twice", async () => {
  const first = await publish(w.base, pms, "HTBTTE", event("HTB01", { uniqueEventId: "dup-1" }));
  const again = await publish(w.base, pms, "HTBTTE", [event("HTB01", { uniqueEventId: "dup-2" }), event("HTB01", { uniqueEventId: "dup-1" }), event("HTB01", { uniqueEventId: "dup-2" })]);
  assert.equal(again.status, 200);
  const [o1] = first.json.offsets;
  assert.equal(again.json.offsets[1], o1);
  assert.equal(again.json.offsets[0], again.json.offsets[2], "within one batch too");
  assert.equal(Number(again.json.offsets[0]), Number(o1) + 1);
  const s = await readAll(w.base, "HTBTTE");
  assert.equal(s.headOffset, String(Number(o1) + 1));
});

test("a batch with one bad event stores nothing and lists the error", async () => {
  const before = await readAll(w.base, "HTBTTE");
  const bad = event("TTE01"); // a property of another chain
  const res = await publish(w.base, pms, "HTBTTE", [event("HTB01"), bad, event("HTB01", { timestamp: "not a date" })]);
  assert.equal(res.status, 400);
  assert.equal(res.json.error, "invalid_events");
  assert.deepEqual(res.json.errors.map((e) => [e.index, e.field]), [[1, "hotelId"], [2, "timestamp"]]);
  const after = await readAll(w.base, "HTBTTE");
  assert.equal(after.headOffset, before.headOffset);
  assert.equal(after.retainedEvents, before.retainedEvents);
});

test("malformed JSON is 400, over the limits is 413", async () => {
  const res = await publish(w.base, pms, "TTE", "{not json");
  assert.equal(res.status, 400);
  assert.equal(res.json.error, "invalid_request");
  const many = Array.from({ length: 501 }, () => event("TTE01"));
  const tooMany = await publish(w.base, pms, "TTE", many);
  assert.equal(tooMany.status, 413);
  assert.equal(tooMany.json.error, "payload_too_large");
  const big = event("TTE01", { detail: [{ elementName: "Note", newValue: "x".repeat(70 * 1024) }] });
  assert.equal((await publish(w.base, pms, "TTE", big)).status, 413);
});

test("publishers without the grant, vendors and other enterprises are refused with JSON", async () => {
  const noToken = await publish(w.base, "", "TTE", event("TTE01"));
  assert.equal(noToken.status, 401);
  assert.equal(noToken.json.error, "invalid_token");
  assert.match(noToken.headers["www-authenticate"], /^Bearer/);
  const garbage = await publish(w.base, "abc.def.ghi", "TTE", event("TTE01"));
  assert.equal(garbage.status, 401);
  const asVendor = await publish(w.base, vendor, "TTE", event("TTE01"));
  assert.equal(asVendor.status, 403);
  assert.equal(asVendor.json.error, "forbidden");
  assert.match(asVendor.json.message, /urn:pms:publish/);
  const otherEnterprise = await publish(w.base, pms2, "TTE", event("TTE01"));
  assert.equal(otherEnterprise.status, 403);
  const unknownChain = await publish(w.base, pms, "NOPE", event("TTE01"));
  assert.equal(unknownChain.status, 403);
});

test("acknowledged events survive a runtime restart and numbering continues", async () => {
  const dir = tempDir();
  const first = await startWorker({ persist: dir });
  const keys = first.signingKeys;
  let token = await tokenFor(first.base, DEMO.pms1);
  const a = await publish(first.base, token, "TTE", [event("TTE01"), event("TTE02")]);
  assert.deepEqual(a.json.offsets, ["1", "2"]);
  await first.dispose();
  const second = await startWorker({ persist: dir, signingKeys: keys });
  try {
    token = await tokenFor(second.base, DEMO.pms1);
    const b = await publish(second.base, token, "TTE", event("TTE01"));
    assert.deepEqual(b.json.offsets, ["3"]);
    const opsToken = await tokenFor(second.base, DEMO.ops);
    const s = await stats(second.base, opsToken, "TTE");
    assert.equal(s.retainedEvents, 3);
  } finally {
    await second.dispose();
  }
});

test("the retention alarm drops expired events and keeps the head", async () => {
  const config = structuredClone(demoConfig);
  config.retentionSeconds = 1;
  const short = await startWorker({ config });
  try {
    const token = await tokenFor(short.base, DEMO.pms1);
    const opsToken = await tokenFor(short.base, DEMO.ops);
    await publish(short.base, token, "TTE", [event("TTE01"), event("TTE01"), event("TTE02")]);
    assert.equal((await stats(short.base, opsToken, "TTE")).retainedEvents, 3);
    let s;
    for (let i = 0; i < 40; i++) {
      await new Promise((r) => setTimeout(r, 250));
      s = await stats(short.base, opsToken, "TTE");
      if (s.retainedEvents === 0) break;
    }
    assert.equal(s.retainedEvents, 0, "expired events are gone");
    assert.equal(s.headOffset, "3");
    assert.equal(s.oldestOffset, null);
    const publishedAt = s.lastPublishAt;
    assert.ok(publishedAt > 0, "the last publish's time outlives its events");
    // The head and that time are kept in storage, not only in the object's memory: a
    // restarted object still numbers on from 3.
    const restart = await request(short.base, "POST", "/admin/v1/chains/TTE/restart", { headers: { authorization: `Bearer ${opsToken}` } });
    assert.equal(restart.status, 202);
    let restarted = s;
    for (let i = 0; i < 40 && restarted.countingSince === s.countingSince; i++) {
      await new Promise((r) => setTimeout(r, 250));
      restarted = await stats(short.base, opsToken, "TTE").catch(() => restarted);
    }
    assert.notEqual(restarted.countingSince, s.countingSince, "a new instance of the object answers");
    assert.deepEqual([restarted.headOffset, restarted.retainedEvents, restarted.lastPublishAt], ["3", 0, publishedAt]);
    const next = await publish(short.base, token, "TTE", event("TTE01"));
    assert.deepEqual(next.json.offsets, ["4"]);
  } finally {
    await short.dispose();
  }
});
