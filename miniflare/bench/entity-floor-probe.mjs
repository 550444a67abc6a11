// Probe: what the entity state's SQL costs on its own, in JavaScript, beside the publish floor.
import http from "node:http";
import { STORE_SOURCE, startFloorWorker } from "./publish-floor.mjs";
import { event } from "../harness.mjs";

const SCRIPT = `
${STORE_SOURCE}
const ENTITY_SCHEMA = [
  "CREATE TABLE IF NOT EXISTS entity_states (key TEXT PRIMARY KEY, state TEXT NOT NULL) WITHOUT ROWID",
  "CREATE TABLE IF NOT EXISTS entity_totals (id INTEGER PRIMARY KEY CHECK (id = 1), entities INTEGER NOT NULL, bytes INTEGER NOT NULL)",
  "INSERT OR IGNORE INTO entity_totals (id, entities, bytes) VALUES (1, 0, 0)",
  "CREATE TABLE IF NOT EXISTS patches (seq INTEGER PRIMARY KEY, key TEXT NOT NULL, patch TEXT NOT NULL)",
];
const TRIGGERS = [
  "CREATE TRIGGER IF NOT EXISTS entity_added AFTER INSERT ON entity_states BEGIN UPDATE entity_totals SET entities = entities + 1, bytes = bytes + length(CAST(new.state AS BLOB)) WHERE id = 1; END",
  "CREATE TRIGGER IF NOT EXISTS entity_changed AFTER UPDATE OF state ON entity_states BEGIN UPDATE entity_totals SET bytes = bytes + length(CAST(new.state AS BLOB)) - length(CAST(old.state AS BLOB)) WHERE id = 1; END",
];
export class Probe extends StoringObject {
  async fetch(request) {
    const v = new URL(request.url).searchParams.get("v");
    if (!this.ready) { for (const s of ENTITY_SCHEMA) this.sql.exec(s); if (v.includes("trig")) for (const s of TRIGGERS) this.sql.exec(s); this.ready = true; }
    const events = await request.json();
    const offsets = [];
    this.ctx.storage.transactionSync(() => {
      this.head = insertRows(this.sql, this.head, events, offsets);
      if (v === "none") return;
      for (let i = 0; i < events.length; i += 50) {
        const chunk = events.slice(i, i + 50);
        const b = [];
        for (const e of chunk) {
          b.push(v === "seq" ? String(this.n = (this.n ?? 0) + 1).padStart(12, "0") : e.hotelId + "\\x1f" + e.moduleName + "\\x1f" + e.primaryKey);
          b.push(JSON.stringify({ hotelId: e.hotelId, moduleName: e.moduleName, primaryKey: e.primaryKey, lastOffset: "1", lastEventName: e.eventName, lastTimestamp: e.timestamp, lastAt: Date.now(), elements: { RoomNumber: "101" } }));
        }
        const values = new Array(chunk.length).fill("(?, ?)").join(", ");
        const conflict = v.includes("json") ? " ON CONFLICT(key) DO UPDATE SET state = json_patch(state, excluded.state) WHERE length(entity_states.state) < 262144" : " ON CONFLICT(key) DO UPDATE SET state = excluded.state";
        if (v === "append") this.sql.exec("INSERT INTO patches (key, patch) VALUES " + values, ...b);
        else this.sql.exec("INSERT INTO entity_states (key, state) VALUES " + values + conflict, ...b);
      }
    });
    return Response.json({ offsets });
  }
}
export default { async fetch(request, env) { return env.P.get(env.P.idFromName("TTE")).fetch(request); } };
`;

function post(base, agent, path, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(base + path, { method: "POST", agent, headers: { "content-type": "application/json" } }, (res) => { res.resume(); res.on("end", () => resolve(res.statusCode)); });
    req.on("error", reject); req.end(body);
  });
}

for (const v of (process.argv[2] ?? "none,plain,seq,append,none").split(",")) {
  const w = await startFloorWorker(SCRIPT, { P: "Probe" }, { direct: true });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  let n = 0; const t0 = Date.now();
  await Promise.all(Array.from({ length: 4 }, async () => {
    while (Date.now() - t0 < 6000) {
      const body = JSON.stringify(Array.from({ length: 100 }, (_, i) => event(i % 2 ? "TTE02" : "TTE01")));
      const s = await post(w.base, agent, `/x?v=${v}`, body); if (s !== 200) throw new Error(String(s)); n += 100;
    }
  }));
  console.log(v, Math.round(n / ((Date.now() - t0) / 1000)), "events/s");
  agent.destroy(); await w.dispose();
}
