// Side by side with the in-memory graphql-ws reference peer (../shared/bench): starts this
// worker on local workerd through Miniflare with a direct socket (no local request router,
// none of `wrangler dev`'s proxy), then runs the peer's `side-by-side.mjs` against it.
//
//   npm run bench:peer [-- SECONDS]                  the peer's own side-by-side table, then
//                                                    the publish's own round trip on both sides
//   npm run bench:peer [-- SECONDS --floors=ROUNDS]  also the streaming floors
//                                                    (stream-floor.mjs), ROUNDS rounds per row
//
// env ROWS as side-by-side.mjs takes it (subscribers:events/s:batch[:chains],...; by default the
// peer's four rows and two over 100 chains). With --floors, env
// BENCH_BEFORE=DIR adds another build of this service (DIR: its build/ folder, as
// scripts/build.sh makes it in a checkout of an earlier commit), measured in the same rounds;
// TARGETS=ours,relay,peer (say) keeps only those, for more rounds in the same time. With
// `ours` among them, each row ends with one more run of this service under the V8 CPU
// profiler, its time split by role: chain object, gateway, the Worker's other requests
// (cpu-split.mjs).
import { spawn, execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startWorker } from "../harness.mjs";
import { startStreamFloor, STREAM_FLOOR_DESIGNS } from "./stream-floor.mjs";
import { cdp, workerdChildren } from "./inspector.mjs";
import { describeSplit, splitByRole } from "./cpu-split.mjs";
import { publishRoundTrip } from "./publish-rtt.mjs";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
const shared = process.env.BENCH_PEER_DIR ?? path.resolve(root, "../shared/bench");
if (!existsSync(path.join(shared, "side-by-side.mjs"))) throw new Error(`no reference peer at ${shared}`);
const seconds = process.argv.slice(2).find((a) => !a.startsWith("--")) ?? "10";
const floorRounds = Number(process.argv.find((a) => a.startsWith("--floors="))?.split("=")[1] ?? 0);

// ../shared may be read-only: install the peer's packages in a copy.
const dir = existsSync(path.join(shared, "node_modules")) ? shared : mkdtempSync(path.join(tmpdir(), "pms-peer-"));
if (dir !== shared) {
  cpSync(shared, dir, { recursive: true });
  execFileSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: dir, stdio: "inherit" });
}

/** Runs a script of the peer's folder without blocking this process: the runtime's output
 *  (audit lines) is read here, and a full pipe would stall workerd. */
function node(script, args, { capture = false } = {}) {
  const child = spawn(process.execPath, [path.join(dir, script), ...args], { stdio: ["ignore", capture ? "pipe" : "inherit", "inherit"] });
  let out = "";
  child.stdout?.on("data", (d) => (out += d));
  return new Promise((resolve) => child.on("exit", (code) => resolve({ code: code ?? 1, out })));
}

/** One run of the load generator (`fanout.mjs` with `args`), its result checked: every
 *  event reached every subscriber, or this throws, naming the run as `what`. */
async function fanout(what, args) {
  const { out } = await node("fanout.mjs", args, { capture: true });
  const result = JSON.parse(out.trim().split("\n").at(-1) || "{}");
  if (!(result.expected > 0) || result.delivered !== result.expected) {
    throw new Error(`${what}: ${result.delivered ?? 0} of ${result.expected ?? 0} delivered`);
  }
  return result;
}

/** User + system CPU seconds of a process, all threads (fields 14 and 15 of /proc/PID/stat),
 *  or of its main thread alone (`/proc/PID/task/PID/stat`: the thread that runs JavaScript
 *  and wasm; the others are V8's compilers and concurrent collector, and the runtime's). */
function cpuSeconds(pid, { mainThread = false } = {}) {
  const stat = readFileSync(mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // USER_HZ is 100 on Linux
}

// The bench configuration (config/bench.json: the demo one and chains BENCH001…BENCH100), so
// the many-chain rows run too: 1,000 subscribers over 100 chains, busy and quiet.
const benchConfig = readFileSync(path.join(root, "config/bench.json"), "utf8");
process.env.ROWS ??= "10:1000:10,100:200:10,100:2000:100,1000:100:10,1000:2000:10:100,1000:200:10:100";
const w = await startWorker({ direct: true, config: benchConfig, logs: { push() {} } });
const oursPid = workerdChildren()[0];
const beforeDir = floorRounds > 0 ? process.env.BENCH_BEFORE : undefined;
const before = beforeDir ? await startWorker({ direct: true, logs: { push() {} }, buildDir: beforeDir }) : undefined;
const beforePid = before ? workerdChildren().find((pid) => pid !== oursPid) : undefined;
try {
  if (floorRounds > 0) await floors(w.base);
  else {
    process.exitCode = (await node("side-by-side.mjs", [w.base, seconds])).code;
    await publishFloor(w.base);
  }
} finally {
  await w.dispose();
  await before?.dispose();
}

/**
 * The publish's own round trip on both sides, in the same run as the table above: the floor
 * under the unsaturated rows (no delivery arrives before its publish is stored) and, with the
 * load generator's one sequential publisher, under the many-chain rows' rate.
 */
async function publishFloor(ours) {
  const port = 18790;
  const peer = spawn(process.execPath, [path.join(dir, "reference-server.mjs"), String(port)], { stdio: "ignore" });
  await new Promise((r) => setTimeout(r, 800));
  try {
    console.log("\nthe publish's own round trip (sequential batches of 10, no subscriber), ms:");
    for (const chains of [1, 100]) {
      const [mine, theirs] = [await publishRoundTrip(ours, { chains }), await publishRoundTrip(`http://127.0.0.1:${port}`, { chains })];
      const show = (r) => `p50 ${r.p50.toFixed(2)}, p99 ${r.p99.toFixed(2)}, max ${r.max.toFixed(1)}`;
      console.log(`  ${chains === 1 ? "one chain   " : "100 chains  "} this service ${show(mine)}; peer ${show(theirs)}; p99 peer/this ${(theirs.p99 / mine.p99).toFixed(2)}`);
    }
  } finally {
    peer.kill();
  }
}

/**
 * A target's CPU for a row's setup alone: a load-generator run with `subscribers`
 * subscribers that publishes a single event (its two tokens, then per subscriber: connect,
 * authenticate, subscribe, attach, one delivery, close; and the idle seconds in between).
 * /proc counts CPU in 10 ms ticks, so at 10 subscribers this is coarse.
 */
async function connectionCpu(base, pid, subscribers) {
  const cpu0 = cpuSeconds(pid);
  await fanout(`connection run against ${base}`, [base, subscribers, "1", "1", "1"]);
  const seconds = cpuSeconds(pid) - cpu0;
  return { seconds, perSubscriberMs: (seconds * 1000) / subscribers };
}

/**
 * This service's CPU split by role (`cpu-split.mjs`): a fresh instance with the inspector
 * on, a short warm-up run of the row, then one run of it under the V8 CPU profiler (sampling
 * every 100 µs adds its own cost, so the parts compare with each other, not with the rounds'
 * CPU). The runtime's work between calls (socket I/O, event dispatch) and garbage collection
 * are reported apart: nothing in a profile says which side they served.
 */
async function profiledSplit(row) {
  const inspectorPort = 9300 + Math.floor(Math.random() * 500);
  const profiled = await startWorker({ direct: true, logs: { push() {} }, miniflare: { inspectorPort } });
  try {
    const load = (runSeconds) => fanout(`profiled run at ${row.join(":")}`, [profiled.base, ...row.slice(0, 2), runSeconds, row[2]]);
    await load("2");
    const target = (await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json()).find((t) => t.id === "core:user:");
    const session = await cdp(target.webSocketDebuggerUrl);
    try {
      await session.send("Profiler.enable");
      await session.send("Profiler.setSamplingInterval", { interval: 100 });
      await session.send("Profiler.start");
      const result = await load(seconds);
      const { profile } = await session.send("Profiler.stop");
      return { ...splitByRole(profile), delivered: result.delivered };
    } finally {
      session.close();
    }
  } finally {
    await profiled.dispose();
  }
}

/**
 * Every row against this service, the three streaming floors and the peer, ROUNDS times, the
 * order rotated each round; prints the median p50, p99 (with its range), deliveries/s and the
 * server's CPU per delivery (workerd's, or the peer's Node process) of each, and the p99
 * ratios. Every run must deliver every event to every subscriber.
 */
async function floors(ours) {
  const rows = (process.env.ROWS ?? "10:1000:10,100:200:10").split(",").map((r) => r.split(":"));
  const floor = await startStreamFloor();
  const floorPid = workerdChildren().find((pid) => pid !== oursPid && pid !== beforePid);
  const port = 18789;
  const peer = spawn(process.execPath, [path.join(dir, "reference-server.mjs"), String(port)], { stdio: "ignore" });
  await new Promise((r) => setTimeout(r, 800));
  const targets = [
    ["ours", "this service", ours, oursPid],
    ...(before ? [["before", `this service built from ${beforeDir}`, before.base, beforePid]] : []),
    ...Object.entries(STREAM_FLOOR_DESIGNS).map(([design, what]) => [design, what, `${floor.base}/${design}`, floorPid]),
    ["peer", "the in-memory graphql-ws reference peer (Node)", `http://127.0.0.1:${port}`, peer.pid],
  ].filter(([name]) => !process.env.TARGETS || process.env.TARGETS.split(",").includes(name));
  if (!targets.some(([name]) => name === "peer")) throw new Error("TARGETS must keep the peer: the ratios are to it");
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  try {
    for (const row of rows) {
      const runs = Object.fromEntries(targets.map(([name]) => [name, []]));
      for (let round = 0; round < floorRounds; round++) {
        for (let i = 0; i < targets.length; i++) {
          const [name, , base, pid] = targets[(i + round) % targets.length];
          const cpu0 = cpuSeconds(pid);
          const main0 = cpuSeconds(pid, { mainThread: true });
          const result = await fanout(`${name} at ${row.join(":")}`, [base, ...row.slice(0, 2), seconds, row[2]]);
          // The server's CPU over the whole run, its connections and subscriptions too (see
          // `connectionCpu`), per delivery.
          result.cpuMicros = ((cpuSeconds(pid) - cpu0) * 1e6) / result.delivered;
          result.mainThreadMicros = ((cpuSeconds(pid, { mainThread: true }) - main0) * 1e6) / result.delivered;
          runs[name].push(result);
        }
      }
      // What each target's CPU per delivery owes to the row's setup (tokens, connections,
      // subscriptions): a run with the row's subscribers that publishes one event, after
      // the rounds (warm).
      const setup = {};
      for (const [name, , base, pid] of targets) setup[name] = await connectionCpu(base, pid, row[0]);
      const split = targets.some(([name]) => name === "ours") ? await profiledSplit(row) : null;
      console.log(`\n${row[0]} subscribers x ${row[1]} events/s (batches of ${row[2]}), ${floorRounds} rounds of ${seconds} s, medians:`);
      const peerP99 = median(runs.peer.map((r) => Number(r.p99ms)));
      for (const [name, what] of targets) {
        const p99s = runs[name].map((r) => Number(r.p99ms));
        const p99 = median(p99s);
        console.log(
          `  ${name.padEnd(6)} p50 ${median(runs[name].map((r) => Number(r.p50ms))).toFixed(1).padStart(6)} ms, ` +
            `p99 ${p99.toFixed(1).padStart(6)} ms (${Math.min(...p99s).toFixed(1)}-${Math.max(...p99s).toFixed(1)}), ` +
            `${String(median(runs[name].map((r) => r.deliveredPerSec))).padStart(6)}/s, ` +
            `server CPU ${median(runs[name].map((r) => r.cpuMicros)).toFixed(1).padStart(5)} µs/delivery ` +
            `(${median(runs[name].map((r) => r.cpuMicros - (setup[name].seconds * 1e6) / r.delivered)).toFixed(1).padStart(4)} ` +
            `past setup, ${median(runs[name].map((r) => r.mainThreadMicros)).toFixed(1)} on the main thread, ` +
            `${setup[name].perSubscriberMs.toFixed(2)} ms per subscriber), ` +
            `p99 peer/this ${(peerP99 / p99).toFixed(2)}  ${what}`,
        );
      }
      if (split) console.log(`  ours, one more run under the V8 CPU profiler: ${describeSplit(split, split.delivered)}`);
    }
    console.log("\nevery run delivered every event to every subscriber; server CPU covers the whole run, and");
    console.log("(past setup) what is left of it without the CPU of a run that only sets up the row's subscribers;");
    console.log("the profiled run splits this service's isolate by role (miniflare/bench/cpu-split.mjs)");
  } finally {
    peer.kill();
    await floor.dispose();
  }
}
