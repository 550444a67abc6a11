import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createPublicKey, verify as verifySignature } from "node:crypto";
import { startWorker, request, basic, DEMO, decodeJwt, demoConfig } from "./harness.mjs";

let w;
before(async () => { w = await startWorker(); });
after(async () => { await w?.dispose(); });

const FORM = "application/x-www-form-urlencoded";

function tokenRequest({ client = DEMO.app1, auth, headers = {}, body = "grant_type=client_credentials" } = {}) {
  return request(w.base, "POST", "/oauth/v1/tokens", {
    headers: {
      "content-type": FORM,
      ...(auth === false ? {} : { authorization: auth ?? basic(client.id, client.secret) }),
      "x-app-key": client.appKey,
      enterpriseId: client.enterprise,
      ...headers,
    },
    body,
  });
}

function assertOAuthError(res, status, error) {
  assert.equal(res.status, status, res.text);
  assert.equal(res.json.error, error, res.text);
  assert.equal(typeof res.json.error_description, "string");
  assert.equal(res.headers["cache-control"], "no-store");
}

test("success: every claim, the header and the signature check out against the JWKS", async () => {
  const before = Math.floor(Date.now() / 1000);
  const res = await tokenRequest();
  assert.equal(res.status, 200, res.text);
  assert.equal(res.headers["cache-control"], "no-store");
  assert.equal(res.json.token_type, "Bearer");
  assert.equal(res.json.expires_in, 3600);
  assert.equal(res.json.scope, "urn:pms:events");
  const jwt = decodeJwt(res.json.access_token);
  assert.equal(jwt.header.alg, "EdDSA");
  assert.equal(jwt.header.kid, w.signingKeys[0].kid);
  const p = jwt.payload;
  assert.equal(p.iss, demoConfig.issuer);
  assert.equal(p.aud, demoConfig.audience);
  assert.equal(p.sub, "client-app-001");
  assert.equal(p.enterpriseId, "BROWNS");
  assert.equal(p.appKey, "APPKEY001");
  assert.equal(p.scope, "urn:pms:events");
  assert.deepEqual(p.chains, [{ chain: "TTE" }, { chain: "HTBTTE" }]);
  assert.match(p.jti, /^[0-9a-f]{32}$/);
  assert.ok(p.iat >= before - 1 && p.iat <= before + 5);
  assert.equal(p.exp, p.iat + 3600);

  const jwks = await request(w.base, "GET", "/.well-known/jwks.json");
  assert.equal(jwks.status, 200);
  const jwk = jwks.json.keys.find((k) => k.kid === jwt.header.kid);
  assert.equal(jwk.kty, "OKP");
  assert.equal(jwk.crv, "Ed25519");
  assert.equal(jwk.d, undefined, "no private part is ever published");
  const key = createPublicKey({ key: jwk, format: "jwk" });
  assert.ok(verifySignature(null, Buffer.from(jwt.signingInput), key, jwt.signature), "signature verifies with the published key");
});

test("property restrictions travel in the token", async () => {
  const res = await tokenRequest({ client: DEMO.app2 });
  assert.deepEqual(decodeJwt(res.json.access_token).payload.chains, [{ chain: "TTE", properties: ["TTE01"] }]);
});

test("two tokens have different ids", async () => {
  const a = decodeJwt((await tokenRequest()).json.access_token).payload.jti;
  const b = decodeJwt((await tokenRequest()).json.access_token).payload.jti;
  assert.notEqual(a, b);
});

test("client_secret_post works", async () => {
  const res = await tokenRequest({ auth: false, body: "grant_type=client_credentials&client_id=client-app-001&client_secret=secret-001" });
  assert.equal(res.status, 200, res.text);
});

test("credentials in the header and the body at once are refused", async () => {
  const res = await tokenRequest({ body: "grant_type=client_credentials&client_id=client-app-001&client_secret=secret-001" });
  assertOAuthError(res, 400, "invalid_request");
});

test("wrong secret, unknown client, wrong app key and wrong enterprise all give the same 401", async () => {
  const cases = [
    { auth: basic("client-app-002", "wrong") },
    { auth: basic("no-such-client", "secret-002") },
    { client: { ...DEMO.app2, appKey: "APPKEY001" } },
    { client: { ...DEMO.app2, enterprise: "OTHER" } },
  ];
  const bodies = [];
  for (const c of cases) {
    const res = await tokenRequest({ client: DEMO.app2, ...c });
    assertOAuthError(res, 401, "invalid_client");
    assert.match(res.headers["www-authenticate"], /^Basic/);
    bodies.push(res.text);
  }
  assert.equal(new Set(bodies).size, 1, "a failed login never tells which part was wrong");
});

test("missing credentials are invalid_client, missing headers invalid_request", async () => {
  assertOAuthError(await tokenRequest({ auth: false }), 401, "invalid_client");
  const noKey = await request(w.base, "POST", "/oauth/v1/tokens", {
    headers: { "content-type": FORM, authorization: basic("client-app-001", "secret-001"), enterpriseId: "BROWNS" },
    body: "grant_type=client_credentials",
  });
  assertOAuthError(noKey, 400, "invalid_request");
  assert.match(noKey.json.error_description, /x-app-key/);
  const noEnterprise = await request(w.base, "POST", "/oauth/v1/tokens", {
    headers: { "content-type": FORM, authorization: basic("client-app-001", "secret-001"), "x-app-key": "APPKEY001" },
    body: "grant_type=client_credentials",
  });
  assertOAuthError(noEnterprise, 400, "invalid_request");
});

test("grant type and content type errors", async () => {
  assertOAuthError(await tokenRequest({ body: "grant_type=password" }), 400, "unsupported_grant_type");
  assertOAuthError(await tokenRequest({ body: "" }), 400, "invalid_request");
  assertOAuthError(await tokenRequest({ headers: { "content-type": "application/json" } }), 400, "invalid_request");
});

test("scope selection: a held scope is granted, others are invalid_scope", async () => {
  const ok = await tokenRequest({ body: "grant_type=client_credentials&scope=urn%3Apms%3Aevents" });
  assert.equal(ok.status, 200);
  assert.equal(decodeJwt(ok.json.access_token).payload.scope, "urn:pms:events");
  assertOAuthError(await tokenRequest({ body: "grant_type=client_credentials&scope=urn%3Apms%3Apublish" }), 400, "invalid_scope");
  assertOAuthError(await tokenRequest({ body: "grant_type=client_credentials&scope=urn%3Apms%3Aevents+bogus" }), 400, "invalid_scope");
});

test("other methods get 405", async () => {
  for (const method of ["GET", "PUT", "DELETE"]) {
    const res = await request(w.base, method, "/oauth/v1/tokens");
    assert.equal(res.status, 405);
    assert.equal(res.headers.allow, "POST");
  }
});

test("the vendor guide's request works verbatim, with X-Request-Id and an unrelated Cookie", async () => {
  const res = await request(w.base, "POST", "/oauth/v1/tokens", {
    headers: {
      "Content-Type": "application/x-www-form-urlencoded",
      "x-app-key": "APPKEY001",
      enterpriseId: "BROWNS",
      "X-Request-Id": "4c3b4a5e-2b8c-4f3e-9a51-0c6f6c2a9d10",
      Cookie: "session=abc; _ga=GA1.2.3",
      Authorization: "Basic " + Buffer.from("client-app-001:secret-001").toString("base64"),
    },
    body: "grant_type=client_credentials&scope=urn:pms:events",
  });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.headers["x-request-id"], "4c3b4a5e-2b8c-4f3e-9a51-0c6f6c2a9d10");
  assert.equal(res.json.scope, "urn:pms:events");
});

test("repeated failures lock the client id with 429 and Retry-After, counted in a Durable Object per client id", async () => {
  const config = structuredClone(demoConfig);
  config.limits = { loginFailuresBeforeLockout: 3, loginLockoutSeconds: 120 };
  const locked = await startWorker({ config });
  try {
    const attempt = (secret) => request(locked.base, "POST", "/oauth/v1/tokens", {
      headers: { "content-type": FORM, authorization: basic("client-app-002", secret), "x-app-key": "APPKEY002", enterpriseId: "BROWNS" },
      body: "grant_type=client_credentials",
    });
    for (let i = 0; i < 3; i++) assert.equal((await attempt("wrong")).status, 401);
    const refused = await attempt("secret-002");
    assert.equal(refused.status, 429, "even the right secret is refused while locked");
    assert.equal(refused.json.error, "temporarily_unavailable");
    const retry = Number(refused.headers["retry-after"]);
    assert.ok(retry > 100 && retry <= 120, `Retry-After ${retry}`);
    // Other clients are unaffected.
    const other = await request(locked.base, "POST", "/oauth/v1/tokens", {
      headers: { "content-type": FORM, authorization: basic("client-app-001", "secret-001"), "x-app-key": "APPKEY001", enterpriseId: "BROWNS" },
      body: "grant_type=client_credentials",
    });
    assert.equal(other.status, 200);
  } finally {
    await locked.dispose();
  }
});

test("JWKS lists every configured key, the signing one first", async () => {
  const keys = [{ kid: "new", seed: Buffer.alloc(32, 7).toString("base64url") }, { kid: "old", seed: Buffer.alloc(32, 9).toString("base64url") }];
  const rotated = await startWorker({ signingKeys: keys });
  try {
    const jwks = await request(rotated.base, "GET", "/.well-known/jwks.json");
    assert.deepEqual(jwks.json.keys.map((k) => k.kid), ["new", "old"]);
    const res = await request(rotated.base, "POST", "/oauth/v1/tokens", {
      headers: { "content-type": FORM, authorization: basic("client-app-001", "secret-001"), "x-app-key": "APPKEY001", enterpriseId: "BROWNS" },
      body: "grant_type=client_credentials",
    });
    assert.equal(decodeJwt(res.json.access_token).header.kid, "new");
  } finally {
    await rotated.dispose();
  }
});

test("a client secret rotates without an outage: both hashes work, then the old secret is refused", async () => {
  const { pbkdf2Sync, randomBytes } = await import("node:crypto");
  const hash = (secret) => {
    const salt = randomBytes(16);
    return `pbkdf2-sha256$10000$${salt.toString("base64")}$${pbkdf2Sync(secret, salt, 10000, 32, "sha256").toString("base64")}`;
  };
  const oldHash = demoConfig.clients.find((c) => c.id === DEMO.app1.id).secretHash;
  const withHashes = (secretHash) => {
    const config = structuredClone(demoConfig);
    config.clients.find((c) => c.id === DEMO.app1.id).secretHash = secretHash;
    return config;
  };
  const login = (base, secret) => request(base, "POST", "/oauth/v1/tokens", {
    headers: { "content-type": FORM, authorization: basic(DEMO.app1.id, secret), "x-app-key": DEMO.app1.appKey, enterpriseId: DEMO.app1.enterprise },
    body: "grant_type=client_credentials",
  });
  const newSecret = "rotated-secret-002";
  // During the rotation: the current hash and the new one.
  const during = await startWorker({ config: withHashes([oldHash, hash(newSecret)]) });
  try {
    for (const secret of [DEMO.app1.secret, newSecret]) {
      const res = await login(during.base, secret);
      assert.equal(res.status, 200, `${secret === newSecret ? "new" : "old"} secret: ${res.text}`);
      assert.equal(decodeJwt(res.json.access_token).payload.sub, DEMO.app1.id);
    }
    assert.equal((await login(during.base, "neither")).status, 401);
  } finally {
    await during.dispose();
  }
  // After it: the new hash alone; the old secret gets the usual 401.
  const afterwards = await startWorker({ config: withHashes(hash(newSecret)) });
  try {
    assert.equal((await login(afterwards.base, newSecret)).status, 200);
    const old = await login(afterwards.base, DEMO.app1.secret);
    assert.equal(old.status, 401);
    assert.equal(old.json.error, "invalid_client");
  } finally {
    await afterwards.dispose();
  }
});
