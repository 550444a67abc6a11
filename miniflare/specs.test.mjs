// The API descriptions (README, machine-readable descriptions): valid by the ecosystem's own validators, served by the
// worker as they are in schema/, and true of the running worker. Every response and stream
// message of the whole suite is checked against them by the harness (spec-check.mjs); this file
// adds the routes and statuses no other suite reaches.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import SwaggerParser from "@apidevtools/swagger-parser";
import { Parser } from "@asyncapi/parser";
import { startWorker, request, tokenFor, publish, event, vendorSocket, DEMO, demoConfig } from "./harness.mjs";
import { openapi, asyncapi, httpProblems, messageProblems, closeProblems } from "./spec-check.mjs";

let w;
// A direct socket: miniflare's local request router (absent in a deployment) would negotiate
// WebSocket compression with the client itself.
before(async () => { w = await startWorker({ direct: true }); });
after(async () => { await w?.dispose(); });

test("openapi.yaml is a valid OpenAPI 3.1 document (swagger-parser)", async () => {
  const api = await SwaggerParser.validate(structuredClone(openapi));
  assert.equal(api.openapi, "3.1.0");
  assert.ok(Object.keys(api.paths).length >= 10);
});

test("asyncapi.yaml is a valid AsyncAPI 3.0 document (@asyncapi/parser, no warnings or errors)", async () => {
  const { document, diagnostics } = await new Parser().parse(JSON.stringify(asyncapi));
  const serious = diagnostics.filter((d) => d.severity <= 1);
  assert.deepEqual(serious.map((d) => `${d.code}: ${d.message} at ${d.path.join(".")}`), []);
  assert.ok(document, "parsed");
  assert.equal(document.version(), "3.0.0");
  const names = document.messages().all().map((m) => m.name());
  for (const type of ["connection_init", "connection_ack", "ping", "pong", "subscribe", "next", "error", "complete"]) {
    assert.ok(names.includes(type), `message ${type} described`);
  }
});

test("the worker serves both documents as they are in schema/", async () => {
  for (const [path, doc] of [["/openapi.json", openapi], ["/asyncapi.json", asyncapi]]) {
    const res = await request(w.base, "GET", path);
    assert.equal(res.status, 200);
    assert.match(res.headers["content-type"], /^application\/json/);
    assert.equal(res.headers["access-control-allow-origin"], "*");
    assert.deepEqual(res.json, doc, `${path} is schema/${path.slice(1).replace(".json", ".yaml")}`);
  }
});

/** A documented path with its parameters filled in (a file name that could exist). */
const concrete = (template) => template.replace("{chainCode}", "TTE").replace("{file}", "playground-0000.js").replace("{document}", "protocol.md");

test("every documented path answers another method with 405 and the documented Allow", async () => {
  for (const template of Object.keys(openapi.paths)) {
    const res = await request(w.base, "DELETE", concrete(template));
    assert.equal(res.status, 405, template);
  }
  const unknown = await request(w.base, "GET", "/no/such/route");
  assert.equal(unknown.status, 404);
  const big = await request(w.base, "GET", "/healthz", { headers: { "x-filler": "a".repeat(9000) } });
  assert.equal(big.status, 431);
});

const operations = () => Object.entries(openapi.paths).flatMap(([template, item]) =>
  ["get", "post"].filter((m) => item[m]).map((m) => [m.toUpperCase(), concrete(template)]));

/** Served before the configuration is read: the specs, and the pages with their files. */
const isStatic = (p) => p === "/openapi.json" || p === "/asyncapi.json" || p === "/playground" || p === "/dashboard" || p.startsWith("/assets/");

test("every documented operation answers 431 to oversized headers, and 500 naming the entry to a broken configuration", async () => {
  for (const [method, p] of operations()) {
    const res = await request(w.base, method, p, { headers: { "x-filler": "a".repeat(9000) } });
    assert.equal(res.status, 431, `${method} ${p}`);
  }
  const broken = structuredClone(demoConfig);
  broken.chains[0].properties = [];
  const bad = await startWorker({ config: broken });
  try {
    for (const [method, p] of operations()) {
      const res = await request(bad.base, method, p);
      // This worker has no pages built in (no ASSETS binding): 200 for a spec, 503 or 404
      // for a page or a file, as documented, and never the configuration's 500.
      if (isStatic(p)) assert.notEqual(res.status, 500, `${p} is static`);
      else assert.equal(res.status, 500, `${method} ${p}`);
    }
  } finally {
    await bad.dispose();
  }
});

test("statuses of the HTTP routes that other suites do not reach match their schemas", async () => {
  const admin = await tokenFor(w.base, DEMO.ops, { scope: "urn:pms:admin" });
  const vendor = await tokenFor(w.base, DEMO.app1);
  const publisher = await tokenFor(w.base, DEMO.pms1);
  assert.equal((await publish(w.base, publisher, "TTE", [event("TTE01")])).status, 200);
  assert.equal((await request(w.base, "GET", "/admin/v1/chains/TTE", { headers: { authorization: `Bearer ${admin}` } })).status, 200);
  assert.equal((await request(w.base, "GET", "/admin/v1/chains/OTH", { headers: { authorization: `Bearer ${admin}` } })).status, 403);
  assert.equal((await request(w.base, "GET", "/admin/v1/chains/TTE", { headers: { authorization: `Bearer ${vendor}` } })).status, 403);
  assert.equal((await request(w.base, "POST", "/admin/v1/chains/TTE/restart")).status, 401);
  assert.equal((await request(w.base, "GET", "/events/v1/chains/TTE/events?from=1", { headers: { authorization: `Bearer ${vendor}` } })).status, 200);
  assert.equal((await request(w.base, "GET", "/subscriptions?key=QVBQS0VZMDAx")).status, 426);
  assert.equal((await request(w.base, "GET", "/subscriptions?key=nope")).status, 400);
  assert.equal((await request(w.base, "GET", "/.well-known/jwks.json")).status, 200);
  assert.equal((await request(w.base, "HEAD", "/healthz")).status, 200);
  assert.equal((await request(w.base, "GET", "/README.md")).status, 200);
});

test("the checker itself refuses drift: an undocumented status, a wrong body, an unknown message or close code", () => {
  const json = (status, body, headers = {}) => ({ status, headers: { "content-type": "application/json", ...headers }, json: body, text: JSON.stringify(body) });
  assert.deepEqual(httpProblems("POST", "/events/v1/chains/TTE/events", json(200, { offsets: ["1"] })), []);
  assert.match(httpProblems("POST", "/events/v1/chains/TTE/events", json(200, { offsets: [1] }))[0], /must be string/);
  assert.match(httpProblems("POST", "/events/v1/chains/TTE/events", json(418, {}))[0], /not documented/);
  assert.match(httpProblems("GET", "/oauth/v1/tokens", json(405, { error: "method_not_allowed", message: "" }, { allow: "GET" }))[0], /Allow/);
  assert.match(httpProblems("POST", "/oauth/v1/tokens", json(429, { error: "temporarily_unavailable", error_description: "" }))[0], /Retry-After/);
  assert.match(httpProblems("GET", "/elsewhere", json(200, {}))[0], /undocumented path/);
  assert.deepEqual(messageProblems({ id: "1", type: "next", payload: { data: { newEvent: { metadata: { offset: "1" } } } } }), []);
  assert.match(messageProblems({ id: "1", type: "error", payload: [{ message: "x", extensions: { code: "SOMETHING_NEW" } }] })[0], /allowed values/);
  assert.match(messageProblems({ id: "1", type: "next", payload: { data: {}, extensions: { gap: { requested: 1 } } } })[0], /gap/);
  assert.match(messageProblems({ type: "subscribe", id: "1", payload: { query: "{}" } })[0], /does not list/);
  assert.deepEqual(closeProblems(4413), []);
  assert.match(closeProblems(4999)[0], /not listed/);
});

test("a stream session's messages and close match asyncapi.yaml (the harness's socket checks them)", async () => {
  const vendor = await tokenFor(w.base, DEMO.app1);
  const s = vendorSocket(w.base, vendor);
  await s.acked;
  // ws offers permessage-deflate; the service declines it (wrangler.toml).
  assert.equal(s.ws.extensions, "", "frames are not compressed");
  s.subscribe("q", '{chainCode: "TTE", offset: "1"}', "metadata { offset uniqueEventId } eventName detail { elementName newValue }");
  s.subscribe("bad", '{chainCode: "OTH"}');
  s.send({ id: "help", type: "subscribe", payload: { query: "{ getHelp { overview } }" } });
  s.send({ type: "ping", payload: { from: "test" } });
  const deadline = Date.now() + 5000;
  while (!["next", "error", "complete", "pong"].every((t) => s.messages.some((m) => m.type === t)) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.deepEqual([...new Set(s.messages.map((m) => m.type))].sort(), ["complete", "connection_ack", "error", "next", "pong"]);
  s.send({ type: "connection_init", payload: {} });
  const closed = await s.closed;
  assert.equal(closed.code, 4429);
});
