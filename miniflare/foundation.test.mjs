import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, request, demoConfig, DEMO, tokenFor, publish, event } from "./harness.mjs";

let w;
before(async () => { w = await startWorker(); });
after(async () => { await w?.dispose(); });

test("healthz reports ok, version and a loaded configuration", async () => {
  const res = await request(w.base, "GET", "/healthz");
  assert.equal(res.status, 200);
  assert.equal(res.json.status, "ok");
  assert.equal(res.json.configuration, "loaded");
  assert.match(res.json.version, /^\d+\.\d+\.\d+$/);
  assert.ok(res.json.wasmMemoryBytes >= 65536, "reports this isolate's wasm heap");
  assert.match(res.headers["content-type"], /application\/json/);
});

test("unknown routes are 404 JSON, wrong methods 405 JSON with Allow", async () => {
  const nf = await request(w.base, "GET", "/nope");
  assert.equal(nf.status, 404);
  assert.equal(nf.json.error, "not_found");
  const na = await request(w.base, "POST", "/healthz");
  assert.equal(na.status, 405);
  assert.equal(na.json.error, "method_not_allowed");
  assert.equal(na.headers.allow, "GET");
  const na2 = await request(w.base, "GET", "/oauth/v1/tokens");
  assert.equal(na2.status, 405);
  assert.equal(na2.headers.allow, "POST");
});

test("every response carries X-Request-Id: echoed when given, generated otherwise", async () => {
  const echoed = await request(w.base, "GET", "/healthz", { headers: { "x-request-id": "vendor-req-42" } });
  assert.equal(echoed.headers["x-request-id"], "vendor-req-42");
  const a = await request(w.base, "GET", "/nope");
  const b = await request(w.base, "GET", "/nope");
  assert.match(a.headers["x-request-id"], /^[0-9a-f]{32}$/);
  assert.notEqual(a.headers["x-request-id"], b.headers["x-request-id"]);
  const insane = await request(w.base, "GET", "/healthz", { headers: { "x-request-id": "x".repeat(300) } });
  assert.match(insane.headers["x-request-id"], /^[0-9a-f]{32}$/);
});

test("each chain code reaches its own ChainLog object with separate storage", async () => {
  const pms = await tokenFor(w.base, DEMO.pms1);
  const a = await publish(w.base, pms, "TTE", [event("TTE01"), event("TTE02")]);
  assert.equal(a.status, 200, a.text);
  assert.deepEqual(a.json.offsets, ["1", "2"]);
  const b = await publish(w.base, pms, "HTBTTE", event("HTB01"));
  assert.equal(b.status, 200, b.text);
  assert.deepEqual(b.json.offsets, ["1"], "HTBTTE numbers independently of TTE");
  const ops = await tokenFor(w.base, DEMO.ops);
  const tte = await request(w.base, "GET", "/admin/v1/chains/TTE", { headers: { authorization: `Bearer ${ops}` } });
  const htb = await request(w.base, "GET", "/admin/v1/chains/HTBTTE", { headers: { authorization: `Bearer ${ops}` } });
  assert.equal(tte.json.headOffset, "2");
  assert.equal(tte.json.retainedEvents, 2);
  assert.equal(htb.json.headOffset, "1");
  assert.equal(htb.json.retainedEvents, 1);
});

test("a broken configuration answers 500 JSON naming the problem on every route", async () => {
  const broken = structuredClone(demoConfig);
  broken.clients[1].appKey = "APPKEY001";
  const bad = await startWorker({ config: broken });
  try {
    for (const [method, p] of [["GET", "/healthz"], ["POST", "/oauth/v1/tokens"], ["GET", "/nope"]]) {
      const res = await request(bad.base, method, p);
      assert.equal(res.status, 500, p);
      const text = JSON.stringify(res.json);
      assert.match(text, /client-app-002/);
      assert.match(text, /APPKEY001/);
      assert.ok(res.headers["x-request-id"]);
    }
  } finally {
    await bad.dispose();
  }
});

test("missing signing keys are named too", async () => {
  const bad = await startWorker({ signingKeys: [] });
  try {
    const res = await request(bad.base, "GET", "/healthz");
    assert.equal(res.status, 500);
    assert.match(res.json.error, /SIGNING_KEYS/);
  } finally {
    await bad.dispose();
  }
});

test("a keep-alive connection survives requests answered without reading their body", async () => {
  for (let i = 0; i < 3; i++) {
    const res = await request(w.base, "POST", "/nope", { body: { some: "payload" } });
    assert.equal(res.status, 404);
    const res2 = await request(w.base, "POST", "/healthz", { body: "x".repeat(1000) });
    assert.equal(res2.status, 405);
  }
});

test("the documentation that getHelp links into is served", async () => {
  const headings = {
    "/README.md": ["## Overview"],
    "/docs/operations.md": ["## Configuration"],
    "/docs/protocol.md": ["## Connecting", "## Errors", "## Event payload", "## Replaying"],
    "/docs/architecture.md": ["## "],
    "/docs/benchmarks.md": ["## "],
  };
  for (const [path, expected] of Object.entries(headings)) {
    const res = await request(w.base, "GET", path);
    assert.equal(res.status, 200, path);
    assert.match(res.headers["content-type"], /text\/markdown/);
    for (const heading of expected) assert.ok(res.text.includes(heading), `${path}: ${heading}`);
  }
  assert.equal((await request(w.base, "GET", "/docs/secret.md")).status, 404);
});
