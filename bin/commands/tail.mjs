// `pms-events tail`: the reference vendor client. Streams a chain's events as JSON lines,
// saves the last offset it wrote, and after any close reconnects with backoff and resumes at
// the next offset, so its output has no gap and no repeat across restarts of either side.
import { openSync, writeSync, fsyncSync, closeSync, readFileSync, renameSync, existsSync } from "node:fs";
import { createClient } from "graphql-ws";
import WebSocket from "ws";
import { parseFlags, credentials, Tokens, DEMO_CLIENTS, LOCAL_URL, Fatal, UsageError, backoff, sleep, callJson } from "../lib/service.mjs";

export const usage = `pms-events tail --chain CODE [options]
  --url URL            the service (default ${LOCAL_URL})
  --from N             start at offset N (inclusive)
  --highest            start at the newest event
  --resume FILE        continue after the offset saved in FILE; save to it on every batch and on exit
  --bootstrap FILE     first write the current state of the chain's entities to FILE (JSON lines,
                       one entity each), then stream from the offset that state is as of (+1):
                       apply an event only above its entity's lastOffset. With --resume, only
                       when the resume file does not exist yet
  --fields SELECTION   the GraphQL selection of newEvent (default: every field)
  --hotel CODES        comma-separated property filter
  --events NAMES       comma-separated event names
  --modules NAMES      comma-separated module names
  --delta              only detail entries whose value changed
  --max-events N       stop after N events
  --client-id ID --app-key KEY --enterprise ID   (or PMS_EVENTS_CLIENT_ID, PMS_EVENTS_APP_KEY,
                       PMS_EVENTS_ENTERPRISE; the secret only from PMS_EVENTS_CLIENT_SECRET;
                       against a local server the demo vendor client-app-001)
Without --from, --highest or a resume file, the service resumes after the last offset it
delivered to this app key on the chain with the same filter (within 24 h), else starts live.`;

const FLAGS = {
  url: "string", chain: "string", from: "string", highest: "boolean", resume: "string", bootstrap: "string", fields: "string",
  hotel: "string", events: "string", modules: "string", delta: "boolean", "max-events": "number",
  "client-id": "string", "app-key": "string", enterprise: "string",
};

const ALL_FIELDS = `metadata { offset uniqueEventId } moduleName eventName primaryKey timestamp hotelId
  publisherId actionInstanceId detail { elementName elementType elementSequence elementRole newValue oldValue scopeFrom scopeTo }`;

/** Errors of a subscription that a retry cannot fix: the command stops with them. */
const FINAL_CODES = new Set([
  "FORBIDDEN", "BAD_USER_INPUT", "OFFSET_OUT_OF_RANGE", "GRAPHQL_PARSE_FAILED", "GRAPHQL_VALIDATION_FAILED",
  "QUERY_TOO_COMPLEX", "FRAME_TOO_LARGE", "OPERATION_RESOLUTION_FAILURE",
]);
/** Close codes a retry cannot fix (4401 gets a fresh token first; everything else is retried). */
const FINAL_CLOSES = new Map([[4400, "the service refused a message"], [4403, "the token lacks urn:pms:events or names another app key"], [4406, "subprotocol refused"]]);

const increment = (offset) => (BigInt(offset) + 1n).toString();

export async function run(argv) {
  const flags = parseFlags(argv, FLAGS);
  flags.url = (flags.url ?? LOCAL_URL).replace(/\/$/, "");
  if (!flags.chain) throw new UsageError("--chain is required");
  if (flags.from !== undefined && !/^[0-9]+$/.test(flags.from)) throw new UsageError("--from must be decimal digits");
  if (flags.bootstrap && (flags.from !== undefined || flags.highest)) throw new UsageError("--bootstrap starts where the state is as of: not with --from or --highest");
  const creds = credentials(flags, DEMO_CLIENTS.vendor);
  const tokens = new Tokens(flags.url, creds, "urn:pms:events");

  let lastOffset = flags.resume && existsSync(flags.resume) ? readPosition(flags.resume, flags.chain) : undefined;
  if (flags.bootstrap && lastOffset === undefined) {
    const { asOfOffset, entities } = await bootstrap(flags, tokens);
    process.stderr.write(`pms-events tail: ${entities} entities as of offset ${asOfOffset} written to ${flags.bootstrap}; streaming from ${increment(asOfOffset)}\n`);
    // The stream goes on from the state's offset, as if every event up to it had been written.
    lastOffset = asOfOffset;
  }
  const save = () => {
    if (!flags.resume || lastOffset === undefined) return;
    // Written to the side, flushed to disk, then renamed over: a power cut leaves the old
    // position or the new one, never a torn file.
    const tmp = `${flags.resume}.tmp`;
    const fd = openSync(tmp, "w");
    try {
      writeSync(fd, JSON.stringify({ chainCode: flags.chain, lastOffset, savedAt: new Date().toISOString() }) + "\n");
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, flags.resume);
  };
  let saveQueued = false;
  const saveSoon = () => {
    if (saveQueued) return;
    saveQueued = true;
    setImmediate(() => { saveQueued = false; save(); });
  };

  const progress = new Progress(flags, tokens);
  let written = 0;
  let stop;
  const stopped = new Promise((resolve) => { stop = resolve; });
  for (const signal of ["SIGINT", "SIGTERM"]) process.once(signal, () => stop({ signal }));
  process.stdout.on("error", (e) => stop(e.code === "EPIPE" ? { signal: "EPIPE" } : { error: e }));

  let attempt = 0;
  /** Writes one event of the stream, once: a frame at or below the last written is a repeat. */
  const write = (event, socket) => {
    if (lastOffset !== undefined && BigInt(event.metadata.offset) <= BigInt(lastOffset)) return;
    // stdout full (a slow reader): stop reading the socket until it drains, so memory
    // stays bounded; if that lasts, the service closes us as slow (4413) and we resume.
    if (!process.stdout.write(JSON.stringify(event) + "\n") && socket && !socket.isPaused) {
      socket.pause();
      process.stdout.once("drain", () => socket.resume());
    }
    lastOffset = event.metadata.offset;
    written++;
    attempt = 0;
    progress.saw(lastOffset);
    saveSoon();
    if (flags["max-events"] && written >= flags["max-events"]) stop({ done: true });
  };
  let freshToken = false;
  let outcome;
  // Where the first session starts, resolved once: every reconnect before the first event
  // is written starts there again (repeating `offsetType: "highest"` would skip what was
  // published while it was away).
  const firstStart = lastOffset !== undefined ? undefined : await resolveStart(flags, tokens, progress);
  try {
    for (;;) {
      const start = nextStart(lastOffset, firstStart);
      // A token endpoint that fails for a while (not a refused login) is one more retry.
      const session = tokens.get({ fresh: freshToken }).then(
        (token) => stream(flags, creds, token, start, write),
        (e) => {
          if (e instanceof Fatal) throw e;
          return { closed: { code: 0, reason: e.message } };
        },
      );
      freshToken = false;
      outcome = await Promise.race([session, stopped]);
      if (outcome.signal || outcome.done || outcome.error) break;
      if (outcome.errors) {
        const code = outcome.errors[0]?.extensions?.code;
        if (FINAL_CODES.has(code)) throw new Fatal(`${code}: ${outcome.errors.map((e) => e.message).join("; ")}`);
      }
      if (outcome.closed) {
        const { code, reason } = outcome.closed;
        if (FINAL_CLOSES.has(code)) throw new Fatal(`closed ${code} ${reason || FINAL_CLOSES.get(code)}`);
        if (code === 4401) freshToken = true;
      }
      const wait = backoff(attempt++);
      const why = outcome.closed ? `closed ${outcome.closed.code}${outcome.closed.reason ? ` (${outcome.closed.reason})` : ""}` : outcome.errors ? outcome.errors[0]?.message : "completed";
      progress.note(`${why}; reconnecting in ${wait} ms at offset ${lastOffset !== undefined ? increment(lastOffset) : "(service cursor)"}`);
      const interrupted = await Promise.race([sleep(wait).then(() => undefined), stopped]);
      if (interrupted) { outcome = interrupted; break; }
    }
  } finally {
    save();
    progress.end();
  }
  if (outcome?.error) throw outcome.error;
  return 0;
}

/** The start of a session: after the last event written, else where the first one started. */
export function nextStart(lastOffset, firstStart) {
  return lastOffset !== undefined ? { offset: increment(lastOffset) } : firstStart;
}

/**
 * Where the first session starts: `--from`, the service's cursor (no flag), or for
 * `--highest` the newest event's offset, read from the chain's head once (the pull API), so
 * that it stays the same offset whenever the session is opened again. Should the head not
 * be readable, the service resolves `highest` itself.
 */
async function resolveStart(flags, tokens, progress) {
  if (flags.from !== undefined) return { offset: flags.from };
  if (!flags.highest) return {};
  try {
    const token = await tokens.get();
    const res = await callJson(flags.url, token, "GET", `/events/v1/chains/${encodeURIComponent(flags.chain)}/events?limit=1`);
    if (res.status === 200 && /^[0-9]+$/.test(res.body.head)) {
      const head = BigInt(res.body.head);
      return { offset: (head > 0n ? head : 1n).toString() };
    }
    progress.note(`the chain's head could not be read (${res.status}); the service picks the newest event`);
  } catch (e) {
    if (e instanceof Fatal) throw e;
    progress.note(`the chain's head could not be read (${e.message}); the service picks the newest event`);
  }
  return { offsetType: "highest" };
}

/**
 * Writes the chain's current state to `flags.bootstrap` (GET /state, every page; written to the
 * side, flushed and renamed over, so the file is whole or absent) and says the offset it is as
 * of. A page that fails for a while (a restart, a network cut) is asked again with backoff; a
 * refusal (403, 400) stops the command.
 */
async function bootstrap(flags, tokens) {
  const params = new URLSearchParams({ limit: "1000" });
  if (flags.hotel) params.set("hotelCode", flags.hotel);
  if (flags.modules) params.set("moduleNames", flags.modules);
  const tmp = `${flags.bootstrap}.tmp`;
  const fd = openSync(tmp, "w");
  let asOfOffset;
  let entities = 0;
  try {
    for (let attempt = 0; ;) {
      let res;
      try {
        res = await callJson(flags.url, await tokens.get(), "GET", `/events/v1/chains/${encodeURIComponent(flags.chain)}/state?${params}`);
      } catch (e) {
        if (e instanceof Fatal) throw e;
        res = { status: 0, body: { message: e.message } };
      }
      if (res.status === 400 || res.status === 401 || res.status === 403) throw new Fatal(`the chain's state: ${res.status} ${res.body.message ?? ""}`);
      if (res.status !== 200) {
        if (attempt >= 8) throw new Fatal(`the chain's state could not be read: ${res.status} ${res.body.message ?? ""}`);
        await sleep(backoff(attempt++));
        continue;
      }
      attempt = 0;
      asOfOffset ??= res.body.asOfOffset;
      for (const entity of res.body.entities) writeSync(fd, JSON.stringify(entity) + "\n");
      entities += res.body.entities.length;
      if (res.body.next === null) break;
      params.set("after", res.body.next);
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, flags.bootstrap);
  return { asOfOffset, entities };
}

/** The position a resume file holds; a file that is empty or not one is refused by name. */
export function readPosition(file, chain) {
  let saved;
  try {
    saved = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new UsageError(`${file} is not a resume file (${e instanceof SyntaxError ? "not JSON: empty or cut short?" : e.message}); remove it, or pass --from`);
  }
  if (saved === null || typeof saved !== "object" || !/^[0-9]+$/.test(String(saved.lastOffset))) {
    throw new UsageError(`${file} is not a resume file (no lastOffset); remove it, or pass --from`);
  }
  if (saved.chainCode !== chain) throw new UsageError(`${file} holds the position of chain ${saved.chainCode}, not ${chain}`);
  return String(saved.lastOffset);
}

/** One connection: resolves with how it ended ({closed}, {errors} or {complete}). */
function stream(flags, creds, token, start, onEvent) {
  const input = { chainCode: flags.chain, ...start };
  if (flags.hotel) input.hotelCode = flags.hotel;
  if (flags.events) input.eventNames = flags.events.split(",");
  if (flags.modules) input.moduleNames = flags.modules.split(",");
  if (flags.delta) input.delta = true;
  const key = Buffer.from(creds.appKey).toString("base64");
  return new Promise((resolve) => {
    let closed;
    let socket;
    const client = createClient({
      url: `${flags.url.replace(/^http/, "ws")}/subscriptions?key=${encodeURIComponent(key)}`,
      webSocketImpl: WebSocket,
      lazy: false,
      retryAttempts: 0,
      connectionParams: { Authorization: `Bearer ${token}`, "x-app-key": creds.appKey },
      on: {
        connected: (ws) => { socket = ws; },
        closed: (event) => { closed = { code: event?.code ?? 0, reason: event?.reason ?? String(event?.message ?? "") }; },
      },
      onNonLazyError: () => {},
    });
    const finish = (outcome) => { client.dispose(); resolve(outcome); };
    client.subscribe(
      { query: `subscription Tail($input: NewEventInput!) { newEvent(input: $input) { ${flags.fields ?? ALL_FIELDS} } }`, variables: { input } },
      {
        next: (result) => {
          if (result.errors?.length) return finish({ errors: result.errors });
          const gap = result.extensions?.gap;
          if (gap) process.stderr.write(`pms-events tail: retention dropped offsets ${gap.requested} to ${BigInt(gap.resumedAt) - 1n}; resumed at ${gap.resumedAt}\n`);
          const event = result.data?.newEvent;
          if (event) onEvent(event, socket);
        },
        error: (e) => finish(Array.isArray(e) ? { errors: e } : { closed: closed ?? { code: e?.code ?? 0, reason: e?.reason ?? String(e?.message ?? e) } }),
        complete: () => finish(closed ? { closed } : { complete: true }),
      },
    );
  });
}

/** A progress bar on stderr while replaying (only when stderr is a terminal); notes otherwise. */
class Progress {
  constructor(flags, tokens) {
    Object.assign(this, { flags, tokens, tty: process.stderr.isTTY, head: undefined, count: 0, since: Date.now(), last: undefined, rate: 0 });
    if (this.tty) {
      this.timer = setInterval(() => this.tick(), 1000);
      this.timer.unref();
      this.tick();
    }
  }

  saw(offset) {
    this.last = offset;
    this.count++;
  }

  async tick() {
    const now = Date.now();
    this.rate = (this.count * 1000) / Math.max(1, now - this.since);
    this.count = 0;
    this.since = now;
    try {
      const token = await this.tokens.get();
      const res = await callJson(this.flags.url, token, "GET", `/events/v1/chains/${encodeURIComponent(this.flags.chain)}/events?limit=1`);
      if (res.status === 200) this.head = res.body.head;
    } catch { /* the bar waits for the next tick */ }
    this.draw();
  }

  draw() {
    if (!this.tty || this.head === undefined || this.last === undefined) return;
    const head = Number(this.head);
    const at = Number(this.last);
    if (at >= head) { process.stderr.write("\r\x1b[K"); return; } // live: nothing to show
    const width = 30;
    const filled = Math.round((width * at) / Math.max(1, head));
    process.stderr.write(`\r\x1b[K[${"#".repeat(filled)}${".".repeat(width - filled)}] offset ${at} of head ${head}, ${Math.round(this.rate)} events/s`);
  }

  note(text) {
    process.stderr.write(`${this.tty ? "\r\x1b[K" : ""}pms-events tail: ${text}\n`);
  }

  end() {
    clearInterval(this.timer);
    if (this.tty) process.stderr.write("\r\x1b[K");
  }
}
