// The one test-app helper of the end-to-end suites: the built worker on real workerd via
// Miniflare, the demo configuration, a fresh signing key, and small HTTP helpers.
import { Miniflare, Response } from "miniflare";
import { spawn } from "node:child_process";
import http from "node:http";
import net from "node:net";
import WebSocket from "ws";
import { assertHttpConforms, messageProblems, closeProblems } from "./spec-check.mjs";
import { createHash, randomBytes, generateKeyPairSync } from "node:crypto";
import { readFileSync, mkdtempSync, appendFileSync, existsSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
export const demoConfig = JSON.parse(readFileSync(path.join(root, "config/demo.json"), "utf8"));

export const DEMO = {
  app1: { id: "client-app-001", secret: "secret-001", appKey: "APPKEY001", enterprise: "BROWNS" },
  app2: { id: "client-app-002", secret: "secret-002", appKey: "APPKEY002", enterprise: "BROWNS" },
  app3: { id: "client-app-003", secret: "secret-003", appKey: "APPKEY003", enterprise: "OTHER" },
  pms1: { id: "pms-core-001", secret: "pms-secret-001", appKey: "PMSKEY001", enterprise: "BROWNS" },
  pms2: { id: "pms-core-002", secret: "pms-secret-002", appKey: "PMSKEY002", enterprise: "OTHER" },
  ops: { id: "ops-admin", secret: "ops-secret", appKey: "OPSKEY001", enterprise: "BROWNS" },
};

// The runtime settings of wrangler.toml's top level (the deployed ones), read rather than
// repeated, so the suite runs what is deployed.
const wranglerToml = readFileSync(path.join(root, "wrangler.toml"), "utf8").split(/^\[/m)[0];
const tomlValue = (key) => JSON.parse(new RegExp(`^${key}\\s*=\\s*(.+)$`, "m").exec(wranglerToml)[1]);

/**
 * The build the suites run: `build/`, or another checkout's (`E2E_BUILD_DIR=<its build/>`, to
 * show that a test fails on an earlier build).
 */
const buildDir = process.env.E2E_BUILD_DIR ? path.resolve(process.env.E2E_BUILD_DIR) : undefined;

/** The built worker as Miniflare loads it (for tests that assemble several workers). */
export const workerScript = {
  modules: true,
  scriptPath: path.join(buildDir ?? path.join(root, "build"), "worker/shim.mjs"),
  ...(buildDir ? { modulesRoot: path.dirname(buildDir) } : {}),
  modulesRules: [
    { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
    { type: "CompiledWasm", include: ["**/*.wasm"] },
  ],
  compatibilityDate: tomlValue("compatibility_date"),
  compatibilityFlags: tomlValue("compatibility_flags"),
};

/**
 * A fresh Standard Webhooks secret (`whsec_…`). Like signing keys, recorded for the
 * log-hygiene check, which proves that no log line carries it.
 */
export function newWebhookSecret() {
  const key = randomBytes(32).toString("base64");
  if (process.env.E2E_LOG_FILE) appendFileSync(process.env.E2E_LOG_FILE + ".keys", key + "\n");
  return "whsec_" + key;
}

export function newSigningKeys(kid = "test-key-1") {
  return [{ kid, seed: randomBytes(32).toString("base64url") }];
}

const PAGE_TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png", ".woff2": "font/woff2" };

/** A file of build/pages, as the ASSETS binding answers (`direct` with `pages`). */
function servePagesFile(request) {
  const dir = path.join(root, "build/pages");
  const asked = path.join(dir, path.normalize(decodeURIComponent(new URL(request.url).pathname)));
  // As the asset server's `auto-trailing-slash`: `/playground` is `playground.html`.
  const file = [asked, `${asked}.html`].find((f) => f.startsWith(dir + path.sep) && existsSync(f) && statSync(f).isFile());
  if (!file) return new Response("not found", { status: 404 });
  const body = readFileSync(file);
  const type = PAGE_TYPES[path.extname(file)] ?? "application/octet-stream";
  return new Response(body, { headers: { "content-type": type, etag: `"${createHash("sha1").update(body).digest("hex")}"` } });
}

/** Starts the worker. Options: config (object), signingKeys (array), persist (dir), logs (array to
 *  collect stdout lines, or anything with a `push`), pages (serve build/pages), direct (a socket
 *  straight to the worker, on `directPort` or any free port). */
export async function startWorker(opts = {}) {
  const config = opts.config ?? demoConfig;
  const signingKeys = opts.signingKeys ?? newSigningKeys();
  const logs = opts.logs;
  if (process.env.E2E_LOG_FILE) {
    appendFileSync(process.env.E2E_LOG_FILE + ".keys", signingKeys.map((k) => k.seed).join("\n") + "\n");
  }
  const mf = new Miniflare({
    ...workerScript,
    // A build of another commit (its build/ folder), for a benchmark comparing the two.
    ...(opts.buildDir
      ? { scriptPath: path.join(opts.buildDir, "worker/shim.mjs"), modulesRoot: path.dirname(opts.buildDir) }
      : {}),
    durableObjects: {
      CHAIN_LOG: { className: "ChainLog", useSQLite: true },
      LOGIN_GUARD: { className: "LoginGuardObject", useSQLite: true },
      // Builds of commits before the service tally have no such class.
      ...(opts.buildDir ? {} : { SERVICE_TALLY: { className: "ServiceTallyObject", useSQLite: true } }),
    },
    bindings: {
      PMS_CONFIG: typeof config === "string" ? config : JSON.stringify(config),
      SIGNING_KEYS: JSON.stringify(signingKeys),
    },
    durableObjectsPersist: opts.persist ?? false,
    // `pages`: the built pages as static assets, the Worker run first as in wrangler.toml.
    // With `direct`, the ASSETS binding is a function here instead: miniflare's assets put a
    // router worker in front of the Worker, which the direct socket would then go through.
    ...(opts.pages && opts.direct
      ? { serviceBindings: { ASSETS: servePagesFile } }
      : opts.pages
      ? {
          assets: {
            directory: path.join(root, "build/pages"),
            binding: "ASSETS",
            routerConfig: { has_user_worker: true, invoke_user_worker_ahead_of_assets: true },
          },
        }
      : {}),
    host: "127.0.0.1",
    port: 0,
    // `direct`: a socket straight to the worker, without the request router miniflare puts
    // in front of it for local development (it does not exist in a deployment).
    ...(opts.direct ? { unsafeDirectSockets: [{ host: "127.0.0.1", port: opts.directPort ?? 0 }] } : {}),
    // e.g. `inspectorPort` for the CPU profiler (miniflare/bench/profile.mjs)
    ...opts.miniflare,
    handleRuntimeStdio(stdout, stderr) {
      for (const stream of [stdout, stderr]) {
        let buf = "";
        stream.on("data", (chunk) => {
          buf += chunk.toString();
          let i;
          while ((i = buf.indexOf("\n")) >= 0) {
            const line = buf.slice(0, i);
            buf = buf.slice(i + 1);
            if (logs) logs.push(line);
            else if (process.env.E2E_VERBOSE) console.error("[workerd]", line);
            // The whole suite's runtime output, for the log-hygiene check (scripts/test.sh).
            if (process.env.E2E_LOG_FILE) appendFileSync(process.env.E2E_LOG_FILE, line + "\n");
          }
        });
      }
    },
  });
  const url = opts.direct ? (await mf.ready, await mf.unsafeGetDirectURL()) : await mf.ready;
  const base = url.href.replace(/\/$/, "");
  return {
    mf,
    base,
    signingKeys,
    async dispose() {
      await Promise.race([mf.dispose(), new Promise((r) => setTimeout(r, 5000))]);
    },
  };
}

export function tempDir(prefix = "pms-e2e-") {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

/** Reads an http.IncomingMessage whole: status, headers, text, and JSON when it parses. */
export function readResponse(res) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    res.on("data", (c) => chunks.push(c));
    res.on("error", reject);
    res.on("end", () => {
      const text = Buffer.concat(chunks).toString();
      let json;
      try { json = JSON.parse(text); } catch { json = undefined; }
      resolve({ status: res.statusCode, headers: res.headers, text, json });
    });
  });
}

/**
 * A plain HTTP request with node:http (Node's fetch drops POSTs under heavy socket load).
 * Every answer is checked against schema/openapi.yaml: an undocumented status, header or
 * body shape rejects the request (`unchecked: true` for a test that breaks the protocol).
 */
export function request(base, method, pathname, { headers = {}, body, unchecked = false } = {}) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : typeof body === "string" || Buffer.isBuffer(body) ? body : JSON.stringify(body);
    const req = http.request(base + pathname, { method, headers: { ...(payload !== undefined ? { "content-length": Buffer.byteLength(payload) } : {}), ...headers }, agent }, (res) => {
      readResponse(res).then((r) => {
        if (!unchecked) assertHttpConforms(method, pathname, r);
        return r;
      }).then(resolve, reject);
    });
    req.on("error", reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

export function basic(id, secret) {
  return "Basic " + Buffer.from(`${id}:${secret}`).toString("base64");
}

/** Asks the token endpoint for a token of a demo client. */
export async function tokenFor(base, client, { scope } = {}) {
  const res = await request(base, "POST", "/oauth/v1/tokens", {
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      authorization: basic(client.id, client.secret),
      "x-app-key": client.appKey,
      enterpriseId: client.enterprise,
    },
    body: "grant_type=client_credentials" + (scope ? `&scope=${encodeURIComponent(scope)}` : ""),
  });
  if (res.status !== 200) throw new Error(`token for ${client.id}: ${res.status} ${res.text}`);
  return res.json.access_token;
}

export function event(hotelId, extra = {}) {
  return {
    moduleName: "Reservation",
    eventName: "CHECKIN",
    primaryKey: "RES-" + Math.floor(Math.random() * 1e9),
    timestamp: new Date().toISOString(),
    hotelId,
    detail: [{ elementName: "RoomNumber", elementType: "String", newValue: "101", oldValue: null, elementSequence: 1 }],
    ...extra,
  };
}

export async function publish(base, token, chain, body, headers = {}) {
  return request(base, "POST", `/events/v1/chains/${chain}/events`, {
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...headers },
    body,
  });
}

export function decodeJwt(token) {
  const [h, p, s] = token.split(".");
  return {
    header: JSON.parse(Buffer.from(h, "base64url").toString()),
    payload: JSON.parse(Buffer.from(p, "base64url").toString()),
    signingInput: `${h}.${p}`,
    signature: Buffer.from(s, "base64url"),
  };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `cond` (sync or async) every 10 ms until it returns a truthy value (returned) or
 * `ms` pass (throws).
 */
export async function until(cond, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** The audit lines (docs/protocol.md, Audit log) among the runtime's output lines, parsed. */
export function auditLines(logs) {
  return logs
    .map((l) => { try { return JSON.parse(l.slice(l.indexOf("{"))); } catch { return null; } })
    .filter((o) => o && typeof o.audit === "string");
}

/**
 * A `ws` WebSocket whose every received message and close code is checked against
 * schema/asyncapi.yaml (a drift throws, failing the test that saw it). The suites use it in
 * place of `ws`, also as graphql-ws's `webSocketImpl`.
 */
export class CheckedWebSocket extends WebSocket {
  constructor(...args) {
    super(...args);
    this.on("message", (data, isBinary) => {
      let message;
      try { message = JSON.parse(data.toString()); } catch { message = undefined; }
      const problems = isBinary || message === undefined ? ["the server sent a frame that is not a JSON text"] : messageProblems(message);
      if (problems.length) throw new Error("stream message does not match schema/asyncapi.yaml:\n  " + problems.join("\n  "));
    });
    this.on("close", (code) => {
      const problems = closeProblems(code, { clientCode: this.clientCloseCode });
      if (problems.length) throw new Error(problems.join("; "));
    });
  }

  close(code, reason) {
    this.clientCloseCode = code ?? 1005;
    return super.close(code, reason);
  }
}

/**
 * A raw graphql-transport-ws connection as a vendor opens it: every message kept, pings
 * answered with their payload (as graphql-ws clients do), `acked` once the init is accepted
 * and `closed` with the close code and reason.
 */
export function vendorSocket(base, token, { appKey = "APPKEY001", onMessage } = {}) {
  const key = Buffer.from(appKey).toString("base64");
  const ws = new CheckedWebSocket(`${base.replace("http", "ws")}/subscriptions?key=${key}`, "graphql-transport-ws");
  const state = { ws, messages: [] };
  state.closed = new Promise((resolve) => ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })));
  state.acked = new Promise((resolve, reject) => {
    ws.on("message", (data) => {
      const m = JSON.parse(data.toString());
      state.messages.push(m);
      if (m.type === "ping") ws.send(JSON.stringify(m.payload ? { type: "pong", payload: m.payload } : { type: "pong" }));
      if (m.type === "connection_ack") resolve();
      onMessage?.(m);
    });
    ws.on("error", reject);
    ws.on("unexpected-response", (_req, res) => readResponse(res).then((r) => reject(Object.assign(new Error(`upgrade ${r.status}`), { response: r }))));
  });
  ws.on("open", () => ws.send(JSON.stringify({ type: "connection_init", payload: { Authorization: `Bearer ${token}`, "x-app-key": appKey } })));
  state.send = (m) => ws.send(JSON.stringify(m));
  state.subscribe = (id, input, selection = "metadata { offset }") =>
    state.send({ id, type: "subscribe", payload: { query: `subscription { newEvent(input: ${input}) { ${selection} } }` } });
  /** The offsets of the `next` frames of `id` so far. */
  state.offsets = (id) => state.messages.filter((m) => m.id === id && m.type === "next").map((m) => Number(m.payload.data.newEvent.metadata.offset));
  return state;
}

/** Runs the command line (bin/pms-events.mjs); `lines` fills with its stdout lines as they
 *  come, `exited` resolves with its exit code and signal. */
export function cli(args) {
  const child = spawn(process.execPath, [path.join(root, "bin/pms-events.mjs"), ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const run = { child, lines: [], stderr: "" };
  let buf = "";
  child.stdout.on("data", (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) { run.lines.push(buf.slice(0, i)); buf = buf.slice(i + 1); }
  });
  child.stderr.on("data", (d) => { run.stderr += d; });
  run.exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  return run;
}

/** A TCP port free on 127.0.0.1 a moment ago. */
export function freePort() {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}
