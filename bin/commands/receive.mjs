// `pms-events receive`: the reference webhook receiver. It verifies every request with the
// official Standard Webhooks library, writes each event once as a JSON line (deduplicated by
// chain and uniqueEventId, since deliveries are at least once, and two chains' publishers
// may use the same ids) and answers 204, so a vendor can watch pushed events locally or
// start its own receiver from this one.
import http from "node:http";
import { Webhook } from "standardwebhooks";
import { parseFlags, UsageError } from "../lib/service.mjs";

export const usage = `pms-events receive [options]
  --port N         listen on 127.0.0.1:N (default 8789; 0 picks a free port)
  --path PATH      the webhook's path (default /hook)
  --fail-first N   answer 503 to the first N requests (to watch retries)
The Standard Webhooks secret (whsec_…) is read from PMS_WEBHOOK_SECRET only. Events go to
stdout as JSON lines; stderr says where it listens and what each request carried.`;

const FLAGS = { port: "number", path: "string", "fail-first": "number" };
/** The largest body read: the service posts under 1 MiB. */
const MAX_BODY_BYTES = 2 << 20;
/** uniqueEventIds remembered for deduplication (oldest forgotten first). */
const REMEMBERED_IDS = 100_000;

export async function run(argv) {
  const flags = parseFlags(argv, FLAGS);
  const secret = process.env.PMS_WEBHOOK_SECRET;
  if (!secret) throw new UsageError("set PMS_WEBHOOK_SECRET to the webhook's secret (whsec_…)");
  let verifier;
  try {
    verifier = new Webhook(secret);
  } catch {
    throw new UsageError("PMS_WEBHOOK_SECRET is not a Standard Webhooks secret (whsec_ and base64)");
  }
  const hookPath = flags.path ?? "/hook";
  let failFirst = flags["fail-first"] ?? 0;
  const seen = new Set();
  const server = http.createServer((req, res) => {
    const answer = (status, why) => {
      res.writeHead(status, { "content-type": "text/plain" }).end(why);
      if (status >= 300) console.error(`receive: ${status} ${why}`);
    };
    if (req.method !== "POST" || req.url.split("?")[0] !== hookPath) return answer(404, `POST ${hookPath} only`);
    const chunks = [];
    let size = 0;
    req.on("data", (c) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) req.destroy();
      else chunks.push(c);
    });
    req.on("end", () => {
      let batch;
      try {
        batch = verifier.verify(Buffer.concat(chunks).toString(), req.headers);
      } catch (e) {
        return answer(401, `not verified: ${e.message}`);
      }
      if (failFirst > 0) {
        failFirst--;
        return answer(503, `failing on purpose (${req.headers["webhook-id"]})`);
      }
      let fresh = 0;
      for (const event of batch.events) {
        const id = `${batch.chainCode}\u0000${event.metadata?.uniqueEventId}`;
        if (seen.has(id)) continue;
        seen.add(id);
        if (seen.size > REMEMBERED_IDS) seen.delete(seen.values().next().value);
        process.stdout.write(JSON.stringify(event) + "\n");
        fresh++;
      }
      const gap = batch.gap ? `, gap: ${batch.gap.requested}..${Number(batch.gap.resumedAt) - 1} dropped by retention` : "";
      console.error(`receive: ${req.headers["webhook-id"]} ${batch.chainCode}: ${batch.events.length} event(s), ${fresh} new${gap}`);
      res.writeHead(204).end();
    });
  });
  await new Promise((resolve, reject) => server.once("error", reject).listen(flags.port ?? 8789, "127.0.0.1", resolve));
  console.error(`receive: listening on http://127.0.0.1:${server.address().port}${hookPath}`);
  await new Promise((resolve) => {
    for (const signal of ["SIGINT", "SIGTERM"]) process.once(signal, resolve);
  });
  server.close();
  return 0;
}
