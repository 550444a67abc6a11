// The streaming floor: what delivering an event to graphql-ws subscribers costs in this
// runtime when nothing else is done. A plain JavaScript Worker (no Rust, no GraphQL parser, no
// auth, no cursors, no acknowledgements) speaks just enough of the contract for the peer's
// load generator (fanout.mjs): a dummy token, `POST /events/v1/chains/{chain}/events`, and
// `graphql-transport-ws` on `/subscriptions` (connection_init, subscribe with a chainCode,
// ping, complete; `next` frames carrying `metadata.offset` and `primaryKey`, the fields the
// load generator asks for). Three designs, each under its own path prefix on one workerd:
//
// - `/relay`: this service's topology. The Worker holds the vendor's socket and, on
//   subscribe, opens one internal socket to the chain's Durable Object (hibernation API).
//   A publish goes to the object, which stores the rows as the service does (the publish
//   floor's schema and insert, all or nothing in `transactionSync`), then sends the batch
//   once per internal socket; the Worker writes one `next` frame per event. The output gate
//   holds the batch until the rows are durable, as it holds the service's.
// - `/object`: the vendor's socket handed to the chain's Durable Object (direct attach; the
//   chain is fixed, as the contract's flow, which names it only in `subscribe`, cannot be):
//   the object stores the batch and writes every `next` frame itself.
// - `/memory`: the peer's design, as near as this runtime allows: the vendor sockets held in
//   memory and nothing stored. (A Worker cannot write to a socket another request opened:
//   "Cannot perform I/O on behalf of a different request", so the sockets live in a Durable
//   Object, as in `/object`.)
//
// Run by `npm run bench:peer -- SECONDS --floors=ROUNDS` next to the service and the peer.

import { STORE_SOURCE, startFloorWorker } from "./publish-floor.mjs";

const SCRIPT = `
${STORE_SOURCE}

const ACK = '{"type":"connection_ack"}';
const PONG = '{"type":"pong"}';
/** The 101 answer, naming the subprotocol the client offered (graphql-ws insists on it). */
const upgraded = (client) =>
  new Response(null, { status: 101, webSocket: client, headers: { "Sec-WebSocket-Protocol": "graphql-transport-ws" } });
const chainOf = (query) => /chainCode:\\s*"([A-Z0-9]{1,20})"/.exec(query)?.[1];
/** The subscription's id as JSON, then the frame of one event (the fields fanout.mjs asks for). */
const frame = (id, offset, e) =>
  '{"id":' + id + ',"type":"next","payload":{"data":{"newEvent":{"metadata":{"offset":"' + offset +
  '"},"primaryKey":' + JSON.stringify(e.primaryKey) + '}}}}';

/** One message of a vendor's socket: answers init and ping, calls onSubscribe(chain, idJson). */
function onProtocolMessage(ws, data, onSubscribe) {
  const msg = JSON.parse(data);
  if (msg.type === "connection_init") ws.send(ACK);
  else if (msg.type === "ping") ws.send(PONG);
  else if (msg.type === "subscribe") onSubscribe(chainOf(msg.payload.query), JSON.stringify(msg.id));
}

export class Chain extends StoringObject {
  async fetch(request) {
    const path = new URL(request.url).pathname;
    if (request.headers.get("Upgrade") === "websocket") {
      const [client, server] = Object.values(new WebSocketPair());
      // /object and /memory: a vendor socket; /attach: a gateway's internal one.
      this.ctx.acceptWebSocket(server, [path === "/attach" ? "internal" : "vendor"]);
      return upgraded(client);
    }
    const events = await request.json();
    const offsets = [];
    if (path === "/memory") {
      for (const _ of events) offsets.push(String(++this.head));
    } else {
      this.store(events, offsets, true);
    }
    if (path !== "/relay") {
      for (const ws of this.ctx.getWebSockets("vendor")) {
        const id = ws.deserializeAttachment();
        if (id) for (let i = 0; i < events.length; i++) ws.send(frame(id, offsets[i], events[i]));
      }
    } else {
      const batch = JSON.stringify({ offsets, events });
      for (const ws of this.ctx.getWebSockets("internal")) ws.send(batch);
    }
    return Response.json({ offsets });
  }

  // Only vendor sockets (/object, /memory) speak to the object.
  webSocketMessage(ws, data) {
    onProtocolMessage(ws, data, (chain, id) => ws.serializeAttachment(id));
  }
  webSocketClose(ws, code) { ws.close(code === 1005 ? 1000 : code, "closed"); }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const [, design, ...rest] = url.pathname.split("/");
    const path = "/" + rest.join("/");
    if (!["relay", "object", "memory"].includes(design)) return new Response("not found", { status: 404 });
    if (request.method === "POST" && path === "/oauth/v1/tokens") {
      return Response.json({ access_token: "floor", token_type: "Bearer", expires_in: 3600 });
    }
    const chainCode = /^\\/events\\/v1\\/chains\\/([A-Z0-9]{1,20})\\/events$/.exec(path)?.[1];
    const stub = (chain) => env.CHAIN.get(env.CHAIN.idFromName(design + ":" + chain));
    if (request.method === "POST" && chainCode) {
      return stub(chainCode).fetch("https://chain.internal/" + design, { method: "POST", body: request.body });
    }
    if (path !== "/subscriptions" || request.headers.get("Upgrade") !== "websocket") {
      return new Response("not found", { status: 404 });
    }
    // The chain is only known at subscribe; /object and /memory fix it (the load generator's).
    if (design !== "relay") return stub("HTBTTE").fetch("https://chain.internal/" + design, request);
    const [client, server] = Object.values(new WebSocketPair());
    server.accept();
    let internal = null;
    server.addEventListener("message", (m) => onProtocolMessage(server, m.data, async (chain, id) => {
      const res = await stub(chain).fetch("https://chain.internal/attach", { headers: { Upgrade: "websocket" } });
      internal = res.webSocket;
      internal.accept();
      internal.addEventListener("message", (m) => {
        const { offsets, events } = JSON.parse(m.data);
        for (let i = 0; i < events.length; i++) server.send(frame(id, offsets[i], events[i]));
      });
    }));
    server.addEventListener("close", () => { internal?.close(1000, "closed"); server.close(1000, "closed"); });
    return upgraded(client);
  },
};
`;

/** The floor's designs, each the path prefix of its base URL. */
export const STREAM_FLOOR_DESIGNS = {
  relay: "floor, this topology: Worker socket + internal socket to a storing Durable Object",
  object: "floor, direct attach: the vendor socket held by the storing Durable Object",
  memory: "floor, the peer's design: vendor sockets held by a Durable Object, nothing stored",
};

/** Starts the streaming floor on its own workerd (a direct socket, the service's settings). */
export function startStreamFloor(miniflare = {}) {
  return startFloorWorker(SCRIPT, { CHAIN: "Chain" }, { direct: true, miniflare });
}
