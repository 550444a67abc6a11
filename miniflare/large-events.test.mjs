// Events near the 64 KiB limit: replay must split its batches under the runtime's 1 MiB
// WebSocket message limit and still deliver every event once, in order.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createClient } from "graphql-ws";
import { CheckedWebSocket as WebSocket } from "./harness.mjs";
import { startWorker, DEMO, tokenFor, publish, event } from "./harness.mjs";

test("a replay of 60 KiB events arrives whole and in order", async () => {
  const w = await startWorker();
  try {
    const [pms, vendor] = await Promise.all([tokenFor(w.base, DEMO.pms1), tokenFor(w.base, DEMO.app1)]);
    const note = "x".repeat(60 * 1024);
    for (let b = 0; b < 4; b++) {
      const batch = Array.from({ length: 10 }, () => event("TTE01", { detail: [{ elementName: "Note", newValue: note }] }));
      const res = await publish(w.base, pms, "TTE", batch);
      assert.equal(res.status, 200, res.text);
    }
    const client = createClient({ url: w.base.replace("http", "ws") + "/subscriptions?key=QVBQS0VZMDAx", webSocketImpl: WebSocket, retryAttempts: 0, connectionParams: { Authorization: `Bearer ${vendor}`, "x-app-key": "APPKEY001" } });
    const got = [];
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${got.length} of 40`)), 15000);
      client.subscribe(
        { query: 'subscription { newEvent(input: {chainCode: "TTE", offset: "1"}) { metadata { offset } detail { newValue } } }' },
        {
          next: (v) => {
            got.push(v.data.newEvent);
            if (got.length === 40) { clearTimeout(timer); resolve(); }
          },
          error: reject,
          complete: () => {},
        },
      );
    });
    assert.deepEqual(got.map((e) => Number(e.metadata.offset)), Array.from({ length: 40 }, (_, i) => i + 1));
    assert.ok(got.every((e) => e.detail[0].newValue.length === 60 * 1024));
    await client.dispose();
  } finally {
    await w.dispose();
  }
});
