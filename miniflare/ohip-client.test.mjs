// A vendor client that behaves like Oracle's sample streaming client (luisweir/streaming-client,
// `src/GsClient.ts`): graphql-ws with a keep-alive ping every 5 s, and a timer armed on every
// ping it sends *or receives* that only a received pong clears (PING / 2 later it refreshes the
// connection). Any server-initiated ping therefore makes it reconnect. At hotel rates this
// service never pings, so such a client streams without a single reconnect.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "graphql-ws";
import { CheckedWebSocket as WebSocket, startWorker, tokenFor, publish, event, DEMO, sleep, until } from "./harness.mjs";

const PING = 5_000;

/** The sample client's connection, as its `getClient` builds it; reconnects are counted. */
function sampleClient(base, token, onEvent, onRefresh) {
  let timedOut;
  let activeSocket;
  const client = createClient({
    webSocketImpl: WebSocket,
    url: `${base.replace("http", "ws")}/subscriptions?key=${Buffer.from("APPKEY001").toString("base64")}`,
    connectionParams: { Authorization: `Bearer ${token}`, "x-app-key": "APPKEY001", enterpriseId: "BROWNS" },
    shouldRetry: () => true,
    lazy: true,
    keepAlive: PING,
    on: {
      connected: (socket) => { activeSocket = socket; },
      // As in GsClient.ts: the `if (!received)` guards only the log line, so the timer is
      // armed for received pings too.
      ping: () => {
        timedOut = setTimeout(() => {
          if (activeSocket && activeSocket.readyState === WebSocket.OPEN) onRefresh();
        }, PING / 2);
      },
      pong: (received) => { if (received) clearTimeout(timedOut); },
    },
  });
  const query = `subscription { newEvent(input: {chainCode: "TTE"}) { metadata { offset uniqueEventId } eventName hotelId
    detail { elementName newValue oldValue } } }`;
  client.subscribe({ query }, { next: (r) => onEvent(r.data.newEvent), error: (e) => assert.fail(JSON.stringify(e)), complete: () => {} });
  return { dispose: () => { clearTimeout(timedOut); return client.dispose(); } };
}

test("a client that reconnects after any server ping streams 2 minutes at 5 events/s without one reconnect", { timeout: 180_000 }, async () => {
  const w = await startWorker();
  try {
    const [pms, vendor] = await Promise.all([tokenFor(w.base, DEMO.pms1), tokenFor(w.base, DEMO.app1)]);
    const offsets = [];
    let refreshes = 0;
    const client = sampleClient(w.base, vendor, (e) => offsets.push(Number(e.metadata.offset)), () => refreshes++);
    await sleep(1_000);
    const published = [];
    const started = Date.now();
    while (Date.now() - started < 120_000) {
      // A realistic event: a check-in with its room, guest and dates (about 600 bytes framed).
      const res = await publish(w.base, pms, "TTE", [event("TTE01", {
        detail: [
          { elementName: "RoomNumber", newValue: "1204", oldValue: null },
          { elementName: "GuestName", newValue: "Ada Lovelace", oldValue: null },
          { elementName: "ArrivalDate", newValue: "2026-12-07", oldValue: null },
          { elementName: "DepartureDate", newValue: "2026-12-10", oldValue: null },
        ],
      })]);
      assert.equal(res.status, 200, res.text);
      published.push(Number(res.json.offsets[0]));
      await sleep(200);
    }
    await until(() => offsets.length >= published.length, 10_000, "every event");
    assert.equal(refreshes, 0, "the client never saw a ping it had to refresh for");
    assert.deepEqual(offsets, published, "every event once, in order");
    assert.ok(published.length >= 500, `${published.length} events in two minutes`);
    await client.dispose();
  } finally {
    await w.dispose();
  }
});
