// The current state of a chain's entities (docs/protocol.md, Current state) on workerd: a
// vendor that starts cold bootstraps with `pms-events tail --bootstrap` while `simulate`
// publishes a hotel day across a chain restart, and ends with exactly the state of a vendor
// that streamed from offset 1 and of a fold of the pull API's whole history, computed here.
// The state outlives event retention, is walked consistently, is isolated by grants, answers
// the same over the socket, and replays start from a time.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { createClient } from "graphql-ws";
import WebSocket from "ws";
import { startWorker, tokenFor, publish, event, request, tempDir, until, sleep, DEMO, demoConfig, cli } from "./harness.mjs";


const keyOf = (e) => `${e.hotelId}|${e.moduleName}|${e.primaryKey}`;

/** The fold the service documents, written here on its own: each detail entry sets its element
 *  to newValue, or removes it when newValue is null; the entity keeps its last event's offset,
 *  name and timestamp. */
function foldInto(state, e) {
  const s = state.get(keyOf(e)) ?? { hotelId: e.hotelId, moduleName: e.moduleName, primaryKey: e.primaryKey, elements: {} };
  for (const d of e.detail ?? []) {
    if (d?.elementName == null) continue;
    if (d.newValue == null) delete s.elements[d.elementName];
    else s.elements[d.elementName] = d.newValue;
  }
  Object.assign(s, { lastOffset: e.metadata.offset, lastEventName: e.eventName, lastTimestamp: e.timestamp });
  state.set(keyOf(e), s);
}

/** An entity as the state API serves it. */
const served = (s) => ({
  hotelId: s.hotelId, moduleName: s.moduleName, primaryKey: s.primaryKey, lastOffset: s.lastOffset,
  lastEventName: s.lastEventName, lastTimestamp: s.lastTimestamp,
  elements: Object.keys(s.elements).sort().map((n) => ({ elementName: n, value: s.elements[n] })),
});

const fold = (events) => {
  const state = new Map();
  for (const e of events) foldInto(state, e);
  return new Map([...state].map(([k, s]) => [k, served(s)]));
};

const auth = (token) => ({ headers: { authorization: `Bearer ${token}` } });

/** Waits until the chain's state has folded every event (it follows publishes within a few
 *  seconds; docs/protocol.md, Current state). */
async function folded(base, chain = "TTE") {
  const admin = await tokenFor(base, DEMO.ops, { scope: "urn:pms:admin" });
  await until(async () => {
    const stats = (await request(base, "GET", `/admin/v1/chains/${chain}`, auth(admin))).json;
    return stats.stateThrough === stats.headOffset;
  }, 20_000, "the state to fold every event");
}

/** The whole history by the pull API, page by page. */
async function history(base, token, chain = "TTE") {
  const events = [];
  for (let from = "1"; ;) {
    const res = await request(base, "GET", `/events/v1/chains/${chain}/events?from=${from}&limit=1000`, auth(token));
    assert.equal(res.status, 200, res.text);
    events.push(...res.json.events);
    if (BigInt(res.json.next) > BigInt(res.json.head)) return events;
    from = res.json.next;
  }
}

/** Every page of a state walk. */
async function walk(base, token, query = "", chain = "TTE") {
  const pages = [];
  for (let after; ;) {
    const q = new URLSearchParams(query);
    if (after) q.set("after", after);
    const res = await request(base, "GET", `/events/v1/chains/${chain}/state?${q}`, auth(token));
    assert.equal(res.status, 200, res.text);
    pages.push(res.json);
    if (res.json.next === null) return { asOf: pages[0].asOfOffset, pages, entities: pages.flatMap((p) => p.entities) };
    after = res.json.next;
  }
}

test("a vendor bootstrapped mid-day ends with the state of one that streamed from offset 1 and of the folded history", { timeout: 180_000 }, async () => {
  const w = await startWorker();
  try {
    const [admin, app1] = await Promise.all([tokenFor(w.base, DEMO.ops, { scope: "urn:pms:admin" }), tokenFor(w.base, DEMO.app1)]);
    const fromStart = cli(["tail", "--url", w.base, "--chain", "TTE", "--from", "1"]);
    const sim = cli(["simulate", "--url", w.base, "--chain", "TTE", "--rate", "150", "--duration", "12", "--seed", "state-e2e"]);
    await until(() => fromStart.lines.length >= 300, 30_000, `a third of the day (${sim.stderr.slice(-200)})`);
    // A deploy in the middle of the day restarts the chain's object.
    assert.equal((await request(w.base, "POST", "/admin/v1/chains/TTE/restart", auth(admin))).status, 202);
    await until(() => fromStart.lines.length >= 700, 30_000, "more of the day after the restart");
    // The state follows the log within a few seconds: once it is past offset 700, a new vendor
    // starts cold while the PMS keeps publishing.
    await until(async () => Number((await request(w.base, "GET", "/admin/v1/chains/TTE", auth(admin))).json.stateThrough) > 700,
      20_000, "the state past offset 700");
    const file = path.join(tempDir("pms-state-"), "state.jsonl");
    const cold = cli(["tail", "--url", w.base, "--chain", "TTE", "--bootstrap", file]);
    const simulated = await sim.exited;
    assert.equal(simulated.code, 0, sim.stderr);
    const { lastOffset } = JSON.parse(sim.lines.at(-1));
    await until(() => fromStart.lines.length >= Number(lastOffset), 60_000, "the vendor from offset 1 at the head");
    const asOf = Number(/entities as of offset (\d+)/.exec(cold.stderr)?.[1]);
    assert.ok(asOf > 700 && asOf < Number(lastOffset), `bootstrapped mid-day (as of ${asOf}, head ${lastOffset}): ${cold.stderr}`);
    await until(() => cold.lines.length >= Number(lastOffset) - asOf, 60_000, "the bootstrapped vendor at the head");
    await sleep(300);
    for (const t of [fromStart, cold]) t.child.kill("SIGTERM");
    await Promise.all([fromStart.exited, cold.exited]);

    const all = await history(w.base, app1);
    assert.equal(all.length, Number(lastOffset));
    const streamed = fromStart.lines.map((l) => JSON.parse(l));
    assert.deepEqual(streamed.map((e) => e.metadata.offset), all.map((e) => e.metadata.offset), "the first vendor saw every event once");

    // The bootstrap file: each entity is the fold of the history through its lastOffset, and
    // every entity with an event at or below asOf is in it.
    const bootstrapped = readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    const foldedThrough = (offset) => fold(all.filter((e) => Number(e.metadata.offset) <= offset));
    for (const entity of bootstrapped) {
      assert.ok(Number(entity.lastOffset) >= 1);
      assert.deepEqual(entity, foldedThrough(Number(entity.lastOffset)).get(keyOf(entity)), `entity ${keyOf(entity)}`);
    }
    for (const k of foldedThrough(asOf).keys()) assert.ok(bootstrapped.some((b) => keyOf(b) === k), `${k} is in the bootstrap`);

    // The bootstrapped vendor applies its stream above each entity's lastOffset.
    const state = new Map(bootstrapped.map((b) => [keyOf(b), { ...b, elements: Object.fromEntries(b.elements.map((x) => [x.elementName, x.value])) }]));
    const coldEvents = cold.lines.map((l) => JSON.parse(l));
    assert.equal(coldEvents[0].metadata.offset, String(asOf + 1), "the stream starts right after the state");
    for (const e of coldEvents) {
      const known = state.get(keyOf(e));
      if (known && Number(e.metadata.offset) <= Number(known.lastOffset)) continue;
      foldInto(state, e);
    }
    const coldState = new Map([...state].map(([k, s]) => [k, served(s)]));
    const expected = fold(all);
    assert.deepEqual(coldState, expected, "the bootstrapped vendor ends with the folded history");
    assert.deepEqual(fold(streamed), expected, "and so does the vendor that streamed from offset 1");
    await folded(w.base);
    const final = await walk(w.base, app1, "limit=37");
    assert.deepEqual(new Map(final.entities.map((e) => [keyOf(e), e])), expected, "and so does the service");
    assert.ok(final.pages.every((p) => p.asOfOffset === lastOffset));

    const stats = await request(w.base, "GET", "/admin/v1/chains/TTE", auth(admin));
    assert.equal(stats.json.entities.entities, expected.size, "the chain counts its entities");
  } finally {
    await w.dispose();
  }
});

test("the state outlives event retention: the first half's entities stay when their events are gone", { timeout: 60_000 }, async () => {
  const config = structuredClone(demoConfig);
  config.retentionSeconds = 2;
  const w = await startWorker({ config });
  try {
    const [pms, app1] = await Promise.all([tokenFor(w.base, DEMO.pms1), tokenFor(w.base, DEMO.app1)]);
    const room = (key, status) => event("TTE01", { moduleName: "Room", eventName: "HOUSEKEEPING", primaryKey: key, detail: [{ elementName: "Status", newValue: status }] });
    const firstHalf = Array.from({ length: 20 }, (_, i) => room(`R${i}`, "DIRTY"));
    assert.equal((await publish(w.base, pms, "TTE", firstHalf)).status, 200);
    await until(async () => (await request(w.base, "GET", "/events/v1/chains/TTE/events?from=1", auth(app1))).json.events.length === 0, 20_000, "retention to drop the first half");
    const secondHalf = [room("R0", "CLEAN"), room("S1", "INSPECTED")];
    assert.equal((await publish(w.base, pms, "TTE", secondHalf)).status, 200);
    await folded(w.base);
    const { entities, asOf } = await walk(w.base, app1);
    assert.equal(asOf, "22");
    assert.equal(entities.length, 21, "every room of the first half, and the new one");
    const byKey = new Map(entities.map((e) => [e.primaryKey, e]));
    assert.deepEqual(byKey.get("R5").elements, [{ elementName: "Status", value: "DIRTY" }], "an entity whose events are gone");
    assert.equal(byKey.get("R5").lastOffset, "6");
    assert.deepEqual(byKey.get("R0").elements, [{ elementName: "Status", value: "CLEAN" }]);
    assert.equal(byKey.get("R0").lastOffset, "21");
  } finally {
    await w.dispose();
  }
});

test("grants, filters and refusals: restricted vendors see their properties only, bad requests get their 400", async () => {
  const config = structuredClone(demoConfig);
  config.entityState = { terminalEvents: { Reservation: ["CHECKOUT", "CANCEL"] } };
  const w = await startWorker({ config });
  try {
    const tok = {};
    for (const n of ["app1", "app2", "app3", "pms1"]) tok[n] = await tokenFor(w.base, DEMO[n]);
    const stay = (hotel, key, name, detail = []) => event(hotel, { moduleName: "Reservation", eventName: name, primaryKey: key, detail });
    const batch = [
      stay("TTE01", "A1", "CHECKIN", [{ elementName: "Room", newValue: "101" }]),
      stay("TTE02", "B1", "CHECKIN", [{ elementName: "Room", newValue: "201" }]),
      stay("TTE01", "A2", "CHECKIN"),
      stay("TTE01", "A2", "CHECKOUT"),
      event("TTE02", { moduleName: "Folio", eventName: "POSTING", primaryKey: "F1", detail: [{ elementName: "Balance", newValue: "12.50" }] }),
    ];
    assert.equal((await publish(w.base, tok.pms1, "TTE", batch)).status, 200);
    await folded(w.base);
    const state = (token, query = "", chain = "TTE") => request(w.base, "GET", `/events/v1/chains/${chain}/state${query}`, token ? auth(token) : {});

    const all = (await walk(w.base, tok.app1)).entities.map(keyOf);
    assert.deepEqual(all, ["TTE01|Reservation|A1", "TTE02|Folio|F1", "TTE02|Reservation|B1"], "ordered; the checked-out stay is gone");
    const restricted = (await walk(w.base, tok.app2)).entities.map(keyOf);
    assert.deepEqual(restricted, ["TTE01|Reservation|A1"], "client-app-002 is granted TTE01 only");
    const folios = (await walk(w.base, tok.app1, "moduleNames=Folio&hotelCode=TTE02")).entities.map(keyOf);
    assert.deepEqual(folios, ["TTE02|Folio|F1"]);
    const nothing = await walk(w.base, tok.app1, "moduleNames=Profile");
    assert.deepEqual([nothing.entities.length, nothing.pages.length], [0, 1], "a filter that matches nothing ends at once");

    assert.equal((await state(tok.app2, "?hotelCode=TTE02")).status, 403, "an ungranted property");
    assert.equal((await state(tok.app3)).status, 403, "another enterprise's chain");
    assert.equal((await state(tok.app1, "", "OTH")).status, 403);
    assert.equal((await state(tok.pms1)).status, 403, "a publisher token lacks urn:pms:events");
    const anonymous = await state(null);
    assert.equal(anonymous.status, 401);
    for (const bad of ["?limit=0", "?limit=1001", "?limit=x", "?after=garbage", "?moduleNames=", "?offset=3", "?limit=1&limit=2"]) {
      const res = await state(tok.app1, bad);
      assert.equal(res.status, 400, `${bad}: ${res.text}`);
      assert.equal(res.json.error, "invalid_request");
    }
    const del = await request(w.base, "DELETE", "/events/v1/chains/TTE/state", auth(tok.app1));
    assert.equal(del.status, 405);
  } finally {
    await w.dispose();
  }
});

/** One graphql-ws operation on a fresh connection: its results until it completes or `count` arrive. */
async function operation(base, token, payload, count = 1) {
  const client = createClient({
    url: `${base.replace(/^http/, "ws")}/subscriptions?key=${Buffer.from("APPKEY001").toString("base64")}`,
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${token}`, "x-app-key": "APPKEY001" },
    retryAttempts: 0,
  });
  const results = [];
  try {
    await new Promise((resolve) => {
      const stop = client.subscribe(payload, {
        next: (r) => { results.push(r); if (results.length >= count) { stop(); resolve(); } },
        error: (e) => { results.push({ errors: Array.isArray(e) ? e : [{ message: String(e?.message ?? e) }] }); resolve(); },
        complete: resolve,
      });
    });
  } finally {
    await client.dispose();
  }
  return results;
}

test("currentState over the socket answers what the HTTP API does; replays start from a time", { timeout: 60_000 }, async () => {
  const w = await startWorker();
  try {
    const [pms, app1] = await Promise.all([tokenFor(w.base, DEMO.pms1), tokenFor(w.base, DEMO.app1)]);
    const early = Array.from({ length: 5 }, (_, i) => event(i % 2 ? "TTE02" : "TTE01", { primaryKey: `E${i}`, detail: [{ elementName: "N", newValue: String(i) }] }));
    assert.equal((await publish(w.base, pms, "TTE", early)).status, 200);
    await sleep(50);
    const since = new Date().toISOString();
    await sleep(50);
    const late = Array.from({ length: 3 }, (_, i) => event("TTE01", { primaryKey: `L${i}` }));
    assert.equal((await publish(w.base, pms, "TTE", late)).status, 200);
    await folded(w.base);

    const query = `query Page($after: String) { currentState(input: {chainCode: "TTE", first: 3, after: $after}) {
      chainCode asOfOffset next entities { hotelId moduleName primaryKey lastOffset lastEventName lastTimestamp elements { elementName value } } } }`;
    const [first] = await operation(w.base, app1, { query, variables: {} });
    assert.equal(first.errors, undefined, JSON.stringify(first));
    const http = await request(w.base, "GET", "/events/v1/chains/TTE/state?limit=3", auth(app1));
    assert.deepEqual(first.data.currentState, http.json, "the same page over the socket and over HTTP");
    const [second] = await operation(w.base, app1, { query, variables: { after: first.data.currentState.next } });
    const httpSecond = await request(w.base, "GET", `/events/v1/chains/TTE/state?limit=3&after=${encodeURIComponent(http.json.next)}`, auth(app1));
    assert.deepEqual(second.data.currentState, httpSecond.json);
    const [refused] = await operation(w.base, app1, { query: `{ currentState(input: {chainCode: "OTH"}) { next } }` });
    assert.equal(refused.errors[0].extensions.code, "FORBIDDEN");
    const [badCursor] = await operation(w.base, app1, { query: `{ currentState(input: {chainCode: "TTE", after: "nope"}) { next } }` });
    assert.equal(badCursor.errors[0].extensions.code, "BAD_USER_INPUT");

    // fromTime: the first event stored at or after it is offset 6.
    const replay = await operation(w.base, app1, { query: `subscription { newEvent(input: {chainCode: "TTE", fromTime: "${since}"}) { metadata { offset } } }` }, 3);
    assert.deepEqual(replay.map((r) => r.data.newEvent.metadata.offset), ["6", "7", "8"]);
    const byExtension = await operation(w.base, app1, { query: `subscription { newEvent(input: {chainCode: "TTE"}) { metadata { offset } } }`, extensions: { fromTime: "2000-01-01T00:00:00Z" } }, 1);
    assert.equal(byExtension[0].data.newEvent.metadata.offset, "1", "a time before the oldest event starts there");
    const pulled = await request(w.base, "GET", `/events/v1/chains/TTE/events?since=${encodeURIComponent(since)}`, auth(app1));
    assert.deepEqual(pulled.json.events.map((e) => e.metadata.offset), ["6", "7", "8"]);
    for (const bad of ["since=yesterday", `since=${encodeURIComponent(since)}&from=1`]) {
      assert.equal((await request(w.base, "GET", `/events/v1/chains/TTE/events?${bad}`, auth(app1))).status, 400, bad);
    }
  } finally {
    await w.dispose();
  }
});
