// What operators see of the consumers (docs/operations.md, Consumers and metrics): a vendor
// that stops reading shows its lag in /consumers, in /metrics (which promtool accepts) and in
// a real Prometheus scraping the local server, then is closed 4413; one that keeps up shows
// none; its close is counted by client. Refusals and grants hold for both endpoints, and
// each refusal is counted by route and status.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { CheckedWebSocket as WebSocket, freePort } from "./harness.mjs";
import { startWorker, tokenFor, publish, event, request, tempDir, until, sleep, auditLines, DEMO, demoConfig } from "./harness.mjs";

/** A vendor socket subscribed to TTE from offset 1, answering pings while it reads. */
function vendor(w, client, token) {
  const ws = new WebSocket(`${w.base.replace("http", "ws")}/subscriptions?key=${Buffer.from(client.appKey).toString("base64")}`, "graphql-transport-ws");
  const state = { nexts: 0 };
  state.closed = new Promise((resolve) => ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })));
  ws.on("message", (m) => {
    const msg = JSON.parse(m.toString());
    if (msg.type === "next") state.nexts += 1;
    if (msg.type === "ping") ws.send(JSON.stringify(msg.payload ? { type: "pong", payload: msg.payload } : { type: "pong" }));
  });
  ws.on("open", () => {
    ws.send(JSON.stringify({ type: "connection_init", payload: { Authorization: `Bearer ${token}`, "x-app-key": client.appKey } }));
    ws.send(JSON.stringify({ id: "s", type: "subscribe", payload: { query: 'subscription { newEvent(input: {chainCode: "TTE", offset: "1"}) { metadata { offset } detail { newValue } } }' } }));
  });
  return { ws, state };
}

/** Debian's Prometheus scraping the local server's /admin/v1/metrics every second. */
async function startPrometheus(base, adminToken) {
  const dir = tempDir("pms-prometheus-");
  const port = await freePort();
  writeFileSync(path.join(dir, "token"), adminToken);
  writeFileSync(path.join(dir, "prometheus.yml"), `global: { scrape_interval: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: pms-events
    metrics_path: /admin/v1/metrics
    scrape_interval: 1s
    authorization: { type: Bearer, credentials_file: ${path.join(dir, "token")} }
    static_configs: [{ targets: ["${new URL(base).host}"] }]
`);
  const child = spawn("prometheus", [`--config.file=${path.join(dir, "prometheus.yml")}`, `--storage.tsdb.path=${path.join(dir, "data")}`,
    `--web.listen-address=127.0.0.1:${port}`], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  child.stderr.on("data", (d) => { log = (log + d).slice(-4000); });
  const url = `http://127.0.0.1:${port}`;
  await until(async () => (await fetch(`${url}/-/ready`).catch(() => null))?.ok, 30_000, `Prometheus ready (${log})`);
  return {
    async query(expr) {
      const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
      const body = await res.json();
      return body.data?.result ?? [];
    },
    async target() {
      return (await (await fetch(`${url}/api/v1/targets`)).json()).data.activeTargets[0];
    },
    stop() { child.kill("SIGTERM"); },
  };
}

const auth = (token) => ({ headers: { authorization: `Bearer ${token}` } });

test("a vendor that stops reading shows its lag in /consumers, /metrics and Prometheus, then is closed 4413", { timeout: 120_000 }, async () => {
  const config = structuredClone(demoConfig);
  // A stalled vendor is pinged once about 1 MiB is unconfirmed, and closed 8 s later.
  config.limits = { ...config.limits, slowConsumerSeconds: 8 };
  const logs = [];
  const w = await startWorker({ config, logs });
  let prometheus;
  try {
    const [admin, app1, app2, pms] = await Promise.all([
      tokenFor(w.base, DEMO.ops, { scope: "urn:pms:admin" }), tokenFor(w.base, DEMO.app1), tokenFor(w.base, DEMO.app2), tokenFor(w.base, DEMO.pms1),
    ]);
    prometheus = await startPrometheus(w.base, admin);
    const stalled = vendor(w, DEMO.app1, app1);
    const healthy = vendor(w, DEMO.app2, app2);
    const consumers = async () => {
      const res = await request(w.base, "GET", "/admin/v1/chains/TTE/consumers", auth(admin));
      assert.equal(res.status, 200, res.text);
      return res.json;
    };
    await until(async () => (await consumers()).subscriptions.length === 2, 10_000, "both subscriptions attached");
    stalled.ws._socket.pause();
    const started = Date.now();
    // 12 MB: more than the stalled vendor's socket buffers hold, so its window fills.
    const pad = "x".repeat(4000);
    for (let i = 0; i < 30; i++) {
      await publish(w.base, pms, "TTE", Array.from({ length: 100 }, () => event("TTE01", { detail: [{ elementName: "Note", newValue: pad }] })));
    }
    // Seen in /consumers: the stalled vendor far behind, the healthy one at the head.
    const seen = await until(async () => {
      const c = await consumers();
      const of = (client) => c.subscriptions.find((s) => s.clientId === client);
      const [lagging, keeping] = [of("client-app-001"), of("client-app-002")];
      return lagging && keeping && c.headOffset === "3000" && lagging.lagEvents >= 100 && keeping.lagEvents === 0 ? { c, lagging } : null;
    }, 5_000, "the stalled vendor's lag in /consumers");
    const shownAfterMs = Date.now() - started;
    assert.equal(seen.lagging.appKey, "APPKEY001");
    assert.equal(seen.lagging.lagEvents, 3000 - Number(seen.lagging.deliveredThrough));
    assert.ok(Number(seen.lagging.deliveredThrough) >= Number(seen.lagging.readThrough));
    assert.deepEqual(seen.lagging.filter, { properties: null, eventNames: null, moduleNames: null });

    // /metrics: what /consumers shows, in a form promtool accepts.
    const metrics = await request(w.base, "GET", "/admin/v1/metrics", auth(admin));
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers["content-type"], /^text\/plain; version=0\.0\.4/);
    const lagLine = new RegExp(`^pms_events_consumer_lag_events\\{chain="TTE",client_id="client-app-001"\\} (\\d+)$`, "m");
    assert.equal(Number(lagLine.exec(metrics.text)?.[1]), seen.lagging.lagEvents, metrics.text);
    assert.match(metrics.text, /^pms_events_consumer_lag_events\{chain="TTE",client_id="client-app-002"\} 0$/m);
    assert.match(metrics.text, /^pms_events_published_events_total\{chain="TTE"\} 3000$/m);
    assert.match(metrics.text, /^pms_events_subscribers\{chain="TTE"\} 2$/m);
    assert.ok(!/chain="OTH"/.test(metrics.text), "no chain outside the admin's grants");
    const checked = spawnSync("promtool", ["check", "metrics"], { input: metrics.text, encoding: "utf8" });
    assert.equal(checked.status, 0, `promtool check metrics: ${checked.stdout}${checked.stderr}`);

    // A real Prometheus scraping the server has the same lag within 5 s.
    const scraped = await until(async () => {
      const [sample] = await prometheus.query('pms_events_consumer_lag_events{client_id="client-app-001"}');
      return sample && Number(sample.value[1]) === seen.lagging.lagEvents ? sample : null;
    }, 5_000, "Prometheus to scrape the lag");
    assert.equal(scraped.metric.chain, "TTE");
    assert.equal((await prometheus.target()).health, "up");

    // The audit log says so once, not once per event.
    const lagging = auditLines(logs).filter((l) => l.audit === "consumer.lagging" && l.clientId === "client-app-001");
    assert.equal(lagging.length, 1, JSON.stringify(lagging));
    assert.equal(lagging[0].chain, "TTE");
    assert.ok(lagging[0].lagEvents >= 1000);

    // Then the stalled vendor is closed as slow (it leaves /consumers); the healthy one stays.
    await until(async () => (await consumers()).subscriptions.length === 1, 20_000, "the stalled subscription closed");
    stalled.ws._socket.resume();
    const closed = await Promise.race([stalled.state.closed, sleep(10_000).then(() => ({ code: "timeout" }))]);
    assert.equal(closed.code, 4413);
    assert.equal(healthy.ws.readyState, WebSocket.OPEN);
    console.log(`lag shown in /consumers ${shownAfterMs} ms after the publishes began`);
    assert.equal(healthy.state.nexts, 3000, "the healthy vendor read everything");
    healthy.ws.close();

    // The close is counted, by client, in /metrics and in Prometheus; so are the publishes.
    const after = await request(w.base, "GET", "/admin/v1/metrics", auth(admin));
    const value = (re) => Number(re.exec(after.text)?.[1]);
    assert.equal(value(/^pms_events_slow_consumer_closes_total\{client_id="client-app-001"\} (\d+)$/m), 1, after.text);
    assert.equal(value(/^pms_events_connections_closed_total\{by="server",code="4413"\} (\d+)$/m), 1);
    assert.equal(value(/^pms_events_publish_duration_seconds_count (\d+)$/m), 30, "the 30 accepted publishes");
    assert.equal(value(/^pms_events_publish_duration_seconds_bucket\{le="\+Inf"\} (\d+)$/m), 30);
    const accepted = [...after.text.matchAll(/^pms_events_http_responses_total\{route="publish",code="2\d\d"\} (\d+)$/gm)];
    assert.equal(accepted.reduce((sum, m) => sum + Number(m[1]), 0), 30);
    const rechecked = spawnSync("promtool", ["check", "metrics"], { input: after.text, encoding: "utf8" });
    assert.equal(rechecked.status, 0, `promtool check metrics: ${rechecked.stdout}${rechecked.stderr}`);
    await until(async () => {
      const [sample] = await prometheus.query('pms_events_slow_consumer_closes_total{client_id="client-app-001"}');
      return sample && Number(sample.value[1]) === 1;
    }, 5_000, "Prometheus to scrape the slow-consumer close");
  } finally {
    prometheus?.stop();
    await w.dispose();
  }
});

test("consumers and metrics: refusals, grants, paging and saved cursors", async () => {
  // Frames sent a second ago count as read, so a vendor that leaves has its cursor saved.
  const config = structuredClone(demoConfig);
  config.limits = { ...config.limits, resendWindowSeconds: 1 };
  // An admin of the other enterprise, to see that the service's counts keep to their own.
  const otherAdmin = { id: "other-admin", secret: DEMO.ops.secret, appKey: "OPSKEY002", enterprise: "OTHER" };
  const ops = config.clients.find((c) => c.id === DEMO.ops.id);
  config.clients.push({ ...ops, id: otherAdmin.id, appKey: otherAdmin.appKey, enterprise: "OTHER", grants: [{ chain: "OTH" }] });
  const w = await startWorker({ config });
  try {
    const [admin, app1, pms] = await Promise.all([tokenFor(w.base, DEMO.ops, { scope: "urn:pms:admin" }), tokenFor(w.base, DEMO.app1), tokenFor(w.base, DEMO.pms1)]);
    for (const route of ["/admin/v1/metrics", "/admin/v1/chains/TTE/consumers"]) {
      assert.equal((await request(w.base, "GET", route)).status, 401, `${route} without a token`);
      assert.equal((await request(w.base, "GET", route, auth(app1))).status, 403, `${route} with a vendor's token`);
    }
    assert.equal((await request(w.base, "GET", "/admin/v1/chains/OTH/consumers", auth(admin))).status, 403, "another enterprise's chain");
    for (const query of ["limit=0", "limit=1001", "after=not-a-cursor", "limit=1&limit=2", "offset=1"]) {
      const res = await request(w.base, "GET", `/admin/v1/chains/TTE/consumers?${query}`, auth(admin));
      assert.equal(res.status, 400, `${query}: ${res.text}`);
      assert.equal(res.json.error, "invalid_request");
    }
    // Every refusal above is counted by route and status, for the enterprise it concerns (the
    // refusal on OTH is the other enterprise's); a refused subscription by its code.
    const refused = new WebSocket(`${w.base.replace("http", "ws")}/subscriptions?key=QVBQS0VZMDAx`, "graphql-transport-ws");
    await new Promise((resolve) => {
      refused.on("message", (m) => { if (JSON.parse(m.toString()).type === "error") resolve(); });
      refused.on("open", () => {
        refused.send(JSON.stringify({ type: "connection_init", payload: { Authorization: `Bearer ${app1}`, "x-app-key": "APPKEY001" } }));
        refused.send(JSON.stringify({ id: "s", type: "subscribe", payload: { query: 'subscription { newEvent(input: {chainCode: "OTH"}) { metadata { offset } } }' } }));
      });
    });
    refused.close();
    const counted = (await request(w.base, "GET", "/admin/v1/metrics", auth(admin))).text;
    for (const [line, n] of [
      ['pms_events_http_responses_total{route="metrics",code="401"}', 1], ['pms_events_http_responses_total{route="metrics",code="403"}', 1],
      ['pms_events_http_responses_total{route="admin",code="401"}', 1], ['pms_events_http_responses_total{route="admin",code="403"}', 1],
      ['pms_events_http_responses_total{route="admin",code="400"}', 5], ['pms_events_subscriptions_refused_total{code="FORBIDDEN"}', 1],
    ]) {
      assert.ok(counted.split("\n").includes(`${line} ${n}`), `${line} ${n}\n${counted}`);
    }
    // Three vendors streamed and left: their saved cursors stay, paged one at a time.
    await publish(w.base, pms, "TTE", Array.from({ length: 5 }, () => event("TTE01")));
    for (const hotel of ["TTE01", "TTE02", null]) {
      const v = new WebSocket(`${w.base.replace("http", "ws")}/subscriptions?key=QVBQS0VZMDAx`, "graphql-transport-ws");
      let got = 0;
      const done = new Promise((resolve) => v.on("message", (m) => {
        const msg = JSON.parse(m.toString());
        if (msg.type === "next" && ++got === (hotel === "TTE02" ? 0 : 5)) resolve();
        if (msg.type === "ping") v.send(JSON.stringify({ type: "pong", payload: msg.payload }));
      }));
      v.on("open", () => {
        v.send(JSON.stringify({ type: "connection_init", payload: { Authorization: `Bearer ${app1}`, "x-app-key": "APPKEY001" } }));
        v.send(JSON.stringify({ id: "s", type: "subscribe", payload: { query: `subscription { newEvent(input: {chainCode: "TTE", offset: "1"${hotel ? `, hotelCode: "${hotel}"` : ""}}) { metadata { offset } } }` } }));
      });
      if (hotel !== "TTE02") await done; else await sleep(500);
      await sleep(1500);
      v.close();
    }
    const cursors = await until(async () => {
      const list = [];
      let after = "";
      for (let pages = 0; pages < 10; pages++) {
        const res = await request(w.base, "GET", `/admin/v1/chains/TTE/consumers?limit=1${after}`, auth(admin));
        assert.equal(res.status, 200, res.text);
        assert.ok(res.json.subscriptions.length + res.json.savedCursors.length <= 1);
        list.push(...res.json.savedCursors);
        if (res.json.next === null) return list.some((c) => c.filter.properties === null && c.offset === "5") ? list : null;
        after = `&after=${encodeURIComponent(res.json.next)}`;
      }
      return null;
    }, 10_000, "the saved cursors of the vendors that left");
    const everything = cursors.find((c) => c.filter.properties === null);
    assert.ok(everything, JSON.stringify(cursors));
    assert.equal(everything.appKey, "APPKEY001");
    assert.equal(everything.offset, "5");
    assert.equal(everything.lagEvents, 0);

    // BROWNS's publishes and connections are its admin's to see, not the other enterprise's.
    const otherToken = await tokenFor(w.base, otherAdmin, { scope: "urn:pms:admin" });
    const [browns, other] = await Promise.all([admin, otherToken].map(async (t) => (await request(w.base, "GET", "/admin/v1/metrics", auth(t))).text));
    assert.match(browns, /^pms_events_http_responses_total\{route="publish",code="200"\} 1$/m);
    assert.match(browns, /^pms_events_publish_duration_seconds_count 1$/m);
    assert.match(browns, /^pms_events_http_responses_total\{route="subscriptions",code="101"\} [1-9]/m);
    assert.ok(!/route="publish"|route="subscriptions"|by="client"/.test(other), other);
    assert.match(other, /^pms_events_http_responses_total\{route="admin",code="403"\} 1$/m, "the refusal on its chain OTH");
    assert.match(other, /^pms_events_publish_duration_seconds_count 0$/m);
    assert.match(other, /^pms_events_http_responses_total\{route="metrics",code="401"\} 1$/m, "the unattributed refusals");
  } finally {
    await w.dispose();
  }
});
