// Runs schemathesis (PyPI; installed by scripts/setup.sh into .tools/schemathesis) against the
// OpenAPI document the worker serves, once per role's token, with every check: a response the
// document does not describe, a schema-valid request refused, a schema-violating one accepted,
// an undocumented method answered. Exits non-zero on any failure.
//   node miniflare/schemathesis.mjs [SECONDS per role, default 60]
import { spawn } from "node:child_process";
import path from "node:path";
import { startWorker, tokenFor, DEMO } from "./harness.mjs";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const seconds = Number(process.argv[2] ?? 60);
const bin = process.env.SCHEMATHESIS_BIN ?? path.join(root, ".tools/schemathesis/bin/schemathesis");

const config = path.join(root, "miniflare/schemathesis.toml");
// The runtime's output is kept, not printed: it is the audit log of thousands of requests.
const w = await startWorker({ direct: true, pages: true, logs: [] });
let failed = false;
try {
  const roles = {
    vendor: await tokenFor(w.base, DEMO.app1),
    publisher: await tokenFor(w.base, DEMO.pms1),
    operator: await tokenFor(w.base, DEMO.ops, { scope: "urn:pms:admin" }),
  };
  for (const [role, token] of Object.entries(roles)) {
    console.log(`\n== schemathesis as the ${role} (${seconds} s)`);
    // Asynchronously: this process reads the runtime's output, and a blocked event loop would
    // let its pipe fill and stall the runtime.
    const status = await new Promise((resolve) => spawn(bin, [
      "--config-file", config,
      "run", `${w.base}/openapi.json`,
      "--url", w.base,
      "-H", `Authorization: Bearer ${token}`,
      "--checks", "all",
      "--max-time", String(seconds),
      "--workers", "1",
      "--no-color",
      "--suppress-health-check", "all",
    ], { stdio: "inherit", env: { ...process.env, SCHEMATHESIS_TELEMETRY: "false" } }).on("exit", resolve));
    if (status !== 0) failed = true;
  }
} finally {
  await w.dispose();
}
process.exit(failed ? 1 : 0);
