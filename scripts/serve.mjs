#!/usr/bin/env node
// The local server (`bash scripts/dev.sh`): the built Worker and its Durable Objects on workerd,
// through miniflare as the end-to-end tests and benchmarks run it, with a socket straight to the
// Worker on 127.0.0.1:8787: no development proxy in front of it, as in a deployment (wrangler
// dev's proxy costs as much CPU as the Worker; docs/benchmarks.md). The configuration and
// signing key come from .dev.vars (scripts/setup.sh writes them); `--config FILE` serves another
// configuration (config/bench.json: 100 more chains) with the same key. State is kept in
// .wrangler/state/serve across restarts; the audit log goes to stdout.
//
//   node scripts/serve.mjs [--config FILE] [--port 8787] [--fresh]
import { existsSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { startWorker } from "../miniflare/harness.mjs";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const { values } = parseArgs({
  options: {
    config: { type: "string" },
    port: { type: "string", default: "8787" },
    fresh: { type: "boolean", default: false },
    memory: { type: "boolean", default: false },
  },
});

/** The variables of .dev.vars (`NAME='value'` lines). */
function devVars() {
  const file = path.join(root, ".dev.vars");
  if (!existsSync(file)) throw new Error(".dev.vars is missing: run bash scripts/setup.sh");
  const vars = {};
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const m = /^([A-Z_]+)='(.*)'$/.exec(line.trim());
    if (m) vars[m[1]] = m[2];
  }
  return vars;
}

const vars = devVars();
const config = values.config ? readFileSync(path.resolve(values.config), "utf8") : vars.PMS_CONFIG;
const persist = path.join(root, ".wrangler/state/serve");
if (values.fresh) rmSync(persist, { recursive: true, force: true });
const port = Number(values.port);
const w = await startWorker({
  config,
  signingKeys: JSON.parse(vars.SIGNING_KEYS),
  persist: values.memory ? false : persist,
  pages: true,
  direct: true,
  directPort: port,
  logs: { push: (line) => console.log(line) },
});
console.error(`pms-events: serving ${w.base} (configuration ${values.config ?? ".dev.vars"}, state in ${path.relative(root, persist)}); Ctrl-C stops`);
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, async () => {
    await w.dispose();
    process.exit(0);
  });
}
