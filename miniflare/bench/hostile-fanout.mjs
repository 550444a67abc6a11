// A hostile fan-out, watched through /healthz wasmMemoryBytes: a long log of large events,
// then many subscriptions that share nothing (each its own alias, so its own messages),
// replaying from offset 1, half of them on stalled readers, plus filters that match nothing.
// Prints the wasm memory high-water mark and whether the live readers got every event.
//
//   node miniflare/bench/hostile-fanout.mjs [EVENTS] [SUBSCRIPTIONS]
import { startWorker, tokenFor, publish, event, vendorSocket, DEMO } from "../harness.mjs";

const EVENTS = Number(process.argv[2] ?? 2000);
const SUBS = Number(process.argv[3] ?? 60);
const w = await startWorker({ direct: true, logs: { push() {} }, buildDir: process.env.BUILD_DIR });
const memory = async () => (await (await fetch(w.base + "/healthz")).json()).wasmMemoryBytes;
try {
  const pms = await tokenFor(w.base, DEMO.pms1);
  const app = await tokenFor(w.base, DEMO.app1);
  const big = "x".repeat(40 * 1024);
  for (let sent = 0; sent < EVENTS; sent += 20) {
    const batch = Array.from({ length: 20 }, () => event("TTE01", { detail: [{ elementName: "Note", elementType: "String", newValue: big, oldValue: null, elementSequence: 1 }] }));
    const res = await publish(w.base, pms, "TTE", batch);
    if (res.status !== 200) throw new Error(`publish ${res.status} ${res.text}`);
  }
  const before = await memory();
  let peak = before;
  const watch = setInterval(async () => (peak = Math.max(peak, await memory().catch(() => 0))), 100);
  const live = new Map();
  const sockets = [];
  for (let c = 0; c < SUBS / 10; c++) {
    const v = vendorSocket(w.base, app);
    await v.acked;
    sockets.push(v);
    const stalled = process.env.NO_STALL ? false : c % 2 === 1;
    for (let i = 0; i < 10; i++) {
      const id = `c${c}s${i}`;
      const nothing = i === 9;
      const input = `{chainCode: "TTE", offset: "1"${nothing ? ', eventNames: ["NO_SUCH_EVENT"]' : ""}}`;
      v.send({ id, type: "subscribe", payload: { query: `subscription { a${c}x${i}: newEvent(input: ${input}) { metadata { offset } detail { newValue } } }` } });
      if (!stalled && !nothing) live.set(id, 0);
    }
    if (stalled) v.ws._socket.pause(); // a reader that never reads
    else v.ws.on("message", (d) => { const m = JSON.parse(d.toString()); if (m.type === "next") live.set(m.id, live.get(m.id) + 1); });
  }
  const t0 = Date.now();
  while (Date.now() - t0 < 120_000 && [...live.values()].some((n) => n < EVENTS)) await new Promise((r) => setTimeout(r, 250));
  clearInterval(watch);
  const done = [...live.values()].filter((n) => n === EVENTS).length;
  console.log(`${EVENTS} events of ~40 KiB, ${SUBS} subscriptions sharing nothing (${live.size} live readers, the rest stalled or matching nothing)`);
  const counts = [...live.values()];
  console.log(`live readers with every event: ${done} of ${live.size} in ${((Date.now() - t0) / 1000).toFixed(1)} s (fewest ${Math.min(...counts)}, most ${Math.max(...counts)})`);
  console.log(`wasmMemoryBytes: ${(before / 2 ** 20).toFixed(1)} MiB before the subscriptions, peak ${(peak / 2 ** 20).toFixed(1)} MiB, now ${((await memory()) / 2 ** 20).toFixed(1)} MiB`);
  const closes = await Promise.all(sockets.map((v) => Promise.race([v.closed, new Promise((r) => setTimeout(() => r("open"), 10))])));
  console.log(`connections: ${JSON.stringify(closes)}`);
  const other = await publish(w.base, pms, "TTE", [event("TTE01")]);
  console.log(`a publish meanwhile: ${other.status}`);
  for (const v of sockets) v.ws.terminate();
} finally {
  await w.dispose();
}
