// Hostile and careless clients (docs/operations.md, Limits): every request, connection and subscription
// has a bound, bad input gets a clear refusal, and throughout, a well-behaved vendor on the
// same chain keeps receiving every event within a second while the isolate's wasm heap
// (`/healthz` wasmMemoryBytes) stays within 16 MiB of where it started.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { CheckedWebSocket as WebSocket } from "./harness.mjs";
import { startWorker, tokenFor, publish, event, request, readResponse, vendorSocket, DEMO, demoConfig, sleep, until } from "./harness.mjs";

const PROTO = "graphql-transport-ws";
const MiB = 1 << 20;
const KEY1 = Buffer.from("APPKEY001").toString("base64");

let w;
const tok = {};
let heapAtStart;
let good; // the well-behaved subscriber
const seen = []; // what the hostile tests saw, for the closing note
const note = (what, value) => seen.push(`${what}: ${value}`);

async function heap() {
  const res = await request(w.base, "GET", "/healthz");
  return res.json.wasmMemoryBytes;
}

/** A vendor's raw socket to the shared worker. */
const raw = (token, opts) => vendorSocket(w.base, token, opts);

const subscribeMsg = (id, input, selection = "metadata { offset }") => ({
  id, type: "subscribe", payload: { query: `subscription { newEvent(input: ${input}) { ${selection} } }` },
});

before(async () => {
  const config = structuredClone(demoConfig);
  // Short slow-consumer threshold so the stalled reader below is closed within the test.
  config.limits = { slowConsumerSeconds: 3 };
  w = await startWorker({ config });
  for (const n of ["app1", "pms1", "ops"]) tok[n] = await tokenFor(w.base, DEMO[n]);
  heapAtStart = await heap();
  // The well-behaved vendor: live on TTE, timing each event from its publish.
  good = { latencies: [], offsets: [] };
  good.client = raw(tok.app1, {
    onMessage: (m) => {
      if (m.type !== "next" || m.id !== "good") return;
      const ev = m.payload.data.newEvent;
      good.offsets.push(Number(ev.metadata.offset));
      const sentAt = Number(ev.primaryKey.split(":")[1]);
      if (sentAt) good.latencies.push(Date.now() - sentAt);
    },
  });
  await good.client.acked;
  const stats = await request(w.base, "GET", "/admin/v1/chains/TTE", { headers: { authorization: `Bearer ${tok.ops}` } });
  const from = Number(stats.json.headOffset) + 1;
  good.client.send(subscribeMsg("good", `{chainCode: "TTE", offset: "${from}", hotelCode: "TTE01"}`, "metadata { offset } primaryKey"));
  await sleep(300);
  // A publisher that keeps publishing through every test: one event every 200 ms.
  good.published = [];
  good.timer = setInterval(async () => {
    const res = await publish(w.base, tok.pms1, "TTE", [event("TTE01", { primaryKey: `T:${Date.now()}` })]).catch(() => null);
    if (res?.status === 200) good.published.push(Number(res.json.offsets[0]));
  }, 200);
});

after(async () => {
  clearInterval(good?.timer);
  await sleep(1500);
  try {
    // The well-behaved vendor got every event published meanwhile, in order, within 1 s.
    // Publishes overlap when the server is slow, so their answers arrive in any order.
    const first = Math.min(...good.published);
    const last = Math.max(...good.published);
    const got = good.offsets.filter((o) => o >= first && o <= last);
    const published = new Set(good.published);
    const missed = [...published].filter((o) => !got.includes(o));
    assert.deepEqual(missed, [], `the good vendor missed offsets (got ${got.length}: ${got.slice(0, 5)}…; other messages ${JSON.stringify(good.client.messages.filter((m) => m.id === "good" && m.type !== "next")).slice(0, 300)})`);
    assert.deepEqual(got, [...got].sort((a, b) => a - b), "in order");
    assert.equal(new Set(got).size, got.length, "no repeat");
    const worst = Math.max(...good.latencies);
    note("good vendor", `${good.published.length} events, worst publish→receive ${worst} ms`);
    assert.ok(worst < 1000, `worst latency ${worst} ms`);
    const grown = (await heap()) - heapAtStart;
    note("wasm heap", `${(heapAtStart / MiB).toFixed(1)} MiB at start, +${(grown / MiB).toFixed(1)} MiB at the end`);
    assert.ok(grown <= 16 * MiB, `heap grew by ${grown} bytes`);
    console.log(seen.join("\n"));
  } finally {
    good?.client.ws.close();
    await w?.dispose();
  }
});

/** Streams `total` bytes of chunked body to `path` (unless answered first); resolves with the answer. */
function chunkedFlood(path, total, headers = {}) {
  return new Promise((resolve, reject) => {
    const url = new URL(w.base + path);
    const req = http.request({ host: url.hostname, port: url.port, path, method: "POST", headers: { "transfer-encoding": "chunked", ...headers } });
    let sent = 0;
    let answered = false;
    const chunk = Buffer.alloc(MiB, 0x61);
    req.on("response", (res) => { answered = true; readResponse(res).then((r) => resolve({ ...r, sent }), reject); });
    // The server stops reading at the route's limit, answers and closes; a client still
    // writing may see the connection reset before it reads the answer.
    req.on("error", (e) => { if (!answered) (e.code === "ECONNRESET" || e.code === "EPIPE" ? resolve({ reset: e.code, sent }) : reject(e)); });
    const pump = () => {
      while (!answered && sent < total) {
        sent += chunk.length;
        if (!req.write(chunk)) return req.once("drain", pump);
      }
      if (!answered) req.end();
    };
    pump();
  });
}

test("1. bodies are never read beyond the route's limit, chunked or not, and headers are bounded", async () => {
  const before = await heap();
  const cases = [
    ["/no-such-route", {}, 404, "not_found"],
    ["/oauth/v1/tokens", { "content-type": "application/x-www-form-urlencoded" }, 413, "invalid_request"],
    ["/events/v1/chains/TTE/events", { "content-type": "application/json" }, 401, "invalid_token"],
    ["/events/v1/chains/TTE/events", { "content-type": "application/json", authorization: `Bearer ${tok.pms1}` }, 413, "payload_too_large"],
  ];
  const outcomes = [];
  for (const [path, headers, status, error] of cases) {
    for (let i = 0; i < 3; i++) {
      const r = await chunkedFlood(path, 200 * MiB, headers);
      // Either the answer, or a reset once the server stopped reading: never 200 MiB read.
      if (!r.reset) {
        assert.equal(r.status, status, `${path}: ${r.text}`);
        assert.equal(r.json.error, error);
      }
      assert.ok(r.sent <= 32 * MiB, `${path}: ${r.sent / MiB} MiB were taken before the answer`);
      outcomes.push(`${path} ${r.reset ?? r.status} after ${r.sent / MiB} MiB`);
    }
  }
  const grown = (await heap()) - before;
  note("case 1", `12 chunked bodies of 200 MiB: ${outcomes.join("; ")}; heap +${(grown / MiB).toFixed(1)} MiB`);
  assert.ok(grown < 8 * MiB, `heap grew by ${grown} bytes`);

  const fat = await request(w.base, "GET", "/healthz", { headers: { "x-padding": "p".repeat(9 * 1024) } });
  assert.equal(fat.status, 431);
  assert.equal(fat.json.error, "request_header_fields_too_large");
  // An ordinary refused request keeps working on the same keep-alive connection.
  for (let i = 0; i < 3; i++) {
    const res = await request(w.base, "POST", "/no-such-route", { body: "small" });
    assert.equal(res.status, 404);
  }
});

test("2. a connection runs at most 100 subscriptions: the one over gets an error, the connection stays", async () => {
  const c = raw(tok.app1);
  await c.acked;
  for (let i = 0; i < 1500; i++) c.send(subscribeMsg(`s${i}`, '{chainCode: "TTE", offsetType: "highest"}'));
  await until(() => c.messages.filter((m) => m.type === "error").length >= 1400, 20000, "1,400 refusals");
  const errors = c.messages.filter((m) => m.type === "error");
  assert.equal(errors.length, 1400);
  assert.equal(errors[0].payload[0].extensions.code, "TOO_MANY_SUBSCRIPTIONS");
  assert.deepEqual(new Set(errors.map((e) => e.id)).has("s99"), false, "the first 100 run");
  const s = await request(w.base, "GET", "/admin/v1/chains/TTE", { headers: { authorization: `Bearer ${tok.ops}` } });
  note("case 2", `1,500 subscribes: 100 ran, 1,400 refused; the chain holds ${s.json.subscribers} sockets`);
  assert.ok(s.json.subscribers <= 101, `${s.json.subscribers} sockets on the chain`);
  assert.equal(c.ws.readyState, WebSocket.OPEN);
  c.ws.close();
  await c.closed;
});

test("3. an operation id over 128 bytes closes the connection with 4400", async () => {
  const c = raw(tok.app1);
  await c.acked;
  c.send(subscribeMsg("x".repeat(40000), '{chainCode: "TTE"}'));
  const closed = await c.closed;
  assert.equal(closed.code, 4400);
  assert.match(closed.reason, /128 bytes/);
  note("case 3", `40,000-character id: closed ${closed.code} "${closed.reason}"`);
});

test("4. aliases that multiply output are refused at subscribe time, located", async () => {
  const c = raw(tok.app1);
  await c.acked;
  const aliases = Array.from({ length: 900 }, (_, i) => `a${i}: newValue`).join(" ");
  c.send(subscribeMsg("many", '{chainCode: "TTE", offset: "1"}', `detail { ${aliases} }`));
  await until(() => c.messages.find((m) => m.id === "many"), 5000, "an answer");
  const answer = c.messages.find((m) => m.id === "many");
  assert.equal(answer.type, "error");
  assert.equal(answer.payload[0].extensions.code, "QUERY_TOO_COMPLEX");
  assert.match(answer.payload[0].message, /detail\.newValue.*900 times/);
  assert.ok(answer.payload[0].locations?.[0]?.line >= 1, JSON.stringify(answer.payload[0]));
  // A few aliases stay fine.
  c.send(subscribeMsg("few", '{chainCode: "TTE", offsetType: "highest"}', "metadata { offset } detail { a: newValue b: newValue }"));
  await until(() => c.messages.find((m) => m.id === "few" && m.type === "next"), 5000, "a frame");
  note("case 4", `900 aliases: ${answer.payload[0].extensions.code} "${answer.payload[0].message}"`);
  c.ws.close();
});

test("5. a vendor that stops reading is closed with 4413 however it sends pongs", async () => {
  const c = raw(tok.app1);
  await c.acked;
  c.send(subscribeMsg("stalled", '{chainCode: "TTE", offset: "1"}', "metadata { offset } detail { elementName newValue }"));
  await sleep(200);
  c.ws._socket.pause();
  const pongs = setInterval(() => c.send({ type: "pong" }), 100);
  const started = Date.now();
  const big = Array.from({ length: 50 }, () => event("TTE02", { detail: [{ elementName: "Note", newValue: "n".repeat(20000) }] }));
  const pumping = setInterval(() => publish(w.base, tok.pms1, "TTE", big).catch(() => {}), 300);
  // Past the 3 s threshold (and a guard tick), the server has given up on it; the close
  // frame waits behind what it never read, so the client sees it once it reads again.
  await sleep(7000);
  clearInterval(pongs);
  clearInterval(pumping);
  c.ws._socket.resume();
  const closed = await Promise.race([c.closed, sleep(20000).then(() => ({ code: "timeout" }))]);
  const frames = c.messages.filter((m) => m.id === "stalled" && m.type === "next").length;
  assert.equal(closed.code, 4413, JSON.stringify(closed));
  assert.match(closed.reason, /too slow/);
  note("case 5", `stalled reader sending pongs: closed ${closed.code} ("${closed.reason}") after ${frames} frames, ${Date.now() - started} ms`);
});

test("6. a filtered replay over a long log is served in bounded turns while others stream", async () => {
  // 60,000 events on HTBTTE, then four replays from offset 1 whose filter matches nothing.
  for (let i = 0; i < 120; i++) {
    const res = await publish(w.base, tok.pms1, "HTBTTE", Array.from({ length: 500 }, () => event("HTB01")));
    assert.equal(res.status, 200, res.text);
  }
  const before = await heap();
  const c = raw(tok.app1);
  await c.acked;
  for (let i = 0; i < 4; i++) {
    c.send(subscribeMsg(`none${i}`, '{chainCode: "HTBTTE", offset: "1", eventNames: ["NONE"]}'));
  }
  // One more that matches: it must keep flowing while the four scan.
  c.send(subscribeMsg("live", '{chainCode: "HTBTTE", offsetType: "highest"}'));
  await sleep(3000);
  const res = await publish(w.base, tok.pms1, "HTBTTE", [event("HTB01", { eventName: "NONE" })]);
  const offset = res.json.offsets[0];
  await until(() => ["none0", "none1", "none2", "none3"].every((id) => c.messages.some((m) => m.id === id && m.type === "next" && m.payload.data.newEvent.metadata.offset === offset)), 30000, "the one matching event on each replay");
  const grown = (await heap()) - before;
  note("case 6", `4 replays matching nothing over 60,000 events reached offset ${offset}; heap +${(grown / MiB).toFixed(1)} MiB`);
  assert.ok(grown <= 16 * MiB, `heap grew by ${grown} bytes`);
  assert.ok(c.messages.some((m) => m.id === "live" && m.type === "next"), "the live subscription was served meanwhile");
  c.ws.close();
});

test("connections and upgrades per app key are bounded with 429 and Retry-After", async () => {
  const config = structuredClone(demoConfig);
  config.limits = { maxConnectionsPerAppKey: 2, maxUpgradesPerAppKey: 4, upgradeWindowSeconds: 60 };
  const w2 = await startWorker({ config });
  try {
    const open = (base) => new Promise((resolve) => {
      const ws = new WebSocket(`${base.replace("http", "ws")}/subscriptions?key=${KEY1}`, PROTO);
      ws.on("open", () => resolve({ ws }));
      ws.on("unexpected-response", (_req, res) => readResponse(res).then((r) => resolve({ refused: r })));
    });
    const a = await open(w2.base);
    const b = await open(w2.base);
    const c = await open(w2.base);
    assert.ok(a.ws && b.ws);
    assert.equal(c.refused?.status, 429);
    assert.equal(c.refused.headers["retry-after"], "10");
    assert.match(c.refused.json.message, /2 open connections/);
    a.ws.close();
    await sleep(300);
    const d = await open(w2.base); // the 3rd upgrade in the window (c was refused by count)
    assert.ok(d.ws, "a closed connection gives its place back");
    d.ws.close();
    const e = await open(w2.base); // the 4th
    assert.ok(e.ws);
    e.ws.close();
    b.ws.close();
    await sleep(300);
    const f = await open(w2.base);
    assert.equal(f.refused?.status, 429, "the fifth upgrade in the window");
    assert.ok(Number(f.refused.headers["retry-after"]) > 0);
    assert.match(f.refused.json.message, /more than 4 connections/);
  } finally {
    await w2.dispose();
  }
});

test("lockout counts per source: one address guessing cannot lock the client out for others", async () => {
  const config = structuredClone(demoConfig);
  const w2 = await startWorker({ config });
  try {
    const attempt = (secret, ip) => request(w2.base, "POST", "/oauth/v1/tokens", {
      headers: {
        "content-type": "application/x-www-form-urlencoded", "x-app-key": "PMSKEY001", enterpriseId: "BROWNS",
        authorization: "Basic " + Buffer.from(`pms-core-001:${secret}`).toString("base64"), "cf-connecting-ip": ip,
      },
      body: "grant_type=client_credentials",
    });
    for (let i = 0; i < 5; i++) assert.equal((await attempt("wrong", "198.51.100.7")).status, 401);
    const locked = await attempt("pms-secret-001", "198.51.100.7");
    assert.equal(locked.status, 429, "the guessing address is locked out, even with the right secret");
    assert.ok(Number(locked.headers["retry-after"]) > 0);
    const elsewhere = await attempt("pms-secret-001", "203.0.113.9");
    assert.equal(elsewhere.status, 200, "the real publisher, from elsewhere, still gets its token");
    // An unknown client id is refused like a wrong secret, and never locked (no state).
    for (let i = 0; i < 7; i++) {
      const res = await request(w2.base, "POST", "/oauth/v1/tokens", {
        headers: { "content-type": "application/x-www-form-urlencoded", "x-app-key": "X", enterpriseId: "BROWNS", authorization: "Basic " + Buffer.from("nobody:x").toString("base64") },
        body: "grant_type=client_credentials",
      });
      assert.equal(res.status, 401);
    }
  } finally {
    await w2.dispose();
  }
});

test("an id completed and reused at once never gets the old operation's answer", async () => {
  const c = raw(tok.app1);
  await c.acked;
  const rounds = 20;
  for (let round = 0; round < rounds; round++) {
    const id = `q${round}`;
    // A query that awaits the chain objects (connection status), completed at once, then the
    // same id reused for a subscription. The query may answer before its complete arrives
    // (then the complete is a no-op), but never under the reused id once it is completed.
    c.send({ id, type: "subscribe", payload: { query: "{ connection { status id } }" } });
    c.send({ id, type: "complete" });
    c.send(subscribeMsg(id, '{chainCode: "TTE", offsetType: "highest"}'));
  }
  await sleep(1500);
  // Every reused id is a live subscription: an event published now reaches each of them.
  const res = await publish(w.base, tok.pms1, "TTE", [event("TTE01")]);
  const offset = res.json.offsets[0];
  await until(
    () => Array.from({ length: rounds }, (_, r) => `q${r}`).every((id) => c.messages.some((m) => m.id === id && m.payload?.data?.newEvent?.metadata.offset === offset)),
    5000,
    "the event on every reused id",
  );
  for (let round = 0; round < rounds; round++) {
    const msgs = c.messages.filter((m) => m.id === `q${round}`);
    const answer = msgs.findIndex((m) => m.payload?.data?.connection);
    const frame = msgs.findIndex((m) => m.payload?.data?.newEvent);
    if (answer >= 0) assert.ok(answer < frame, `q${round}: the query answered after the subscription started`);
  }
  const s = await request(w.base, "GET", "/admin/v1/chains/TTE", { headers: { authorization: `Bearer ${tok.ops}` } });
  c.ws.close();
  await c.closed;
  await sleep(500);
  const after = await request(w.base, "GET", "/admin/v1/chains/TTE", { headers: { authorization: `Bearer ${tok.ops}` } });
  assert.equal(s.json.subscribers - after.json.subscribers, rounds, "closing the connection released every internal socket");
});
