// The pull API (docs/protocol.md, Pulling): `GET /events/v1/chains/{chainCode}/events?from=N&limit=M` with
// the same grants, property restriction, filters and retention gap as a subscription.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, tokenFor, publish, event, request, DEMO, demoConfig, sleep } from "./harness.mjs";

let w;
const tok = {};
before(async () => {
  w = await startWorker();
  for (const n of ["app1", "app2", "app3", "pms1", "ops"]) tok[n] = await tokenFor(w.base, DEMO[n]);
  // 30 events on TTE: offsets 1..30, TTE01 and TTE02 alternating, every third a CHECKOUT.
  const events = Array.from({ length: 30 }, (_, i) => event(i % 2 ? "TTE02" : "TTE01", { eventName: i % 3 === 2 ? "CHECKOUT" : "CHECKIN" }));
  assert.equal((await publish(w.base, tok.pms1, "TTE", events)).status, 200);
});
after(async () => { await w?.dispose(); });

const pull = (token, query, chain = "TTE") =>
  request(w.base, "GET", `/events/v1/chains/${chain}/events${query ? "?" + query : ""}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
const offsets = (res) => res.json.events.map((e) => Number(e.metadata.offset));

test("pages through a chain with full EventHeaders, next and head", async () => {
  const first = await pull(tok.app1, "from=1&limit=12");
  assert.equal(first.status, 200, first.text);
  assert.deepEqual(offsets(first), Array.from({ length: 12 }, (_, i) => i + 1));
  assert.equal(first.json.next, "13");
  assert.equal(first.json.head, "30");
  const e = first.json.events[0];
  for (const field of ["moduleName", "eventName", "primaryKey", "timestamp", "hotelId", "detail"]) assert.ok(field in e, field);
  assert.match(e.metadata.uniqueEventId, /^[0-9a-f-]{36}$/);
  const all = [];
  let next = "1";
  for (let i = 0; i < 10 && Number(next) <= 30; i++) {
    const page = await pull(tok.app1, `from=${next}&limit=7`);
    all.push(...offsets(page));
    next = page.json.next;
  }
  assert.deepEqual(all, Array.from({ length: 30 }, (_, i) => i + 1), "every event once, in order");
  const defaults = await pull(tok.app1, "");
  assert.equal(defaults.json.events.length, 30, "no from: from the oldest; default limit 100");
  const live = await pull(tok.app1, "from=31");
  assert.deepEqual([live.status, live.json.events.length, live.json.next], [200, 0, "31"], "one past the head: nothing yet");
});

test("filters and the property restriction apply as on the stream", async () => {
  const checkouts = await pull(tok.app1, "from=1&limit=100&eventNames=CHECKOUT&hotelCode=TTE01");
  assert.ok(checkouts.json.events.length > 0);
  assert.ok(checkouts.json.events.every((e) => e.eventName === "CHECKOUT" && e.hotelId === "TTE01"), checkouts.text);
  // app2 is granted TTE01 only: it never sees TTE02, and asking for it is refused.
  const restricted = await pull(tok.app2, "from=1&limit=100");
  assert.equal(restricted.status, 200);
  assert.equal(restricted.json.events.length, 15);
  assert.ok(restricted.json.events.every((e) => e.hotelId === "TTE01"));
  const outside = await pull(tok.app2, "from=1&hotelCode=TTE02");
  assert.equal(outside.status, 403);
  assert.equal(outside.json.error, "forbidden");
});

test("isolation and refusals: other enterprises' chains, tokens, scopes and bad parameters", async () => {
  assert.equal((await pull(tok.app3, "from=1")).status, 403, "another enterprise's chain");
  assert.equal((await pull(tok.app1, "from=1", "OTH")).status, 403);
  const anonymous = await pull(null, "from=1");
  assert.equal(anonymous.status, 401);
  assert.match(anonymous.headers["www-authenticate"], /Bearer/);
  assert.equal((await pull(tok.pms1, "from=1")).status, 403, "a publisher token lacks urn:pms:events");
  const far = await pull(tok.app1, "from=32");
  assert.equal(far.status, 400);
  assert.equal(far.json.error, "OFFSET_OUT_OF_RANGE");
  for (const bad of ["limit=0", "limit=1001", "from=abc", "offset=3", "eventNames="]) {
    const res = await pull(tok.app1, bad);
    assert.equal(res.status, 400, `${bad}: ${res.text}`);
  }
  const del = await request(w.base, "DELETE", "/events/v1/chains/TTE/events", { headers: { authorization: `Bearer ${tok.app1}` } });
  assert.equal(del.status, 405);
  assert.equal(del.headers.allow, "GET, POST");
});

test("a retention gap is signalled in the answer", async () => {
  const config = structuredClone(demoConfig);
  config.retentionSeconds = 2;
  const short = await startWorker({ config });
  try {
    const [pms, app1] = await Promise.all([tokenFor(short.base, DEMO.pms1), tokenFor(short.base, DEMO.app1)]);
    assert.equal((await publish(short.base, pms, "TTE", [event("TTE01"), event("TTE01")])).status, 200);
    let res;
    for (let i = 0; i < 50; i++) {
      await sleep(100);
      res = await request(short.base, "GET", "/events/v1/chains/TTE/events?from=1", { headers: { authorization: `Bearer ${app1}` } });
      if (res.json.events.length === 0) break;
    }
    assert.equal((await publish(short.base, pms, "TTE", [event("TTE01")])).status, 200);
    res = await request(short.base, "GET", "/events/v1/chains/TTE/events?from=1", { headers: { authorization: `Bearer ${app1}` } });
    assert.deepEqual(res.json.gap, { requested: "1", resumedAt: "3" }, res.text);
    assert.deepEqual(res.json.events.map((e) => e.metadata.offset), ["3"]);
  } finally {
    await short.dispose();
  }
});
