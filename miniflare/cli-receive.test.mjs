// `pms-events receive`, the reference webhook receiver, against the worker on workerd: it
// verifies each request with standardwebhooks, writes each event once, and its failures on
// purpose are retried by the service until everything arrived in order.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import http from "node:http";
import path from "node:path";
import { startWorker, tokenFor, publish, event, until, newWebhookSecret, demoConfig, DEMO } from "./harness.mjs";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");

test("receive verifies, deduplicates and prints what the service pushes, through its retries", async () => {
  const secret = newWebhookSecret();
  const receiver = spawn(process.execPath, [path.join(root, "bin/pms-events.mjs"), "receive", "--port", "0", "--fail-first", "2"], {
    env: { ...process.env, PMS_WEBHOOK_SECRET: secret },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  receiver.stdout.on("data", (c) => (stdout += c));
  receiver.stderr.on("data", (c) => (stderr += c));
  let w;
  try {
    const port = Number((await until(() => /listening on http:\/\/127\.0\.0\.1:(\d+)\/hook/.exec(stderr), 10000, "the receiver"))[1]);
    const config = structuredClone(demoConfig);
    config.limits = { ...config.limits, webhookFirstRetrySeconds: 1, webhookMaxRetrySeconds: 1 };
    config.clients.find((c) => c.id === DEMO.app1.id).webhooks = [{ id: "wh-cli", chain: "TTE", url: `http://127.0.0.1:${port}/hook`, secret }];
    w = await startWorker({ config });
    const pms = await tokenFor(w.base, DEMO.pms1);
    for (let b = 0; b < 2; b++) {
      const res = await publish(w.base, pms, "TTE", Array.from({ length: 10 }, () => event("TTE01", { uniqueEventId: `cli-${Math.random()}` })));
      assert.equal(res.status, 200);
    }
    const lines = () => stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l));
    await until(() => lines().length >= 20, 20000, "20 events on the receiver's stdout");
    assert.deepEqual(lines().map((e) => Number(e.metadata.offset)), Array.from({ length: 20 }, (_, i) => i + 1));
    assert.match(stderr, /503 failing on purpose \(msg_TTE_wh-cli_1_\d+\)[\s\S]*503 failing on purpose \(msg_TTE_wh-cli_1_\d+\)/);
    // A forged request is refused and prints nothing.
    const forged = await new Promise((resolve, reject) => {
      const req = http.request(`http://127.0.0.1:${port}/hook`, {
        method: "POST",
        headers: { "content-type": "application/json", "webhook-id": "msg_x", "webhook-timestamp": String(Math.floor(Date.now() / 1000)), "webhook-signature": "v1,AAAA" },
      }, (res) => { res.resume(); res.on("end", () => resolve(res.statusCode)); });
      req.on("error", reject);
      req.end(JSON.stringify({ chainCode: "TTE", events: [event("TTE01")] }));
    });
    assert.equal(forged, 401);
    assert.equal(lines().length, 20);
  } finally {
    receiver.kill("SIGTERM");
    await w?.dispose();
  }
});

// Two chains' publishers may use the same uniqueEventId: the receiver keeps both events.
test("receive deduplicates by chain and id, not by id alone", async () => {
  const { Webhook } = await import("standardwebhooks");
  const secret = newWebhookSecret();
  const receiver = spawn(process.execPath, [path.join(root, "bin/pms-events.mjs"), "receive", "--port", "0"], {
    env: { ...process.env, PMS_WEBHOOK_SECRET: secret },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  receiver.stdout.on("data", (c) => (stdout += c));
  receiver.stderr.on("data", (c) => (stderr += c));
  try {
    const port = Number((await until(() => /listening on http:\/\/127\.0\.0\.1:(\d+)\/hook/.exec(stderr), 10000, "the receiver"))[1]);
    const signer = new Webhook(secret);
    const post = (id, body) => new Promise((resolve, reject) => {
      const text = JSON.stringify(body);
      const when = new Date();
      const headers = { "content-type": "application/json", "webhook-id": id, "webhook-timestamp": String(Math.floor(when / 1000)), "webhook-signature": signer.sign(id, when, text) };
      const req = http.request(`http://127.0.0.1:${port}/hook`, { method: "POST", headers }, (res) => { res.resume(); res.on("end", () => resolve(res.statusCode)); });
      req.on("error", reject);
      req.end(text);
    });
    const same = (chain, offset) => ({ ...event(chain === "TTE" ? "TTE01" : "HTB01"), metadata: { offset: String(offset), uniqueEventId: "pms-42" } });
    assert.equal(await post("msg_TTE_a", { chainCode: "TTE", events: [same("TTE", 1)] }), 204);
    assert.equal(await post("msg_HTBTTE_a", { chainCode: "HTBTTE", events: [same("HTBTTE", 1)] }), 204);
    assert.equal(await post("msg_TTE_a", { chainCode: "TTE", events: [same("TTE", 1)] }), 204, "a retry");
    const lines = () => stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l));
    await until(() => lines().length >= 2, 5000, "both chains' events");
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(lines().map((e) => e.hotelId), ["TTE01", "HTB01"], "one each: the retry printed nothing");
  } finally {
    receiver.kill("SIGTERM");
  }
});
