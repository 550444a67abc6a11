// A chain object restarted under live subscriptions (what a deploy or an eviction does):
// every subscription reattaches at its next offset, and the vendor's connection and
// subscriptions never notice beyond the pause. The restart is the operator endpoint
// `POST /admin/v1/chains/{chainCode}/restart`, which aborts the object (`ctx.abort()`).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "graphql-ws";
import { CheckedWebSocket as WebSocket } from "./harness.mjs";
import { startWorker, request, DEMO, tokenFor, publish, event, sleep, until, auditLines, vendorSocket } from "./harness.mjs";

const restart = (base, token, chain) =>
  request(base, "POST", `/admin/v1/chains/${chain}/restart`, { headers: { authorization: `Bearer ${token}` } });

test("subscriptions reattach after the chain object restarts, while events are being published: every offset once, in order", async () => {
  const logs = [];
  const w = await startWorker({ logs });
  const closes = [];
  const client = createClient({
    url: `${w.base.replace("http", "ws")}/subscriptions?key=${Buffer.from("APPKEY001").toString("base64")}`,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    connectionParams: async () => ({ Authorization: `Bearer ${await tokenFor(w.base, DEMO.app1)}`, "x-app-key": "APPKEY001" }),
    on: { closed: (e) => closes.push(e.code) },
  });
  try {
    const [pms, ops] = await Promise.all([tokenFor(w.base, DEMO.pms1), tokenFor(w.base, DEMO.ops)]);
    const offsets = [];
    const hotels = new Map();
    let failure = null;
    let completed = false;
    // Two subscriptions on one socket, one with a filter: both must survive the restart.
    const only02 = [];
    client.subscribe(
      { query: 'subscription { newEvent(input: {chainCode: "TTE", offset: "1"}) { metadata { offset } hotelId } }' },
      { next: (v) => { const o = Number(v.data.newEvent.metadata.offset); offsets.push(o); hotels.set(o, v.data.newEvent.hotelId); }, error: (e) => { failure = e; }, complete: () => { completed = true; } },
    );
    client.subscribe(
      { query: 'subscription { newEvent(input: {chainCode: "TTE", offset: "1", hotelCode: "TTE02"}) { metadata { offset } hotelId } }' },
      { next: (v) => only02.push(v.data.newEvent), error: (e) => { failure = e; }, complete: () => { completed = true; } },
    );
    const pub = async (n) => {
      const events = Array.from({ length: n }, (_, i) => event(i % 2 ? "TTE02" : "TTE01"));
      const res = await publish(w.base, pms, "TTE", events);
      assert.equal(res.status, 200, res.text);
      return res.json.offsets.map(Number);
    };
    const published = [...(await pub(5))];
    await until(() => offsets.length >= 5, 5000, "the first 5 events");

    // Publish continuously while the object restarts: some publishes land before, some
    // during (they wait for the new instance), some after.
    let publishing = true;
    const publisher = (async () => {
      while (publishing) published.push(...(await pub(3)));
    })();
    await sleep(100);
    const res = await restart(w.base, ops, "TTE");
    assert.equal(res.status, 202, res.text);
    assert.deepEqual(res.json, { chainCode: "TTE", restarted: true });
    await sleep(300);
    publishing = false;
    await publisher;
    published.push(...(await pub(4)));

    const head = Math.max(...published);
    await until(() => offsets.length >= head || failure || completed, 10000, `all ${head} offsets (have ${offsets.length})`);
    assert.equal(failure, null, `no subscription error: ${JSON.stringify(failure)}`);
    assert.equal(completed, false, "no subscription completed");
    await sleep(200);
    assert.deepEqual(offsets, Array.from({ length: head }, (_, i) => i + 1), "every offset once, in order");
    const expected02 = offsets.filter((o) => hotels.get(o) === "TTE02");
    await until(() => only02.length >= expected02.length, 5000, "the filtered subscription's events");
    assert.deepEqual(only02.map((e) => Number(e.metadata.offset)), expected02, "the filtered subscription: its events once, in order");
    assert.equal(closes.length, 0, "the vendor's connection stayed open");

    // The object is a new instance with the same storage, and both subscriptions are back.
    const stats = await request(w.base, "GET", "/admin/v1/chains/TTE", { headers: { authorization: `Bearer ${ops}` } });
    assert.equal(stats.json.headOffset, String(head));
    assert.equal(stats.json.retainedEvents, head);
    await until(() => auditLines(logs).filter((l) => l.audit === "subscription.reattached").length >= 2, 3000, "two reattach audit lines");
    const restarted = auditLines(logs).find((l) => l.audit === "chain.restarted");
    assert.equal(restarted.clientId, "ops-admin");
    assert.equal(restarted.chain, "TTE");
  } finally {
    await client.dispose();
    await w.dispose();
  }
});

test("restarting a chain needs an admin token for that chain", async () => {
  const w = await startWorker();
  try {
    const [app1, pms, ops] = await Promise.all([DEMO.app1, DEMO.pms1, DEMO.ops].map((c) => tokenFor(w.base, c)));
    assert.equal((await restart(w.base, "not-a-token", "TTE")).status, 401);
    assert.equal((await restart(w.base, app1, "TTE")).status, 403, "a vendor token");
    assert.equal((await restart(w.base, pms, "TTE")).status, 403, "a publisher token");
    const other = await restart(w.base, ops, "OTH");
    assert.equal(other.status, 403, "another enterprise's chain");
    assert.match(other.json.message ?? other.text, /OTH|chain/i);
    const get = await request(w.base, "GET", "/admin/v1/chains/TTE/restart", { headers: { authorization: `Bearer ${ops}` } });
    assert.equal(get.status, 405);
  } finally {
    await w.dispose();
  }
});

// Hibernation: an idle chain object leaves memory and keeps its sockets connected; the next
// publish wakes it, and it rebuilds its subscriptions from the sockets' attachments, which
// hold the cursors it keeps in memory while awake, and from its registry of their specs
// (both written within a second of an attach or a move).
test("a chain object woken from hibernation serves its subscriptions on from their cursors", { timeout: 90_000 }, async () => {
  const logs = [];
  const w = await startWorker({ logs });
  try {
    const [app1, pms, ops] = await Promise.all([DEMO.app1, DEMO.pms1, DEMO.ops].map((c) => tokenFor(w.base, c)));
    const stats = async () =>
      (await request(w.base, "GET", "/admin/v1/chains/TTE", { headers: { authorization: `Bearer ${ops}` } })).json;
    const v = vendorSocket(w.base, app1);
    await v.acked;
    v.subscribe("all", '{chainCode: "TTE", offset: "1"}');
    v.subscribe("tte02", '{chainCode: "TTE", offset: "1", hotelCode: "TTE02"}');
    const hotels = ["TTE01", "TTE02", "TTE01", "TTE02", "TTE01"];
    assert.equal((await publish(w.base, pms, "TTE", hotels.map((h) => event(h)))).status, 200);
    await until(() => v.offsets("all").length >= 5 && v.offsets("tte02").length >= 2, 5000, "the first five");
    const awake = await stats();
    // Idle until the runtime takes the object out of memory (10 s without an event; its
    // constructor runs again when it wakes: a new `countingSince`). Each look wakes it.
    let woke = null;
    for (let i = 0; i < 4 && !woke; i++) {
      await sleep(12_000);
      const now = await stats();
      if (now.countingSince !== awake.countingSince) woke = now;
    }
    assert.ok(woke, "the object hibernated and woke within a minute");
    assert.equal(woke.subscribers, 2, "both sockets stayed attached");
    const more = ["TTE02", "TTE01", "TTE02"];
    assert.equal((await publish(w.base, pms, "TTE", more.map((h) => event(h)))).status, 200);
    await until(() => v.offsets("all").length >= 8 && v.offsets("tte02").length >= 4, 5000, "the next three");
    await sleep(300);
    assert.deepEqual(v.offsets("all"), [1, 2, 3, 4, 5, 6, 7, 8], "no gap and no repeat across the wake");
    assert.deepEqual(v.offsets("tte02"), [2, 4, 6, 8]);
    // The gateway drops frames it already forwarded, so only the object's count shows
    // where it resumed: from the cursors it wrote before hibernating, not from older ones.
    assert.equal((await stats()).deliveries, 3 + 2, "the object sent only the three new events");
    // A subscription the woken object could not rebuild (no registry row) is closed, and its
    // gateway attaches it again: the vendor would see nothing, so the audit log must.
    const reattached = auditLines(logs).filter((l) => l.audit === "subscription.reattached");
    assert.deepEqual(reattached, [], "the woken object rebuilt both subscriptions itself");
    v.ws.close();
  } finally {
    await w.dispose();
  }
});
