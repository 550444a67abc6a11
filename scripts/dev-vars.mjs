#!/usr/bin/env node
// Prints a .dev.vars for `wrangler dev`: the demo configuration (docs/operations.md, The demo configuration) and a newly
// generated Ed25519 signing key. Local only: production sets both with `wrangler secret put`.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";

const config = JSON.stringify(JSON.parse(readFileSync(new URL("../config/demo.json", import.meta.url), "utf8")));
const keys = JSON.stringify([{ kid: `dev-${Date.now()}`, seed: randomBytes(32).toString("base64url") }]);
console.log(`PMS_CONFIG='${config}'`);
console.log(`SIGNING_KEYS='${keys}'`);
