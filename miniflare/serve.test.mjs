// The local server the README's first command starts (`scripts/dev.sh` → `scripts/serve.mjs`):
// the demo configuration and the key of .dev.vars, the pages, a socket straight to the Worker,
// the audit log on stdout, and state that outlives a restart of the server.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { request, basic, event, until, DEMO, freePort } from "./harness.mjs";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");

function serve(port, ...args) {
  const child = spawn(process.execPath, [path.join(root, "scripts/serve.mjs"), "--port", String(port), ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const run = { child, stdout: "", stderr: "" };
  child.stdout.on("data", (d) => { run.stdout += d; });
  child.stderr.on("data", (d) => { run.stderr += d; });
  run.exited = new Promise((resolve) => child.on("exit", (code) => resolve(code)));
  return run;
}

async function token(base, client, scope) {
  const res = await request(base, "POST", "/oauth/v1/tokens", {
    headers: { "content-type": "application/x-www-form-urlencoded", authorization: basic(client.id, client.secret), "x-app-key": client.appKey, enterpriseId: client.enterprise },
    body: `grant_type=client_credentials${scope ? `&scope=${scope}` : ""}`,
  });
  assert.equal(res.status, 200, res.text);
  return res.json.access_token;
}

test("the local server serves the demo configuration directly, with its pages, and keeps its state across a restart", { timeout: 120_000 }, async () => {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  let server = serve(port, "--fresh");
  try {
    await until(async () => (await request(base, "GET", "/healthz").catch(() => null))?.status === 200, 60_000, `the server up (${server.stderr})`);
    assert.match(server.stderr, new RegExp(`serving ${base}`));
    const pms = await token(base, DEMO.pms1);
    const published = await request(base, "POST", "/events/v1/chains/TTE/events", { headers: { authorization: `Bearer ${pms}`, "content-type": "application/json" }, body: [event("TTE01")] });
    assert.equal(published.status, 200, published.text);
    const playground = await request(base, "GET", "/playground");
    assert.equal(playground.status, 200);
    const script = /assets\/[\w-]+\.js/.exec(playground.text)?.[0];
    assert.ok(script, "the page names its script");
    const asset = await request(base, "GET", `/${script}`);
    assert.equal(asset.status, 200);
    assert.match(asset.headers["content-type"], /javascript/);
    await until(() => server.stdout.includes('"audit":"publish.accepted"'), 5_000, "the audit log on stdout");

    server.child.kill("SIGTERM");
    assert.ok([0, 143].includes(await server.exited), "it stops on SIGTERM");
    server = serve(port);
    await until(async () => (await request(base, "GET", "/healthz").catch(() => null))?.status === 200, 60_000, "the server up again");
    const vendor = await token(base, DEMO.app1);
    const pulled = await request(base, "GET", "/events/v1/chains/TTE/events?from=1", { headers: { authorization: `Bearer ${vendor}` } });
    assert.equal(pulled.status, 200, pulled.text);
    assert.deepEqual(pulled.json.events.map((e) => e.metadata.offset), published.json.offsets, "the event stored before the restart");
  } finally {
    server.child.kill("SIGTERM");
    await server.exited;
  }
});
