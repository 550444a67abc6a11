// `pms-events config check FILE` and `config hash-secret`: the Worker's own Rust
// configuration code run natively (src/bin/pms-config.rs, built by cargo on first use), so it
// accepts and refuses exactly what the deployed Worker does, with the same messages.
import { spawnSync } from "node:child_process";
import path from "node:path";
import { root, UsageError } from "../lib/service.mjs";

export const usage = `pms-events config check FILE            validate a service configuration (exit 1 naming the bad entry)
pms-events config hash-secret [ITER] < secret   hash a client secret read from stdin`;

export function run([command, ...rest]) {
  if (!["check", "hash-secret"].includes(command)) throw new UsageError(`unknown config command ${command ?? "(none)"}`);
  const args = command === "check" && rest[0] ? [command, path.resolve(rest[0]), ...rest.slice(1)] : [command, ...rest];
  const result = spawnSync("cargo", ["run", "--quiet", "--bin", "pms-config", "--", ...args], {
    cwd: root,
    stdio: "inherit",
    env: { ...process.env, PATH: `${process.env.HOME}/.cargo/bin:${process.env.PATH}` },
  });
  return result.status ?? 1;
}
