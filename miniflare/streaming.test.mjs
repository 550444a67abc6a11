// Streaming end to end (docs/protocol.md, Connecting): `GET /subscriptions?key=K`, graphql-transport-ws over
// the real worker on workerd. Vendor-style traffic goes through the `graphql-ws` client;
// protocol edge cases use raw `ws` sockets (and, for a refused subprotocol, a raw upgrade).
//
// One shared worker (`w`) serves most tests: they start from an explicit offset (head + 1)
// so the server-side resume cursor never matters. A second worker (`w2`) holds the tests
// that need a chain to themselves (exact offsets 1..n, the resume cursor); the retention
// test starts its own worker with a 1-second retention.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { createHash, randomBytes } from "node:crypto";
import { CheckedWebSocket as WebSocket } from "./harness.mjs";
import { createClient } from "graphql-ws";
import { getIntrospectionQuery, buildClientSchema, isNonNullType, isInputObjectType } from "graphql";
import { startWorker, tokenFor, publish, event, request, readResponse, DEMO, demoConfig, sleep, until } from "./harness.mjs";

const PROTO = "graphql-transport-ws";
const b64 = (s) => Buffer.from(s).toString("base64");
const sha256hex = (s) => createHash("sha256").update(s).digest("hex");
const wsUrl = (base, key) => base.replace(/^http/, "ws") + "/subscriptions" + (key === undefined ? "" : `?key=${encodeURIComponent(key)}`);
const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const uid = (tag) => `${tag}-${randomBytes(6).toString("hex")}`;

// ------------------------------------------------------------------------------------------
// Workers and tokens
// ------------------------------------------------------------------------------------------

let w, w2;
const tok = {}; // tokens of `w`
const tok2 = {}; // tokens of `w2`

before(async () => {
  // w2 counts a frame as read one second after it was sent (limits.resendWindowSeconds), so
  // that its resume tests need not wait the default half minute.
  const quickResume = { ...demoConfig, limits: { ...demoConfig.limits, resendWindowSeconds: 1 } };
  [w, w2] = await Promise.all([startWorker(), startWorker({ config: quickResume })]);
  const names = ["app1", "app2", "app3", "pms1", "pms2", "ops"];
  const got = await Promise.all([
    ...names.map((n) => tokenFor(w.base, DEMO[n])),
    ...names.map((n) => tokenFor(w2.base, DEMO[n])),
  ]);
  names.forEach((n, i) => { tok[n] = got[i]; tok2[n] = got[names.length + i]; });
});
after(async () => { await Promise.all([w?.dispose(), w2?.dispose()]); });

async function stats(base, opsToken, chain) {
  const res = await request(base, "GET", `/admin/v1/chains/${chain}`, { headers: { authorization: `Bearer ${opsToken}` } });
  assert.equal(res.status, 200, res.text);
  return res.json;
}

async function head(chain, base = w.base, ops = tok.ops) {
  return Number((await stats(base, ops, chain)).headOffset);
}

/** Publishes and returns the assigned offsets as numbers. */
async function pub(chain, events, { base = w.base, token = chain === "OTH" ? tok.pms2 : tok.pms1 } = {}) {
  const res = await publish(base, token, chain, events);
  assert.equal(res.status, 200, res.text);
  return res.json.offsets.map(Number);
}

// ------------------------------------------------------------------------------------------
// Raw graphql-transport-ws sockets
// ------------------------------------------------------------------------------------------

class Raw {
  constructor(ws) {
    this.ws = ws;
    this.messages = [];
    this.log = []; // every message, in arrival order, never consumed
    this.closeInfo = null;
    ws.on("message", (data) => {
      let m;
      try { m = JSON.parse(data.toString()); } catch { m = { unparsable: data.toString() }; }
      this.messages.push(m);
      this.log.push(m);
    });
    ws.on("close", (code, reason) => { this.closeInfo = { code, reason: reason.toString() }; });
    ws.on("error", () => {});
  }

  /** Opens a socket; rejects if the upgrade is refused. */
  static open(base, key, { protocols = PROTO, ...options } = {}) {
    return new Promise((resolve, reject) => {
      const ws = protocols === null ? new WebSocket(wsUrl(base, key), options) : new WebSocket(wsUrl(base, key), protocols, options);
      const raw = new Raw(ws);
      ws.once("open", () => resolve(raw));
      ws.once("unexpected-response", (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
      ws.once("error", reject);
    });
  }

  /** An authenticated socket of a demo client. */
  static async connect(client, { base = w.base, token, key = b64(client.appKey) } = {}) {
    const raw = await Raw.open(base, key);
    await raw.init(token, client.appKey);
    return raw;
  }

  send(m) { this.ws.send(typeof m === "string" || Buffer.isBuffer(m) ? m : JSON.stringify(m)); }

  init(token, appKey, extra = {}) {
    this.send({ type: "connection_init", payload: { Authorization: `Bearer ${token}`, "x-app-key": appKey, ...extra } });
    return this.take((m) => m.type === "connection_ack", 5000, "connection_ack");
  }

  subscribe(id, query, variables, extensions) {
    const payload = { query };
    if (variables) payload.variables = variables;
    if (extensions) payload.extensions = extensions;
    this.send({ id, type: "subscribe", payload });
  }

  /** Removes and returns the first message matching `pred`. */
  async take(pred, ms = 5000, what = "a message") {
    const i = await until(() => {
      const i = this.messages.findIndex(pred);
      if (i >= 0) return i + 1;
      if (this.closeInfo) throw new Error(`socket closed (${this.closeInfo.code} ${this.closeInfo.reason}) while waiting for ${what}`);
      return 0;
    }, ms, what);
    return this.messages.splice(i - 1, 1)[0];
  }

  /** The `error` message of operation `id`. */
  error(id, ms = 5000) {
    return this.take((m) => m.id === id && (m.type === "error" || m.type === "next" || m.type === "complete"), ms, `error for ${id}`)
      .then((m) => { assert.equal(m.type, "error", `expected an error for ${id}, got ${JSON.stringify(m)}`); return m; });
  }

  /** Waits for `n` `next` messages of operation `id` and returns their payloads. */
  async nexts(id, n, ms = 10000) {
    await until(() => {
      if (this.messages.filter((m) => m.id === id && m.type === "next").length >= n) return true;
      const err = this.messages.find((m) => m.id === id && (m.type === "error" || m.type === "complete"));
      if (err) throw new Error(`operation ${id} ended early: ${JSON.stringify(err)}`);
      if (this.closeInfo) throw new Error(`socket closed (${this.closeInfo.code} ${this.closeInfo.reason})`);
      return false;
    }, ms, `${n} next messages for ${id} (have ${this.messages.filter((m) => m.id === id && m.type === "next").length})`);
    const out = [];
    this.messages = this.messages.filter((m) => {
      if (out.length < n && m.id === id && m.type === "next") { out.push(m.payload); return false; }
      return true;
    });
    return out;
  }

  /** Asserts that nothing arrives for `id` during `ms`. */
  async quiet(id, ms = 300) {
    await sleep(ms);
    const extra = this.messages.filter((m) => m.id === id);
    assert.deepEqual(extra, [], `nothing more for ${id}`);
  }

  closed(ms = 5000) { return until(() => this.closeInfo, ms, "the socket to close"); }

  close() { try { this.ws.close(); } catch { /* already closed */ } }
}

/** An upgrade the server refuses: status, headers, body. */
function refusedUpgrade(url, options = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, PROTO, options);
    ws.on("unexpected-response", (req, res) => {
      readResponse(res).then((r) => {
        resolve(r);
        req.destroy();
      }, reject);
    });
    ws.on("open", () => { ws.close(); reject(new Error("the upgrade was accepted")); });
    ws.on("error", (e) => reject(e));
  });
}

/**
 * A WebSocket handshake by hand, offering `protocolHeader`, then reads frames until the
 * server's close frame. (The `ws` client aborts itself when the server does not echo an
 * offered subprotocol, so it cannot observe the server's 4406.)
 */
function handshakeUntilClose(base, key, protocolHeader, ms = 5000) {
  return new Promise((resolve, reject) => {
    const headers = { Connection: "Upgrade", Upgrade: "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": randomBytes(16).toString("base64") };
    if (protocolHeader) headers["Sec-WebSocket-Protocol"] = protocolHeader;
    const req = http.request(`${base}/subscriptions?key=${encodeURIComponent(key)}`, { headers, agent: false });
    const timer = setTimeout(() => { req.destroy(); reject(new Error("no close frame")); }, ms);
    req.on("upgrade", (res, socket, head) => {
      let buf = head;
      const parse = () => {
        while (buf.length >= 2) {
          const opcode = buf[0] & 0x0f;
          let len = buf[1] & 0x7f;
          let off = 2;
          if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
          if (buf.length < off + len) return;
          const payload = buf.subarray(off, off + len);
          buf = buf.subarray(off + len);
          if (opcode === 8) {
            clearTimeout(timer);
            resolve({ status: res.statusCode, protocol: res.headers["sec-websocket-protocol"], code: payload.readUInt16BE(0), reason: payload.subarray(2).toString() });
            socket.destroy();
            return;
          }
        }
      };
      socket.on("data", (d) => { buf = Buffer.concat([buf, d]); parse(); });
      socket.on("error", () => {});
      parse();
    });
    req.on("response", (res) => { clearTimeout(timer); reject(new Error(`no upgrade: ${res.statusCode}`)); });
    req.on("error", (e) => { clearTimeout(timer); reject(e); });
    req.end();
  });
}

// ------------------------------------------------------------------------------------------
// The vendor's client: graphql-ws
// ------------------------------------------------------------------------------------------

function vendorClient(client, { base = w.base, token, key = b64(client.appKey), closes = [], ...rest } = {}) {
  return createClient({
    url: wsUrl(base, key),
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${token}`, "x-app-key": client.appKey },
    retryAttempts: 0,
    on: { closed: (e) => closes.push({ code: e.code, reason: e.reason }) },
    ...rest,
  });
}

/** Subscribes through a graphql-ws client and records what arrives. */
function track(client, payload) {
  const s = { values: [], error: null, done: false };
  s.stop = client.subscribe(payload, {
    next: (v) => s.values.push(v),
    error: (e) => { s.error = e; },
    complete: () => { s.done = true; },
  });
  s.take = async (n, ms = 10000) => {
    await until(() => {
      if (s.error) throw new Error(`subscription failed: ${JSON.stringify(s.error.code ? { code: s.error.code, reason: s.error.reason } : s.error)}`);
      return s.values.length >= n;
    }, ms, `${n} values (have ${s.values.length})`);
    return s.values.slice(0, n);
  };
  s.failure = (ms = 5000) => until(() => s.error, ms, "the subscription's error");
  s.completion = (ms = 5000) => until(() => s.done || s.error, ms, "completion").then(() => {
    assert.equal(s.error, null, `completed without error: ${JSON.stringify(s.error)}`);
  });
  return s;
}

const newEventQuery = (fields = "metadata { offset } hotelId eventName moduleName") =>
  `subscription ($input: NewEventInput!) { newEvent(input: $input) { ${fields} } }`;
const offsetsOf = (payloads) => payloads.map((p) => Number(p.data.newEvent.metadata.offset));

// ------------------------------------------------------------------------------------------
// 1. Close codes
// ------------------------------------------------------------------------------------------

test("4400: an invalid message closes the connection (unknown type, not JSON, binary, subscribe without id)", async () => {
  const cases = [
    { before: false, frame: { type: "bogus" } },
    { before: false, frame: "this is not json" },
    { before: true, frame: { type: "bogus" } },
    { before: true, frame: Buffer.from([1, 2, 3]) },
    { before: true, frame: { type: "subscribe", payload: { query: "{ __typename }" } } },
  ];
  for (const c of cases) {
    const raw = c.before ? await Raw.connect(DEMO.app1, { token: tok.app1 }) : await Raw.open(w.base, b64("APPKEY001"));
    if (Buffer.isBuffer(c.frame)) raw.ws.send(c.frame, { binary: true });
    else raw.send(c.frame);
    const closed = await raw.closed();
    assert.equal(closed.code, 4400, `${JSON.stringify(c)} -> ${JSON.stringify(closed)}`);
    assert.match(closed.reason, /^Invalid message received/, closed.reason);
  }
});

test("4401: subscribe before connection_ack, and a bad, missing or foreign-signed token", async () => {
  const early = await Raw.open(w.base, b64("APPKEY001"));
  early.subscribe("1", "{ __typename }");
  assert.deepEqual(await early.closed(), { code: 4401, reason: "Unauthorized" });

  const foreign = tok2.app1; // genuinely signed, by another deployment's key
  for (const payload of [
    { Authorization: "Bearer abc.def.ghi", "x-app-key": "APPKEY001" },
    { "x-app-key": "APPKEY001" },
    { Authorization: tok.app1, "x-app-key": "APPKEY001" }, // no "Bearer"
    { Authorization: `Bearer ${foreign}`, "x-app-key": "APPKEY001" },
  ]) {
    const raw = await Raw.open(w.base, b64("APPKEY001"));
    raw.send({ type: "connection_init", payload });
    const closed = await raw.closed();
    assert.equal(closed.code, 4401, `${JSON.stringify(payload).slice(0, 80)} -> ${JSON.stringify(closed)}`);
    assert.match(closed.reason, /^Unauthorized/);
    assert.equal(raw.log.filter((m) => m.type === "connection_ack").length, 0, "no ack");
  }
});

test("4403: a valid token with the wrong app key in the payload or URL, or without urn:pms:events", async () => {
  const cases = [
    // URL key, token, payload app key
    { key: b64("APPKEY001"), token: tok.app1, appKey: "APPKEY002", what: "payload app key is not the token's" },
    { key: b64("APPKEY002"), token: tok.app1, appKey: "APPKEY001", what: "URL key is not the token's" },
    { key: b64("PMSKEY001"), token: tok.pms1, appKey: "PMSKEY001", what: "publisher token" },
    { key: b64("APPKEY001"), token: tok.app1, appKey: undefined, what: "no x-app-key" },
  ];
  for (const c of cases) {
    const raw = await Raw.open(w.base, c.key);
    raw.send({ type: "connection_init", payload: { Authorization: `Bearer ${c.token}`, ...(c.appKey ? { "x-app-key": c.appKey } : {}) } });
    const closed = await raw.closed();
    assert.equal(closed.code, 4403, `${c.what} -> ${JSON.stringify(closed)}`);
    assert.match(closed.reason, /^Forbidden/);
  }
  // The same through the vendor's client: the operation fails with the close event.
  const closes = [];
  const client = vendorClient(DEMO.app2, { token: tok.app1, key: b64("APPKEY002"), closes });
  try {
    const s = track(client, { query: "{ __typename }" });
    const err = await s.failure();
    assert.equal(err.code, 4403);
    assert.equal(closes[0]?.code, 4403);
  } finally {
    await client.dispose();
  }
});

test("4406: no subprotocol or only a wrong one is closed with 4406; the right one among several is echoed", async () => {
  const none = await Raw.open(w.base, b64("APPKEY001"), { protocols: null });
  assert.equal(none.ws.protocol, "");
  assert.equal((await none.closed()).code, 4406);

  const wrong = await handshakeUntilClose(w.base, b64("APPKEY001"), "graphql-ws");
  assert.equal(wrong.status, 101);
  assert.equal(wrong.protocol, undefined, "a subprotocol that was not offered is never echoed");
  assert.equal(wrong.code, 4406, JSON.stringify(wrong));

  const several = await Raw.open(w.base, b64("APPKEY001"), { protocols: ["graphql-ws", PROTO] });
  assert.equal(several.ws.protocol, PROTO);
  await several.init(tok.app1, "APPKEY001");
  several.close();
});

test("4408: no connection_init within 5 s", async () => {
  const raw = await Raw.open(w.base, b64("APPKEY001"));
  const t0 = Date.now();
  raw.send({ type: "ping" }); // a ping is not an initialisation
  await raw.take((m) => m.type === "pong");
  const closed = await raw.closed(9000);
  const elapsed = Date.now() - t0;
  assert.deepEqual(closed, { code: 4408, reason: "Connection initialisation timeout" });
  assert.ok(elapsed >= 4500 && elapsed <= 8000, `closed after ${elapsed} ms`);
});

test("4409: a second subscribe with an active id; an id may be reused once completed", async () => {
  const raw = await Raw.connect(DEMO.app1, { token: tok.app1 });
  const h = await head("TTE");
  raw.subscribe("reuse", newEventQuery(), { input: { chainCode: "TTE", offset: String(h + 1) } });
  raw.send({ id: "reuse", type: "complete" });
  await sleep(100);
  raw.subscribe("reuse", newEventQuery(), { input: { chainCode: "TTE", offset: String(h + 1) } });
  const [o] = await pub("TTE", event("TTE01"));
  const [got] = await raw.nexts("reuse", 1);
  assert.equal(Number(got.data.newEvent.metadata.offset), o);
  assert.equal(raw.closeInfo, null);

  raw.send({ id: "ghost", type: "complete" }); // completing an unknown id is ignored
  raw.send({ type: "ping", payload: { after: "ghost" } });
  await raw.take((m) => m.type === "pong");
  assert.equal(raw.closeInfo, null);

  raw.subscribe("reuse", newEventQuery(), { input: { chainCode: "TTE", offsetType: "highest" } });
  assert.deepEqual(await raw.closed(), { code: 4409, reason: "Subscriber for reuse already exists" });
});

test("4429: a second connection_init", async () => {
  const raw = await Raw.connect(DEMO.app1, { token: tok.app1 });
  raw.send({ type: "connection_init", payload: { Authorization: `Bearer ${tok.app1}`, "x-app-key": "APPKEY001" } });
  assert.deepEqual(await raw.closed(), { code: 4429, reason: "Too many initialisation requests" });
});

test("1009: a frame over 64 KiB closes the connection; one just under the limit is served", async () => {
  const raw = await Raw.connect(DEMO.app1, { token: tok.app1 });
  const small = { type: "ping", payload: { fill: "x".repeat(60 * 1024) } };
  raw.send(small);
  const pong = await raw.take((m) => m.type === "pong");
  assert.deepEqual(pong.payload, small.payload);
  raw.send({ type: "ping", payload: { fill: "x".repeat(70 * 1024) } });
  const closed = await raw.closed();
  assert.equal(closed.code, 1009, JSON.stringify(closed));
});

// ------------------------------------------------------------------------------------------
// 2. HTTP before the upgrade; 3. ping
// ------------------------------------------------------------------------------------------

test("before the upgrade: missing, malformed or unknown key is 400 with an explanation; no upgrade is 426", async () => {
  const cases = [
    ["missing", undefined],
    ["empty", ""],
    ["malformed", "not base64!*"],
    ["unknown base64", b64("NOPE")],
    ["unknown sha256", sha256hex("NOPE")],
  ];
  for (const [what, key] of cases) {
    const plain = await request(w.base, "GET", "/subscriptions" + (key === undefined ? "" : `?key=${encodeURIComponent(key)}`));
    assert.equal(plain.status, 400, `${what}: ${plain.status} ${plain.text}`);
    assert.ok(plain.text.length > 0 && plain.text.length < 500, `${what}: a short explanation: ${plain.text}`);
    assert.match(plain.json?.message ?? plain.text, /key/i, `${what}: names the key`);
    const up = await refusedUpgrade(wsUrl(w.base, key));
    assert.equal(up.status, 400, `${what} (upgrade): ${up.status} ${up.text}`);
    assert.match(up.json?.message ?? up.text, /key/i);
  }
  const noUpgrade = await request(w.base, "GET", `/subscriptions?key=${b64("APPKEY001")}`);
  assert.equal(noUpgrade.status, 426, noUpgrade.text);
  assert.match(noUpgrade.json?.message ?? noUpgrade.text, /websocket/i, "426 explains what to do");
});

// RFC 9110 §15.5.22: a 426 MUST carry `Upgrade`. gateway.rs sets it, but the header does not
// reach the client on workerd (it is missing from `mf.dispatchFetch` too): a runtime limit,
// kept visible as a todo rather than hidden.
test("the 426 carries an Upgrade: websocket header (RFC 9110)", { todo: "workerd drops the Upgrade header set by gateway::upgrade" }, async () => {
  const noUpgrade = await request(w.base, "GET", `/subscriptions?key=${b64("APPKEY001")}`);
  assert.equal(noUpgrade.status, 426);
  assert.match(noUpgrade.headers.upgrade ?? "", /websocket/i, "426 names the protocol to upgrade to");
});

test("the handshake echoes graphql-transport-ws; a cross-site Origin is accepted", async () => {
  const raw = await Raw.open(w.base, b64("APPKEY001"), { origin: "https://studio.apollographql.com" });
  assert.equal(raw.ws.protocol, PROTO);
  const ack = await raw.init(tok.app1, "APPKEY001", { enterpriseId: "BROWNS" });
  assert.deepEqual(ack, { type: "connection_ack" });
  raw.close();
});

test("ping gets a pong echoing the payload, before and after connection_init", async () => {
  const raw = await Raw.open(w.base, b64("APPKEY001"));
  raw.send({ type: "ping", payload: { n: 1, s: "ä€" } });
  assert.deepEqual(await raw.take((m) => m.type === "pong"), { type: "pong", payload: { n: 1, s: "ä€" } });
  await raw.init(tok.app1, "APPKEY001");
  raw.send({ type: "ping" });
  const bare = await raw.take((m) => m.type === "pong");
  assert.equal(bare.payload ?? null, null, "no payload, none echoed");
  raw.send({ type: "ping", payload: { t: 42 } });
  assert.deepEqual(await raw.take((m) => m.type === "pong"), { type: "pong", payload: { t: 42 } });
  raw.send({ type: "pong", payload: { x: 1 } }); // an unsolicited pong is allowed and ignored
  await sleep(200);
  assert.deepEqual(raw.messages, []);
  assert.equal(raw.closeInfo, null);
  raw.close();
});

// ------------------------------------------------------------------------------------------
// 4. Selection; 5. replay hand-over; 6. resume; 7. highest / fromOffset; 8. out of range
// ------------------------------------------------------------------------------------------

test("events arrive in order with every selected field (aliases, named fragment, __typename, operationName) and nothing else", async () => {
  const query = `
    subscription Other($input: NewEventInput!) { newEvent(input: $input) { primaryKey } }
    subscription Watch($input: NewEventInput!) {
      ev: newEvent(input: $input) {
        __typename
        meta: metadata { offset __typename }
        ...Head
        detail { name: elementName newValue }
      }
    }
    fragment Head on EventHeader { eventName hotel: hotelId metadata { uniqueEventId } }`;
  const client = vendorClient(DEMO.app1, { token: tok.app1 });
  try {
    const h = await head("TTE");
    const s = track(client, { query, operationName: "Watch", variables: { input: { chainCode: "TTE", offset: String(h + 1) } } });
    await sleep(300);
    const sent = Array.from({ length: 5 }, (_, i) => event(i % 2 ? "TTE02" : "TTE01", {
      eventName: ["CHECKIN", "CHECKOUT", "ROOMMOVE", "FOLIO", "CHECKIN"][i],
      uniqueEventId: uid(`sel${i}`),
      // Outside ASCII, and outside the Basic Multilingual Plane: the gateway sends a batch's
      // frames as slices of one string, cut at UTF-16 indices.
      detail: [{ elementName: `E${i}`, elementType: "String", newValue: `v${i} Zoë 🏨`, oldValue: "old" }],
    }));
    // One batch: its five frames reach the gateway in one message.
    const offsets = await pub("TTE", sent);
    assert.deepEqual(offsets, range(h + 1, h + 5));
    const got = await s.take(5);
    got.forEach((payload, i) => {
      const expected = {
        __typename: "EventHeader",
        meta: { offset: String(offsets[i]), __typename: "EventMetadata" },
        eventName: sent[i].eventName,
        hotel: sent[i].hotelId,
        metadata: { uniqueEventId: sent[i].uniqueEventId },
        detail: [{ name: `E${i}`, newValue: `v${i} Zoë 🏨` }],
      };
      assert.deepEqual(payload, { data: { ev: expected } });
      assert.deepEqual(Object.keys(payload.data.ev), Object.keys(expected), "response keys in selection order");
    });
  } finally {
    await client.dispose();
  }
});

test("replay from offset 1 while publishing concurrently: offsets 1..600 exactly once, in order, each its own event", async () => {
  const chain = "HTBTTE";
  const byOffset = new Map();
  const record = (events, offsets) => events.forEach((e, i) => byOffset.set(offsets[i], e.uniqueEventId));
  for (let b = 0; b < 6; b++) {
    const batch = Array.from({ length: 50 }, (_, i) => event("HTB01", { uniqueEventId: `replay-${b}-${i}` }));
    record(batch, await pub(chain, batch, { base: w2.base, token: tok2.pms1 }));
  }
  assert.equal(await head(chain, w2.base, tok2.ops), 300);
  const client = vendorClient(DEMO.app1, { base: w2.base, token: tok2.app1 });
  try {
    const s = track(client, { query: newEventQuery("metadata { offset uniqueEventId }"), variables: { input: { chainCode: chain, offset: "1" } } });
    const live = (async () => {
      for (let i = 0; i < 300; i += 2) {
        const batch = [event("HTB01", { uniqueEventId: `live-${i}` }), event("HTB01", { uniqueEventId: `live-${i + 1}` })];
        record(batch, await pub(chain, batch, { base: w2.base, token: tok2.pms1 }));
        if (i % 40 === 0) await sleep(5);
      }
    })();
    await live;
    const got = await s.take(600, 30000);
    assert.deepEqual(offsetsOf(got), range(1, 600));
    assert.ok(got.every((p) => p.extensions === undefined), "nothing was dropped, so no gap is reported");
    got.forEach((p) => {
      const m = p.data.newEvent.metadata;
      assert.equal(m.uniqueEventId, byOffset.get(Number(m.offset)), `offset ${m.offset} carries its own event`);
    });
    await sleep(300);
    assert.equal(s.values.length, 600, "nothing after 600");
  } finally {
    await client.dispose();
  }
});

test("generated ids are UUIDv7 stamped at publish time, and deduplicate like a publisher's own (UUIDv7 or not)", async () => {
  const chain = "TTE";
  const from = (await head(chain)) + 1;
  const t0 = Date.now();
  const generated = await pub(chain, [event("TTE01"), event("TTE02")]);
  const t1 = Date.now();
  const client = vendorClient(DEMO.app1, { token: tok.app1 });
  try {
    const s = track(client, { query: newEventQuery("metadata { offset uniqueEventId }"), variables: { input: { chainCode: chain, offset: String(from) } } });
    const got = (await s.take(2, 10000)).map((p) => p.data.newEvent.metadata);
    assert.deepEqual(got.map((m) => Number(m.offset)), generated);
    const [a, b] = got.map((m) => m.uniqueEventId);
    assert.notEqual(a, b);
    for (const id of [a, b]) {
      assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, "RFC 9562 UUIDv7");
      const ms = parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
      assert.ok(ms >= t0 - 1000 && ms <= t1 + 1000, `stamped with the publish time: ${ms} in [${t0}, ${t1}]`);
    }
    // A generated id sent back is the same event; so is a publisher's own UUIDv7 (time-keyed)
    // or any other id (hash-keyed), in any mix within one batch.
    const own = "0191e7a2-4b1c-7d2e-8f3a-0123456789ab";
    const first = await pub(chain, [event("TTE01", { uniqueEventId: own }), event("TTE01", { uniqueEventId: "legacy-42" })]);
    const again = await pub(chain, [
      event("TTE01", { uniqueEventId: "legacy-42" }),
      event("TTE02", { uniqueEventId: b }),
      event("TTE01", { uniqueEventId: own }),
      event("TTE01", { uniqueEventId: own.toUpperCase() }),
    ]);
    assert.deepEqual(again.slice(0, 3), [first[1], generated[1], first[0]]);
    assert.equal(again[3], first[1] + 1, "ids compare exactly: the upper-case spelling is another id");
  } finally {
    await client.dispose();
  }
});

test("resume through the server-side cursor: no offset continues right after the last delivered offset", async () => {
  const subscribers = async () => (await stats(w2.base, tok2.ops, "TTE")).subscribers;
  const waitSubscribers = async (n) => {
    const deadline = Date.now() + 5000;
    while ((await subscribers()) !== n) {
      assert.ok(Date.now() < deadline, `expected ${n} subscriber(s) on TTE, have ${await subscribers()}`);
      await sleep(25);
    }
  };
  const opts = { base: w2.base, token: tok2.pms1 };
  const query = newEventQuery("metadata { offset } hotelId");
  const input = { chainCode: "TTE" }; // no offset

  const first = vendorClient(DEMO.app1, { base: w2.base, token: tok2.app1 });
  const s1 = track(first, { query, variables: { input } });
  await waitSubscribers(1);
  assert.deepEqual(await pub("TTE", [event("TTE01"), event("TTE02"), event("TTE01"), event("TTE01"), event("TTE02")], opts), range(1, 5));
  assert.deepEqual(offsetsOf(await s1.take(5)), range(1, 5), "with nothing recorded the stream starts live");
  // Read longer ago than the resend window: they count as read.
  await sleep(1_100);
  await first.dispose();
  await waitSubscribers(0);

  assert.deepEqual(await pub("TTE", Array.from({ length: 7 }, () => event("TTE02")), opts), range(6, 12));

  const second = vendorClient(DEMO.app1, { base: w2.base, token: tok2.app1 });
  try {
    const s2 = track(second, { query, variables: { input } });
    assert.deepEqual(offsetsOf(await s2.take(7)), range(6, 12), "no gap, no repeat");
    await waitSubscribers(1);
    const [o13] = await pub("TTE", event("TTE01"), opts);
    assert.equal(o13, 13);
    const got = await s2.take(8);
    assert.deepEqual(offsetsOf(got), range(6, 13), "and on to live");

    // The cursor belongs to the app key: another app starts live.
    const other = vendorClient(DEMO.app2, { base: w2.base, token: tok2.app2 });
    try {
      const s3 = track(other, { query, variables: { input } });
      await waitSubscribers(2);
      const [o14] = await pub("TTE", event("TTE01"), opts);
      assert.deepEqual(offsetsOf(await s3.take(1)), [o14]);
    } finally {
      await other.dispose();
    }
  } finally {
    await second.dispose();
  }
});

test('offsetType "highest" starts at the newest event, inclusive; extensions.fromOffset is input.offset', async () => {
  const [a, b, c] = await pub("TTE", [event("TTE01"), event("TTE02"), event("TTE01")]);
  const client = vendorClient(DEMO.app1, { token: tok.app1 });
  try {
    const high = track(client, { query: newEventQuery(), variables: { input: { chainCode: "TTE", offsetType: "highest", offset: "1" } } });
    const fromNum = track(client, { query: newEventQuery(), variables: { input: { chainCode: "TTE" } }, extensions: { fromOffset: b } });
    const fromStr = track(client, { query: newEventQuery(), variables: { input: { chainCode: "TTE" } }, extensions: { fromOffset: String(a) } });
    assert.deepEqual(offsetsOf(await high.take(1)), [c]);
    assert.deepEqual(offsetsOf(await fromNum.take(2)), [b, c]);
    assert.deepEqual(offsetsOf(await fromStr.take(3)), [a, b, c]);
    const [d] = await pub("TTE", event("TTE02"));
    assert.deepEqual(offsetsOf(await high.take(2)), [c, d]);
    assert.deepEqual(offsetsOf(await fromNum.take(3)), [b, c, d]);
    assert.deepEqual(offsetsOf(await fromStr.take(4)), [a, b, c, d]);
  } finally {
    await client.dispose();
  }
});

test("OFFSET_OUT_OF_RANGE is an error message; the socket serves the next subscription", async () => {
  const raw = await Raw.connect(DEMO.app1, { token: tok.app1 });
  const h = await head("TTE");
  raw.subscribe("far", newEventQuery(), { input: { chainCode: "TTE", offset: String(h + 2) } });
  const err = await raw.error("far");
  assert.ok(Array.isArray(err.payload) && err.payload.length >= 1, JSON.stringify(err));
  assert.equal(err.payload[0].extensions?.code, "OFFSET_OUT_OF_RANGE");
  assert.equal(typeof err.payload[0].message, "string");
  raw.subscribe("far", newEventQuery(), { input: { chainCode: "TTE" } }, { fromOffset: String(h + 5) });
  assert.equal((await raw.error("far")).payload[0].extensions?.code, "OFFSET_OUT_OF_RANGE", "fromOffset too");
  raw.subscribe("edge", newEventQuery(), { input: { chainCode: "TTE", offset: String(h + 1) } });
  const [o] = await pub("TTE", event("TTE01"));
  assert.equal(o, h + 1);
  const [got] = await raw.nexts("edge", 1);
  assert.equal(got.data.newEvent.metadata.offset, String(o));
  assert.equal(raw.closeInfo, null);
  raw.close();
});

// ------------------------------------------------------------------------------------------
// 9. Retention gap
// ------------------------------------------------------------------------------------------

// Retention counts from when an event was stored, so this test races the clock: it keeps the
// window between a publish and the subscription that must still find it to a few milliseconds
// (socket open and authenticated beforehand, object warm) against a 2 s retention.
test("retention gap: the first next carries extensions.gap {requested, resumedAt}", async () => {
  const config = structuredClone(demoConfig);
  config.retentionSeconds = 2;
  const short = await startWorker({ config });
  const clients = [];
  const raws = [];
  try {
    const [pms, ops, app1] = await Promise.all([DEMO.pms1, DEMO.ops, DEMO.app1].map((c) => tokenFor(short.base, c)));
    const waitEmpty = async () => {
      let s;
      for (let i = 0; i < 100; i++) {
        s = await stats(short.base, ops, "TTE");
        if (s.retainedEvents === 0) return s;
        await sleep(100);
      }
      assert.fail(`retention did not empty the chain: ${JSON.stringify(s)}`);
    };
    const opts = { base: short.base, token: pms };
    const query = newEventQuery("metadata { offset } hotelId");
    assert.deepEqual(await pub("TTE", [event("TTE01"), event("TTE01"), event("TTE02")], opts), [1, 2, 3]);
    await waitEmpty();

    // Published after the drop, then subscribed from offset 1 at once.
    const s1 = await Raw.connect(DEMO.app1, { base: short.base, token: app1 });
    raws.push(s1);
    const [o4] = await pub("TTE", event("TTE01"), opts);
    assert.equal(o4, 4);
    s1.subscribe("s1", query, { input: { chainCode: "TTE", offset: "1" } });
    const [first] = await s1.nexts("s1", 1, 5000);
    assert.deepEqual(first.extensions?.gap, { requested: "1", resumedAt: "4" }, JSON.stringify(first));
    assert.equal(first.data.newEvent.metadata.offset, "4");

    // Subscribed while nothing is retained: the gap rides on the next event published.
    await waitEmpty();
    const c2 = vendorClient(DEMO.app1, { base: short.base, token: app1 });
    clients.push(c2);
    const s2 = track(c2, { query, variables: { input: { chainCode: "TTE", offset: "2" } } });
    await sleep(300);
    const [o5, o6] = await pub("TTE", [event("TTE01"), event("TTE02")], opts);
    const got = await s2.take(2, 5000);
    assert.deepEqual(got[0].extensions?.gap, { requested: "2", resumedAt: String(o5) }, JSON.stringify(got[0]));
    assert.deepEqual(offsetsOf(got), [o5, o6]);
    assert.equal(got[1].extensions?.gap, undefined, "only the first next reports the gap");
    // s1 keeps streaming live, without a second gap
    const more = await s1.nexts("s1", 2, 5000);
    assert.deepEqual(more.map((p) => Number(p.data.newEvent.metadata.offset)), [o5, o6]);
    assert.ok(more.every((p) => p.extensions?.gap === undefined), JSON.stringify(more));
  } finally {
    raws.forEach((r) => r.close());
    await Promise.all(clients.map((c) => c.dispose()));
    await short.dispose();
  }
});

// ------------------------------------------------------------------------------------------
// 10. Isolation and errors that keep the connection
// ------------------------------------------------------------------------------------------

test("isolation: a property-restricted client sees only its property; other chains and enterprises are FORBIDDEN", async () => {
  const raw = await Raw.connect(DEMO.app2, { token: tok.app2 });
  const h = await head("TTE");
  raw.subscribe("all", newEventQuery(), { input: { chainCode: "TTE", offset: String(h + 1) } });
  raw.subscribe("replay", newEventQuery(), { input: { chainCode: "TTE", offset: "1" } });
  for (const [id, input] of [
    ["tte02", { chainCode: "TTE", hotelCode: "TTE02" }],
    ["both", { chainCode: "TTE", hotelCode: "TTE01,TTE02" }],
    ["htb", { chainCode: "HTBTTE" }],
    ["oth", { chainCode: "OTH" }],
    ["nope", { chainCode: "NOPE" }],
  ]) {
    raw.subscribe(id, newEventQuery(), { input });
    const err = await raw.error(id);
    assert.equal(err.payload[0].extensions?.code, "FORBIDDEN", `${id}: ${JSON.stringify(err)}`);
  }
  const hotels = ["TTE01", "TTE02", "TTE01", "TTE02", "TTE02", "TTE01"];
  const offsets = await pub("TTE", hotels.map((hId) => event(hId)));
  const mine = offsets.filter((_, i) => hotels[i] === "TTE01");
  const got = await raw.nexts("all", mine.length);
  assert.deepEqual(offsetsOf(got), mine);
  assert.ok(got.every((p) => p.data.newEvent.hotelId === "TTE01"));
  await raw.quiet("all", 300);
  // A replay from 1 (events of both properties in the log) shows exactly the TTE01 events:
  // the whole log, read by an unrestricted client, says which ones those are.
  const H = await head("TTE");
  const full = await Raw.connect(DEMO.app1, { token: tok.app1 });
  full.subscribe("everything", newEventQuery(), { input: { chainCode: "TTE", offset: "1" } });
  const everything = await full.nexts("everything", H);
  full.close();
  assert.deepEqual(offsetsOf(everything), range(1, H));
  const allTte01 = everything.filter((p) => p.data.newEvent.hotelId === "TTE01").map((p) => Number(p.data.newEvent.metadata.offset));
  assert.ok(allTte01.length < H, "the log holds TTE02 events too");
  const replayed = await raw.nexts("replay", allTte01.length);
  assert.deepEqual(offsetsOf(replayed), allTte01);
  assert.ok(replayed.every((p) => p.data.newEvent.hotelId === "TTE01"));
  await raw.quiet("replay", 200);
  assert.equal(raw.closeInfo, null, "refusals keep the connection");
  raw.close();

  // Another enterprise: OTHER's client cannot use TTE; a BROWNS client never sees OTH.
  const c3 = vendorClient(DEMO.app3, { token: tok.app3 });
  const c1 = vendorClient(DEMO.app1, { token: tok.app1 });
  try {
    const s3 = track(c3, { query: newEventQuery(), variables: { input: { chainCode: "TTE" } } });
    const e3 = await s3.failure();
    assert.ok(Array.isArray(e3), `a GraphQL error, not a close: ${JSON.stringify(e3)}`);
    assert.equal(e3[0].extensions?.code, "FORBIDDEN");
    const s1 = track(c1, { query: newEventQuery(), variables: { input: { chainCode: "OTH", offset: "1" } } });
    const e1 = await s1.failure();
    assert.ok(Array.isArray(e1), JSON.stringify(e1));
    assert.equal(e1[0].extensions?.code, "FORBIDDEN");
    await pub("OTH", event("OTH01"));
    await sleep(200);
    assert.deepEqual(s1.values, []);
  } finally {
    await Promise.all([c3.dispose(), c1.dispose()]);
  }
});

test("validation and parse errors are located error messages; the connection and its other subscriptions stay up", async () => {
  const raw = await Raw.connect(DEMO.app1, { token: tok.app1 });
  const h = await head("TTE");
  raw.subscribe("live", newEventQuery(), { input: { chainCode: "TTE", offset: String(h + 1) } });
  raw.subscribe("unknown", 'subscription {\n  newEvent(input: {chainCode: "TTE"}) {\n    hotelId nope\n  }\n}');
  const unknown = await raw.error("unknown");
  assert.equal(unknown.payload.length, 1, JSON.stringify(unknown.payload));
  assert.match(unknown.payload[0].message, /nope/);
  assert.deepEqual(unknown.payload[0].locations, [{ line: 3, column: 13 }]);
  assert.equal(unknown.payload[0].extensions?.code, "GRAPHQL_VALIDATION_FAILED");

  raw.subscribe("syntax", "subscription {\n  newEvent(input: {chainCode: \"TTE\"}) {\n    metadata { offset }\n");
  const syntax = await raw.error("syntax");
  assert.ok(syntax.payload[0].locations?.length >= 1, JSON.stringify(syntax.payload));

  raw.subscribe("noinput", "subscription { newEvent { hotelId } }");
  const noinput = await raw.error("noinput");
  assert.deepEqual(noinput.payload[0].locations?.[0], { line: 1, column: 16 }, JSON.stringify(noinput.payload));

  raw.subscribe("badvar", newEventQuery(), { input: { offset: "1" } });
  const badvar = await raw.error("badvar");
  assert.ok(badvar.payload[0].message.length > 0);

  raw.subscribe("badoffset", newEventQuery(), { input: { chainCode: "TTE", offset: "-3" } });
  assert.equal((await raw.error("badoffset")).payload[0].extensions?.code, "BAD_USER_INPUT");

  const [o] = await pub("TTE", event("TTE02"));
  const [got] = await raw.nexts("live", 1);
  assert.equal(Number(got.data.newEvent.metadata.offset), o);
  assert.equal(raw.closeInfo, null);
  raw.close();
});

// ------------------------------------------------------------------------------------------
// 11. Filters; 12. OHIP-style; 13. queries; 14. several subscriptions
// ------------------------------------------------------------------------------------------

test("filters: hotelCode, eventNames, moduleNames (combined), and delta drops unchanged detail entries", async () => {
  const raw = await Raw.connect(DEMO.app1, { token: tok.app1 });
  const h = await head("TTE");
  const from = String(h + 1);
  const fields = "metadata { offset } hotelId eventName moduleName detail { elementName newValue oldValue }";
  const subs = {
    h2: { hotelCode: "TTE02" },
    ev: { eventNames: ["CHECKOUT"] },
    mod: { moduleNames: ["Folio"] },
    combo: { hotelCode: "TTE01", eventNames: ["CHECKIN", "ROOMMOVE"], moduleNames: ["Reservation"] },
    multi: { hotelCode: "TTE01,TTE02" },
    delta: { delta: true },
    full: { delta: false },
  };
  for (const [id, f] of Object.entries(subs)) raw.subscribe(id, newEventQuery(fields), { input: { chainCode: "TTE", offset: from, ...f } });
  const mixed = [
    { elementName: "Same", newValue: "1", oldValue: "1" },
    { elementName: "Changed", newValue: "2", oldValue: "1" },
    { elementName: "New", newValue: "3", oldValue: null },
    { elementName: "BothNull" },
    { elementName: "Removed", newValue: null, oldValue: "9" },
  ];
  const batch = [
    event("TTE01", { moduleName: "Reservation", eventName: "CHECKIN" }),
    event("TTE02", { moduleName: "Reservation", eventName: "CHECKOUT" }),
    event("TTE01", { moduleName: "Folio", eventName: "POSTING" }),
    event("TTE02", { moduleName: "Folio", eventName: "CHECKOUT" }),
    event("TTE01", { moduleName: "Reservation", eventName: "ROOMMOVE", detail: mixed }),
  ];
  const offsets = await pub("TTE", batch);
  const expect = {
    h2: [1, 3], ev: [1, 3], mod: [2, 3], combo: [0, 4], multi: [0, 1, 2, 3, 4], delta: [0, 1, 2, 3, 4], full: [0, 1, 2, 3, 4],
  };
  const got = {};
  for (const [id, idx] of Object.entries(expect)) {
    got[id] = await raw.nexts(id, idx.length);
    assert.deepEqual(offsetsOf(got[id]), idx.map((i) => offsets[i]), id);
  }
  for (const id of Object.keys(expect)) await raw.quiet(id, id === "h2" ? 300 : 0);
  const detailOf = (p) => p.data.newEvent.detail.map((d) => d.elementName);
  assert.deepEqual(detailOf(got.full[4]), ["Same", "Changed", "New", "BothNull", "Removed"]);
  assert.deepEqual(detailOf(got.delta[4]), ["Changed", "New", "Removed"]);
  assert.deepEqual(got.delta[4].data.newEvent.detail[0], { elementName: "Changed", newValue: "2", oldValue: "1" });
  // the harness event's single entry changed (null -> "101"): delta keeps it
  assert.deepEqual(detailOf(got.delta[0]), ["RoomNumber"]);
  assert.equal(raw.closeInfo, null);
  raw.close();
});

test("OHIP-style subscribe: inline input, every field, SHA-256 hex URL key, delta", async () => {
  const h = await head("TTE");
  const n = h + 1;
  const query = `subscription {
  newEvent(input: {chainCode: "TTE", offset: "${n}", delta: true}) {
    metadata { offset uniqueEventId }
    moduleName eventName primaryKey timestamp hotelId publisherId actionInstanceId
    detail { elementName elementType elementSequence elementRole newValue oldValue scopeFrom scopeTo }
  }
}`;
  const key = sha256hex("APPKEY001");
  assert.match(key, /^[0-9a-f]{64}$/);
  const client = vendorClient(DEMO.app1, { token: tok.app1, key });
  try {
    const s = track(client, { query });
    const e = {
      moduleName: "Reservation", eventName: "UPDATE", primaryKey: "RES-OHIP-1", timestamp: "2026-05-01T10:20:30Z",
      hotelId: "TTE02", publisherId: "OPERA", actionInstanceId: "act-77", uniqueEventId: uid("ohip"),
      detail: [
        { elementName: "Arrival", elementType: "Date", elementSequence: 7, elementRole: "Primary", newValue: "2026-05-02", oldValue: "2026-05-01", scopeFrom: "2026-05-01", scopeTo: "2026-05-03" },
        { elementName: "Unchanged", elementType: "String", newValue: "same", oldValue: "same" },
        { elementName: "Guest", newValue: "Ada" },
      ],
    };
    const [o] = await pub("TTE", e);
    assert.equal(o, n);
    const [got] = await s.take(1);
    assert.deepEqual(got, {
      data: {
        newEvent: {
          metadata: { offset: String(n), uniqueEventId: e.uniqueEventId },
          moduleName: "Reservation", eventName: "UPDATE", primaryKey: "RES-OHIP-1", timestamp: "2026-05-01T10:20:30Z",
          hotelId: "TTE02", publisherId: "OPERA", actionInstanceId: "act-77",
          detail: [
            { elementName: "Arrival", elementType: "Date", elementSequence: 7, elementRole: "Primary", newValue: "2026-05-02", oldValue: "2026-05-01", scopeFrom: "2026-05-01", scopeTo: "2026-05-03" },
            { elementName: "Guest", elementType: null, elementSequence: null, elementRole: null, newValue: "Ada", oldValue: null, scopeFrom: null, scopeTo: null },
          ],
        },
      },
    });
  } finally {
    await client.dispose();
  }
});

test("introspection returns the schema; getHelp answers next then complete", async () => {
  const client = vendorClient(DEMO.app1, { token: tok.app1 });
  try {
    const intro = track(client, { query: getIntrospectionQuery() });
    await intro.completion(10000);
    assert.equal(intro.values.length, 1);
    assert.equal(intro.values[0].errors, undefined, JSON.stringify(intro.values[0].errors));
    const schema = buildClientSchema(intro.values[0].data);
    const newEvent = schema.getSubscriptionType()?.getFields().newEvent;
    assert.ok(newEvent, "Subscription.newEvent");
    assert.equal(String(newEvent.type), "EventHeader!");
    const input = newEvent.args.find((a) => a.name === "input");
    assert.ok(isNonNullType(input.type) && isInputObjectType(input.type.ofType));
    assert.deepEqual(Object.keys(input.type.ofType.getFields()).sort(), ["chainCode", "delta", "eventNames", "fromTime", "hotelCode", "moduleNames", "offset", "offsetType"]);
    assert.deepEqual(Object.keys(schema.getType("EventHeader").getFields()).sort(),
      ["actionInstanceId", "detail", "eventName", "hotelId", "metadata", "moduleName", "primaryKey", "publisherId", "timestamp"]);
    assert.deepEqual(Object.keys(schema.getQueryType().getFields()).sort(), ["connection", "currentState", "getHelp"]);
  } finally {
    await client.dispose();
  }

  const raw = await Raw.connect(DEMO.app1, { token: tok.app1 });
  raw.subscribe("help", "query Help { __typename getHelp { overview configuration connection { help errors } events { payload replaying } slack email } }");
  await until(() => raw.log.some((m) => m.id === "help" && m.type === "complete"), 5000, "complete");
  const msgs = raw.log.filter((m) => m.id === "help");
  assert.deepEqual(msgs.map((m) => m.type), ["next", "complete"]);
  const help = msgs[0].payload.data.getHelp;
  assert.equal(msgs[0].payload.data.__typename, "Query");
  for (const v of [help.overview, help.configuration, help.connection.help, help.connection.errors, help.events.payload, help.events.replaying]) {
    assert.equal(typeof v, "string");
    assert.ok(v.length > 0);
  }
  assert.match(help.email, /@/);
  assert.ok(help.slack.length > 0);
  // operationName picks among several queries
  raw.subscribe("pick", "query A { __typename } query B { getHelp { email } }");
  const pickErr = await raw.error("pick");
  assert.ok(pickErr.payload[0].message.length > 0, "several operations and no operationName is an error");
  raw.send({ id: "pick2", type: "subscribe", payload: { query: "query A { __typename } query B { getHelp { email } }", operationName: "B" } });
  const [pick] = await raw.nexts("pick2", 1);
  assert.deepEqual(pick, { data: { getHelp: { email: help.email } } });
  raw.close();
});

test('connection.status is "Active" only while the same app key streams on another connection', async () => {
  const q = "{ connection { id status } }";
  const ask = async (raw, id) => {
    raw.subscribe(id, q);
    const [r] = await raw.nexts(id, 1);
    await raw.take((m) => m.id === id && m.type === "complete");
    assert.deepEqual(raw.log.filter((m) => m.id === id).map((m) => m.type), ["next", "complete"]);
    return r.data.connection;
  };
  const a = await Raw.connect(DEMO.app3, { token: tok.app3 });
  const b = await Raw.connect(DEMO.app3, { token: tok.app3 });
  try {
    const a1 = await ask(a, "a1");
    assert.equal(a1.status, "Inactive", "nobody streams");
    a.subscribe("stream", newEventQuery(), { input: { chainCode: "OTH", offsetType: "highest" } });
    await sleep(300);
    assert.equal((await ask(a, "a2")).status, "Inactive", "its own stream does not count");
    const b1 = await ask(b, "b1");
    assert.equal(b1.status, "Active", "another connection of the app key streams");
    assert.notEqual(a1.id, b1.id);
    const c1 = await Raw.connect(DEMO.app1, { token: tok.app1 });
    assert.equal((await ask(c1, "c1")).status, "Inactive", "another app key's stream does not count");
    c1.close();
    a.send({ id: "stream", type: "complete" });
    let status;
    for (let i = 0; i < 30 && status !== "Inactive"; i++) {
      status = (await ask(b, `b-${i}`)).status;
      if (status !== "Inactive") await sleep(100);
    }
    assert.equal(status, "Inactive", "once the stream completed");
  } finally {
    a.close();
    b.close();
  }
});

test("several subscriptions on one socket, across chains; completing one leaves the others", async () => {
  const raw = await Raw.connect(DEMO.app1, { token: tok.app1 });
  const [ht, hh] = await Promise.all([head("TTE"), head("HTBTTE")]);
  const fields = "metadata { offset } hotelId";
  raw.subscribe("tte", newEventQuery(fields), { input: { chainCode: "TTE", offset: String(ht + 1) } });
  raw.subscribe("tte02", newEventQuery(fields), { input: { chainCode: "TTE", offset: String(ht + 1), hotelCode: "TTE02" } });
  raw.subscribe("htb", newEventQuery(fields), { input: { chainCode: "HTBTTE", offset: String(hh + 1) } });
  const [t, h] = await Promise.all([
    pub("TTE", [event("TTE01"), event("TTE02"), event("TTE02")]),
    pub("HTBTTE", [event("HTB01"), event("HTB01")]),
  ]);
  assert.deepEqual(offsetsOf(await raw.nexts("tte", 3)), t);
  assert.deepEqual(offsetsOf(await raw.nexts("tte02", 2)), t.slice(1));
  const htb = await raw.nexts("htb", 2);
  assert.deepEqual(offsetsOf(htb), h);
  assert.ok(htb.every((p) => p.data.newEvent.hotelId === "HTB01"));

  raw.send({ id: "tte", type: "complete" });
  await sleep(200);
  const [t2] = await pub("TTE", event("TTE02"));
  const [h2] = await pub("HTBTTE", event("HTB01"));
  assert.deepEqual(offsetsOf(await raw.nexts("tte02", 1)), [t2]);
  assert.deepEqual(offsetsOf(await raw.nexts("htb", 1)), [h2]);
  await raw.quiet("tte", 300);
  assert.equal(raw.closeInfo, null);
  raw.close();
});

test("token expiry on an open connection (4401 \"token expired\")", { skip: "a real token lives 60 min; covered by miniflare/expiry.test.mjs with a short-lived token" }, () => {});
