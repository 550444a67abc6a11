#!/usr/bin/env node
// Webhook delivery benchmark: the built worker on workerd (a direct socket, no local router)
// pushing chain TTE to 0, 1 and 4 webhooks on a local receiver that answers 204 at once.
// Prints numbers; asserts nothing about timing.
//
//   node miniflare/bench/webhooks.mjs [--events=N] [--rate=R] [--seconds=S]
//
// Per row: a burst (N events published in batches of 100, back to back: publish events/s,
// and how fast every webhook received all of them), then a steady rate (R events/s in
// batches of 10 for S seconds: publish request → webhook receipt latency, p50/p99/max).
import http from "node:http";
import { startWorker, tokenFor, publish, event, newWebhookSecret, demoConfig, DEMO, sleep } from "../harness.mjs";

const arg = (name, dflt) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1] ?? dflt);
const EVENTS = arg("events", 20000);
const RATE = arg("rate", 200);
const SECONDS = arg("seconds", 10);

function receiver() {
  const r = { received: new Map(), requests: 0 };
  r.server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const at = performance.now();
      const hook = req.url;
      const body = JSON.parse(Buffer.concat(chunks));
      r.requests++;
      if (!r.received.has(hook)) r.received.set(hook, new Map());
      const seen = r.received.get(hook);
      for (const e of body.events) if (!seen.has(e.metadata.offset)) seen.set(Number(e.metadata.offset), at);
      res.writeHead(204).end();
    });
  });
  r.server.keepAliveTimeout = 30000;
  return new Promise((resolve) => r.server.listen(0, "127.0.0.1", () => resolve(r)));
}

const pct = (xs, p) => xs.length ? xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] : NaN;

async function row(hooks) {
  const rcv = await receiver();
  const port = rcv.server.address().port;
  const config = structuredClone(demoConfig);
  config.clients.find((c) => c.id === DEMO.app1.id).webhooks = Array.from({ length: hooks }, (_, i) => ({
    id: `wh-${i}`, chain: "TTE", url: `http://127.0.0.1:${port}/h${i}`, secret: newWebhookSecret(),
  }));
  const w = await startWorker({ config, direct: true });
  try {
    const pms = await tokenFor(w.base, DEMO.pms1);
    const all = (n) => [...Array(hooks).keys()].every((i) => (rcv.received.get(`/h${i}`)?.size ?? 0) >= n);
    // Burst.
    const t0 = performance.now();
    for (let sent = 0; sent < EVENTS; sent += 100) {
      const res = await publish(w.base, pms, "TTE", Array.from({ length: 100 }, () => event("TTE01")));
      if (res.status !== 200) throw new Error(`publish ${res.status} ${res.text}`);
    }
    const published = performance.now();
    const deadline = Date.now() + 300000;
    while (hooks && !all(EVENTS) && Date.now() < deadline) await sleep(20);
    const delivered = performance.now();
    // Steady rate.
    const ackAt = new Map();
    const interval = 1000 / (RATE / 10);
    const start = performance.now();
    let offset = EVENTS;
    for (let k = 0; performance.now() - start < SECONDS * 1000; k++) {
      const due = start + k * interval;
      if (due > performance.now()) await sleep(due - performance.now());
      const sentAt = performance.now();
      const res = await publish(w.base, pms, "TTE", Array.from({ length: 10 }, () => event("TTE01")));
      // From the publish request's start: the webhook request can leave the object before
      // the publisher has read its answer (both wait only for the events to be durable).
      for (const o of res.json.offsets) ackAt.set(Number(o), sentAt);
      offset = Number(res.json.offsets.at(-1));
    }
    while (hooks && !all(offset) && Date.now() < deadline) await sleep(20);
    const lat = [];
    for (let i = 0; i < hooks; i++) {
      for (const [o, acked] of ackAt) lat.push(rcv.received.get(`/h${i}`).get(o) - acked);
    }
    lat.sort((a, b) => a - b);
    return {
      webhooks: hooks,
      publishEventsPerSecond: Math.round(EVENTS / ((published - t0) / 1000)),
      deliveryEventsPerSecondPerWebhook: hooks ? Math.round(EVENTS / ((delivered - t0) / 1000)) : null,
      requestsPerWebhook: hooks ? Math.round(rcv.requests / hooks) : 0,
      steadyLatencyMs: hooks ? { p50: +pct(lat, 50).toFixed(1), p99: +pct(lat, 99).toFixed(1), max: +lat.at(-1).toFixed(1) } : null,
    };
  } finally {
    await w.dispose();
    rcv.server.closeAllConnections();
    rcv.server.close();
  }
}

console.log(`webhooks bench: burst ${EVENTS} events (batches of 100), then ${RATE} events/s (batches of 10) for ${SECONDS} s`);
for (const hooks of [0, 1, 4]) console.log(JSON.stringify(await row(hooks)));
