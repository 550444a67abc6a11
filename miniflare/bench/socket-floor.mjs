#!/usr/bin/env node
// The runtime's own memory floor per WebSocket, for comparison with `npm run bench -- memory`:
// a minimal worker (a few lines of JavaScript, no Rust, no GraphQL) on the same workerd,
// in the same topology as this service or with the vendor's socket only, measured the same
// way (workerd's VmRSS with N idle sockets, over attach/close cycles).
//
//   node miniflare/bench/socket-floor.mjs [COUNT] [CYCLES] [MODES: echo,relay,stream,object]
//
// `vendor only`: the Worker accepts the vendor's socket and echoes. `as this service`: the
// Worker also opens one internal socket per vendor socket to a Durable Object, which accepts
// it with the hibernation API, as the gateway and chain object do.
import { Miniflare } from "miniflare";
import WebSocket from "ws";
import { readFileSync, readdirSync } from "node:fs";
import { workerScript } from "../harness.mjs";

const COUNT = Number(process.argv[2] ?? 1000);
const CYCLES = Number(process.argv[3] ?? 3);

const script = `
export class Chain {
  constructor(ctx) { this.ctx = ctx; }
  async fetch(req) {
    if (new URL(req.url).pathname === "/stream") return this.streamTo();
    const [client, server] = Object.values(new WebSocketPair());
    this.ctx.acceptWebSocket(server);
    return new Response(null, { status: 101, webSocket: client });
  }
  // mode=stream: the internal channel is a streamed HTTP response instead of a socket.
  streamTo() {
    const { readable, writable } = new TransformStream();
    const writer = writable.getWriter();
    // Held while the stream is open (as the service would), let go once the reader cancels.
    (this.writers ??= new Set()).add(writer);
    writer.closed.catch(() => {}).finally(() => this.writers.delete(writer));
    writer.write(new TextEncoder().encode("hello"));
    return new Response(readable);
  }
  webSocketMessage(ws, msg) { ws.send(msg); }
  webSocketClose(ws, code) { ws.close(code, "closed"); }
}
export default {
  async fetch(req, env) {
    if (req.headers.get("Upgrade") !== "websocket") return new Response("ok");
    const [client, server] = Object.values(new WebSocketPair());
    server.accept();
    if (new URL(req.url).searchParams.get("mode") === "relay") {
      const stub = env.CHAIN.get(env.CHAIN.idFromName("TTE"));
      const res = await stub.fetch("http://chain/subscribe", { headers: { Upgrade: "websocket" } });
      const internal = res.webSocket;
      internal.accept();
      internal.addEventListener("message", (e) => server.send(e.data));
      server.addEventListener("message", (e) => internal.send(e.data));
      server.addEventListener("close", (e) => { internal.close(1000, "done"); server.close(1000, "done"); });
    } else if (new URL(req.url).searchParams.get("mode") === "stream") {
      const stub = env.CHAIN.get(env.CHAIN.idFromName("TTE"));
      const res = await stub.fetch("http://chain/stream");
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      (async () => { for (;;) { const { value, done } = await reader.read(); if (done) break; server.send(decoder.decode(value)); } })();
      server.addEventListener("close", () => { reader.cancel(); server.close(1000, "done"); });
    } else if (new URL(req.url).searchParams.get("mode") === "object") {
      // The vendor's socket handed straight to the Durable Object (hibernation API).
      return env.CHAIN.get(env.CHAIN.idFromName("TTE")).fetch(req);
    } else {
      server.addEventListener("message", (e) => server.send(e.data));
      server.addEventListener("close", () => server.close(1000, "done"));
    }
    return new Response(null, { status: 101, webSocket: client });
  },
};`;

function workerdPids() {
  return readdirSync("/proc").filter((p) => /^\d+$/.test(p)).filter((p) => {
    try { return readFileSync(`/proc/${p}/comm`, "utf8").startsWith("workerd"); } catch { return false; }
  });
}
const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function open(url, n) {
  const sockets = [];
  for (let i = 0; i < n; i += 50) {
    const batch = Array.from({ length: Math.min(50, n - i) }, () => new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: true });
      ws.on("open", () => { ws.send("hello"); });
      ws.once("message", () => resolve(ws));
      ws.on("error", reject);
    }));
    sockets.push(...(await Promise.all(batch)));
  }
  return sockets;
}

async function measure(mode) {
  const before = new Set(workerdPids());
  const mf = new Miniflare({
    modules: true,
    script,
    compatibilityDate: workerScript.compatibilityDate,
    compatibilityFlags: workerScript.compatibilityFlags,
    durableObjects: { CHAIN: { className: "Chain", useSQLite: true } },
    unsafeDirectSockets: [{ host: "127.0.0.1", port: 0 }],
  });
  await mf.ready;
  const base = (await mf.unsafeGetDirectURL()).href.replace(/^http/, "ws").replace(/\/$/, "");
  const pid = workerdPids().find((p) => !before.has(p));
  const url = `${base}/?mode=${mode}`;
  for (const ws of await open(url, 1)) ws.close();
  await sleep(1500);
  const baseline = rssKiB(pid);
  const rows = [];
  for (let cycle = 1; cycle <= CYCLES; cycle++) {
    const sockets = await open(url, COUNT);
    await sleep(2000);
    const attached = rssKiB(pid);
    for (const ws of sockets) ws.close();
    await sleep(2500);
    const after = rssKiB(pid);
    rows.push(`cycle ${cycle}: ${((attached - baseline) / COUNT).toFixed(0)} KiB per socket over the baseline; after closing all, ${((after - baseline) / 1024).toFixed(1)} MiB over it`);
  }
  await mf.dispose();
  console.log(`${TOPOLOGY[mode]}: baseline ${(baseline / 1024).toFixed(1)} MiB, ${COUNT} sockets`);
  for (const r of rows) console.log(`  ${r}`);
}

const TOPOLOGY = {
  echo: "vendor socket only, held by the Worker",
  relay: "as this service (vendor socket + internal socket to a Durable Object)",
  stream: "vendor socket + a streamed HTTP response from a Durable Object",
  object: "vendor socket handed to a Durable Object (hibernation API)",
};
for (const mode of (process.argv[4] ?? "echo,relay").split(",")) await measure(mode);
