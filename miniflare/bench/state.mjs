// The current state at scale: a chain with ENTITIES entities (default 1,000,000, each one
// event), then a client walking the state at limit=1000 in a loop for SECONDS while a live
// subscriber on the same chain receives a small publish every 200 ms. Prints the populate rate,
// state pages and entities read per second, the live subscriber's worst publish-to-receive
// time, and how far the isolate's wasm heap moved from where the walk started.
//
//   node miniflare/bench/state.mjs [ENTITIES] [SECONDS]
//
// `miniflare/state-hostile.test.mjs` runs the same and asserts the bounds (heap within 16 MiB
// of its start, every live event within 1 s).
import http from "node:http";
import { createClient } from "graphql-ws";
import WebSocket from "ws";
import { startWorker, tokenFor, event, DEMO, demoConfig } from "../harness.mjs";

const MiB = 1 << 20;
const BATCH = 1000;
const MODULES = ["Reservation", "Room", "Folio", "Profile"];

function post(base, agent, pathname, token, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${pathname}`, { method: "POST", agent, headers: { authorization: `Bearer ${token}`, "content-type": "application/json" } }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString() }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

function get(base, agent, pathname, token) {
  return new Promise((resolve, reject) => {
    http.get(`${base}${pathname}`, { agent, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString();
        resolve({ status: res.statusCode, text, json: () => JSON.parse(text) });
      });
    }).on("error", reject);
  });
}

/** Publishes `entities` events, each a new entity of chain TTE, 4 publishers at once. */
export async function populate(w, entities, onProgress = () => {}) {
  const token = await tokenFor(w.base, DEMO.pms1);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  let next = 0;
  const started = Date.now();
  try {
    await Promise.all(Array.from({ length: 4 }, async () => {
      while (next < entities) {
        const from = next;
        next += BATCH;
        const body = JSON.stringify(Array.from({ length: Math.min(BATCH, entities - from) }, (_, i) => {
          const n = from + i;
          return {
            moduleName: MODULES[n % MODULES.length], eventName: "NEW", primaryKey: `K${String(n).padStart(8, "0")}`,
            timestamp: "2026-12-07T10:00:00Z", hotelId: n % 2 ? "TTE02" : "TTE01",
            detail: [{ elementName: "Status", newValue: "OPEN" }, { elementName: "Seq", newValue: String(n) }],
          };
        }));
        const res = await post(w.base, agent, "/events/v1/chains/TTE/events", token, body);
        if (res.status !== 200) throw new Error(`populate publish failed: ${res.status} ${res.text.slice(0, 200)}`);
        onProgress(Math.min(next, entities));
      }
    }));
  } finally {
    agent.destroy();
  }
  return { seconds: (Date.now() - started) / 1000 };
}

/** Waits until the chain's state has folded every event published (it follows the log in
 *  steps of its own); returns the seconds waited. */
export async function foldedAll(w, timeoutMs = 600_000) {
  const admin = await tokenFor(w.base, DEMO.ops, { scope: "urn:pms:admin" });
  const started = Date.now();
  for (;;) {
    const stats = (await get(w.base, undefined, "/admin/v1/chains/TTE", admin)).json();
    if (stats.stateThrough === stats.headOffset) return (Date.now() - started) / 1000;
    if (Date.now() - started > timeoutMs) throw new Error(`the state did not catch up: ${JSON.stringify(stats)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function heap(w) {
  return (await get(w.base, undefined, "/healthz")).json().wasmMemoryBytes;
}

/** A subscriber from the newest event, and a publisher of one event every 200 ms: the worst
 *  time from a publish's request to its event's arrival. */
export async function liveSubscriber(w) {
  const [vendor, pms] = await Promise.all([tokenFor(w.base, DEMO.app1), tokenFor(w.base, DEMO.pms1)]);
  const sentAt = new Map();
  const worst = { ms: 0, received: 0, sent: 0 };
  const client = createClient({
    url: `${w.base.replace(/^http/, "ws")}/subscriptions?key=${Buffer.from("APPKEY001").toString("base64")}`,
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${vendor}`, "x-app-key": "APPKEY001" },
    retryAttempts: 0,
  });
  const subscribed = new Promise((resolve) => {
    client.subscribe(
      { query: 'subscription { newEvent(input: {chainCode: "TTE", offsetType: "highest", eventNames: ["PING"]}) { primaryKey } }' },
      {
        next: (r) => {
          const key = r.data?.newEvent?.primaryKey;
          resolve();
          if (!sentAt.has(key)) return;
          worst.ms = Math.max(worst.ms, Date.now() - sentAt.get(key));
          worst.received++;
        },
        error: () => resolve(),
        complete: () => {},
      },
    );
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  let running = true;
  const ping = async (i) => {
    const key = `ping-${i}`;
    // Timed from the request: the event may arrive before the publish's answer does.
    sentAt.set(key, Date.now());
    const res = await post(w.base, agent, "/events/v1/chains/TTE/events", pms, JSON.stringify(event("TTE01", { eventName: "PING", moduleName: "Probe", primaryKey: key })));
    if (res.status === 200) worst.sent++;
    else sentAt.delete(key);
  };
  await ping(0);
  await subscribed;
  const loop = (async () => {
    for (let i = 1; running; i++) {
      await ping(i);
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      await new Promise((r) => setTimeout(r, 1000));
      // An event never received counts as late.
      if (worst.received < worst.sent - 1) worst.ms = Math.max(worst.ms, Infinity);
      await client.dispose();
      agent.destroy();
      return worst;
    },
  };
}

/** Walks the state at limit=1000 again and again for `seconds`: pages and entities per second. */
export async function walkRepeatedly(w, seconds) {
  const token = await tokenFor(w.base, DEMO.app1);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  let pages = 0, entities = 0, walks = 0;
  const started = Date.now();
  try {
    let after;
    while (Date.now() - started < seconds * 1000) {
      const res = await get(w.base, agent, `/events/v1/chains/TTE/state?limit=1000${after ? `&after=${encodeURIComponent(after)}` : ""}`, token);
      if (res.status !== 200) throw new Error(`state page failed: ${res.status} ${res.text.slice(0, 200)}`);
      const page = res.json();
      pages++;
      entities += page.entities.length;
      after = page.next ?? undefined;
      if (!after) walks++;
    }
  } finally {
    agent.destroy();
  }
  const elapsed = (Date.now() - started) / 1000;
  return { pages, entities, walks, seconds: elapsed };
}

export function stateConfig() {
  const config = structuredClone(demoConfig);
  config.limits = { ...config.limits, maxEventsPerBatch: BATCH };
  return config;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const entities = Number(process.argv[2] ?? 1_000_000);
  const seconds = Number(process.argv[3] ?? 20);
  const w = await startWorker({ config: stateConfig(), direct: true });
  try {
    let shown = 0;
    const filled = await populate(w, entities, (done) => {
      if (done - shown >= 100_000) { shown = done; process.stderr.write(`populated ${done}\n`); }
    });
    console.log(`populate: ${entities} entities in ${filled.seconds.toFixed(1)} s = ${Math.round(entities / filled.seconds)} events/s (batches of ${BATCH}, 4 publishers, each event a new entity)`);
    const caughtUp = await foldedAll(w);
    console.log(`state folded through the head ${caughtUp.toFixed(1)} s after the last publish`);
    const heapBefore = await heap(w);
    const live = await liveSubscriber(w);
    const walked = await walkRepeatedly(w, seconds);
    const worst = await live.stop();
    const heapAfter = await heap(w);
    const stats = await get(w.base, undefined, "/admin/v1/chains/TTE", await tokenFor(w.base, DEMO.ops, { scope: "urn:pms:admin" }));
    console.log(`state walk at limit=1000: ${(walked.pages / walked.seconds).toFixed(1)} pages/s, ${Math.round(walked.entities / walked.seconds)} entities/s, ${walked.walks} whole walks in ${walked.seconds.toFixed(1)} s`);
    console.log(`live subscriber meanwhile: ${worst.received} of ${worst.sent} events, worst publish-to-receive ${worst.ms} ms`);
    console.log(`wasm heap: ${(heapBefore / MiB).toFixed(1)} MiB before the walk, ${(heapAfter / MiB).toFixed(1)} MiB after (+${((heapAfter - heapBefore) / MiB).toFixed(1)} MiB)`);
    console.log(`chain stats: ${JSON.stringify(stats.json().entities)}`);
  } finally {
    await w.dispose();
  }
}
