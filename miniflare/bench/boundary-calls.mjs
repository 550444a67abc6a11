// How often this code crosses between wasm and JavaScript, per delivery: a copy of the build
// whose shim counts every call of each wasm import (wasm-bindgen's `__wbg_*` glue: the
// runtime's `send`, string and byte copies, `Date.now`, task scheduling...), run under a
// fan-out load, the counts read back through the inspector. Counts do not depend on the
// machine's noise or on a profiler's overhead (the V8 profiler books `queueMicrotask`, ~2 µs
// a call on this runtime, at tens of times that), so they compare builds exactly.
//
//   node miniflare/bench/boundary-calls.mjs [--subscribers=100] [--batch=10] [--publishes=100]
//                                           [--build=DIR] (another build/ folder)
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startWorker, tokenFor, publish, event, until, DEMO } from "../harness.mjs";
import { cdp, subscribe } from "./inspector.mjs";

const args = Object.fromEntries(process.argv.slice(2).map((a) => {
  const m = /^--([a-z]+)=(.*)$/.exec(a);
  if (!m) throw new Error(`unknown argument ${a}`);
  return [m[1], m[1] === "build" ? m[2] : Number(m[2])];
}));
const subscribers = args.subscribers ?? 100;
const batch = args.batch ?? 10;
const publishes = args.publishes ?? 100;
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
const PORT = 9800 + Math.floor(Math.random() * 100);

// The counting copy: every import of the wasm instance wrapped in a counter kept on the
// isolate's global object (the Worker and its objects share the isolate locally).
const build = mkdtempSync(path.join(tmpdir(), "pms-calls-"));
cpSync(args.build ?? path.join(root, "build"), build, { recursive: true });
const shim = path.join(build, "index.js");
const source = readFileSync(shim, "utf8");
const instantiate = /new WebAssembly\.Instance\((\w+),(\w+)\(\)\)/g;
if (!instantiate.test(source)) throw new Error("the shim's `new WebAssembly.Instance(module, imports())` was not found");
const counter = `function __countingImports(o){const c=globalThis.__wasmImportCalls??=new Map();` +
  `for(const m of Object.values(o))for(const k of Object.keys(m)){const f=m[k];if(typeof f!=="function")continue;` +
  `m[k]=function(...a){c.set(k,(c.get(k)??0)+1);return f.apply(this,a)}}return o}`;
writeFileSync(shim, counter + source.replace(instantiate, "new WebAssembly.Instance($1,__countingImports($2()))"));

/** An inspector session on the isolate, reading the counts from its global object. */
async function session(url) {
  const s = await cdp(url);
  await s.send("Runtime.enable");
  await until(() => s.contexts.length > 0, 2000, "the isolate's execution context");
  return {
    async counts() {
      const expression = "JSON.stringify([...(globalThis.__wasmImportCalls ?? new Map())])";
      const { result } = await s.send("Runtime.evaluate", { contextId: s.contexts[0], expression, returnByValue: true });
      return new Map(JSON.parse(result.value));
    },
    close: () => s.close(),
  };
}

const w = await startWorker({ direct: true, buildDir: build, logs: { push() {} }, miniflare: { inspectorPort: PORT } });
try {
  const pms = await tokenFor(w.base, DEMO.pms1);
  const app1 = await tokenFor(w.base, DEMO.app1);
  const sockets = [];
  let frames = 0;
  for (let i = 0; i < subscribers; i++) {
    const ws = await subscribe(w.base, app1);
    ws.on("message", (d) => { if (d.toString().includes('"next"')) frames++; });
    sockets.push(ws);
  }
  const body = () => JSON.stringify(Array.from({ length: batch }, (_, i) => event(i % 2 ? "TTE02" : "TTE01")));
  // Warm: the subscriptions attached and caught up; then only the measured publishes count.
  await publish(w.base, pms, "TTE", body());
  await until(() => frames >= subscribers * batch, 10_000, "the warm-up publish delivered");
  const targets = await (await fetch(`http://127.0.0.1:${PORT}/json`)).json();
  const s = await session(targets.find((t) => t.id === "core:user:").webSocketDebuggerUrl);
  const before = await s.counts();
  frames = 0;
  for (let i = 0; i < publishes; i++) {
    if ((await publish(w.base, pms, "TTE", body())).status !== 200) throw new Error("publish failed");
    await new Promise((r) => setTimeout(r, 20)); // unsaturated: one fan-out per publish
  }
  const deliveries = publishes * batch * subscribers;
  await until(() => frames >= deliveries, 30_000, "every measured event delivered");
  await new Promise((r) => setTimeout(r, 1500)); // the acknowledgements and the flush
  const after = await s.counts();
  s.close();
  sockets.forEach((ws) => ws.close());
  const rows = [...after].map(([k, n]) => [k, n - (before.get(k) ?? 0)]).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
  const total = rows.reduce((a, [, n]) => a + n, 0);
  console.log(`${publishes} publishes of ${batch} events to ${subscribers} subscribers: ${deliveries} deliveries, ` +
    `${publishes * subscribers} internal messages; ${total} calls from wasm into JavaScript, ` +
    `${(total / deliveries).toFixed(2)} per delivery\n`);
  console.log("    calls  per delivery  per publish  import");
  for (const [k, n] of rows.slice(0, args.top ?? 30)) {
    console.log(`${String(n).padStart(9)}  ${(n / deliveries).toFixed(3).padStart(12)}  ${(n / publishes).toFixed(1).padStart(11)}  ${k}`);
  }
} finally {
  await w.dispose();
}
