// Runs after every end-to-end suite (scripts/test.sh): no secret, secret hash, signing
// key, webhook secret or token may appear anywhere in the runtime output the whole suite produced.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, existsSync } from "node:fs";
import { demoConfig } from "./harness.mjs";

const file = process.env.E2E_LOG_FILE;

test("the suite's logs hold no secret, hash, signing key or token", () => {
  assert.ok(file && existsSync(file), "E2E_LOG_FILE names the captured runtime output");
  const logs = readFileSync(file, "utf8");
  assert.ok(logs.split("\n").filter((l) => l.includes('"audit"')).length > 50, "the suite did produce audit lines");
  const secrets = ["secret-001", "secret-002", "secret-003", "pms-secret-001", "pms-secret-002", "ops-secret"];
  for (const s of secrets) assert.ok(!logs.includes(s), `client secret ${s} leaked`);
  for (const c of demoConfig.clients) {
    const [, , salt, hash] = c.secretHash.split("$");
    assert.ok(!logs.includes(hash) && !logs.includes(salt), `hash material of ${c.id} leaked`);
  }
  assert.ok(!logs.includes("pbkdf2-sha256$"), "a secret hash leaked");
  const seeds = readFileSync(file + ".keys", "utf8").split("\n").filter(Boolean);
  assert.ok(seeds.length > 0);
  for (const seed of seeds) assert.ok(!logs.includes(seed), "a signing key or webhook secret leaked");
  assert.ok(!logs.includes("whsec_"), "a webhook secret leaked");
  assert.doesNotMatch(logs, /eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}/, "a token leaked");
});
