// What the `pms-events` commands share: flags, credentials, tokens and the HTTP calls of the
// public API (docs/protocol.md: Tokens, Publishing, Pulling). No secret is ever printed: errors name the client id only.
import { readFileSync } from "node:fs";
import path from "node:path";

export const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
export const LOCAL_URL = "http://127.0.0.1:8787";

/**
 * Parses `--name value` and `--flag` arguments against a table of known flags
 * (`{name: "string" | "number" | "boolean"}`); anything else is a usage error.
 */
export function parseFlags(argv, known) {
  const flags = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const name = arg.startsWith("--") ? arg.slice(2) : undefined;
    const kind = name && known[name];
    if (!kind) throw new UsageError(`unknown argument ${arg}`);
    if (kind === "boolean") { flags[name] = true; continue; }
    const value = argv[++i];
    if (value === undefined) throw new UsageError(`--${name} needs a value`);
    if (kind === "number") {
      const n = Number(value);
      if (!Number.isFinite(n) || n < 0) throw new UsageError(`--${name} must be a non-negative number, not ${value}`);
      flags[name] = n;
    } else flags[name] = value;
  }
  return flags;
}

export class UsageError extends Error {}

/** A failure the command reports on one line and exits 1 for (no stack trace). */
export class Fatal extends Error {}

/** Whether a service URL is this machine (where the demo clients are the defaults). */
export const isLoopback = (url) => ["127.0.0.1", "localhost", "[::1]"].includes(new URL(url).hostname);

/** The demo configuration's credentials (docs/operations.md, The demo configuration), the defaults against a local server only. */
export const DEMO_CLIENTS = {
  vendor: { id: "client-app-001", secret: "secret-001", appKey: "APPKEY001", enterprise: "BROWNS" },
  publisher: { id: "pms-core-001", secret: "pms-secret-001", appKey: "PMSKEY001", enterprise: "BROWNS" },
};

/**
 * The client credentials: flags, else `PMS_EVENTS_CLIENT_ID`, `PMS_EVENTS_CLIENT_SECRET`,
 * `PMS_EVENTS_APP_KEY`, `PMS_EVENTS_ENTERPRISE`; against a loopback server, the demo client.
 */
export function credentials(flags, demo) {
  const env = process.env;
  const local = isLoopback(flags.url) ? demo : {};
  const creds = {
    id: flags["client-id"] ?? env.PMS_EVENTS_CLIENT_ID ?? local.id,
    secret: env.PMS_EVENTS_CLIENT_SECRET ?? local.secret,
    appKey: flags["app-key"] ?? env.PMS_EVENTS_APP_KEY ?? local.appKey,
    enterprise: flags.enterprise ?? env.PMS_EVENTS_ENTERPRISE ?? local.enterprise,
  };
  for (const [key, name] of [["id", "PMS_EVENTS_CLIENT_ID"], ["secret", "PMS_EVENTS_CLIENT_SECRET"], ["appKey", "PMS_EVENTS_APP_KEY"], ["enterprise", "PMS_EVENTS_ENTERPRISE"]]) {
    if (!creds[key]) throw new UsageError(`no ${key}: set ${name} (the secret is read from the environment only, never from a flag)`);
  }
  return creds;
}

/** A token cache: asks the token endpoint again 60 s before the token runs out. */
export class Tokens {
  constructor(url, creds, scope) {
    Object.assign(this, { url, creds, scope, token: undefined, expiresAt: 0 });
  }

  async get({ fresh = false } = {}) {
    if (!fresh && this.token && Date.now() < this.expiresAt - 60_000) return this.token;
    const { id, secret, appKey, enterprise } = this.creds;
    const basic = Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString("base64");
    const res = await fetch(`${this.url}/oauth/v1/tokens`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", authorization: `Basic ${basic}`, "x-app-key": appKey, enterpriseId: enterprise },
      body: `grant_type=client_credentials&scope=${encodeURIComponent(this.scope)}`,
    });
    const body = await res.json().catch(() => ({}));
    if (res.status !== 200) {
      const why = `${res.status} ${body.error ?? ""}: ${body.error_description ?? body.message ?? ""}`;
      // A refused login will be refused again; a lockout or an outage may pass.
      if (res.status === 400 || res.status === 401) throw new Fatal(`the token endpoint refused client ${id}: ${why}`);
      throw new Error(`token endpoint: ${why}`);
    }
    this.token = body.access_token;
    this.expiresAt = Date.now() + body.expires_in * 1000;
    return this.token;
  }

  /** The grants in the token's claims (not verified here: the service verifies them). */
  async claims() {
    const token = await this.get();
    return JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString());
  }
}

/** GET/POST a JSON route with the bearer token; answers `{status, body}`. */
export async function callJson(url, token, method, pathname, body) {
  const res = await fetch(url + pathname, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = { message: text.slice(0, 200) }; }
  return { status: res.status, body: json };
}

/** The properties of a chain as the local demo configuration lists them (for local runs). */
export function demoProperties(chain) {
  const config = JSON.parse(readFileSync(path.join(root, "config/demo.json"), "utf8"));
  return config.chains.find((c) => c.code === chain)?.properties;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Exponential backoff with full jitter: attempt 0 → up to `base`, capped at `cap`. */
export function backoff(attempt, base = 500, cap = 30_000) {
  return Math.round(Math.random() * Math.min(cap, base * 2 ** attempt));
}
