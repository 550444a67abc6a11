// Slow-consumer detection (on by default; limits.slowConsumerSeconds, slowConsumerBytes): a
// client that stops reading is closed with 4413 instead of being buffered without bound,
// whatever pongs it sends; one that keeps up (and echoes the ping's payload, as graphql-ws
// clients do) is not; and one that reads at hotel rates is never pinged at all.
import { test } from "node:test";
import assert from "node:assert/strict";
import { CheckedWebSocket as WebSocket } from "./harness.mjs";
import { startWorker, tokenFor, publish, event, DEMO, demoConfig } from "./harness.mjs";

function connect(w, token, { offset, fields = "" } = {}) {
  const from = offset ? `, offset: "${offset}"` : "";
  const ws = new WebSocket(w.base.replace("http", "ws") + "/subscriptions?key=QVBQS0VZMDAx", "graphql-transport-ws");
  const state = { messages: [], pings: 0 };
  state.closed = new Promise((resolve) => ws.on("close", (code, reason) => resolve((state.close = { code, reason: reason.toString() }))));
  ws.on("message", (m) => {
    const msg = JSON.parse(m.toString());
    state.messages.push(msg);
    if (msg.type === "ping") {
      state.pings += 1;
      ws.send(JSON.stringify(msg.payload ? { type: "pong", payload: msg.payload } : { type: "pong" }));
    }
  });
  ws.on("open", () => {
    ws.send(JSON.stringify({ type: "connection_init", payload: { Authorization: `Bearer ${token}`, "x-app-key": "APPKEY001" } }));
    ws.send(JSON.stringify({ id: "s", type: "subscribe", payload: { query: `subscription { newEvent(input: {chainCode: "TTE"${from}}) { metadata { offset } ${fields} } }` } }));
  });
  return { ws, state };
}

test("a client that stops reading is closed 4413 even while it sends pongs; one that answers pings stays", async () => {
  // A small unread limit: its quarter (16 KiB) unconfirmed makes a ping due at this low rate.
  const config = structuredClone(demoConfig);
  config.limits = { slowConsumerSeconds: 2, slowConsumerBytes: 64 * 1024 };
  const w = await startWorker({ config });
  try {
    const [vendor, pms] = await Promise.all([tokenFor(w.base, DEMO.app1), tokenFor(w.base, DEMO.pms1)]);
    const healthy = connect(w, vendor);
    const stalled = connect(w, vendor);
    await new Promise((r) => setTimeout(r, 500));
    stalled.ws._socket.pause(); // stops reading: nothing it is sent gets consumed
    // ...and tries to look alive with unsolicited pongs and guessed nonces.
    const fake = setInterval(() => {
      stalled.ws.send(JSON.stringify({ type: "pong" }));
      stalled.ws.send(JSON.stringify({ type: "pong", payload: { slowConsumerCheck: String(Date.now()) } }));
    }, 100);
    for (let i = 0; i < 10; i++) {
      await publish(w.base, pms, "TTE", Array.from({ length: 20 }, () => event("TTE01")));
      await new Promise((r) => setTimeout(r, 500));
    }
    clearInterval(fake);
    stalled.ws._socket.resume();
    const closed = await Promise.race([stalled.state.closed, new Promise((r) => setTimeout(() => r({ code: "timeout" }), 5000))]);
    assert.equal(closed.code, 4413);
    assert.match(closed.reason, /too slow/);
    assert.ok(healthy.state.pings >= 2, `the healthy client was pinged (${healthy.state.pings})`);
    assert.equal(healthy.ws.readyState, WebSocket.OPEN, "a client that keeps up stays connected");
    const offsets = healthy.state.messages.filter((m) => m.type === "next").map((m) => Number(m.payload.data.newEvent.metadata.offset));
    assert.deepEqual(offsets, Array.from({ length: 200 }, (_, i) => i + 1));
    healthy.ws.close();
  } finally {
    await w.dispose();
  }
});

/** Publishes `batches` batches of `perBatch` events, each carrying `note` in its detail. */
async function publishNotes(w, pms, batches, perBatch, note) {
  for (let b = 0; b < batches; b++) {
    const batch = Array.from({ length: perBatch }, () => event("TTE01", { detail: [{ elementName: "Note", newValue: note }] }));
    const res = await publish(w.base, pms, "TTE", batch);
    assert.equal(res.status, 200, res.text);
  }
}

/** A reader far slower than a replay: it reads nothing for `ms`, then everything. */
async function pauseReading(reader, ms) {
  reader.ws._socket.pause();
  await new Promise((r) => setTimeout(r, ms));
  reader.ws._socket.resume();
}

test("a vendor that reads a long replay slower than it is sent is fed at its pace, not closed", async () => {
  // 6 MiB of events against a 2 MiB unread limit: without pacing the gateway sent the whole
  // replay into the runtime's buffer while the reader was paused, and closed it (4413).
  const config = structuredClone(demoConfig);
  config.limits = { slowConsumerBytes: 2 * 1024 * 1024 };
  const w = await startWorker({ config });
  try {
    const [vendor, pms] = await Promise.all([tokenFor(w.base, DEMO.app1), tokenFor(w.base, DEMO.pms1)]);
    const note = "x".repeat(60 * 1024);
    await publishNotes(w, pms, 10, 10, note);
    const reader = connect(w, vendor, { offset: "1", fields: "detail { newValue }" });
    await new Promise((r) => reader.ws.on("open", r));
    await pauseReading(reader, 3000);
    const deadline = Date.now() + 20000;
    const nexts = () => reader.state.messages.filter((m) => m.type === "next");
    while (nexts().length < 100 && reader.ws.readyState === WebSocket.OPEN && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(reader.ws.readyState, WebSocket.OPEN, `still connected: ${JSON.stringify(reader.state.close)}`);
    assert.deepEqual(nexts().map((m) => Number(m.payload.data.newEvent.metadata.offset)), Array.from({ length: 100 }, (_, i) => i + 1));
    assert.ok(nexts().every((m) => m.payload.data.newEvent.detail[0].newValue === note), "whole events");
    assert.ok(reader.state.pings >= 3, `paced by pings (${reader.state.pings})`);
    reader.ws.close();
  } finally {
    await w.dispose();
  }
});

test("five replays on one slow connection are paced together: each gets everything, in order", async () => {
  // 5 subscriptions x 60 events of ~20 KiB (6 MiB) against a 4 MiB limit: the connection is
  // paced as a whole, each subscription adding at most its window while it is behind.
  const config = structuredClone(demoConfig);
  config.limits = { slowConsumerBytes: 4 * 1024 * 1024 };
  const w = await startWorker({ config });
  try {
    const [vendor, pms] = await Promise.all([tokenFor(w.base, DEMO.app1), tokenFor(w.base, DEMO.pms1)]);
    const note = "y".repeat(20 * 1024);
    await publishNotes(w, pms, 3, 20, note);
    const reader = connect(w, vendor, { offset: "1", fields: "detail { newValue }" });
    await new Promise((r) => reader.ws.on("open", r));
    for (let i = 0; i < 4; i++) {
      reader.ws.send(JSON.stringify({ id: `r${i}`, type: "subscribe", payload: { query: `subscription { a${i}: newEvent(input: {chainCode: "TTE", offset: "1"}) { metadata { offset } detail { newValue } } }` } }));
    }
    await pauseReading(reader, 3000);
    const byId = () => {
      const got = new Map();
      for (const m of reader.state.messages.filter((m) => m.type === "next")) {
        const data = Object.values(m.payload.data)[0];
        assert.equal(data.detail[0].newValue, note);
        got.set(m.id, [...(got.get(m.id) ?? []), Number(data.metadata.offset)]);
      }
      return got;
    };
    const deadline = Date.now() + 30000;
    while ([...byId().values()].reduce((n, l) => n + l.length, 0) < 300 && reader.ws.readyState === WebSocket.OPEN && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(reader.ws.readyState, WebSocket.OPEN, `still connected: ${JSON.stringify(reader.state.close)}`);
    const got = byId();
    assert.deepEqual([...got.keys()].sort(), ["r0", "r1", "r2", "r3", "s"]);
    for (const [id, offsets] of got) assert.deepEqual(offsets, Array.from({ length: 60 }, (_, i) => i + 1), id);
    reader.ws.close();
  } finally {
    await w.dispose();
  }
});
