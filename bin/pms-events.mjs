#!/usr/bin/env node
// The operator's and vendor's command line for PMS Events.
//
//   node bin/pms-events.mjs config check FILE            validate a service configuration
//   node bin/pms-events.mjs config hash-secret [ITER]    hash a client secret read from stdin
//
// `config` runs the Worker's own Rust configuration code natively (src/bin/pms-config.rs,
// built by cargo on first use), so it accepts and refuses exactly what the deployed Worker
// does, with the same messages.
import { spawnSync } from "node:child_process";
import path from "node:path";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const [group, command, ...rest] = process.argv.slice(2);

function usage(code) {
  console.error("usage: pms-events config check FILE | pms-events config hash-secret [ITERATIONS] < secret");
  process.exit(code);
}

if (group !== "config" || !["check", "hash-secret"].includes(command)) usage(group ? 2 : 0);
const args = command === "check" && rest[0] ? [command, path.resolve(rest[0]), ...rest.slice(1)] : [command, ...rest];
const run = spawnSync("cargo", ["run", "--quiet", "--bin", "pms-config", "--", ...args], {
  cwd: root,
  stdio: "inherit",
  env: { ...process.env, PATH: `${process.env.HOME}/.cargo/bin:${process.env.PATH}` },
});
process.exit(run.status ?? 1);
