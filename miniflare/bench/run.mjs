#!/usr/bin/env node
// PMS Events benchmark: the built worker (build/) on real workerd via Miniflare, driven from
// this process over 127.0.0.1 only. It prints numbers; it never asserts on timing. Every
// scenario is bounded in count and time, and starts (and disposes) its own worker where
// earlier state would skew the result.
//
//   node miniflare/bench/run.mjs [publish] [fanout] [replay] [memory] [--quick] [--scale=F]
//                                [--duration=S] [--verbose] [--help]
//
//   (no scenario names: all four)  --quick: ~10x smaller counts and shorter runs (smoke run)
//   --scale=F: multiply every count by F    --duration=S: seconds per timed fan-out step
//   env: BENCH_SCENARIOS="publish,fanout", BENCH_QUICK=1, BENCH_SCALE=F, BENCH_DURATION=S,
//        BENCH_VERBOSE=1 (also prints the runtime's error lines as they come),
//        BENCH_FANOUT="sweep,target,sustained" (which fan-out rows to run),
//        BENCH_DIRECT=1 (bypass miniflare's local request router: a socket straight to the worker),
//        BENCH_MEMORY_CYCLES=N (attach/close cycles of the memory scenario; 3, or 2 with --quick)
//        BENCH_PUBLISH_ROWS="100,100 no state" (which publish rows to run, by their batch label),
//
// Publish requests use node:http with a keep-alive Agent (Node's fetch drops POSTs under
// heavy socket load here). Subscribers are raw `ws` sockets speaking graphql-transport-ws,
// one subscription per connection, all with client-app-001's app key.

import http from "node:http";
import os from "node:os";
import { readFileSync, statSync, existsSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import path from "node:path";
import WebSocket from "ws";
import { startWorker, tokenFor, event, DEMO, demoConfig } from "../harness.mjs";
import { startFloor, floorPath } from "./publish-floor.mjs";

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");

// ---------------------------------------------------------------------------------------
// Options

const SCENARIOS = ["publish", "fanout", "replay", "memory"];
const DIRECT = /^(1|true|yes)$/i.test(process.env.BENCH_DIRECT ?? "");

function parseArgs(argv) {
  const opts = {
    scenarios: [],
    quick: /^(1|true|yes)$/i.test(process.env.BENCH_QUICK ?? ""),
    scale: Number(process.env.BENCH_SCALE ?? 1),
    duration: process.env.BENCH_DURATION ? Number(process.env.BENCH_DURATION) : undefined,
    verbose: /^(1|true|yes)$/i.test(process.env.BENCH_VERBOSE ?? ""),
  };
  if (process.env.BENCH_SCENARIOS) opts.scenarios.push(...process.env.BENCH_SCENARIOS.split(/[\s,]+/).filter(Boolean));
  for (const a of argv) {
    if (a === "--quick" || a === "-q") opts.quick = true;
    else if (a.startsWith("--scale=")) opts.scale = Number(a.slice(8));
    else if (a.startsWith("--duration=")) opts.duration = Number(a.slice(11));
    else if (a === "--verbose" || a === "-v") opts.verbose = true;
    else if (a === "--help" || a === "-h") opts.help = true;
    else if (a.startsWith("-")) throw new Error(`unknown option ${a} (try --help)`);
    else opts.scenarios.push(a);
  }
  if (opts.scenarios.length === 0 || opts.scenarios.includes("all")) opts.scenarios = [...SCENARIOS];
  for (const s of opts.scenarios) if (!SCENARIOS.includes(s)) throw new Error(`unknown scenario ${s}; choose from ${SCENARIOS.join(", ")}`);
  opts.scenarios = SCENARIOS.filter((s) => opts.scenarios.includes(s));
  if (!(opts.scale > 0)) throw new Error("--scale must be a positive number");
  if (opts.duration !== undefined && !(opts.duration > 0)) throw new Error("--duration must be a positive number of seconds");
  return opts;
}

let OPTS;
try {
  OPTS = parseArgs(process.argv.slice(2));
} catch (e) {
  console.error(e.message);
  process.exit(2);
}
if (OPTS.help) {
  const lines = readFileSync(new URL(import.meta.url), "utf8").split("\n").slice(1);
  const head = lines.slice(0, lines.findIndex((l) => !l.startsWith("//"))).map((l) => l.replace(/^\/\/ ?/, ""));
  console.log(head.join("\n"));
  process.exit(0);
}

const Q = OPTS.quick ? 0.1 : 1;
/** A count scaled by --quick and --scale, never below `min`. */
const n = (full, min = 1) => Math.max(min, Math.round(full * Q * OPTS.scale));
/** Seconds of a timed step (quick runs are shorter, --duration overrides). */
const secs = (full) => OPTS.duration ?? (OPTS.quick ? Math.round(Math.max(1.5, full / 3) * 10) / 10 : full);

// ---------------------------------------------------------------------------------------
// Small helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.now();
const APP_KEY_B64 = Buffer.from(DEMO.app1.appKey).toString("base64");
const CHAIN = "TTE";
const CLK_TCK = (() => {
  try { return Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100; } catch { return 100; }
})();

function progress(msg) {
  process.stderr.write(`  [${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}

/** Growable array of doubles (latency samples) with percentiles. */
class Samples {
  constructor(cap = 1024) { this.a = new Float64Array(cap); this.n = 0; this.sorted = null; }
  push(v) {
    if (this.n === this.a.length) { const b = new Float64Array(this.a.length * 2); b.set(this.a); this.a = b; }
    this.a[this.n++] = v; this.sorted = null;
  }
  sort() { if (!this.sorted) this.sorted = this.a.slice(0, this.n).sort(); return this.sorted; }
  pct(p) {
    if (this.n === 0) return NaN;
    const s = this.sort();
    return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
  }
  max() { return this.n ? this.sort()[this.n - 1] : NaN; }
  mean() { let t = 0; for (let i = 0; i < this.n; i++) t += this.a[i]; return this.n ? t / this.n : NaN; }
}

const fmt = {
  int: (v) => (Number.isFinite(v) ? Math.round(v).toLocaleString("en-US") : "-"),
  ms: (v) => (!Number.isFinite(v) ? "-" : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : v >= 100 ? `${v.toFixed(0)} ms` : `${v.toFixed(1)} ms`),
  mib: (kib) => (Number.isFinite(kib) ? `${(kib / 1024).toFixed(1)} MiB` : "-"),
  pct: (v) => (Number.isFinite(v) ? `${v.toFixed(0)}%` : "-"),
  us: (v) => (Number.isFinite(v) ? `${v.toFixed(1)} µs` : "-"),
};

/** Prints a table with a title; columns right-aligned except the first. */
function table(title, headers, rows, notes = []) {
  const cells = [headers, ...rows].map((r) => r.map((c) => String(c ?? "-")));
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  const out = [`\n${title}`, line(cells[0]), widths.map((w) => "-".repeat(w)).join("  "), ...cells.slice(1).map(line)];
  for (const note of notes) out.push(`  ${note}`);
  console.log(out.join("\n"));
}

// ---------------------------------------------------------------------------------------
// The runtime process: pid, RSS, CPU

function childPids() {
  try {
    return execFileSync("ps", ["--ppid", String(process.pid), "-o", "pid=,comm="]).toString().trim().split("\n")
      .map((l) => l.trim().split(/\s+/)).filter((p) => p.length >= 2).map(([pid, comm]) => ({ pid: Number(pid), comm }));
  } catch {
    return [];
  }
}

function procStatus(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, "utf8");
    const kib = (k) => Number((s.match(new RegExp(`^${k}:\\s+(\\d+)`, "m")) ?? [])[1]);
    return { rssKiB: kib("VmRSS"), hwmKiB: kib("VmHWM"), threads: kib("Threads") };
  } catch {
    return { rssKiB: NaN, hwmKiB: NaN, threads: NaN };
  }
}

/** User+system CPU seconds of a process (all its threads). */
function procCpu(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime, stime (fields 14, 15)
  } catch {
    return NaN;
  }
}

const nodeCpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };

/** CPU of workerd and of this process (the load generator) over a span. */
function cpuMeter(pid) {
  const t0 = now(), w0 = procCpu(pid), n0 = nodeCpu();
  return () => {
    const wall = (now() - t0) / 1000;
    const w = procCpu(pid) - w0, nd = nodeCpu() - n0;
    return { wall, workerdSec: w, nodeSec: nd, workerdPct: (100 * w) / wall, nodePct: (100 * nd) / wall };
  };
}

/** Samples the runtime's RSS while a step runs; returns the peak. */
function rssSampler(pid, everyMs = 200) {
  let peak = procStatus(pid).rssKiB;
  const t = setInterval(() => { const r = procStatus(pid).rssKiB; if (r > peak) peak = r; }, everyMs);
  return () => { clearInterval(t); const r = procStatus(pid).rssKiB; return Math.max(peak, Number.isFinite(r) ? r : 0); };
}

// ---------------------------------------------------------------------------------------
// Runtime output: counts audit lines, keeps anything that looks like trouble

const ROUTINE = new Set([
  "publish.accepted", "token.issued", "connection.opened", "connection.authenticated",
  "subscription.started", "subscription.completed", "connection.closed",
]);

class LogSink {
  constructor(label, expected = []) { this.label = label; this.expected = new Set(expected); this.lines = 0; this.byAudit = new Map(); this.problems = []; this.problemCount = 0; }
  push(line) {
    this.lines++;
    const m = line.match(/"audit":"([^"]+)"/);
    const name = m ? m[1] : null;
    if (name) this.byAudit.set(name, (this.byAudit.get(name) ?? 0) + 1);
    let trouble = !name && line.trim() !== "";
    if (name && !ROUTINE.has(name) && !this.expected.has(name)) trouble = true;
    if (name === "connection.closed") {
      const code = Number((line.match(/"code":(\d+)/) ?? [])[1]);
      if (Number.isFinite(code) && ![1000, 1001, 1005, 1006].includes(code)) trouble = true;
    }
    if (trouble) {
      this.problemCount++;
      if (this.problems.length < 15) this.problems.push(line.length > 400 ? line.slice(0, 400) + "…" : line);
      if (OPTS.verbose) console.error(`  [workerd ${this.label}] ${line}`);
    }
  }
}

const REPORT = []; // things that looked wrong, printed at the end

function suspicious(where, what) {
  REPORT.push(`${where}: ${what}`);
  progress(`SUSPICIOUS ${where}: ${what}`);
}

// ---------------------------------------------------------------------------------------
// A worker per scenario step

const LIVE = new Set(); // open WebSockets, closed at the end whatever happens

async function withWorker(label, fn, { expectAudit = [], direct = DIRECT, config } = {}) {
  const before = new Set(childPids().map((p) => p.pid));
  const sink = new LogSink(label, expectAudit);
  // BENCH_DIRECT=1: requests go straight to the worker, not through the request router
  // miniflare runs in front of it for local development (not part of a deployment).
  const w = await startWorker({ logs: sink, direct, ...(config ? { config } : {}) });
  const kids = childPids().filter((p) => !before.has(p.pid));
  const pid = (kids.find((p) => p.comm.startsWith("workerd")) ?? kids[0])?.pid;
  // At most 8 connections: with dozens of requests queued inside a CPU-saturated local
  // workerd, some were reset unanswered after 5-25 s (see the report); fewer connections
  // keep an open-loop publisher's backlog here, where it shows up as latency instead.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const ctx = { ...w, pid, sink, agent, label, sockets: new Set() };
  ctx.tokens = {};
  [ctx.tokens.pms, ctx.tokens.vendor, ctx.tokens.ops] = await Promise.all([DEMO.pms1, DEMO.app1, DEMO.ops].map((c) => tokenFor(w.base, c)));
  try {
    return await fn(ctx);
  } finally {
    await closeSockets([...ctx.sockets]);
    agent.destroy();
    await w.dispose();
    if (pid && existsSync(`/proc/${pid}`)) {
      await sleep(500);
      if (existsSync(`/proc/${pid}/status`) && !/State:\s+Z/.test(readFileSync(`/proc/${pid}/status`, "utf8"))) {
        progress(`workerd ${pid} still alive after dispose; killing it`);
        try { process.kill(pid, "SIGKILL"); } catch {}
      }
    }
    if (sink.problemCount > 0) {
      suspicious(`runtime output (${label})`, `${sink.problemCount} non-routine line(s); first: ${sink.problems.slice(0, 3).join(" | ")}`);
    }
  }
}

/** Like withWorker, for the publish floor (publish-floor.mjs): its own workerd, same options. */
async function withFloor(label, fn, { direct = DIRECT } = {}) {
  const before = new Set(childPids().map((p) => p.pid));
  const sink = new LogSink(label, []);
  const stdio = (stdout, stderr) => {
    for (const stream of [stdout, stderr]) stream.on("data", (chunk) => chunk.toString().split("\n").filter(Boolean).forEach((l) => sink.push(l)));
  };
  const w = await startFloor({ direct, handleRuntimeStdio: stdio });
  const kids = childPids().filter((p) => !before.has(p.pid));
  const pid = (kids.find((p) => p.comm.startsWith("workerd")) ?? kids[0])?.pid;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  try {
    return await fn({ ...w, pid, sink, agent, label });
  } finally {
    agent.destroy();
    await w.dispose();
    if (sink.problemCount > 0) suspicious(`runtime output (${label})`, `${sink.problemCount} non-routine line(s); first: ${sink.problems.slice(0, 3).join(" | ")}`);
  }
}

async function closeSockets(list, graceMs = 2000) {
  const open = list.filter((ws) => ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING);
  if (open.length === 0) return;
  await Promise.race([
    Promise.all(open.map((ws) => new Promise((resolve) => {
      if (ws.readyState === WebSocket.CLOSED) return resolve();
      ws.once("close", resolve);
      try { ws.close(1000, "bench done"); } catch { resolve(); }
    }))),
    sleep(graceMs),
  ]);
  for (const ws of open) if (ws.readyState !== WebSocket.CLOSED) ws.terminate();
}

// ---------------------------------------------------------------------------------------
// HTTP

function post(ctx, pathname, token, body) {
  return new Promise((resolve) => {
    const t0 = now();
    const req = http.request(ctx.base + pathname, {
      method: "POST",
      agent: ctx.agent,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "content-length": Buffer.byteLength(body) },
    }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString(), ms: now() - t0 }));
      res.on("error", (e) => resolve({ status: 0, text: String(e), ms: now() - t0 }));
    });
    req.on("error", (e) => resolve({ status: 0, text: `${e} (after ${(now() - t0).toFixed(0)} ms, ${req.reusedSocket ? "reused keep-alive socket" : "new socket"})`, ms: now() - t0 }));
    req.end(body);
  });
}

function get(ctx, pathname, token) {
  return new Promise((resolve) => {
    const req = http.request(ctx.base + pathname, { method: "GET", agent: ctx.agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString();
        let json; try { json = JSON.parse(text); } catch {}
        resolve({ status: res.statusCode, text, json });
      });
    });
    req.on("error", (e) => resolve({ status: 0, text: String(e) }));
    req.end();
  });
}

const PUBLISH_PATH = `/events/v1/chains/${CHAIN}/events`;

/** Publishes a JSON body; returns the response with parsed offsets. */
async function publishBody(ctx, body) {
  const res = await post(ctx, PUBLISH_PATH, ctx.tokens.pms, body);
  if (res.status === 200) {
    try { res.offsets = JSON.parse(res.text).offsets.map(Number); } catch { res.offsets = null; }
  }
  return res;
}

/** Publishes a JSON body to the floor worker (publish-floor.mjs), which takes no token. */
async function floorPublish(ctx, body, atomic) {
  const res = await post(ctx, floorPath(CHAIN, { atomic }), null, body);
  if (res.status === 200) {
    try { res.offsets = JSON.parse(res.text).offsets.map(Number); } catch { res.offsets = null; }
  }
  return res;
}

/** The floor's head and retained rows, read back from its storage. */
async function floorStats(ctx) {
  const res = await get(ctx, floorPath(CHAIN), null);
  if (res.status !== 200 || !res.json) return { head: NaN, retained: NaN };
  return { head: Number(res.json.head), retained: Number(res.json.retained) };
}

/** Chain numbers from the admin endpoint: head, retained, attached subscribers. */
async function chainStats(ctx) {
  const res = await get(ctx, `/admin/v1/chains/${CHAIN}`, ctx.tokens.ops);
  if (res.status !== 200 || !res.json) return { head: NaN, retained: NaN, subscribers: NaN };
  return { head: Number(res.json.headOffset), retained: Number(res.json.retainedEvents), subscribers: Number(res.json.subscribers) };
}

/** An event whose primaryKey carries the publish time (performance.now() of this process, ms). */
function timedEvent(t, i) {
  return event(i % 2 ? "TTE02" : "TTE01", { primaryKey: `b${t.toFixed(3)}` });
}

/** Records every publish's offsets and counts missing/duplicate offsets afterwards. */
class OffsetBook {
  constructor() { this.seen = new Uint8Array(1 << 16); this.count = 0; this.dups = 0; this.max = 0; }
  add(offsets) {
    for (const o of offsets) {
      while (o >= this.seen.length) { const b = new Uint8Array(this.seen.length * 2); b.set(this.seen); this.seen = b; }
      if (this.seen[o]) this.dups++; else this.seen[o] = 1;
      this.count++;
      if (o > this.max) this.max = o;
    }
  }
  missingUpTo(head) { let m = 0; for (let o = 1; o <= head; o++) if (o >= this.seen.length || !this.seen[o]) m++; return m; }
}

// ---------------------------------------------------------------------------------------
// Subscribers

const NEXT_TYPE = '"type":"next"';

/**
 * Opens `count` connections, one subscription each, and waits until the chain object has
 * them all attached. Each subscriber checks that its offsets are contiguous.
 */
async function attachSubscribers(ctx, count, { input = `{chainCode: "${CHAIN}"}`, fields = "metadata { offset } primaryKey", wave = 50, expectFirst = null, onEvent = null } = {}) {
  const url = ctx.base.replace(/^http/, "ws") + `/subscriptions?key=${APP_KEY_B64}`;
  const query = `subscription { newEvent(input: ${input}) { ${fields} } }`;
  const pool = {
    subs: [], lat: new Samples(1 << 16), deliveries: 0, firstAt: NaN, lastAt: NaN,
    dups: 0, gaps: 0, badFirst: 0, otherMessages: [], closedEarly: [],
    minReceived() { let m = Infinity; for (const s of this.subs) if (s.count < m) m = s.count; return m; },
  };
  const openOne = (i) => new Promise((resolve, reject) => {
    const ws = new WebSocket(url, "graphql-transport-ws", { perMessageDeflate: false });
    ctx.sockets.add(ws); LIVE.add(ws);
    const sub = { i, ws, count: 0, first: null, last: null, ready: false, closed: null };
    pool.subs.push(sub);
    const timer = setTimeout(() => { reject(new Error(`subscriber ${i}: no connection_ack in 20 s`)); ws.terminate(); }, 20000);
    ws.on("open", () => ws.send(JSON.stringify({ type: "connection_init", payload: { Authorization: `Bearer ${ctx.tokens.vendor}`, "x-app-key": DEMO.app1.appKey } })));
    ws.on("message", (data) => {
      const t = now();
      const s = data.toString();
      if (sub.ready && s.includes(NEXT_TYPE)) {
        const oi = s.indexOf('"offset":"') + 10;
        const off = Number(s.slice(oi, s.indexOf('"', oi)));
        const pi = s.indexOf('"primaryKey":"b');
        if (pi >= 0) pool.lat.push(t - Number(s.slice(pi + 15, s.indexOf('"', pi + 15))));
        if (sub.last === null) {
          sub.first = off;
          if (expectFirst !== null && off !== expectFirst) pool.badFirst++;
        } else if (off !== sub.last + 1) {
          if (off <= sub.last) pool.dups++; else pool.gaps += off - sub.last - 1;
        }
        sub.last = off; sub.count++;
        pool.deliveries++;
        if (!(pool.firstAt <= t)) pool.firstAt = t;
        pool.lastAt = t;
        if (onEvent) onEvent(sub, off, t);
        return;
      }
      let msg; try { msg = JSON.parse(s); } catch { msg = { type: "unparsable", raw: s.slice(0, 200) }; }
      if (!sub.ready && msg.type === "connection_ack") {
        sub.ready = true;
        ws.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query } }));
        clearTimeout(timer);
        resolve(sub);
      } else if (msg.type === "ping") {
        ws.send(JSON.stringify({ type: "pong", payload: msg.payload }));
      } else if (msg.type !== "pong") {
        if (pool.otherMessages.length < 10) pool.otherMessages.push(s.slice(0, 300));
        else pool.otherMessages.length++;
      }
    });
    ws.on("close", (code, reason) => {
      sub.closed = { code, reason: reason.toString() };
      LIVE.delete(ws);
      if (!sub.ready) { clearTimeout(timer); reject(new Error(`subscriber ${i} closed before ack: ${code} ${reason}`)); }
      else if (!ctx.closing) pool.closedEarly.push({ i, code, reason: reason.toString() });
    });
    ws.on("error", (e) => { if (!sub.ready) { clearTimeout(timer); reject(e); } });
  });
  const t0 = now();
  for (let i = 0; i < count; i += wave) {
    await Promise.all(Array.from({ length: Math.min(wave, count - i) }, (_, k) => openOne(i + k)));
  }
  // Attached = the chain object holds the internal socket (the admin count).
  const deadline = now() + 60000;
  let stats = await chainStats(ctx);
  while (!(stats.subscribers >= count) && now() < deadline) {
    await sleep(50);
    stats = await chainStats(ctx);
  }
  pool.attachMs = now() - t0;
  if (!(stats.subscribers >= count)) suspicious(ctx.label, `only ${stats.subscribers} of ${count} subscriptions attached to the chain object after 60 s`);
  return pool;
}

/** Waits until every subscriber has `target` events, or the timeout. */
async function drain(pool, target, timeoutMs) {
  const deadline = now() + timeoutMs;
  while (pool.minReceived() < target && now() < deadline) await sleep(10);
  return pool.minReceived() >= target;
}

function poolIntegrity(ctx, pool, expectedEach, what) {
  const short = pool.subs.filter((s) => s.count < expectedEach);
  const extra = pool.subs.filter((s) => s.count > expectedEach);
  const problems = [];
  if (short.length) {
    const worst = short.reduce((a, b) => (a.count < b.count ? a : b));
    problems.push(`${short.length}/${pool.subs.length} subscribers short (worst #${worst.i}: ${worst.count}/${expectedEach}, last offset ${worst.last}, closed ${worst.closed ? worst.closed.code + " " + worst.closed.reason : "no"})`);
  }
  if (extra.length) problems.push(`${extra.length} subscribers got more than the ${expectedEach} events published`);
  if (pool.dups) problems.push(`${pool.dups} duplicate/out-of-order deliveries`);
  if (pool.gaps) problems.push(`${pool.gaps} offsets skipped inside streams`);
  if (pool.badFirst) problems.push(`${pool.badFirst} subscribers started at an unexpected offset`);
  if (pool.closedEarly.length) problems.push(`${pool.closedEarly.length} sockets closed by the server (first: ${JSON.stringify(pool.closedEarly[0])})`);
  if (pool.otherMessages.length) problems.push(`${pool.otherMessages.length} unexpected messages (first: ${pool.otherMessages[0]})`);
  for (const p of problems) suspicious(`${ctx.label} ${what}`, p);
  return problems.length === 0 ? "ok" : "PROBLEM";
}

// ---------------------------------------------------------------------------------------
// Scenario 1: publish throughput and latency

async function scenarioPublish() {
  const publishers = 4;
  const plan = [
    { batch: 1, events: n(4000, 200) },
    { batch: 10, events: n(20000, 1000) },
    { batch: 100, events: n(100000, 2000) },
    // The same build keeping no entity state (`entityState.keep: false`): what the state costs.
    { batch: 100, events: n(100000, 2000), stateOff: true },
    // The floor: a Durable Object that only inserts the same rows (publish-floor.mjs).
    { batch: 100, events: n(100000, 2000), floor: true },
    // The floor with the service's all-or-nothing batch (one transaction each).
    { batch: 100, events: n(100000, 2000), floor: true, atomic: true },
    // The same rows without miniflare's local request router (a deployment has none); with
    // BENCH_DIRECT=1 every row already goes direct.
    ...(DIRECT ? [] : [
      { batch: 100, events: n(100000, 2000), direct: true },
      { batch: 100, events: n(100000, 2000), direct: true, floor: true },
      { batch: 100, events: n(100000, 2000), direct: true, floor: true, atomic: true },
    ]),
  ];
  const capMs = secs(20) * 1000;
  // The same load first, so the measured window sees a long-lived isolate's steady state
  // (V8 tiers the wasm up within the first seconds), as the fan-out target rows do.
  const warmMs = (OPTS.quick ? 0.5 : 2) * 1000;
  const rows = [];
  const rates = {}, cpuPerEvent = {};
  const stateOffConfig = { ...demoConfig, entityState: { keep: false } };
  // BENCH_PUBLISH_ROWS="100,100 no state" runs only the rows so labelled.
  const only = process.env.BENCH_PUBLISH_ROWS?.split(",").map((r) => r.trim());
  for (const { batch, events, direct = DIRECT, floor = false, atomic = false, stateOff = false } of plan) {
    const label = `${floor ? (atomic ? "atomic floor " : "floor ") : ""}${batch}${stateOff ? " no state" : ""}${direct && !DIRECT ? " direct" : ""}`;
    if (only && !only.includes(label)) continue;
    const run = async (ctx) => {
      const body = JSON.stringify(Array.from({ length: batch }, (_, i) => event(i % 2 ? "TTE02" : "TTE01")));
      const send = floor ? () => floorPublish(ctx, body, atomic) : () => publishBody(ctx, body);
      let warm = 0;
      const w0 = now();
      await Promise.all(Array.from({ length: publishers }, async () => {
        while (now() - w0 < warmMs) {
          const res = await send(); // counted in the offsets check below
          if (res.status !== 200) throw new Error(`warm-up publish failed: ${res.status} ${res.text.slice(0, 200)}`);
          warm += batch;
        }
      }));
      const book = new OffsetBook();
      const lat = new Samples();
      let sent = 0, failed = 0, firstFailure = null;
      const requests = Math.ceil(events / batch);
      const cpu = cpuMeter(ctx.pid), rss = rssSampler(ctx.pid);
      const t0 = now();
      await Promise.all(Array.from({ length: publishers }, async () => {
        while (sent < requests && now() - t0 < capMs) {
          sent++;
          const res = await send();
          lat.push(res.ms);
          if (res.status === 200 && res.offsets?.length === batch) book.add(res.offsets);
          else { failed++; firstFailure ??= `${res.status} ${res.text.slice(0, 200)}`; }
        }
      }));
      const elapsed = (now() - t0) / 1000;
      const c = cpu(), peak = rss();
      const stats = floor ? await floorStats(ctx) : await chainStats(ctx);
      const stored = book.count;
      const missing = book.missingUpTo(stats.head) - warm;
      let check = "ok";
      if (failed) { check = "PROBLEM"; suspicious(ctx.label, `${failed} publishes failed, first: ${firstFailure}`); }
      if (book.dups) { check = "PROBLEM"; suspicious(ctx.label, `${book.dups} offsets handed out twice`); }
      if (stats.head !== warm + stored || stats.retained !== warm + stored || missing !== 0) {
        check = "PROBLEM";
        suspicious(ctx.label, `expected head = retained = ${warm + stored}, got head ${stats.head}, retained ${stats.retained}, ${missing} offsets never returned`);
      }
      rates[label] = stored / elapsed;
      cpuPerEvent[label] = (c.workerdSec * 1e6) / stored;
      progress(`publish batch ${label}: ${fmt.int(stored / elapsed)} events/s`);
      return [label, fmt.int(stored), `${elapsed.toFixed(2)} s`, fmt.int(stored / elapsed), fmt.int(sent / elapsed),
        fmt.ms(lat.pct(50)), fmt.ms(lat.pct(99)), fmt.pct(c.workerdPct), fmt.pct(c.nodePct), fmt.us((c.workerdSec * 1e6) / stored), fmt.mib(peak), check];
    };
    rows.push(floor
      ? await withFloor(`publish b=${label}`, run, { direct })
      : await withWorker(`publish b=${label}`, run, { direct, config: stateOff ? stateOffConfig : undefined }));
  }
  // By throughput, and by workerd CPU per event (the floor's over ours): on a shared machine
  // the second is steadier, since a stall of the process costs wall time, not CPU.
  const versus = (suffix) => ["floor", "atomic floor"].map((floor) => {
    const ours = rates[`100${suffix}`], base = rates[`${floor} 100${suffix}`];
    if (!ours || !base) return null;
    const cpu = cpuPerEvent[`${floor} 100${suffix}`] / cpuPerEvent[`100${suffix}`];
    return `batch 100${suffix} vs ${floor}: ${fmt.int(ours)} / ${fmt.int(base)} events/s = ${(ours / base).toFixed(2)}; by CPU per event ${cpu.toFixed(2)}`;
  }).filter(Boolean);
  table(`1a. Publish throughput, chain ${CHAIN}, ${publishers} concurrent publishers (keep-alive node:http), fresh worker per row, after ${warmMs / 1000} s of the same load`,
    ["batch", "events", "time", "events/s", "requests/s", "req p50", "req p99", "workerd CPU", "node CPU", "workerd CPU/event", "workerd RSS peak", "check"],
    rows, ["CPU% is of one core (200% = both cores). check: every request 200, offsets unique and contiguous, head = retained = events published (warm-up included).",
      "direct: requests go straight to the worker, without the request router miniflare puts in front of it locally (a deployment has none).",
      "floor: a JavaScript Durable Object in the same workerd that only inserts the same rows (same schema, indexes, rows per statement, batch), without token, validation, duplicate lookup or wasm (publish-floor.mjs).",
      "atomic floor: the same, each batch all or nothing in one transaction (transactionSync), as the service stores it.",
      "no state: the same build with `entityState.keep: false`, folding no entity state (every event here is a new entity: the state's dearest case).",
      ...(rates["100 no state"] ? [`state kept vs not, batch 100: ${fmt.int(rates["100"])} / ${fmt.int(rates["100 no state"])} events/s = ${(rates["100"] / rates["100 no state"]).toFixed(2)}; by CPU per event ${(cpuPerEvent["100 no state"] / cpuPerEvent["100"]).toFixed(2)}`] : []),
      ...["", " direct"].flatMap(versus).map((v) => `service ${v}`)]);

  // Sequential single-event publishes.
  const seqCount = n(1000, 100);
  const seqRow = await withWorker("publish sequential", async (ctx) => {
    for (let i = 0; i < 20; i++) await publishBody(ctx, JSON.stringify(event("TTE01")));
    const lat = new Samples();
    let failed = 0;
    const t0 = now();
    for (let i = 0; i < seqCount && now() - t0 < capMs; i++) {
      const res = await publishBody(ctx, JSON.stringify(event(i % 2 ? "TTE02" : "TTE01")));
      lat.push(res.ms);
      if (res.status !== 200) failed++;
    }
    const elapsed = (now() - t0) / 1000;
    if (failed) suspicious(ctx.label, `${failed} sequential publishes failed`);
    progress(`sequential publish p50 ${fmt.ms(lat.pct(50))}`);
    return [fmt.int(lat.n), fmt.int(lat.n / elapsed), fmt.ms(lat.pct(50)), fmt.ms(lat.pct(90)), fmt.ms(lat.pct(99)), fmt.ms(lat.max()), fmt.ms(lat.mean()), failed ? `${failed} failed` : "ok"];
  });
  table("1b. Single-event publish latency, one publisher, sequential (one request in flight)",
    ["publishes", "req/s", "p50", "p90", "p99", "max", "mean", "check"], [seqRow]);

  // Where a single publish's time goes: the same sequential loop on cheaper routes.
  const probeCount = n(500, 100);
  const breakdown = await withWorker("request overhead", async (ctx) => {
    const routes = [
      ["GET /healthz (routing only)", () => get(ctx, "/healthz", "none")],
      ["POST publish, bad token (401)", () => post(ctx, PUBLISH_PATH, "x.y.z", JSON.stringify(event("TTE01")))],
      [`GET /admin/v1/chains/${CHAIN} (token + object)`, () => get(ctx, `/admin/v1/chains/${CHAIN}`, ctx.tokens.ops)],
      ["POST publish, 1 event (200)", () => post(ctx, PUBLISH_PATH, ctx.tokens.pms, JSON.stringify(event("TTE01")))],
    ];
    const out = [];
    for (const [name, f] of routes) {
      for (let i = 0; i < 20; i++) await f();
      const lat = new Samples();
      const cpu = cpuMeter(ctx.pid);
      for (let i = 0; i < probeCount; i++) { const t = now(); await f(); lat.push(now() - t); }
      const c = cpu();
      out.push([name, fmt.int(probeCount), fmt.ms(lat.pct(50)), fmt.ms(lat.pct(99)), fmt.us((c.workerdSec * 1e6) / probeCount)]);
    }
    return out;
  }, { expectAudit: ["publish.refused"] });
  table("1c. Per-request cost by route, sequential (what a single-event publish pays for)",
    ["route", "requests", "p50", "p99", "workerd CPU/request"], breakdown);
}

// ---------------------------------------------------------------------------------------
// Scenario 2: fan-out

/**
 * One fan-out run on a fresh worker: `subs` live subscribers, then a publisher in one of
 * three modes for `durationS` seconds, then a bounded wait until every subscriber has
 * everything that was published.
 *   closed:   single events, one request in flight, as fast as it can
 *   rate:     open loop at `rate` events/s on a fixed schedule: every `tickMs` the events
 *             due so far go out as one POST, whatever is still in flight (latency is measured
 *             from each event's scheduled time, so batching and a late publisher count)
 *   saturate: batches of `batch`, one request in flight, held back only while the slowest
 *             subscriber is more than `lead` events behind (keeps the backlog bounded)
 */
async function fanoutRun({ label, subs, mode, rate, tickMs = 10, batch = 100, lead = 2000, durationS, warmS = 0, maxEvents = Infinity, drainS = 60 }) {
  return withWorker(label, async (ctx) => {
    // Warm the publish path and create the chain object before anyone subscribes.
    const warm = await publishBody(ctx, JSON.stringify(event("TTE01", { primaryKey: "warm" })));
    if (warm.status !== 200) throw new Error(`warm-up publish failed: ${warm.status} ${warm.text}`);
    progress(`${label}: attaching ${subs} subscriber(s)`);
    const pool = await attachSubscribers(ctx, subs, { expectFirst: 2 });
    const pubLat = new Samples();
    let published = 0, failed = 0, firstFailure = null;
    const inflight = new Set();
    // Open loop only: the same load for `warmS` seconds first, so the measured window sees
    // the steady state of a long-lived isolate (wasm tiered up, objects warm), not start-up.
    // Warm-up events carry no timestamp (no latency sample) but are checked for delivery.
    let warmed = 0;
    if (mode === "rate" && warmS > 0) {
      const w0 = now();
      const gap = 1000 / rate;
      let sent = 0;
      const pending = [];
      while (now() < w0 + warmS * 1000) {
        const due = Math.floor((now() - w0) / gap) + 1;
        if (sent < due) {
          const events = [];
          for (; sent < due; sent++) events.push(event(sent % 2 ? "TTE02" : "TTE01", { primaryKey: `warm-${sent}` }));
          const k = events.length;
          pending.push(publishBody(ctx, JSON.stringify(events)).then((res) => {
            if (res.status === 200) warmed += k; else { failed++; firstFailure ??= `warm-up: ${res.status} ${res.text.slice(0, 200)}`; }
          }));
        }
        await sleep(tickMs);
      }
      await Promise.all(pending);
      await drain(pool, warmed, drainS * 1000);
    }
    const record = (res, k) => {
      pubLat.push(res.ms);
      if (res.status === 200) published += k; else { failed++; firstFailure ??= `${res.status} ${res.text.slice(0, 200)}`; }
    };
    const cpu = cpuMeter(ctx.pid), rss = rssSampler(ctx.pid);
    const warmDeliveries = pool.deliveries;
    const t0 = now();
    const endAt = t0 + durationS * 1000;
    let offered = 0;
    if (mode === "closed") {
      while (now() < endAt && offered < maxEvents) {
        offered++;
        record(await publishBody(ctx, JSON.stringify(timedEvent(now(), offered))), 1);
      }
    } else if (mode === "rate") {
      // Event i is due at t0 + i/rate; every tick, the events due so far go out as one POST
      // (whatever is still in flight), each carrying its own scheduled time.
      const gap = 1000 / rate;
      while (now() < endAt && offered < maxEvents) {
        const due = Math.min(maxEvents, Math.floor((now() - t0) / gap) + 1);
        if (offered < due) {
          const events = [];
          for (; offered < due; offered++) events.push(timedEvent(t0 + offered * gap, offered));
          const k = events.length;
          const p = publishBody(ctx, JSON.stringify(events)).then((res) => { record(res, k); inflight.delete(p); });
          inflight.add(p);
        }
        await sleep(tickMs);
      }
    } else if (mode === "saturate") {
      while (now() < endAt && offered < maxEvents) {
        if (offered - pool.minReceived() > lead) { await sleep(2); continue; }
        const t = now();
        const body = JSON.stringify(Array.from({ length: batch }, (_, i) => timedEvent(t, i)));
        offered += batch;
        record(await publishBody(ctx, body), batch);
      }
    }
    const pubEnd = now();
    const deliveriesAtPubEnd = pool.deliveries - warmDeliveries;
    await Promise.all(inflight);
    const allIn = await drain(pool, published + warmed, drainS * 1000);
    const drainMs = now() - pubEnd;
    const c = cpu(), peak = rss();
    const stats = await chainStats(ctx);
    const expectedEach = stats.head - 1; // all but the first warm-up event
    if (failed) suspicious(label, `${failed} publishes failed, first: ${firstFailure}`);
    if (expectedEach !== published + warmed) suspicious(label, `head ${stats.head} but ${published + warmed} events acknowledged (+1 warm-up)`);
    if (!allIn) suspicious(label, `subscribers still missing events ${drainS} s after the last publish (min received ${pool.minReceived()} of ${published + warmed})`);
    const check = poolIntegrity(ctx, pool, expectedEach, "fan-out") === "ok" && !failed && allIn ? "ok" : "PROBLEM";
    const spanS = (pool.lastAt - t0) / 1000;
    const pubS = (pubEnd - t0) / 1000;
    ctx.closing = true;
    return {
      label, subs, mode, rate, published, pubRate: published / pubS, pubP50: pubLat.pct(50), pubP99: pubLat.pct(99),
      deliveries: pool.deliveries, expected: expectedEach * subs,
      deliveredPerS: (pool.deliveries - warmDeliveries) / spanS, deliveredInWindowPerS: deliveriesAtPubEnd / pubS,
      latP50: pool.lat.pct(50), latP99: pool.lat.pct(99), latMax: pool.lat.max(), drainMs,
      workerdPct: c.workerdPct, nodePct: c.nodePct, cpuPerDelivery: (c.workerdSec * 1e6) / (pool.deliveries - warmDeliveries),
      rssPeak: peak, attachMs: pool.attachMs, check,
    };
  });
}

function fanoutRow(r, name) {
  return [name, fmt.int(r.subs), r.mode === "rate" ? `${fmt.int(r.rate)}/s open` : r.mode === "closed" ? "closed loop" : "batches",
    fmt.int(r.published), fmt.int(r.pubRate), fmt.ms(r.pubP50), fmt.ms(r.pubP99),
    `${fmt.int(r.deliveries)}/${fmt.int(r.expected)}`, fmt.int(r.deliveredPerS), fmt.ms(r.latP50), fmt.ms(r.latP99), fmt.ms(r.latMax),
    fmt.ms(r.drainMs), fmt.pct(r.workerdPct), fmt.pct(r.nodePct), fmt.us(r.cpuPerDelivery), fmt.mib(r.rssPeak), r.check];
}

async function scenarioFanout() {
  const d = secs(6);
  const sweep = OPTS.quick ? [1, 10, 100] : [1, 10, 100, 1000];
  const parts = (process.env.BENCH_FANOUT ?? "sweep,target,sustained").split(/[\s,]+/);
  const rows = [];
  for (const subs of parts.includes("sweep") ? sweep : []) {
    const r = await fanoutRun({ label: `fan-out ${subs} closed`, subs, mode: "closed", durationS: d, maxEvents: n(5000, 200), drainS: 120 });
    progress(`fan-out ${subs} subs closed loop: ${fmt.int(r.deliveredPerS)} deliveries/s, p50 ${fmt.ms(r.latP50)} p99 ${fmt.ms(r.latP99)}`);
    rows.push(fanoutRow(r, "sweep"));
  }
  const targets = [
    { subs: 10, rate: 1000 },
    { subs: 100, rate: 200 },
  ];
  for (const t of parts.includes("target") ? targets : []) {
    const r = await fanoutRun({ label: `fan-out ${t.subs}@${t.rate}/s`, subs: t.subs, mode: "rate", rate: t.rate, durationS: secs(8), warmS: OPTS.quick ? 1 : 3, drainS: 120 });
    progress(`fan-out target ${t.subs} subs @ ${t.rate}/s: ${fmt.int(r.deliveredPerS)} deliveries/s, p50 ${fmt.ms(r.latP50)} p99 ${fmt.ms(r.latP99)}`);
    rows.push(fanoutRow(r, "target"));
  }
  const sustainedSubs = 100;
  const s = !parts.includes("sustained") ? { deliveredInWindowPerS: NaN } : await fanoutRun({ label: `fan-out ${sustainedSubs} sustained`, subs: sustainedSubs, mode: "saturate", batch: 100, lead: 2000, durationS: secs(10), drainS: 120 });
  progress(`fan-out sustained: ${fmt.int(s.deliveredInWindowPerS)} deliveries/s while publishing`);
  if (parts.includes("sustained")) rows.push(fanoutRow(s, "sustained"));
  table(`2. Fan-out on chain ${CHAIN}: 1 publisher, N live subscribers (one connection each), fresh worker per row`,
    ["row", "subs", "publisher", "events", "events/s", "pub p50", "pub p99", "delivered/expected", "deliveries/s", "e2e p50", "e2e p99", "e2e max", "drain", "workerd CPU", "node CPU", "workerd CPU/delivery", "workerd RSS peak", "check"],
    rows, [
      `sweep: single-event POSTs, one in flight, ${d} s or ${fmt.int(n(5000, 200))} events; target: open loop at the fixed event rate for ${secs(8)} s`,
      `  after ${OPTS.quick ? 1 : 3} s of the same load as warm-up (not in the latency columns; delivered and checked like the rest);`,
      "  one POST every 10 ms with the events due (10 per POST at 1,000/s, 2 at 200/s), latency from each event's scheduled time;",
      `sustained: batches of 100, one in flight, for ${secs(10)} s, held back only while the slowest subscriber is > 2,000 events behind;`,
      `sustained deliveries/s while publishing: ${fmt.int(s.deliveredInWindowPerS)} (${fmt.int(s.deliveredInWindowPerS / sustainedSubs)} events/s per subscriber).`,
      "deliveries/s = deliveries / (first publish -> last delivery); e2e = publish time carried in primaryKey -> frame received here (same clock);",
      "drain = last publish acknowledged -> every subscriber has every event. check: every subscriber got every event once, in offset order, no gaps, no server closes.",
    ]);
}

// ---------------------------------------------------------------------------------------
// Scenario 3: replay

async function scenarioReplay() {
  const total = n(100000, 1000);
  const batch = 100;
  const row = await withWorker("replay", async (ctx) => {
    progress(`replay: publishing ${fmt.int(total)} events in batches of ${batch}`);
    const body = () => JSON.stringify(Array.from({ length: batch }, (_, i) => event(i % 2 ? "TTE02" : "TTE01")));
    const template = body();
    let sent = 0, failed = 0, firstFailure = null;
    const book = new OffsetBook();
    const requests = Math.ceil(total / batch);
    const tp = now();
    await Promise.all(Array.from({ length: 4 }, async () => {
      while (sent < requests && now() - tp < 300000) {
        sent++;
        const res = await publishBody(ctx, template);
        if (res.status === 200 && res.offsets) book.add(res.offsets);
        else { failed++; firstFailure ??= `${res.status} ${res.text.slice(0, 200)}`; }
      }
    }));
    const pubS = (now() - tp) / 1000;
    if (failed) suspicious(ctx.label, `${failed} publishes failed, first: ${firstFailure}`);
    const stats = await chainStats(ctx);
    const stored = stats.head;
    if (stored !== book.count || book.dups) suspicious(ctx.label, `head ${stats.head}, ${book.count} offsets acknowledged, ${book.dups} duplicates`);
    progress(`replay: ${fmt.int(stored)} stored in ${pubS.toFixed(1)} s; replaying from offset 1`);
    const rssBefore = procStatus(ctx.pid).rssKiB;
    let done, doneAt = NaN, firstAt = NaN;
    const finished = new Promise((r) => { done = r; });
    const cpu = cpuMeter(ctx.pid), rss = rssSampler(ctx.pid);
    const t0 = now();
    const pool = await attachSubscribers(ctx, 1, {
      input: `{chainCode: "${CHAIN}", offset: "1"}`, fields: "metadata { offset } timestamp", expectFirst: 1,
      onEvent: (sub, off, t) => { if (sub.count === 1) firstAt = t; if (sub.count >= stored) { doneAt = t; done(); } },
    });
    const timeoutS = 300;
    const ok = await Promise.race([finished.then(() => true), sleep(timeoutS * 1000).then(() => false)]);
    const c = cpu(), peak = rss();
    const sub = pool.subs[0];
    if (!ok) suspicious(ctx.label, `replay stalled: ${sub.count} of ${stored} events after ${timeoutS} s (last offset ${sub.last})`);
    await sleep(200); // anything beyond the head would show up as an extra
    const check = poolIntegrity(ctx, pool, stored, "replay") === "ok" && ok ? "ok" : "PROBLEM";
    const span = ((ok ? doneAt : now()) - t0) / 1000;
    ctx.closing = true;
    progress(`replay: ${fmt.int(sub.count / span)} events/s`);
    return [fmt.int(stored), fmt.int(stored / pubS), fmt.ms(firstAt - t0), `${span.toFixed(2)} s`, fmt.int(sub.count / span),
      fmt.int(sub.count / ((doneAt - firstAt) / 1000)), fmt.pct(c.workerdPct), fmt.pct(c.nodePct), fmt.us((c.workerdSec * 1e6) / sub.count),
      fmt.mib(rssBefore), fmt.mib(peak), check];
  });
  table(`3. Replay: ${fmt.int(total)} events published in batches of ${batch} (4 publishers), then one subscriber from offset 1`,
    ["events", "publish events/s", "first event after", "all received after", "replay events/s", "events/s after first", "workerd CPU", "node CPU", "workerd CPU/event", "RSS before", "RSS peak", "check"],
    [row], ["times from opening the subscriber's socket (connect, init, subscribe included). check: offsets 1..head, each once, in order."]);
}

// ---------------------------------------------------------------------------------------
// Scenario 4: memory with idle subscribers

async function scenarioMemory() {
  const count = n(1000, 50);
  const cycles = Number(process.env.BENCH_MEMORY_CYCLES ?? (OPTS.quick ? 2 : 3));
  const rows = [];
  const notes = [];
  await withWorker("memory", async (ctx) => {
    const warm = await publishBody(ctx, JSON.stringify(event("TTE01")));
    if (warm.status !== 200) throw new Error(`warm-up publish failed: ${warm.status}`);
    // Load the gateway and GraphQL code paths once, so the baseline is not just an empty isolate.
    const one = await attachSubscribers(ctx, 1);
    await closeSockets(one.subs.map((s) => s.ws));
    await sleep(1500);
    const baseline = procStatus(ctx.pid);
    rows.push(["baseline (worker warm, no subscribers)", "0", fmt.mib(baseline.rssKiB), "-", "-", String(baseline.threads)]);
    const nodeBase = process.memoryUsage().rss;
    for (let cycle = 1; cycle <= cycles; cycle++) {
      progress(`memory: cycle ${cycle}, attaching ${count} idle subscribers`);
      const pool = await attachSubscribers(ctx, count);
      await sleep(2000);
      const attached = procStatus(ctx.pid);
      const stats = await chainStats(ctx);
      const delta = attached.rssKiB - baseline.rssKiB;
      rows.push([`cycle ${cycle}: ${count} subscribed, idle 2 s`, fmt.int(stats.subscribers), fmt.mib(attached.rssKiB), fmt.mib(delta), `${(delta / count).toFixed(0)} KiB`, String(attached.threads)]);
      if (cycle === 1) notes.push(`attaching took ${fmt.ms(pool.attachMs)}; this process (the ${count} client sockets) grew by ${((process.memoryUsage().rss - nodeBase) / 1048576).toFixed(1)} MiB`);
      // Everyone still live? One event must reach all of them.
      const probe = await publishBody(ctx, JSON.stringify(timedEvent(now(), 0)));
      const got = probe.status === 200 && (await drain(pool, 1, 30000));
      if (!got) suspicious(ctx.label, `cycle ${cycle}: a probe event did not reach all ${count} idle subscribers within 30 s (min received ${pool.minReceived()} of 1)`);
      else notes.push(`cycle ${cycle}: one probe event reached all ${count} subscribers (e2e p50 ${fmt.ms(pool.lat.pct(50))}, last after ${fmt.ms(pool.lat.max())})`);
      poolIntegrity(ctx, pool, 1, `memory cycle ${cycle}`);
      ctx.closing = true;
      await closeSockets(pool.subs.map((s) => s.ws), 5000);
      ctx.closing = false;
      const deadline = now() + 30000;
      let left = await chainStats(ctx);
      while (left.subscribers > 0 && now() < deadline) { await sleep(100); left = await chainStats(ctx); }
      await sleep(2000);
      const after = procStatus(ctx.pid);
      rows.push([`cycle ${cycle}: all closed, 2 s later`, fmt.int(left.subscribers), fmt.mib(after.rssKiB), fmt.mib(after.rssKiB - baseline.rssKiB), "-", String(after.threads)]);
      if (left.subscribers > 0) suspicious(ctx.label, `cycle ${cycle}: ${left.subscribers} subscriptions still attached 30 s after every client closed`);
    }
    notes.push(`workerd pid ${ctx.pid}; RSS = VmRSS of /proc/<pid>/status; high-water mark VmHWM ${fmt.mib(procStatus(ctx.pid).hwmKiB)}`);
  });
  table(`4. Memory: workerd RSS with ${fmt.int(count)} idle subscribed sockets (${cycles} attach/close cycles on one worker)`,
    ["state", "attached", "workerd RSS", "vs baseline", "per socket", "threads"], rows, notes);
}

// ---------------------------------------------------------------------------------------
// Main

function header() {
  const cpus = os.cpus();
  let wasm = "missing";
  const wasmPath = path.join(ROOT, "build/index_bg.wasm");
  if (existsSync(wasmPath)) {
    const buf = readFileSync(wasmPath);
    wasm = `${(buf.length / 1048576).toFixed(2)} MiB, sha256 ${createHash("sha256").update(buf).digest("hex").slice(0, 12)}, built ${statSync(wasmPath).mtime.toISOString()}`;
  }
  let commit = "?";
  try { commit = execFileSync("git", ["-C", ROOT, "log", "-1", "--format=%h %s"]).toString().trim().slice(0, 80); } catch {}
  let workerd = "?";
  try { workerd = JSON.parse(readFileSync(path.join(ROOT, "node_modules/miniflare/package.json"), "utf8")).version; } catch {}
  console.log("PMS Events benchmark");
  console.log(`  node ${process.version} on ${os.platform()} ${os.release()} ${os.arch()}`);
  console.log(`  machine: ${cpus.length} cores (${cpus[0]?.model ?? "?"}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, load avg ${os.loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  console.log(`  runtime: miniflare ${workerd} (local workerd); worker build: ${wasm}`);
  console.log(`  commit: ${commit}`);
  console.log(`  scenarios: ${OPTS.scenarios.join(", ")}; mode: ${OPTS.quick ? "quick (~10x smaller counts)" : "full"}${OPTS.scale !== 1 ? `, scale ${OPTS.scale}` : ""}${OPTS.duration ? `, ${OPTS.duration} s steps` : ""}`);
  console.log("  load generator, workerd and everything else share this machine: numbers include the generator's own CPU use.");
}

const RUNNERS = { publish: scenarioPublish, fanout: scenarioFanout, replay: scenarioReplay, memory: scenarioMemory };

async function main() {
  header();
  const started = now();
  let failed = false;
  for (const name of OPTS.scenarios) {
    progress(`scenario ${name}`);
    try {
      await RUNNERS[name]();
    } catch (e) {
      failed = true;
      console.log(`\nscenario ${name} did not complete: ${e.stack ?? e}`);
      REPORT.push(`scenario ${name} aborted: ${e.message}`);
    }
  }
  console.log(`\nTotal time ${((now() - started) / 1000).toFixed(1)} s.`);
  if (REPORT.length) {
    console.log("\nSuspicious (see above):");
    for (const r of REPORT) console.log(`  - ${r}`);
  } else {
    console.log("Nothing suspicious seen: no failed requests, lost, repeated or out-of-order events, or server-side closes.");
  }
  return failed;
}

// Last-resort bound on the whole run, then leave no sockets or runtimes behind.
const watchdog = setTimeout(() => {
  console.error("benchmark exceeded its 30-minute bound; stopping");
  for (const ws of LIVE) ws.terminate();
  process.exit(3);
}, 30 * 60 * 1000);
watchdog.unref();

const failed = await main();
for (const ws of LIVE) ws.terminate();
process.exit(failed ? 1 : 0);
