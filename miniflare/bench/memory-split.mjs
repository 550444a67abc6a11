#!/usr/bin/env node
// Where an idle subscription's memory is: the isolate's JavaScript heap (V8, read through
// the inspector; wasm-bindgen's handles and the runtime's JS wrappers live there) against
// workerd's whole RSS (the runtime's native socket and request machinery, its allocator).
// `npm run bench -- memory` measures RSS only; this splits it, over attach/close cycles.
//
//   node miniflare/bench/memory-split.mjs [COUNT] [CYCLES] [--gc] [--chains=N]
//
// --chains=N: the bench configuration (config/bench.json), the subscriptions spread
// round-robin over its chains BENCH001..BENCH<N> (each chain its own object), to compare
// what an idle subscriber costs spread over many chains with all on one (--chains=1).
//
// --gc: after each cycle's sockets close, ask V8 (through the inspector) to collect garbage,
// which an idle isolate otherwise rarely does: the JS wrappers of closed sockets and requests
// hold native memory that V8's heuristics do not see.
//
// Subscribers are raw `ws` sockets speaking graphql-transport-ws, one subscription each, as
// in the memory scenario; the worker is started with a direct socket (no local router).
import { readFileSync, readdirSync } from "node:fs";
import { startWorker, tokenFor, DEMO, sleep } from "../harness.mjs";
import { cdp, subscribe } from "./inspector.mjs";

const positional = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const COUNT = Number(positional[0] ?? 1000);
const CYCLES = Number(positional[1] ?? 3);
const GC = process.argv.includes("--gc");
const PORT = 9300 + Math.floor(Math.random() * 500);

const workerdPids = () => new Set(readdirSync("/proc").filter((p) => /^\d+$/.test(p)).filter((p) => {
  try { return readFileSync(`/proc/${p}/comm`, "utf8").startsWith("workerd"); } catch { return false; }
}));
const rssMiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]) / 1024;

const CHAINS = Number(process.argv.find((a) => a.startsWith("--chains="))?.split("=")[1] ?? 0);
const chainAt = (i) => (CHAINS ? `BENCH${String((i % CHAINS) + 1).padStart(3, "0")}` : "TTE");
const idle = (base, token, i = 0) => subscribe(base, token, "metadata { offset }", chainAt(i));
const root = new URL("../..", import.meta.url).pathname;
const config = CHAINS ? readFileSync(`${root}config/bench.json`, "utf8") : undefined;

const before = workerdPids();
const w = await startWorker({ direct: true, config, miniflare: { inspectorPort: PORT } });
const pid = [...workerdPids()].find((p) => !before.has(p));
try {
  const token = await tokenFor(w.base, DEMO.app1);
  const targets = await (await fetch(`http://127.0.0.1:${PORT}/json`)).json();
  // The Worker's isolate (the gateway and the chain objects share it locally).
  const sessions = [];
  for (const t of targets.filter((t) => t.id === "core:user:")) {
    const s = await cdp(t.webSocketDebuggerUrl);
    await s.send("Runtime.enable");
    await s.send("HeapProfiler.enable");
    sessions.push(s);
  }
  const heap = async () => {
    let used = 0, total = 0;
    for (const s of sessions) { const h = await s.send("Runtime.getHeapUsage"); used += h.usedSize; total += h.totalSize; }
    return { used: used / 2 ** 20, total: total / 2 ** 20 };
  };
  (await idle(w.base, token)).close();
  await sleep(1500);
  const base = { rss: rssMiB(pid), ...(await heap()) };
  const line = async (what, n) => {
    const rss = rssMiB(pid) - base.rss, h = await heap();
    const each = n ? ` (${((rss * 1024) / n).toFixed(0)} KiB per subscription, of it JS heap ${(((h.used - base.used) * 1024) / n).toFixed(1)} KiB)` : "";
    console.log(`  ${what.padEnd(34)} RSS +${rss.toFixed(1).padStart(6)} MiB, JS heap used +${(h.used - base.used).toFixed(1).padStart(5)} MiB of ${h.total.toFixed(1)} MiB${each}`);
  };
  console.log(`baseline: RSS ${base.rss.toFixed(1)} MiB, JS heap used ${base.used.toFixed(1)} of ${base.total.toFixed(1)} MiB; ${COUNT} subscriptions per cycle${CHAINS ? ` over ${CHAINS} chain(s)` : ""}`);
  for (let cycle = 1; cycle <= CYCLES; cycle++) {
    const sockets = [];
    for (let i = 0; i < COUNT; i += 50) sockets.push(...(await Promise.all(Array.from({ length: Math.min(50, COUNT - i) }, (_, k) => idle(w.base, token, i + k)))));
    await sleep(2000);
    await line(`cycle ${cycle}: ${COUNT} attached, idle 2 s`, COUNT);
    for (const ws of sockets) ws.close();
    await sleep(2500);
    await line(`cycle ${cycle}: all closed, 2.5 s later`, 0);
    if (GC) {
      // workerd answers this late or not at all; the collection itself runs.
      for (const s of sessions) s.send("HeapProfiler.collectGarbage").catch(() => {});
      await sleep(1500);
      await line(`cycle ${cycle}: closed, after a GC`, 0);
    }
  }
  for (const s of sessions) s.close();
} finally {
  await w.dispose();
}
