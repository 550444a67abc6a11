#!/usr/bin/env node
// Where the runtime's CPU goes: runs a publish load against the built worker on workerd with
// the V8 inspector on, samples the isolates with the CPU profiler and prints self time by
// function (wasm functions keep their Rust names). A tool for finding hot spots, not a
// benchmark: sampling adds its own overhead.
//
//   node miniflare/bench/profile.mjs [--batch=N] [--seconds=S] [--publishers=P] [--top=K]
//                                    [--subscribers=N] [--callers=NAME] [--save=FILE.cpuprofile]
//                                    [--direct=1] (bypass miniflare's local request router)
//                                    [--floor=1] (profile the publish floor instead: publish-floor.mjs)
//
// `core:user:` is our worker and its Durable Objects (one isolate); `core:entry` is the
// request router miniflare puts in front of it locally (not part of a deployment).

import { writeFileSync } from "node:fs";
import { startWorker, tokenFor, publish, event, DEMO } from "../harness.mjs";
import { startFloor, floorPath } from "./publish-floor.mjs";
import { cdp, subscribe } from "./inspector.mjs";

const args = Object.fromEntries(process.argv.slice(2).map((a) => {
  const m = /^--([a-z]+)=(.*)$/.exec(a);
  if (!m) throw new Error(`unknown argument ${a}`);
  return [m[1], m[1] === "save" || m[1] === "callers" ? m[2] : Number(m[2])];
}));
const batch = args.batch ?? 100;
const seconds = args.seconds ?? 5;
const publishers = args.publishers ?? 4;
const top = args.top ?? 35;
const subscribers = args.subscribers ?? 0;
const PORT = 9300 + Math.floor(Math.random() * 500);

const floor = Boolean(args.floor);
const post = floor
  ? (base, _token, body) => fetch(base + floorPath("TTE"), { method: "POST", body }).then(async (r) => (await r.arrayBuffer(), r.status), () => 0)
  : (base, token, body) => publish(base, token, "TTE", body).then((r) => r.status, () => 0);

/** Time per function, in ms, from a V8 CPU profile (self, or inclusive of callees). */
function inclusiveTimes(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const totals = new Map();
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length; i++) {
    const seen = new Set();
    for (let id = samples[i]; id !== undefined; id = parent.get(id)) {
      const name = byId.get(id).callFrame.functionName || "(anonymous)";
      if (seen.has(name)) continue;
      seen.add(name);
      totals.set(name, (totals.get(name) ?? 0) + (timeDeltas[i] ?? 0) / 1000);
    }
  }
  return [...totals.entries()].sort((a, b) => b[1] - a[1]);
}

/** The callers of functions named `name`, with the (inclusive) time spent in them. */
function callers(profile, name) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const totals = new Map();
  profile.samples.forEach((sample, i) => {
    for (let id = sample; id !== undefined; id = parent.get(id)) {
      if (byId.get(id).callFrame.functionName !== name) continue;
      // the first caller up the stack that is not glue
      let up = parent.get(id);
      const chain = [];
      while (up !== undefined && chain.length < 3) {
        const f = byId.get(up).callFrame.functionName || "(anonymous)";
        chain.push(f.replace(/::h[0-9a-f]{16}$/, ""));
        up = parent.get(up);
      }
      const key = chain.join(" < ");
      totals.set(key, (totals.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000);
      break;
    }
  });
  return [...totals.entries()].sort((a, b) => b[1] - a[1]);
}

function selfTimes(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const totals = new Map();
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length; i++) {
    const n = byId.get(samples[i]);
    const f = n.callFrame;
    const name = f.functionName || "(anonymous)";
    const where = f.url ? ` ${f.url.split("/").pop()}` : "";
    const key = `${name}${where}`;
    totals.set(key, (totals.get(key) ?? 0) + (timeDeltas[i] ?? 0) / 1000);
  }
  return [...totals.entries()].sort((a, b) => b[1] - a[1]);
}

const w = await (floor ? startFloor : startWorker)({ miniflare: { inspectorPort: PORT }, direct: Boolean(args.direct) });
try {
  const pms = floor ? null : await tokenFor(w.base, DEMO.pms1);
  const sockets = [];
  if (subscribers) {
    const app1 = await tokenFor(w.base, DEMO.app1);
    for (let i = 0; i < subscribers; i++) sockets.push(await subscribe(w.base, app1));
  }
  const body = () => JSON.stringify(Array.from({ length: batch }, (_, i) => event(i % 2 ? "TTE02" : "TTE01")));
  for (let i = 0; i < 20; i++) await post(w.base, pms, body());

  const targets = await (await fetch(`http://127.0.0.1:${PORT}/json`)).json();
  const sessions = [];
  for (const t of targets.filter((t) => t.id === "core:user:" || t.id === "core:entry")) {
    const s = await cdp(t.webSocketDebuggerUrl);
    await s.send("Profiler.enable");
    await s.send("Profiler.setSamplingInterval", { interval: 100 });
    await s.send("Profiler.start");
    sessions.push([t.id, s]);
  }
  let requests = 0, failed = 0;
  const until = Date.now() + seconds * 1000;
  const bodies = Array.from({ length: 50 }, body);
  await Promise.all(Array.from({ length: publishers }, async () => {
    while (Date.now() < until) {
      const status = await post(w.base, pms, bodies[requests % bodies.length]);
      requests++;
      if (status !== 200) failed++;
    }
  }));
  console.log(`${requests} requests of ${batch} events in ${seconds} s: ${Math.round((requests * batch) / seconds)} events/s, ${failed} failed, ${subscribers} subscribers\n`);
  for (const [id, s] of sessions) {
    const { profile } = await s.send("Profiler.stop");
    if (args.save && id === "core:user:") writeFileSync(args.save, JSON.stringify(profile));
    const times = selfTimes(profile);
    const busy = times.filter(([k]) => k !== "(idle)").reduce((a, [, v]) => a + v, 0);
    console.log(`== ${id}: ${busy.toFixed(0)} ms busy of ${seconds * 1000} ms, ${((busy * 1000) / requests).toFixed(0)} µs per request`);
    for (const [k, v] of times.slice(0, top)) {
      console.log(`${v.toFixed(1).padStart(9)} ms ${((v * 1000) / requests).toFixed(0).padStart(6)} µs/req  ${k.slice(0, 110)}`);
    }
    if (id === "core:user:" && args.callers) {
      console.log(`\n   who calls ${args.callers} (time of the callee, by caller):`);
      for (const [k, v] of callers(profile, args.callers).slice(0, top)) {
        console.log(`${v.toFixed(1).padStart(9)} ms ${((v * 1000) / requests).toFixed(0).padStart(6)} µs/req  ${k.slice(0, 110)}`);
      }
    }
    if (id === "core:user:") {
      console.log(`\n   inclusive, our code and the runtime calls it makes:`);
      for (const [k, v] of inclusiveTimes(profile).filter(([k]) => /pms_events|exec|fetch|console|getRandom/.test(k)).slice(0, top)) {
        console.log(`${v.toFixed(1).padStart(9)} ms ${((v * 1000) / requests).toFixed(0).padStart(6)} µs/req  ${k.slice(0, 110)}`);
      }
    }
    console.log();
    s.close();
  }
  sockets.forEach((s) => s.close());
} finally {
  await w.dispose();
}
