// The publish floor: what storing a batch costs in this runtime when nothing else is done.
// A plain JavaScript Worker forwards `POST /floor/{chain}` to one SQLite Durable Object per
// chain, which parses the JSON array and inserts the rows the chain object inserts: the same
// `events` table and indexes, the same columns (a UUIDv7 id and its index key, the stored
// body with the id in `metadata`), the same rows per statement. (Like the service, it keeps
// no head row: the head is the newest row's offset.) No token, no validation, no duplicate
// lookup, no fan-out, no wasm. The plain floor takes no transaction either; the atomic one
// (`?atomic`) stores each batch all or nothing in `transactionSync`, as the service must. The bench runs it
// in the same workerd, with the same options, next to the service's publish rows
// (scenario 1a), so their ratio is what the service's own work costs on top of storage.

import { Miniflare } from "miniflare";
import { workerScript } from "../harness.mjs";

// Kept equal to src/edge/chain_object/sql.rs (`ChainStorage::create_schema`, `insert_all`): the floor is
// only a floor while it writes what the service writes.
const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS events (
     seq INTEGER PRIMARY KEY,
     id_key INTEGER NOT NULL,
     unique_event_id TEXT NOT NULL,
     hotel_id TEXT NOT NULL,
     module_name TEXT NOT NULL,
     event_name TEXT NOT NULL,
     stored_at INTEGER NOT NULL,
     body TEXT NOT NULL
   )`,
  "CREATE INDEX IF NOT EXISTS events_stored_at ON events(stored_at)",
  "CREATE INDEX IF NOT EXISTS events_id_key ON events(id_key)",
  "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
];
/** Rows per INSERT: the service binds at most 100 parameters a statement, 8 a row. */
const ROWS_PER_STATEMENT = Math.floor(100 / 8);

/**
 * The floor's storage, as JavaScript source shared by the floors that store (this one and
 * stream-floor.mjs): `StoringObject`, a Durable Object with the service's schema whose
 * `store(events, offsets, atomic)` inserts `events` after its head as the service's rows and
 * pushes each new offset to `offsets`.
 */
export const STORE_SOURCE = `
import { DurableObject } from "cloudflare:workers";

const SCHEMA = ${JSON.stringify(SCHEMA)};
const ROWS_PER_STATEMENT = ${ROWS_PER_STATEMENT};
const hex = (n, width) => n.toString(16).padStart(width, "0");

/** A UUIDv7 and the service's index key for it (event_id::index_key: 37 bits of time in
 *  16 ms steps, then the last 15 random bits). */
function uuidV7(millis) {
  const r = crypto.getRandomValues(new Uint16Array(6));
  const time = hex(millis, 12);
  const id = time.slice(0, 8) + "-" + time.slice(8) + "-7" + hex(r[0] & 0xfff, 3) + "-" +
    hex((r[1] & 0x3fff) | 0x8000, 4) + "-" + hex(r[2], 4) + hex(r[3], 4) + hex(r[4], 4);
  const key = (Math.floor(millis / 16) % 2 ** 37) * 2 ** 15 + (r[4] & 0x7fff);
  return [id, key];
}

function insertRows(sql, head, events, offsets) {
  const storedAt = Date.now();
  for (let i = 0; i < events.length; i += ROWS_PER_STATEMENT) {
    const chunk = events.slice(i, i + ROWS_PER_STATEMENT);
    const bindings = [];
    for (const e of chunk) {
      const [id, key] = uuidV7(storedAt);
      const seq = ++head;
      const { uniqueEventId, ...rest } = e;
      const body = JSON.stringify({ ...rest, metadata: { uniqueEventId: id } });
      bindings.push(seq, key, id, e.hotelId, e.moduleName, e.eventName, storedAt, body);
      offsets.push(String(seq));
    }
    const values = new Array(chunk.length).fill("(?, ?, ?, ?, ?, ?, ?, ?)").join(", ");
    sql.exec("INSERT INTO events (seq, id_key, unique_event_id, hotel_id, module_name, event_name, stored_at, body) VALUES " + values, ...bindings);
  }
  return head;
}

class StoringObject extends DurableObject {
  constructor(ctx, env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    for (const statement of SCHEMA) this.sql.exec(statement);
    this.head = this.sql.exec("SELECT COALESCE(MAX(seq), 0) AS head FROM events").one().head;
  }

  /** atomic: all or nothing, as the service's append (rolled back if any statement throws). */
  store(events, offsets, atomic) {
    const insert = () => { this.head = insertRows(this.sql, this.head, events, offsets); };
    if (!atomic) return insert();
    const head = this.head;
    try { this.ctx.storage.transactionSync(insert); } catch (e) { this.head = head; throw e; }
  }
}
`;

const FLOOR_SCRIPT = `
${STORE_SOURCE}
export class InsertFloor extends StoringObject {
  async fetch(request) {
    if (request.method === "GET") {
      const retained = this.sql.exec("SELECT COUNT(*) AS n FROM events").one().n;
      return Response.json({ head: this.head, retained });
    }
    const events = await request.json();
    const offsets = [];
    this.store(events, offsets, new URL(request.url).searchParams.has("atomic"));
    return Response.json({ offsets });
  }
}

export default {
  async fetch(request, env) {
    const chain = /^\\/floor\\/([A-Z0-9]{1,20})$/.exec(new URL(request.url).pathname)?.[1];
    if (!chain || !["GET", "POST"].includes(request.method)) return new Response("not found", { status: 404 });
    return env.FLOOR.get(env.FLOOR.idFromName(chain)).fetch("https://floor.internal/append" + new URL(request.url).search, {
      method: request.method,
      body: request.method === "POST" ? request.body : undefined,
    });
  },
};
`;

/** The floor's publish path for a chain; `atomic`: each batch in one transaction. */
export const floorPath = (chain, { atomic = false } = {}) => `/floor/${chain}${atomic ? "?atomic" : ""}`;

/**
 * Starts the floor worker with the service's compatibility settings. Options: direct (a
 * socket straight to the worker, as startWorker's), handleRuntimeStdio, miniflare (more
 * Miniflare options).
 */
export function startFloor(options = {}) {
  return startFloorWorker(FLOOR_SCRIPT, { FLOOR: "InsertFloor" }, options);
}

/**
 * Starts a floor's script (`objects`: binding name to class name, each a SQLite Durable
 * Object) on its own workerd with the service's compatibility settings; the options as
 * startFloor's.
 */
export async function startFloorWorker(script, objects, { direct = false, handleRuntimeStdio, miniflare = {} } = {}) {
  const mf = new Miniflare({
    modules: [{ type: "ESModule", path: "floor.mjs", contents: script }],
    compatibilityDate: workerScript.compatibilityDate,
    compatibilityFlags: workerScript.compatibilityFlags,
    durableObjects: Object.fromEntries(Object.entries(objects).map(([binding, className]) => [binding, { className, useSQLite: true }])),
    durableObjectsPersist: false,
    host: "127.0.0.1",
    port: 0,
    ...(direct ? { unsafeDirectSockets: [{ host: "127.0.0.1", port: 0 }] } : {}),
    ...(handleRuntimeStdio ? { handleRuntimeStdio } : {}),
    ...miniflare, // e.g. `inspectorPort` for the CPU profiler (profile.mjs --floor=1)
  });
  const url = direct ? (await mf.ready, await mf.unsafeGetDirectURL()) : await mf.ready;
  return {
    mf,
    base: url.href.replace(/\/$/, ""),
    async dispose() {
      await Promise.race([mf.dispose(), new Promise((r) => setTimeout(r, 5000))]);
    },
  };
}
