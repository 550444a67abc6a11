// The audit log (docs/protocol.md, Audit log) of a whole vendor session and a publish, read from the
// runtime's own output; and the admin endpoint's numbers and refusals.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "graphql-ws";
import { CheckedWebSocket as WebSocket } from "./harness.mjs";
import { startWorker, request, DEMO, tokenFor, publish, event, demoConfig, auditLines } from "./harness.mjs";

async function waitFor(pred, ms = 3000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (pred()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return pred();
}

test("a vendor session and a publish leave the expected audit lines, in order, with their fields", async () => {
  const logs = [];
  const w = await startWorker({ logs });
  try {
    const pms = await tokenFor(w.base, DEMO.pms1);
    const vendorToken = await tokenFor(w.base, DEMO.app1);
    const url = w.base.replace("http", "ws") + "/subscriptions?key=" + Buffer.from("APPKEY001").toString("base64");
    const client = createClient({ url, webSocketImpl: WebSocket, retryAttempts: 0, lazy: false, connectionParams: { Authorization: `Bearer ${vendorToken}`, "x-app-key": "APPKEY001" } });
    const got = [];
    let unsubscribe;
    const received = new Promise((resolve, reject) => {
      unsubscribe = client.subscribe(
        { query: 'subscription { newEvent(input: {chainCode: "TTE"}) { metadata { offset } } }' },
        { next: (v) => { got.push(v); if (got.length === 2) resolve(); }, error: reject, complete: resolve },
      );
    });
    await waitFor(() => auditLines(logs).some((l) => l.audit === "subscription.started"));
    const res = await publish(w.base, pms, "TTE", [event("TTE01"), event("TTE02")], { "x-request-id": "pub-req-1" });
    assert.equal(res.status, 200);
    await received;
    unsubscribe();
    await waitFor(() => auditLines(logs).some((l) => l.audit === "subscription.completed"));
    await client.dispose();
    await waitFor(() => auditLines(logs).some((l) => l.audit === "connection.closed"));
    await publish(w.base, "bad.token.here", "TTE", event("TTE01"));

    const lines = auditLines(logs);
    const order = lines.map((l) => l.audit);
    const expected = ["token.issued", "token.issued", "connection.opened", "connection.authenticated", "subscription.started", "publish.accepted", "subscription.completed", "connection.closed", "publish.refused"];
    let at = -1;
    for (const name of expected) {
      const next = order.indexOf(name, at + 1);
      assert.ok(next > at, `${name} after position ${at} in ${JSON.stringify(order)}`);
      at = next;
    }
    const byName = (n) => lines.filter((l) => l.audit === n);
    for (const l of lines) {
      assert.equal(typeof l.ts, "number");
      assert.ok(l.requestId, `${l.audit} has a request id`);
    }
    const issued = byName("token.issued").find((l) => l.clientId === "client-app-001");
    assert.equal(issued.enterpriseId, "BROWNS");
    assert.equal(issued.scope, "urn:pms:events");
    const opened = byName("connection.opened")[0];
    assert.equal(opened.clientId, "client-app-001");
    const started = byName("subscription.started")[0];
    assert.equal(started.chain, "TTE");
    assert.equal(started.clientId, "client-app-001");
    assert.equal(started.enterpriseId, "BROWNS");
    assert.equal(started.connectionId, opened.connectionId);
    assert.ok(started.operationId);
    const accepted = byName("publish.accepted")[0];
    assert.equal(accepted.requestId, "pub-req-1");
    assert.equal(accepted.clientId, "pms-core-001");
    assert.equal(accepted.chain, "TTE");
    assert.deepEqual([accepted.firstOffset, accepted.lastOffset, accepted.events], ["1", "2", 2]);
    const completed = byName("subscription.completed")[0];
    assert.equal(completed.operationId, started.operationId);
    assert.equal(completed.delivered, 2);
    assert.deepEqual([completed.firstOffset, completed.lastOffset], ["1", "2"]);
    const closed = byName("connection.closed")[0];
    assert.equal(typeof closed.code, "number");
    assert.equal(typeof closed.durationMs, "number");
    assert.equal(byName("publish.refused")[0].status, 401);
  } finally {
    await w.dispose();
  }
});

test("refused logins and refused connections are audited", async () => {
  const logs = [];
  const w = await startWorker({ logs });
  try {
    await request(w.base, "POST", "/oauth/v1/tokens", {
      headers: { "content-type": "application/x-www-form-urlencoded", authorization: "Basic " + Buffer.from("client-app-001:nope").toString("base64"), "x-app-key": "APPKEY001", enterpriseId: "BROWNS" },
      body: "grant_type=client_credentials",
    });
    await request(w.base, "GET", "/subscriptions?key=bm9wZQ", { headers: { upgrade: "websocket" } });
    await waitFor(() => auditLines(logs).filter((l) => l.audit.endsWith(".refused")).length >= 2);
    const lines = auditLines(logs);
    const token = lines.find((l) => l.audit === "token.refused");
    assert.equal(token.clientId, "client-app-001");
    assert.equal(token.status, 401);
    const conn = lines.find((l) => l.audit === "connection.refused");
    assert.equal(conn.status, 400);
  } finally {
    await w.dispose();
  }
});

test("admin chain statistics after known publishes and connections", async () => {
  const w = await startWorker();
  try {
    const [pms, ops, vendor] = await Promise.all([DEMO.pms1, DEMO.ops, DEMO.app1].map((c) => tokenFor(w.base, c)));
    const before = Date.now();
    await publish(w.base, pms, "HTBTTE", [event("HTB01"), event("HTB01"), event("HTB01")]);
    const url = w.base.replace("http", "ws") + "/subscriptions?key=" + Buffer.from("APPKEY001").toString("base64");
    const client = createClient({ url, webSocketImpl: WebSocket, retryAttempts: 0, connectionParams: { Authorization: `Bearer ${vendor}`, "x-app-key": "APPKEY001" } });
    const first = new Promise((resolve, reject) => client.subscribe(
      { query: 'subscription { newEvent(input: {chainCode: "HTBTTE", offset: "3"}) { metadata { offset } } }' },
      { next: resolve, error: reject, complete: () => {} },
    ));
    await first;
    const stats = await request(w.base, "GET", "/admin/v1/chains/HTBTTE", { headers: { authorization: `Bearer ${ops}` } });
    assert.equal(stats.status, 200, stats.text);
    assert.equal(stats.json.chainCode, "HTBTTE");
    assert.equal(stats.json.headOffset, "3");
    assert.equal(stats.json.oldestOffset, "1");
    assert.equal(stats.json.retainedEvents, 3);
    assert.equal(stats.json.subscribers, 1);
    assert.ok(stats.json.lastPublishAt >= before - 1000 && stats.json.lastPublishAt <= Date.now() + 1000);
    await client.dispose();
    const empty = await request(w.base, "GET", "/admin/v1/chains/TTE", { headers: { authorization: `Bearer ${ops}` } });
    assert.deepEqual([empty.json.headOffset, empty.json.oldestOffset, empty.json.retainedEvents, empty.json.lastPublishAt], ["0", null, 0, null]);
  } finally {
    await w.dispose();
  }
});

test("admin endpoint refusals: no token 401, vendor or publisher 403, other enterprise's chain 403", async () => {
  const config = structuredClone(demoConfig);
  const w = await startWorker({ config });
  try {
    const [ops, vendor, pms] = await Promise.all([DEMO.ops, DEMO.app1, DEMO.pms1].map((c) => tokenFor(w.base, c)));
    const none = await request(w.base, "GET", "/admin/v1/chains/TTE");
    assert.equal(none.status, 401);
    assert.equal(none.json.error, "invalid_token");
    for (const t of [vendor, pms]) {
      const res = await request(w.base, "GET", "/admin/v1/chains/TTE", { headers: { authorization: `Bearer ${t}` } });
      assert.equal(res.status, 403);
      assert.match(res.json.message, /urn:pms:admin/);
    }
    const other = await request(w.base, "GET", "/admin/v1/chains/OTH", { headers: { authorization: `Bearer ${ops}` } });
    assert.equal(other.status, 403);
    const unknown = await request(w.base, "GET", "/admin/v1/chains/NOPE", { headers: { authorization: `Bearer ${ops}` } });
    assert.equal(unknown.status, 403);
  } finally {
    await w.dispose();
  }
});
