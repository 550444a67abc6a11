#!/usr/bin/env node
// What holds a row's slowest publishes: the unsaturated rows' p99 is decided by a few
// publishes out of a few hundred, and this finds out, publish by publish, whether each was
// late on the server or only at the client, and what the server was doing meanwhile.
//
//   node miniflare/bench/slow-publishes.mjs [SUBSCRIBERS] [EVENTS_PER_S] [SECONDS] [BATCH]
//                                           [--floor] [--slowest=N] [--no-perf]
//
// Runs the load generator's shape (graphql-ws subscribers on HTBTTE selecting the offset and
// primary key, one publisher at a fixed rate), twice on one workerd: a warm-up run, then the
// measured one with `perf record` on workerd (Debian: `linux-perf`), its samples stamped with
// the monotonic clock this process stamps each publish with. `--floor` runs the relay floor
// of stream-floor.mjs instead of this service. `--no-perf` skips `perf` (for runs of a minute or
// more: the client-side distributions alone, which say whether a row's tail is late first
// frames, a publish reaching its first subscriber late, or a long spread, the fan-out itself).
//
// For each publish: its first and last frame at the client, and when workerd's main thread was
// first seen writing to a WebSocket after the send (`WebSocket::pump`; sampled at ~3 kHz, so
// within ~0.3 ms). For the slowest (by last frame), the share of workerd's samples in the
// publish's window that were garbage collection, and the most frequent frames.
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import WebSocket from "ws";
import { createClient } from "graphql-ws";
import { startWorker, tokenFor, DEMO, sleep } from "../harness.mjs";
import { startStreamFloor } from "./stream-floor.mjs";
import { workerdChildren } from "./inspector.mjs";

const positional = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const [SUBS, RATE, SECONDS, BATCH] = [positional[0] ?? 100, positional[1] ?? 200, positional[2] ?? 8, positional[3] ?? 10].map(Number);
const FLOOR = process.argv.includes("--floor");
const SLOWEST = Number(process.argv.find((a) => a.startsWith("--slowest="))?.split("=")[1] ?? 5);
const PERF = !process.argv.includes("--no-perf");
const GC_FRAME = /Scaveng|MarkCompact|Heap::|Sweep|HeapTracer|cppgc|Finaliz|IncrementalMarking|ConcurrentMarking|MinorMS/;
const CHAIN = "HTBTTE";

/** Monotonic microseconds: the clock `perf record --clockid monotonic` stamps samples with. */
const monoMicros = () => Number(process.hrtime.bigint() / 1000n);

/** How long a run waits for its subscribers to attach (and get the newest event once). */
const ATTACH_WAIT_MS = 1500 + SUBS * 5;

const server = FLOOR ? await startStreamFloor() : await startWorker({ direct: true, logs: { push() {} } });
const base = FLOOR ? `${server.base}/relay` : server.base;
const [pid] = workerdChildren();
try {
  const vendorToken = FLOOR ? "floor" : await tokenFor(base, DEMO.app1);
  const publisherToken = FLOOR ? "floor" : await tokenFor(base, DEMO.pms1);
  await load(vendorToken, publisherToken);
  if (!PERF) {
    report(await load(vendorToken, publisherToken), null);
  } else {
    const perfFile = path.join(mkdtempSync(path.join(tmpdir(), "pms-perf-")), "perf.data");
    const perf = spawn("perf", ["record", "-F", "2999", "-g", "--clockid", "monotonic", "-p", String(pid), "-o", perfFile, "--", "sleep", String(Math.ceil(ATTACH_WAIT_MS / 1000 + SECONDS + 3))], { stdio: "ignore" });
    const perfDone = new Promise((resolve) => { perf.on("exit", resolve); perf.on("error", () => resolve(null)); });
    await sleep(300);
    const publishes = await load(vendorToken, publisherToken);
    const recorded = (await perfDone) === 0;
    report(publishes, recorded ? await perfSamples(perfFile) : null);
  }
} finally {
  await server.dispose();
}

/** One run: SUBS subscribers, then SECONDS of publishing; each publish's send time and its frames' arrivals. */
async function load(vendorToken, publisherToken) {
  const publishes = [];
  let delivered = 0;
  const clients = Array.from({ length: SUBS }, () => {
    const client = createClient({
      url: `${base.replace(/^http/, "ws")}/subscriptions?key=${Buffer.from(DEMO.app1.appKey).toString("base64")}`,
      webSocketImpl: WebSocket, retryAttempts: 0, lazy: false,
      connectionParams: { Authorization: `Bearer ${vendorToken}`, "x-app-key": DEMO.app1.appKey },
    });
    client.subscribe({ query: `subscription { newEvent(input: { chainCode: "${CHAIN}", offsetType: "highest" }) { metadata { offset } primaryKey } }` }, {
      next: (value) => {
        const key = value.data?.newEvent?.primaryKey ?? "";
        const [tag, index] = key.split(":");
        const publish = tag === "SLOW" ? publishes[Number(index)] : undefined;
        if (!publish) return;
        const at = monoMicros();
        publish.first ??= at;
        publish.last = at;
        delivered++;
      },
      error: (e) => console.error("subscription error", JSON.stringify(e).slice(0, 200)),
      complete: () => {},
    });
    return client;
  });
  await sleep(ATTACH_WAIT_MS);
  const interval = 1000 / (RATE / BATCH);
  const until = Date.now() + SECONDS * 1000;
  while (Date.now() < until) {
    const started = Date.now();
    const index = publishes.length;
    const events = Array.from({ length: BATCH }, (_, i) => ({
      moduleName: "Reservation", eventName: "CHECK IN", primaryKey: `SLOW:${index}:${i}`,
      timestamp: new Date().toISOString(), hotelId: "HTB01", detail: [{ elementName: "Room", newValue: "101", oldValue: null }],
    }));
    publishes.push({ sent: monoMicros() });
    const res = await fetch(`${base}/events/v1/chains/${CHAIN}/events`, {
      method: "POST", headers: { Authorization: `Bearer ${publisherToken}`, "Content-Type": "application/json" }, body: JSON.stringify(events),
    });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`publish answered ${res.status}`);
    await sleep(Math.max(0, interval - (Date.now() - started)));
  }
  const expected = publishes.length * BATCH * SUBS;
  const drainUntil = Date.now() + 15_000;
  while (delivered < expected && Date.now() < drainUntil) await sleep(50);
  await Promise.all(clients.map((c) => c.dispose()));
  if (delivered !== expected) throw new Error(`${delivered} of ${expected} frames delivered`);
  return publishes;
}

/** workerd's samples as { thread, at (monotonic µs), frames (innermost first) }. */
async function perfSamples(file) {
  const script = spawn("perf", ["script", "-i", file, "-F", "tid,time,ip,sym"], { stdio: ["ignore", "pipe", "ignore"] });
  const samples = [];
  let current = null;
  for await (const line of createInterface({ input: script.stdout })) {
    const header = /^\s*(\d+)\s+([\d.]+):\s*$/.exec(line);
    if (header) {
      current = { thread: Number(header[1]), at: Number(header[2]) * 1e6, frames: [] };
      samples.push(current);
    } else if (current && line.trim()) {
      current.frames.push(line.trim().replace(/^[0-9a-f]+ /, ""));
    }
  }
  return samples;
}

function report(publishes, samples) {
  const ms = (micros) => (micros / 1000).toFixed(1);
  const rows = publishes.map((p, index) => ({ index, sent: p.sent, first: p.first - p.sent, last: p.last - p.sent }));
  const sorted = (key) => rows.map((r) => r[key]).sort((a, b) => a - b);
  const quantile = (xs, q) => xs[Math.min(xs.length - 1, Math.floor(q * xs.length))];
  console.log(`${FLOOR ? "relay floor" : "this service"}: ${SUBS} subscribers, ${RATE} events/s in batches of ${BATCH}, ${rows.length} publishes`);
  const spread = rows.map((r) => r.last - r.first).sort((a, b) => a - b);
  const percentiles = (xs) => [0.5, 0.9, 0.99].map((q) => ms(quantile(xs, q))).join(" / ");
  console.log(`p50 / p90 / p99, ms after the send: first frame ${percentiles(sorted("first"))}; last frame ${percentiles(sorted("last"))}`);
  console.log(`spread (last frame after first) p50 / p90 / p99: ${percentiles(spread)} ms`);
  const over = (limit) => rows.filter((r) => r.last > limit * 1000).length;
  console.log(`publishes whose last frame came after 25 / 30 / 40 ms: ${over(25)} / ${over(30)} / ${over(40)}`);
  if (!samples) {
    if (PERF) console.log("(no perf samples: is `perf` installed and allowed? the server-side columns need it)");
    return;
  }
  const counts = new Map();
  for (const s of samples) counts.set(s.thread, (counts.get(s.thread) ?? 0) + 1);
  const main = [...counts].sort((a, b) => b[1] - a[1])[0][0];
  const isGc = (s) => s.frames.some((f) => GC_FRAME.test(f));
  const gcAll = samples.filter(isGc).length;
  console.log(`workerd: ${samples.length} samples, ${gcAll} of them garbage collection (${((100 * gcAll) / samples.length).toFixed(1)}%)`);
  const firstWrite = (row) => samples.find((s) => s.thread === main && s.at >= row.sent && s.frames.some((f) => f.includes("WebSocket::pump")))?.at;
  console.log(`\nslowest ${SLOWEST} by last frame (ms after the send): first at the client / first write on the server / last`);
  for (const row of [...rows].sort((a, b) => b.last - a.last).slice(0, SLOWEST)) {
    const window = samples.filter((s) => s.at >= row.sent && s.at < row.sent + row.first);
    const gc = window.filter(isGc).length;
    const written = firstWrite(row);
    const frames = new Map();
    for (const s of window) {
      const frame = (s.frames.find((f) => !/^\[unknown\]|^kj::_::|^v8::internal::Builtins|^Builtins_/.test(f)) ?? "?").slice(0, 60);
      frames.set(frame, (frames.get(frame) ?? 0) + 1);
    }
    const top = [...frames].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([f, n]) => `${f} x${n}`).join("; ");
    console.log(`  #${row.index}: ${ms(row.first)} / ${written ? ms(written - row.sent) : "-"} / ${ms(row.last)}; ` +
      `${window.length} samples before the first frame, ${gc} garbage collection; ${top}`);
  }
}
