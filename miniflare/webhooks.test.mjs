// Push delivery to vendor webhooks on workerd: a receiver on 127.0.0.1 that
// verifies every signature with the official `standardwebhooks` library, the chain object
// posting to it in order, retries of the same batch, restarts in the middle, pause and resume.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { Webhook } from "standardwebhooks";
import {
  startWorker, tokenFor, publish, request, event, until, sleep, tempDir, auditLines, vendorSocket,
  newSigningKeys, newWebhookSecret, demoConfig, DEMO,
} from "./harness.mjs";
import { webhookProblems } from "./spec-check.mjs";

/**
 * A vendor's receiver. `answer(n, delivery)` decides each answer: a status, `{status, delay}`,
 * `{status, location}`, or "hang" (never answers). Every request is verified with
 * standardwebhooks before anything else; a request that fails verification is recorded in
 * `invalid` (and answered 400).
 */
async function startReceiver(secret, answer = () => 200) {
  const verifier = new Webhook(secret);
  const r = { requests: [], accepted: [], invalid: [], hanging: new Set(), stray: [] };
  r.server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", async () => {
      const raw = Buffer.concat(chunks).toString();
      if (!req.url.startsWith("/hook")) {
        r.stray.push(req.url);
        res.writeHead(200).end();
        return;
      }
      let body;
      try {
        body = verifier.verify(raw, req.headers);
      } catch (e) {
        r.invalid.push(`${e.message}: ${raw.slice(0, 100)}`);
        res.writeHead(400).end("bad signature");
        return;
      }
      const problems = webhookProblems(req.headers, body);
      if (problems.length) r.invalid.push(problems.join("; "));
      const delivery = {
        id: req.headers["webhook-id"],
        path: req.url,
        body,
        offsets: body.events.map((e) => Number(e.metadata.offset)),
        at: Date.now(),
      };
      r.requests.push(delivery);
      let a = answer(r.requests.length, delivery);
      if (a === "hang") {
        r.hanging.add(res);
        return;
      }
      if (typeof a === "number") a = { status: a };
      if (a.delay) await sleep(a.delay);
      res.writeHead(a.status, a.location ? { location: a.location } : {}).end(a.status >= 300 ? `refused ${a.status}` : "ok");
      if (a.status >= 200 && a.status < 300) r.accepted.push(delivery);
    });
  });
  await new Promise((resolve) => r.server.listen(0, "127.0.0.1", resolve));
  r.url = (path = "/hook") => `http://127.0.0.1:${r.server.address().port}${path}`;
  /** Offsets of accepted deliveries on `path`, in the order they were accepted. */
  r.acceptedOffsets = (path = "/hook") => r.accepted.filter((d) => d.path.split("?")[0] === path).flatMap((d) => d.offsets);
  r.close = async () => {
    for (const res of r.hanging) res.destroy();
    r.server.closeAllConnections?.();
    await new Promise((resolve) => r.server.close(resolve));
  };
  return r;
}

/** The demo configuration with webhooks for client-app-001 and the given limits. */
function configWith(webhooks, limits = {}, extra = {}) {
  const config = structuredClone(demoConfig);
  config.limits = { ...config.limits, ...limits };
  config.clients.find((c) => c.id === DEMO.app1.id).webhooks = webhooks;
  return { ...config, ...extra };
}

function events(n, pick = (i) => ({})) {
  return Array.from({ length: n }, (_, i) => event(i % 2 ? "TTE02" : "TTE01", { uniqueEventId: `wh-${process.pid}-${Math.random()}`, ...pick(i) }));
}

async function publishAll(base, token, batches) {
  for (const batch of batches) {
    const res = await publish(base, token, "TTE", batch);
    assert.equal(res.status, 200, res.text);
  }
}

const range = (a, b) => Array.from({ length: b - a + 1 }, (_, i) => a + i);
/** The first time each offset was accepted, in order: at-least-once repeats removed. */
const firstSeen = (offsets) => offsets.filter((o, i) => offsets.indexOf(o) === i);

async function adminWebhooks(base, opsToken) {
  const res = await request(base, "GET", "/admin/v1/chains/TTE/webhooks", { headers: { authorization: `Bearer ${opsToken}` } });
  assert.equal(res.status, 200, res.text);
  return res.json;
}

test("events arrive in order and each once, signed, filtered and batched, while the receiver answers 200", async () => {
  const secret = newWebhookSecret();
  const receiver = await startReceiver(secret);
  const logs = [];
  const w = await startWorker({
    logs,
    config: configWith([
      { id: "wh-all", chain: "TTE", url: receiver.url("/hook?token=vendor-own-token"), secret, maxBatch: 7 },
      { id: "wh-checkin", chain: "TTE", url: receiver.url("/hook-checkin"), secret, eventNames: ["CHECKIN"], hotelCodes: ["TTE01"] },
    ]),
  });
  try {
    const pms = await tokenFor(w.base, DEMO.pms1);
    const batches = Array.from({ length: 10 }, (_, b) => events(5, (i) => ({ eventName: (b + i) % 3 ? "CHECKIN" : "CHECKOUT" })));
    await publishAll(w.base, pms, batches);
    await until(() => receiver.acceptedOffsets().length >= 50, 15000, "50 events on wh-all");
    await sleep(300);
    assert.deepEqual(receiver.invalid, [], "every request verified with standardwebhooks and matched openapi.yaml");
    assert.deepEqual(receiver.acceptedOffsets(), range(1, 50), "in offset order, each once");
    const all = receiver.accepted.filter((d) => d.path.startsWith("/hook?"));
    assert.ok(all.every((d) => d.offsets.length <= 7), "maxBatch respected");
    for (const d of all) {
      assert.equal(d.body.chainCode, "TTE");
      assert.match(d.id, /^msg_TTE_wh-all_\d+_\d+$/);
      const [from, through] = d.id.split("_").slice(-2).map(Number);
      assert.ok(from <= d.offsets[0] && through >= d.offsets.at(-1), `${d.id} covers ${d.offsets}`);
    }
    // The filtered webhook: exactly the CHECKINs of TTE01.
    const flat = batches.flat();
    const expected = flat.map((e, i) => ({ e, offset: i + 1 })).filter(({ e }) => e.eventName === "CHECKIN" && e.hotelId === "TTE01").map(({ offset }) => offset);
    await until(() => receiver.acceptedOffsets("/hook-checkin").length >= expected.length, 10000, "the filtered webhook's events");
    assert.deepEqual(receiver.acceptedOffsets("/hook-checkin"), expected);
    assert.ok(receiver.accepted.filter((d) => d.path === "/hook-checkin").every((d) => d.body.events.every((e) => e.eventName === "CHECKIN" && e.hotelId === "TTE01")));

    const ops = await tokenFor(w.base, DEMO.ops);
    const view = await adminWebhooks(w.base, ops);
    assert.equal(view.headOffset, "50");
    const allView = view.webhooks.find((h) => h.id === "wh-all");
    assert.equal(allView.cursor, "50");
    assert.equal(allView.lagEvents, 0);
    assert.equal(allView.lastStatus, 200);
    assert.equal(allView.nextAttemptAt, null);
    assert.equal(allView.url, receiver.url("/hook"), "shown without the query that carries the receiver's token");
    const delivered = auditLines(logs).filter((a) => a.audit === "webhook.delivered" && a.webhookId === "wh-all");
    assert.equal(delivered.reduce((n, a) => n + a.events, 0), 50);
    assert.ok(!logs.some((l) => l.includes("vendor-own-token")), "the URL's query is never logged");
  } finally {
    await w.dispose();
    await receiver.close();
  }
});

test("a receiver that fails five times and then times out still gets everything in order; publishing and streaming go on meanwhile", async () => {
  const secret = newWebhookSecret();
  const plan = [500, 503, { status: 302, location: "/elsewhere" }, 400, 429, "hang"];
  const receiver = await startReceiver(secret, (n) => plan[n - 1] ?? 200);
  const logs = [];
  const w = await startWorker({
    logs,
    config: configWith(
      [{ id: "wh-flaky", chain: "TTE", url: receiver.url(), secret }],
      { webhookTimeoutSeconds: 3, webhookFirstRetrySeconds: 1, webhookMaxRetrySeconds: 2 },
    ),
  });
  try {
    const pms = await tokenFor(w.base, DEMO.pms1);
    await publishAll(w.base, pms, [events(3)]);
    // While the receiver fails and then hangs, more is published and streamed.
    await until(() => receiver.requests.length >= 6, 30000, "five failures and the hanging attempt");
    const vendor = vendorSocket(w.base, await tokenFor(w.base, DEMO.app1));
    await vendor.acked;
    vendor.subscribe("s", '{chainCode: "TTE", offset: "1"}');
    const started = Date.now();
    await publishAll(w.base, pms, [events(4)]);
    const publishMs = Date.now() - started;
    await until(() => vendor.offsets("s").length >= 7, 5000, "the stream while a webhook request hangs");
    assert.ok(publishMs < 2500, `a publish answered in ${publishMs} ms while the webhook's request hung for 3 s`);
    vendor.ws.close();
    await publishAll(w.base, pms, [events(2)]);
    await until(() => receiver.acceptedOffsets().length >= 9, 30000, "all nine events accepted");
    await sleep(500);
    assert.deepEqual(receiver.invalid, []);
    assert.deepEqual(receiver.acceptedOffsets(), range(1, 9), "in order, each once");
    // The first batch was attempted seven times, always the same id and the same events.
    const first = receiver.requests.slice(0, 7);
    assert.deepEqual(new Set(first.map((d) => d.id)), new Set(["msg_TTE_wh-flaky_1_3"]));
    assert.ok(first.every((d) => d.offsets.join() === "1,2,3"));
    assert.ok(!receiver.requests.slice(0, 6).some((d) => d.offsets.some((o) => o > 3)), "nothing later before the first batch was accepted");
    assert.deepEqual(receiver.stray, [], "the redirect was not followed");
    const failed = auditLines(logs).filter((a) => a.audit === "webhook.failed");
    assert.deepEqual(failed.slice(0, 6).map((a) => a.status ?? null), [500, 503, 302, 400, 429, null]);
    assert.match(failed[5].error, /no answer within 3 s/);
    assert.match(failed[2].error, /redirects are not followed/);
    // Backoff: each retry waited longer than the one before (1 s, then 2 s capped), jittered.
    const gaps = first.slice(1, 5).map((d, i) => d.at - first[i].at);
    assert.ok(gaps[0] >= 700 && gaps.slice(1).every((g) => g >= 1500), `retry waits ${gaps}`);
  } finally {
    await w.dispose();
    await receiver.close();
  }
});

test("a chain restart and a runtime restart in the middle of deliveries lose nothing", async () => {
  const secret = newWebhookSecret();
  // Slow answers, so that restarts land while requests are in flight.
  const receiver = await startReceiver(secret, () => ({ status: 200, delay: 150 }));
  const persist = tempDir();
  const signingKeys = newSigningKeys();
  const config = configWith([{ id: "wh-durable", chain: "TTE", url: receiver.url(), secret, maxBatch: 5 }], { webhookTimeoutSeconds: 2 });
  let w = await startWorker({ config, persist, signingKeys });
  try {
    let pms = await tokenFor(w.base, DEMO.pms1);
    const ops = await tokenFor(w.base, DEMO.ops);
    await publishAll(w.base, pms, [events(10), events(10)]);
    await until(() => receiver.requests.length >= 1, 5000, "a first delivery in flight");
    const restart = await request(w.base, "POST", "/admin/v1/chains/TTE/restart", { headers: { authorization: `Bearer ${ops}` } });
    assert.equal(restart.status, 202);
    await publishAll(w.base, pms, [events(10)]);
    await until(() => receiver.requests.length >= 3, 15000, "deliveries after the chain restart");
    // The whole runtime goes away mid-delivery and comes back on the same storage. Nothing
    // is published until what was acknowledged before has arrived: the attempt's lease and
    // the object's alarm alone bring the deliveries back.
    assert.ok(firstSeen(receiver.acceptedOffsets()).length < 30, "deliveries were still going on");
    await w.dispose();
    w = await startWorker({ config, persist, signingKeys });
    await until(() => firstSeen(receiver.acceptedOffsets()).length >= 30, 30000, "the 30 acknowledged events, with no publish after the restart");
    pms = await tokenFor(w.base, DEMO.pms1);
    await publishAll(w.base, pms, [events(10)]);
    await until(() => firstSeen(receiver.acceptedOffsets()).length >= 40, 40000, "all 40 events after both restarts");
    await sleep(500);
    assert.deepEqual(receiver.invalid, []);
    const offsets = receiver.acceptedOffsets();
    assert.deepEqual(firstSeen(offsets), range(1, 40), "every event, first seen in offset order");
    // At least once: anything seen twice came again as the same batch (same id).
    const byId = new Map();
    for (const d of receiver.accepted) {
      if (byId.has(d.id)) assert.deepEqual(d.offsets, byId.get(d.id), `${d.id} was repeated with other events`);
      byId.set(d.id, d.offsets);
    }
    const ids = new Set(receiver.accepted.flatMap((d) => d.body.events.map((e) => e.metadata.uniqueEventId)));
    assert.equal(ids.size, 40, "deduplicated by uniqueEventId, the receiver has all 40");
  } finally {
    await w.dispose();
    await receiver.close();
  }
});

test("a webhook failing past the window is paused, and an operator resumes it from an offset", async () => {
  const secret = newWebhookSecret();
  let healthy = false;
  const receiver = await startReceiver(secret, () => (healthy ? 200 : 500));
  const logs = [];
  const w = await startWorker({
    logs,
    config: configWith(
      [{ id: "wh-pause", chain: "TTE", url: receiver.url(), secret }],
      { webhookFirstRetrySeconds: 1, webhookMaxRetrySeconds: 1, webhookPauseAfterSeconds: 3 },
    ),
  });
  try {
    const pms = await tokenFor(w.base, DEMO.pms1);
    const ops = await tokenFor(w.base, DEMO.ops);
    const auth = { authorization: `Bearer ${ops}` };
    await publishAll(w.base, pms, [events(5)]);
    await until(() => auditLines(logs).some((a) => a.audit === "webhook.paused"), 15000, "the pause");
    const attempts = receiver.requests.length;
    assert.ok(attempts >= 3, `${attempts} attempts before the pause`);
    const paused = (await adminWebhooks(w.base, ops)).webhooks[0];
    assert.equal(paused.paused, true);
    assert.equal(paused.lagEvents, 5);
    assert.equal(paused.nextAttemptAt, null);
    assert.equal(paused.lastStatus, 500);
    assert.deepEqual(paused.pendingBatch, ["1", "5"]);
    await publishAll(w.base, pms, [events(1)]);
    await sleep(2500);
    assert.equal(receiver.requests.length, attempts, "no attempt while paused, even after a publish");

    const resume = (body, id = "wh-pause") =>
      request(w.base, "POST", `/admin/v1/chains/TTE/webhooks/${id}/resume`, { headers: { ...auth, "content-type": "application/json" }, body });
    assert.equal((await resume({ from: "99" })).json.error, "OFFSET_OUT_OF_RANGE");
    assert.equal((await resume({ from: "x" })).status, 400);
    assert.equal((await resume("[1]")).status, 400);
    assert.equal((await resume(JSON.stringify({ from: "3", pad: "x".repeat(5000) }))).status, 413);
    assert.equal((await resume({}, "wh-nope")).status, 404);
    const vendor = await tokenFor(w.base, DEMO.app1);
    assert.equal((await request(w.base, "POST", "/admin/v1/chains/TTE/webhooks/wh-pause/resume", { headers: { authorization: `Bearer ${vendor}` } })).status, 403);
    assert.equal((await request(w.base, "POST", "/admin/v1/chains/TTE/webhooks/wh-pause/resume")).status, 401);
    assert.equal((await request(w.base, "GET", "/admin/v1/chains/TTE/webhooks")).status, 401);
    assert.equal((await request(w.base, "GET", "/admin/v1/chains/TTE/webhooks", { headers: { authorization: `Bearer ${vendor}` } })).status, 403);
    assert.equal((await adminWebhooks(w.base, ops)).webhooks[0].paused, true, "refused resumes changed nothing");

    healthy = true;
    const resumed = await resume({ from: "3" });
    assert.equal(resumed.status, 200, resumed.text);
    assert.equal(resumed.json.wasPaused, true);
    await until(() => receiver.acceptedOffsets().length >= 4, 10000, "offsets 3..6 after the resume");
    assert.deepEqual(receiver.acceptedOffsets(), [3, 4, 5, 6]);
    const audit = auditLines(logs);
    assert.ok(audit.some((a) => a.audit === "webhook.resumed" && a.from === "3" && a.wasPaused === true && a.clientId === DEMO.ops.id));
    // The receiver sees offset 6 before the object has taken its 200 and moved the cursor.
    let after;
    await until(async () => (after = (await adminWebhooks(w.base, ops)).webhooks[0]).cursor === "6", 5000, "the cursor at 6");
    assert.deepEqual([after.paused, after.cursor, after.attempts, after.failingSince], [false, "6", 0, null]);
  } finally {
    await w.dispose();
    await receiver.close();
  }
});

test("a resume from behind retention signals the gap in the body", async () => {
  const secret = newWebhookSecret();
  const receiver = await startReceiver(secret);
  const w = await startWorker({ config: configWith([{ id: "wh-gap", chain: "TTE", url: receiver.url(), secret }], {}, { retentionSeconds: 1 }) });
  try {
    const pms = await tokenFor(w.base, DEMO.pms1);
    const ops = await tokenFor(w.base, DEMO.ops);
    await publishAll(w.base, pms, [events(3)]);
    await until(() => receiver.acceptedOffsets().length >= 3, 5000, "the first three");
    const stats = async () => (await request(w.base, "GET", "/admin/v1/chains/TTE", { headers: { authorization: `Bearer ${ops}` } })).json;
    // Retention (1 s, plus its slack) drops them.
    for (let i = 0; i < 100 && (await stats()).oldestOffset !== null; i++) await sleep(100);
    assert.equal((await stats()).oldestOffset, null, "retention dropped 1..3");
    await publishAll(w.base, pms, [events(2)]);
    await until(() => receiver.acceptedOffsets().length >= 5, 5000, "4 and 5");
    const resumed = await request(w.base, "POST", "/admin/v1/chains/TTE/webhooks/wh-gap/resume", {
      headers: { authorization: `Bearer ${ops}`, "content-type": "application/json" },
      body: { from: "1" },
    });
    assert.equal(resumed.status, 200, resumed.text);
    await until(() => receiver.accepted.length >= 3 && receiver.accepted.at(-1).body.gap, 5000, "the gap");
    const last = receiver.accepted.at(-1);
    assert.deepEqual(last.body.gap, { requested: "1", resumedAt: "4" });
    assert.deepEqual(last.offsets, [4, 5]);
    assert.deepEqual(receiver.invalid, []);
  } finally {
    await w.dispose();
    await receiver.close();
  }
});

test("a webhook outside the client's grants is refused at load, naming it", async () => {
  const w = await startWorker({ config: configWith([{ id: "wh-foreign", chain: "OTH", url: "https://vendor.example/h", secret: newWebhookSecret() }]) });
  try {
    const res = await request(w.base, "GET", "/healthz");
    assert.equal(res.status, 500);
    assert.match(res.json.error, /webhook "wh-foreign" is for chain "OTH", which is not granted/);
  } finally {
    await w.dispose();
  }
});

// The chain object has four connections for webhooks: a free one goes first to the webhook
// whose last attempt is oldest, so four slow receivers configured first cannot starve a fast
// fifth while publishing goes on.
test("a fast receiver is served within a second while four slow ones hold the connections", { timeout: 60_000 }, async () => {
  const secret = newWebhookSecret();
  const receiver = await startReceiver(secret, (_, d) => (d.path.startsWith("/fast") ? 200 : { status: 200, delay: 300 }));
  const hooks = ["slow1", "slow2", "slow3", "slow4", "fast"].map((id) => ({ id: `wh-${id}`, chain: "TTE", url: receiver.url(`/${id}`), secret }));
  // The receiver's paths are its own: /hook... is what it verifies; these go under it.
  for (const h of hooks) h.url = receiver.url(`/hook/${h.id}`);
  const w = await startWorker({ config: configWith(hooks) });
  try {
    const [pms, ops] = await Promise.all([tokenFor(w.base, DEMO.pms1), tokenFor(w.base, DEMO.ops, { scope: "urn:pms:admin" })]);
    const started = Date.now();
    const most = {};
    while (Date.now() - started < 6_000) {
      const res = await publish(w.base, pms, "TTE", events(1));
      assert.equal(res.status, 200, res.text);
      const status = await adminWebhooks(w.base, ops);
      for (const h of status.webhooks) most[h.id] = Math.max(most[h.id] ?? 0, h.lagEvents);
      await sleep(50);
    }
    const fast = receiver.accepted.filter((d) => d.path === "/hook/wh-fast");
    assert.ok(fast.length > 0, "the fast receiver got events while publishing went on");
    assert.ok(fast[0].at - started < 1_000, `its first event came ${fast[0].at - started} ms after the first publish`);
    // Starved, its lag would grow with every publish; served in turn, it stays within the slow ones' own.
    const slowest = Math.max(...["wh-slow1", "wh-slow2", "wh-slow3", "wh-slow4"].map((id) => most[id]));
    assert.ok(most["wh-fast"] <= slowest, `its lag (${most["wh-fast"]} at most) never exceeded the slow ones' (${slowest})`);
    assert.deepEqual(receiver.invalid, []);
  } finally {
    await w.dispose();
    await receiver.close();
  }
});
