// `pms-events tail` and `pms-events simulate` against the worker on workerd: the reference
// client's output has no gap and no repeat across a chain restart, a runtime restart and its
// own restart from its resume file; the simulator's every event is stored exactly once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { startWorker, tokenFor, publish, event, request, tempDir, until, sleep, newSigningKeys, DEMO, demoConfig, cli } from "./harness.mjs";


function freePort() {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => { const { port } = server.address(); server.close(() => resolve(port)); });
  });
}

async function publishEvents(base, n) {
  const token = await tokenFor(base, DEMO.pms1);
  const res = await publish(base, token, "TTE", Array.from({ length: n }, (_, i) => event(i % 2 ? "TTE02" : "TTE01")));
  assert.equal(res.status, 200, res.text);
}

const offsetsOf = (run) => run.lines.map((l) => Number(JSON.parse(l).metadata.offset));
const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

test("tail resumes across a chain restart, a runtime restart and its own restart, with no gap or repeat", { timeout: 120_000 }, async () => {
  const persist = tempDir("pms-tail-");
  const port = await freePort();
  const signingKeys = newSigningKeys();
  const options = { persist, signingKeys, miniflare: { port } };
  let w = await startWorker(options);
  const resume = path.join(tempDir("pms-tail-resume-"), "position.json");
  try {
    await publishEvents(w.base, 10);
    const tail = cli(["tail", "--url", w.base, "--chain", "TTE", "--from", "1", "--resume", resume]);
    await until(() => tail.lines.length >= 10, 20_000, `10 lines (${tail.stderr})`);
    const first = JSON.parse(tail.lines[0]);
    assert.equal(first.metadata.offset, "1");
    assert.ok(first.metadata.uniqueEventId && first.eventName === "CHECKIN" && Array.isArray(first.detail), "full events as JSON lines");

    // The chain's object restarts (as a deploy restarts it): the gateway reattaches.
    const admin = await tokenFor(w.base, DEMO.ops, { scope: "urn:pms:admin" });
    assert.equal((await request(w.base, "POST", "/admin/v1/chains/TTE/restart", { headers: { authorization: `Bearer ${admin}` } })).status, 202);
    await publishEvents(w.base, 10);
    await until(() => tail.lines.length >= 20, 20_000, `20 lines (${tail.stderr})`);

    // The whole runtime goes away and comes back on the same storage: tail's socket closes,
    // and it reconnects with backoff and resumes at its next offset.
    await w.dispose();
    w = await startWorker(options);
    await publishEvents(w.base, 10);
    await until(() => tail.lines.length >= 30, 40_000, `30 lines (${tail.stderr})`);
    assert.match(tail.stderr, /reconnecting in \d+ ms at offset 21/);

    tail.child.kill("SIGTERM");
    assert.deepEqual(await tail.exited, { code: 0, signal: null });
    assert.deepEqual(offsetsOf(tail), range(1, 30));
    assert.equal(JSON.parse(readFileSync(resume, "utf8")).lastOffset, "30", "saved on exit");

    // Restarted from its resume file, it continues after offset 30.
    await publishEvents(w.base, 5);
    const again = cli(["tail", "--url", w.base, "--chain", "TTE", "--resume", resume, "--max-events", "5", "--fields", "metadata { offset }"]);
    assert.deepEqual(await again.exited, { code: 0, signal: null }, again.stderr);
    assert.deepEqual(offsetsOf(again), range(31, 35));
    assert.equal(JSON.parse(readFileSync(resume, "utf8")).lastOffset, "35");
  } finally {
    await w.dispose();
  }
});

test("tail stops reading while its stdout is full; closed as slow, it resumes with no gap or repeat", { timeout: 120_000 }, async () => {
  const config = structuredClone(demoConfig);
  config.limits = { ...config.limits, slowConsumerSeconds: 2 };
  const w = await startWorker({ config });
  try {
    const token = await tokenFor(w.base, DEMO.pms1);
    const detail = Array.from({ length: 8 }, (_, i) => ({ elementName: `Field${i}`, newValue: "x".repeat(60), oldValue: "y".repeat(60) }));
    const batch = () => publish(w.base, token, "TTE", Array.from({ length: 250 }, () => event("TTE01", { detail })));
    assert.equal((await batch()).status, 200);
    const tail = cli(["tail", "--url", w.base, "--chain", "TTE", "--from", "1"]);
    await until(() => tail.lines.length >= 250, 20_000, `the first batch (${tail.stderr})`);
    // A reader that stops reading while events keep coming: the pipe fills and tail's writes
    // back up, so it stops reading its socket; its pings go unanswered and the service closes
    // it as slow. (tail reads that close once it reads its socket again.)
    tail.child.stdout.pause();
    let published = 250;
    const until8s = Date.now() + 8000;
    while (Date.now() < until8s) {
      assert.equal((await batch()).status, 200);
      published += 250;
      await sleep(100);
    }
    tail.child.stdout.resume();
    await until(() => tail.lines.length >= published, 60_000, `${published} lines (${tail.lines.length}; ${tail.stderr})`);
    tail.child.kill("SIGTERM");
    await tail.exited;
    assert.deepEqual(offsetsOf(tail), range(1, published));
    assert.match(tail.stderr, /closed 4413/, "closed as a slow consumer while its stdout was full");
    assert.match(tail.stderr, /reconnecting in \d+ ms at offset \d+/);
  } finally {
    await w.dispose();
  }
});

test("tail stops with the service's reason when the subscription cannot succeed", async () => {
  const w = await startWorker();
  try {
    const forbidden = cli(["tail", "--url", w.base, "--chain", "OTH"]);
    const exit = await forbidden.exited;
    assert.equal(exit.code, 1);
    assert.match(forbidden.stderr, /FORBIDDEN/);
    const badFlag = cli(["tail", "--url", w.base, "--chain", "TTE", "--from", "x"]);
    assert.equal((await badFlag.exited).code, 2);
    assert.match(badFlag.stderr, /--from must be decimal digits/);
  } finally {
    await w.dispose();
  }
});

test("simulate publishes a hotel day for 10 s and every event it sent is stored exactly once", { timeout: 120_000 }, async () => {
  const w = await startWorker();
  try {
    const sim = cli(["simulate", "--url", w.base, "--chain", "TTE", "--rate", "50", "--duration", "10", "--seed", "e2e"]);
    const exit = await sim.exited;
    assert.equal(exit.code, 0, sim.stderr);
    const summary = JSON.parse(sim.lines.at(-1));
    assert.ok(summary.sent >= 450 && summary.sent <= 510, `about 50/s for 10 s: ${summary.sent}`);
    assert.equal(summary.firstOffset, "1");
    assert.equal(summary.lastOffset, String(summary.sent));
    assert.match(sim.stderr, /simulate TTE: [\d.]+ events\/s, \d+ sent, last offset \d+/);

    const vendor = await tokenFor(w.base, DEMO.app1);
    const events = [];
    for (let from = 1; ;) {
      const page = await request(w.base, "GET", `/events/v1/chains/TTE/events?from=${from}&limit=1000`, { headers: { authorization: `Bearer ${vendor}` } });
      assert.equal(page.status, 200);
      events.push(...page.json.events);
      from = Number(page.json.next);
      if (from > Number(page.json.head)) break;
    }
    assert.equal(events.length, summary.sent, "every event stored");
    const ids = events.map((e) => e.metadata.uniqueEventId);
    assert.equal(new Set(ids).size, ids.length, "each once");
    assert.deepEqual(ids, range(1, summary.sent).map((n) => `sim-e2e-TTE-${n}`), "stable ids, in order");
    const names = new Set(events.map((e) => e.eventName));
    for (const name of ["NEW_RESERVATION", "CHECKIN", "CHECKOUT", "POST_CHARGE", "ROOM_STATUS_CHANGE"]) assert.ok(names.has(name), `${name} among ${[...names]}`);
    assert.deepEqual(new Set(events.map((e) => e.hotelId)), new Set(["TTE01", "TTE02"]));
    const checkin = events.find((e) => e.eventName === "CHECKIN");
    const room = checkin.detail.find((d) => d.elementName === "RoomNumber");
    assert.ok(room.oldValue == null && /^\d{3}$/.test(room.newValue), "a check-in assigns a room");
    const status = checkin.detail.find((d) => d.elementName === "ReservationStatus");
    assert.deepEqual([status.oldValue, status.newValue], ["RESERVED", "CHECKED_IN"]);
    // Every check-in follows the reservation it checks in, in the same hotel.
    for (const e of events.filter((e) => e.eventName === "CHECKIN")) {
      const made = events.find((m) => m.eventName === "NEW_RESERVATION" && m.primaryKey === e.primaryKey);
      assert.ok(made && Number(made.metadata.offset) < Number(e.metadata.offset) && made.hotelId === e.hotelId, e.primaryKey);
    }

    // The same seed again sends the same ids: the service answers their first offsets and stores nothing new.
    const rerun = cli(["simulate", "--url", w.base, "--chain", "TTE", "--rate", "50", "--duration", "1", "--seed", "e2e"]);
    assert.equal((await rerun.exited).code, 0, rerun.stderr);
    const again = JSON.parse(rerun.lines.at(-1));
    assert.equal(again.firstOffset, "1");
    assert.ok(Number(again.lastOffset) <= summary.sent);
    const admin = await tokenFor(w.base, DEMO.ops, { scope: "urn:pms:admin" });
    const stats = await request(w.base, "GET", "/admin/v1/chains/TTE", { headers: { authorization: `Bearer ${admin}` } });
    assert.equal(stats.json.headOffset, String(summary.sent));
  } finally {
    await w.dispose();
  }
});

test("tail --highest that reconnects before it wrote anything prints what was published while it was away", { timeout: 120_000 }, async () => {
  const persist = tempDir("pms-tail-highest-");
  const port = await freePort();
  const options = { persist, signingKeys: newSigningKeys(), miniflare: { port } };
  let w = await startWorker(options);
  try {
    const tail = cli(["tail", "--url", w.base, "--chain", "TTE", "--highest", "--fields", "metadata { offset }"]);
    await sleep(1_500); // connected, on an empty chain: nothing to write yet
    await w.dispose();
    await sleep(2_000); // its reconnects fail meanwhile, backing off
    w = await startWorker(options);
    await publishEvents(w.base, 3);
    await until(() => tail.lines.length >= 3, 60_000, `3 lines (${tail.stderr})`);
    tail.child.kill("SIGTERM");
    await tail.exited;
    assert.deepEqual(offsetsOf(tail), [1, 2, 3], "from where its first session started, not from the newest");
  } finally {
    await w.dispose();
  }
});

test("tail refuses a resume file that is empty or not one, naming it", async () => {
  const dir = tempDir("pms-tail-bad-");
  for (const [name, text] of [["empty.json", ""], ["cut.json", '{"chainCode":"TTE","lastOff'], ["other.json", "[1,2]"]]) {
    const file = path.join(dir, name);
    (await import("node:fs")).writeFileSync(file, text);
    const run = cli(["tail", "--url", "http://127.0.0.1:9", "--chain", "TTE", "--resume", file]);
    const { code } = await run.exited;
    assert.equal(code, 2, `${name}: ${run.stderr}`);
    assert.ok(run.stderr.includes(file) && /not a resume file/.test(run.stderr), run.stderr);
    assert.ok(!/SyntaxError|at .*\.mjs/.test(run.stderr), `a message, not a stack: ${run.stderr}`);
  }
});
