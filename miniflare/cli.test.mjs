// `pms-events config`: the Worker's own configuration code on the command line. A document
// it refuses is refused by the running Worker with the same message, and a secret it hashes
// logs in.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { startWorker, tokenFor, request, tempDir, DEMO, demoConfig } from "./harness.mjs";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const cli = (args, input) =>
  spawnSync(process.execPath, [path.join(root, "bin/pms-events.mjs"), ...args], { input, encoding: "utf8", timeout: 300000 });

function fileWith(text) {
  const file = path.join(tempDir("pms-cli-"), "config.json");
  writeFileSync(file, text);
  return file;
}

test("config check accepts the demo configuration", () => {
  const run = cli(["config", "check", path.join(root, "config/demo.json")]);
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /^ok: 2 enterprise\(s\), 3 chain\(s\), 6 client\(s\), 0 webhook\(s\); retention 604800 s/);
});

test("config check refuses what the Worker refuses, with the Worker's message", async () => {
  const bad = (edit) => { const c = structuredClone(demoConfig); edit(c); return JSON.stringify(c); };
  const docs = {
    "not JSON": "{ nope",
    "plain secret": bad((c) => { c.clients[0].secret = "secret-001"; }),
    "unknown chain grant": bad((c) => { c.clients[0].grants = [{ chain: "NOPE" }]; }),
    "limit out of range": bad((c) => { c.limits = { slowConsumerSeconds: 100000 }; }),
    "retention wraps": bad((c) => { c.retentionSeconds = 18446744073709552000; }),
    "webhook outside the grants": bad((c) => { c.clients[0].webhooks = [{ id: "wh-x", chain: "OTH", url: "https://v.example/h", secret: "whsec_" + "A".repeat(44) }]; }),
  };
  for (const [what, text] of Object.entries(docs)) {
    const run = cli(["config", "check", fileWith(text)]);
    assert.equal(run.status, 1, `${what}: ${run.stdout}${run.stderr}`);
    const message = run.stderr.trim();
    const w = await startWorker({ config: text });
    try {
      const res = await request(w.base, "GET", "/oauth/v1/tokens");
      assert.equal(res.status, 500, what);
      assert.equal(res.json.error, "configuration_error");
      assert.equal(res.json.message, message, `${what}: the same message`);
    } finally {
      await w.dispose();
    }
  }
  assert.equal(cli(["config", "check", "/no/such/file"]).status, 2);
  assert.equal(cli(["config", "nope"]).status, 2);
});

test("config hash-secret hashes a secret from stdin that the Worker then accepts", async () => {
  const secret = "a-long-random-client-secret-0123456789";
  const run = cli(["config", "hash-secret", "20000"], secret + "\n");
  assert.equal(run.status, 0, run.stderr);
  const hash = run.stdout.trim();
  assert.match(hash, /^pbkdf2-sha256\$20000\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
  assert.ok(!hash.includes(secret));
  const config = structuredClone(demoConfig);
  config.clients.find((c) => c.id === DEMO.app1.id).secretHash = hash;
  const w = await startWorker({ config });
  try {
    assert.ok(await tokenFor(w.base, { ...DEMO.app1, secret }), "a token with the new secret");
  } finally {
    await w.dispose();
  }
  assert.equal(cli(["config", "hash-secret"], "").status, 2, "an empty secret is refused");
  assert.equal(cli(["config", "hash-secret", "10"], secret).status, 2, "weak iterations are refused");
});

test("npx pms-events --help lists every command", () => {
  const run = spawnSync("npx", ["--no-install", "pms-events", "--help"], { cwd: root, encoding: "utf8", timeout: 60000 });
  assert.equal(run.status, 0, run.stderr);
  for (const command of ["tail", "simulate", "receive", "config check", "config hash-secret"]) {
    assert.match(run.stderr, new RegExp(`pms-events ${command} `), `${command} is in the usage`);
  }
});

test("the packed command line checks configurations on a machine with Node and no Rust toolchain", { timeout: 180_000 }, () => {
  // What an operator installs: the package npm would publish, installed on its own.
  const dir = tempDir("pms-pack-");
  const pack = spawnSync("npm", ["pack", "--silent", "--pack-destination", dir], { cwd: root, encoding: "utf8" });
  assert.equal(pack.status, 0, pack.stderr);
  const tarball = path.join(dir, pack.stdout.trim().split("\n").pop());
  const install = spawnSync("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--prefix", dir, tarball], { encoding: "utf8" });
  assert.equal(install.status, 0, install.stderr);
  // Node on the PATH, cargo not: the commands cannot fall back on a Rust build.
  const env = { HOME: dir, PATH: path.dirname(process.execPath) };
  assert.notEqual(spawnSync("cargo", ["--version"], { env }).status, 0, "cargo is out of reach");
  const installed = (args, input) =>
    spawnSync(path.join(dir, "node_modules/.bin/pms-events"), args, { env, input, encoding: "utf8", timeout: 60000 });

  const ok = installed(["config", "check", path.join(dir, "node_modules/pms-events/config/demo.json")]);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /^ok: 2 enterprise\(s\), 3 chain\(s\)/);
  const bad = structuredClone(demoConfig);
  bad.clients[0].grants = [{ enterprise: "NOPE" }];
  const refused = installed(["config", "check", fileWith(JSON.stringify(bad))]);
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, /^invalid service configuration: /);
  const hashed = installed(["config", "hash-secret"], "a secret\n");
  assert.equal(hashed.status, 0, hashed.stderr);
  assert.match(hashed.stdout, /^pbkdf2-sha256\$10000\$/);
});
