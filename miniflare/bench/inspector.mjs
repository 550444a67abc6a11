// What the profiling tools share: a session with the runtime's V8 inspector, a vendor
// subscription that is opened and then left alone, and the workerd processes to measure.
import { execFileSync } from "node:child_process";
import WebSocket from "ws";
import { DEMO } from "../harness.mjs";

/** A minimal Chrome DevTools Protocol session over the inspector's WebSocket. `contexts`
 *  collects the execution contexts the isolate reports once `Runtime.enable` was sent. */
export async function cdp(url) {
  const ws = new WebSocket(url);
  await new Promise((r, j) => { ws.once("open", r); ws.once("error", j); });
  let id = 0;
  const pending = new Map();
  const contexts = [];
  ws.on("message", (d) => {
    const m = JSON.parse(d.toString());
    if (m.method === "Runtime.executionContextCreated") contexts.push(m.params.context.id);
    if (m.id && pending.has(m.id)) { pending.get(m.id)(m); pending.delete(m.id); }
  });
  return {
    contexts,
    send(method, params = {}) {
      return new Promise((resolve, reject) => {
        const n = ++id;
        pending.set(n, (m) => (m.error ? reject(new Error(`${method}: ${m.error.message}`)) : resolve(m.result)));
        ws.send(JSON.stringify({ id: n, method, params }));
      });
    },
    close() { ws.close(); },
  };
}

/**
 * One graphql-transport-ws connection of client-app-001 with one live `newEvent`
 * subscription on `chain` (TTE) selecting `selection`; resolves with the socket once acknowledged.
 */
export function subscribe(base, token, selection = "metadata { offset } hotelId eventName detail { elementName newValue }", chain = "TTE") {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${base.replace(/^http/, "ws")}/subscriptions?key=${Buffer.from(DEMO.app1.appKey).toString("base64")}`, "graphql-transport-ws");
    ws.on("open", () => ws.send(JSON.stringify({ type: "connection_init", payload: { Authorization: `Bearer ${token}`, "x-app-key": DEMO.app1.appKey } })));
    ws.on("message", (d) => {
      const m = JSON.parse(d.toString());
      if (m.type === "connection_ack") {
        ws.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query: `subscription($i: NewEventInput!) { newEvent(input: $i) { ${selection} } }`, variables: { i: { chainCode: chain, offsetType: "highest" } } } }));
        resolve(ws);
      }
    });
    ws.on("error", reject);
  });
}

/** This process's workerd children (each Miniflare runs one), oldest first. */
export const workerdChildren = () =>
  execFileSync("ps", ["--ppid", String(process.pid), "-o", "pid=,comm="], { encoding: "utf8" }).split("\n")
    .map((l) => l.trim().split(/\s+/)).filter(([, comm]) => comm?.startsWith("workerd")).map(([pid]) => Number(pid));
