// `pms-events config check FILE` and `config hash-secret`: the Worker's own Rust
// configuration code (src/config/operator_tools.rs) built for Node into bin/wasm by
// scripts/build.sh, so it accepts and refuses exactly what the deployed Worker does, with the
// same messages, on a machine with Node alone.
import { readFileSync, existsSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import path from "node:path";
import { root, UsageError, Fatal } from "../lib/service.mjs";

export const usage = `pms-events config check FILE            validate a service configuration (exit 1 naming the bad entry)
pms-events config hash-secret [ITER] < secret   hash a client secret read from stdin`;

function tools() {
  const built = path.join(root, "bin/wasm/pms_events.js");
  if (!existsSync(built)) throw new Fatal(`${built} is missing: build it with scripts/build.sh (or install the published package)`);
  return createRequire(import.meta.url)(built);
}

export function run([command, ...rest]) {
  let outcome;
  if (command === "check" && rest.length === 1) {
    let text;
    try {
      text = readFileSync(rest[0], "utf8");
    } catch (e) {
      outcome = { status: 2, stdout: "", stderr: `cannot read ${rest[0]}: ${e.message}` };
    }
    outcome ??= JSON.parse(tools().configCheck(text));
  } else if (command === "hash-secret" && rest.length <= 1) {
    outcome = JSON.parse(tools().configHashSecret(readFileSync(0, "utf8"), rest[0], randomBytes(16)));
  } else {
    throw new UsageError(`unknown config command ${[command, ...rest].join(" ") || "(none)"}`);
  }
  if (outcome.stdout) console.log(outcome.stdout);
  if (outcome.stderr) console.error(outcome.stderr);
  return outcome.status;
}
