// Splits a V8 CPU profile of this service's isolate by who the time was spent for: the chain
// object, the Worker's gateway, the Worker's other requests (publishes, tokens), the login
// and connection guards, and what no frame of this service claims (`(program)`, the
// runtime's event dispatch, the wasm-bindgen glue it calls straight; garbage collection).
// Locally one isolate runs them all on one thread; in production the chain object is one
// thread for its chain, so its share is what sets a chain's ceiling.
//
// A sample belongs to the first frame from the root of its stack that names a role: the
// object's exports (`chainlog_*`) and its Rust code (`edge::chain_object`, the `ChainLog`
// futures) are the object's; the guards' likewise; any other frame of this crate
// (`pms_events::`, the Worker's `fetch` export) is the Worker's: its gateway's if the stack
// has a frame of `edge::gateway` or `edge::js_socket`, else its other requests'. What a
// runtime call made from that code costs (a `send`, an SQL `exec`) counts for the caller.
// The sampler sees only the thread's time in V8: the runtime's own I/O outside it (writing
// sockets, the event loop) is in the main thread's CPU that /proc counts, not here.

const ROLE_PATTERNS = [
  ["object", /chainlog_|ChainLog|pms_events::edge::chain_object::/],
  ["guards", /loginguardobject_|LoginGuardObject|pms_events::edge::guard_object::/],
  ["worker", /pms_events::|^fetch externref shim$/],
];

/** Milliseconds of `profile` (a `Profiler.stop` result) by role, idle left out; the Worker's
 *  split into its gateway (vendor sockets) and its other requests. */
export function splitByRole(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // The Worker's samples are the gateway's when any frame is the gateway's code.
  const GATEWAY = /pms_events::edge::(gateway|js_socket)::/;
  /** What a node's stack says: its outermost claiming frame's role, and whether any frame
   *  is the gateway's. */
  const stackOf = new Map();
  const stack = (id) => {
    if (stackOf.has(id)) return stackOf.get(id);
    const name = byId.get(id).callFrame.functionName;
    const up = parent.get(id);
    const above = up === undefined ? { role: null, gateway: false } : stack(up);
    const found = {
      role: above.role ?? ROLE_PATTERNS.find(([, pattern]) => pattern.test(name))?.[0] ?? null,
      gateway: above.gateway || GATEWAY.test(name),
    };
    stackOf.set(id, found);
    return found;
  };
  // A sample's time is the gap since the one before, and the sampler pauses while the
  // thread waits outside V8: after a wait, one sample would carry the whole wait (up to
  // seconds). Each sample counts for at most twice the usual gap.
  const gaps = [...profile.timeDeltas].sort((a, b) => a - b);
  const cap = 2 * (gaps[Math.floor(gaps.length / 2)] ?? 0);
  const ms = { object: 0, gateway: 0, requests: 0, guards: 0, gc: 0, unclaimed: 0 };
  profile.samples.forEach((sample, i) => {
    const dt = Math.min(profile.timeDeltas[i] ?? 0, cap) / 1000;
    const leaf = byId.get(sample).callFrame.functionName;
    if (leaf === "(idle)") return;
    const { role, gateway } = stack(sample);
    if (role === "worker") ms[gateway ? "gateway" : "requests"] += dt;
    else if (role) ms[role] += dt;
    else if (leaf === "(garbage collector)") ms.gc += dt;
    else ms.unclaimed += dt;
  });
  return ms;
}

/** One line for a split, per delivery. */
export function describeSplit(ms, deliveries) {
  const us = (v) => ((v * 1000) / deliveries).toFixed(2);
  const busy = ms.object + ms.gateway + ms.requests + ms.guards + ms.unclaimed + ms.gc;
  return (
    `chain object ${us(ms.object)} µs/delivery, gateway ${us(ms.gateway)}, the Worker's other requests ` +
    `(publishes, tokens) ${us(ms.requests)}, guards ${us(ms.guards)}, ` +
    `runtime outside this code ${us(ms.unclaimed)}, collection ${us(ms.gc)} ` +
    `(${us(busy)} µs/delivery sampled in V8)`
  );
}
