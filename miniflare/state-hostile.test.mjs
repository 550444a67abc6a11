// The current state under a hostile reader (docs/protocol.md, Current state): a chain with
// 1,000,000 entities (E2E_STATE_ENTITIES to change it) and a client paging the state at
// limit=1000 in a loop. Each page is one bounded turn of the chain's object, so the walk holds
// no memory across pages and a live subscriber on the same chain keeps receiving meanwhile.
// `node miniflare/bench/state.mjs` runs the same and prints the numbers.
import { test } from "node:test";
import assert from "node:assert/strict";
import { startWorker } from "./harness.mjs";
import { populate, foldedAll, heap, liveSubscriber, walkRepeatedly, stateConfig } from "./bench/state.mjs";

const ENTITIES = Number(process.env.E2E_STATE_ENTITIES ?? 1_000_000);
const MiB = 1 << 20;

test(`${ENTITIES} entities paged at limit=1000 in a loop: the heap stays put, a live subscriber is served within 1 s`, { timeout: 600_000 }, async () => {
  const w = await startWorker({ config: stateConfig(), direct: true });
  try {
    await populate(w, ENTITIES);
    await foldedAll(w);
    const before = await heap(w);
    const live = await liveSubscriber(w);
    const walked = await walkRepeatedly(w, 15);
    const worst = await live.stop();
    const after = await heap(w);
    assert.ok(walked.pages > 10, `the walk went on: ${JSON.stringify(walked)}`);
    assert.ok(walked.entities >= Math.min(ENTITIES, 10_000), `pages carried entities: ${JSON.stringify(walked)}`);
    assert.ok(worst.sent >= 20 && worst.received >= worst.sent - 1, `every live event arrived: ${JSON.stringify(worst)}`);
    assert.ok(worst.ms <= 1000, `the live subscriber waited at most 1 s, not ${worst.ms} ms`);
    assert.ok(after - before <= 16 * MiB, `the wasm heap grew ${((after - before) / MiB).toFixed(1)} MiB during the walk`);
  } finally {
    await w.dispose();
  }
});
