// Side by side with the in-memory graphql-ws reference peer (../shared/bench): starts this
// worker on local workerd through Miniflare with a direct socket (no local request router,
// none of `wrangler dev`'s proxy), then runs the peer's `side-by-side.mjs` against it.
// Usage: npm run bench:peer [-- SECONDS]   env ROWS as side-by-side.mjs takes it.
import { spawn, execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startWorker } from "../harness.mjs";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
const shared = process.env.BENCH_PEER_DIR ?? path.resolve(root, "../shared/bench");
if (!existsSync(path.join(shared, "side-by-side.mjs"))) throw new Error(`no reference peer at ${shared}`);
// ../shared may be read-only: install the peer's packages in a copy.
const dir = existsSync(path.join(shared, "node_modules")) ? shared : mkdtempSync(path.join(tmpdir(), "pms-peer-"));
if (dir !== shared) {
  cpSync(shared, dir, { recursive: true });
  execFileSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: dir, stdio: "inherit" });
}
// The runtime's output is read by this process (audit lines), so the peer runs alongside,
// not blocking it.
const w = await startWorker({ direct: true, logs: { push() {} } });
try {
  const run = spawn(process.execPath, [path.join(dir, "side-by-side.mjs"), w.base, process.argv[2] ?? "10"], { stdio: "inherit" });
  process.exitCode = await new Promise((resolve) => run.on("exit", (code) => resolve(code ?? 1)));
} finally {
  await w.dispose();
}
