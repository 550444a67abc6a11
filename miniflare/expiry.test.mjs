// Token lifetime on an open connection. A 60-minute token cannot be waited out in a test,
// so the test holds the service's (test) signing key and signs a short-lived token with it:
// a real EdDSA signature the service verifies like any other.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createPrivateKey, sign, randomBytes } from "node:crypto";
import { CheckedWebSocket as WebSocket } from "./harness.mjs";
import { startWorker, demoConfig } from "./harness.mjs";

function signToken(key, claims) {
  const pkcs8 = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), Buffer.from(key.seed, "base64url")]);
  const privateKey = createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" });
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const input = `${enc({ alg: "EdDSA", kid: key.kid, typ: "JWT" })}.${enc(claims)}`;
  return `${input}.${sign(null, Buffer.from(input), privateKey).toString("base64url")}`;
}

function claimsFor(now, lifetime) {
  return {
    iss: demoConfig.issuer, aud: demoConfig.audience, sub: "client-app-001", jti: randomBytes(8).toString("hex"),
    scope: "urn:pms:events", enterpriseId: "BROWNS", appKey: "APPKEY001", chains: [{ chain: "TTE" }, { chain: "HTBTTE" }],
    iat: now, exp: now + lifetime,
  };
}

function open(w) {
  const ws = new WebSocket(w.base.replace("http", "ws") + "/subscriptions?key=QVBQS0VZMDAx", "graphql-transport-ws");
  const messages = [];
  ws.on("message", (m) => messages.push(JSON.parse(m.toString())));
  const closed = new Promise((resolve) => ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })));
  return { ws, messages, closed, opened: new Promise((r) => ws.on("open", r)) };
}

test("an open connection is closed with 4401 'token expired' when its token runs out", async () => {
  const w = await startWorker();
  try {
    const now = Math.floor(Date.now() / 1000);
    // Expires in 2 s; the verification leeway (30 s) does not extend an open connection.
    const token = signToken(w.signingKeys[0], claimsFor(now, 2));
    const c = open(w);
    await c.opened;
    c.ws.send(JSON.stringify({ type: "connection_init", payload: { Authorization: `Bearer ${token}`, "x-app-key": "APPKEY001" } }));
    const { code, reason } = await Promise.race([c.closed, new Promise((r) => setTimeout(() => r({ code: "timeout" }), 8000))]);
    const closedAt = Date.now();
    assert.equal(c.messages[0]?.type, "connection_ack");
    assert.equal(code, 4401);
    assert.equal(reason, "token expired");
    // `exp` is in whole seconds; allow for timer granularity, not for an early close.
    const expiresAt = (now + 2) * 1000;
    assert.ok(closedAt >= expiresAt - 50, `closed ${expiresAt - closedAt} ms before the token's expiry`);
  } finally {
    await w.dispose();
  }
});

test("a token that expired (beyond the leeway) is refused at connection_init with 4401", async () => {
  const w = await startWorker();
  try {
    const now = Math.floor(Date.now() / 1000);
    const token = signToken(w.signingKeys[0], claimsFor(now - 7200, 3600));
    const c = open(w);
    await c.opened;
    c.ws.send(JSON.stringify({ type: "connection_init", payload: { Authorization: `Bearer ${token}`, "x-app-key": "APPKEY001" } }));
    const { code, reason } = await c.closed;
    assert.equal(code, 4401);
    assert.equal(reason, "token expired");
  } finally {
    await w.dispose();
  }
});

test("a token signed by a key the service does not hold is refused with 4401", async () => {
  const w = await startWorker();
  try {
    const stranger = { kid: w.signingKeys[0].kid, seed: randomBytes(32).toString("base64url") };
    const token = signToken(stranger, claimsFor(Math.floor(Date.now() / 1000), 3600));
    const c = open(w);
    await c.opened;
    c.ws.send(JSON.stringify({ type: "connection_init", payload: { Authorization: `Bearer ${token}`, "x-app-key": "APPKEY001" } }));
    const { code } = await c.closed;
    assert.equal(code, 4401);
  } finally {
    await w.dispose();
  }
});
