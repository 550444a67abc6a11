// A vendor's connections land on many gateway isolates across the network: the ceiling on
// open connections per app key holds across all of them. Two workers of this build in one
// runtime are two isolates sharing the Durable Object namespaces, as a deployment's isolates do.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Miniflare } from "miniflare";
import { CheckedWebSocket as WebSocket, workerScript, demoConfig, newSigningKeys, readResponse, sleep } from "./harness.mjs";

const KEY = Buffer.from("APPKEY001").toString("base64");

test("the open connections of an app key are counted across gateway isolates", { timeout: 60_000 }, async () => {
  const config = structuredClone(demoConfig);
  config.limits = { maxConnectionsPerAppKey: 2 };
  const bindings = { PMS_CONFIG: JSON.stringify(config), SIGNING_KEYS: JSON.stringify(newSigningKeys()) };
  const socket = [{ host: "127.0.0.1", port: 0 }];
  const mf = new Miniflare({
    workers: [
      {
        ...workerScript, name: "a", bindings, unsafeDirectSockets: socket,
        durableObjects: {
          CHAIN_LOG: { className: "ChainLog", useSQLite: true },
          LOGIN_GUARD: { className: "LoginGuardObject", useSQLite: true },
          SERVICE_TALLY: { className: "ServiceTallyObject", useSQLite: true },
        },
      },
      {
        ...workerScript, name: "b", bindings, unsafeDirectSockets: socket,
        durableObjects: {
          CHAIN_LOG: { className: "ChainLog", useSQLite: true, scriptName: "a" },
          LOGIN_GUARD: { className: "LoginGuardObject", useSQLite: true, scriptName: "a" },
          SERVICE_TALLY: { className: "ServiceTallyObject", useSQLite: true, scriptName: "a" },
        },
      },
    ],
  });
  try {
    await mf.ready;
    const [a, b] = await Promise.all(["a", "b"].map(async (name) => (await mf.unsafeGetDirectURL(name)).href.replace(/\/$/, "")));
    const open = (base) => new Promise((resolve) => {
      const ws = new WebSocket(`${base.replace("http", "ws")}/subscriptions?key=${KEY}`, "graphql-transport-ws");
      ws.on("open", () => resolve({ ws }));
      ws.on("unexpected-response", (_req, res) => readResponse(res).then((r) => resolve({ refused: r })));
      ws.on("error", () => {});
    });
    const first = await open(a);
    const second = await open(b);
    assert.ok(first.ws && second.ws, "one on each isolate");
    const third = await open(a);
    assert.equal(third.refused?.status, 429, "the third is over the ceiling, though isolate a holds only one");
    assert.match(third.refused.json.message, /2 open connections/);
    const fourth = await open(b);
    assert.equal(fourth.refused?.status, 429, "and so on the other isolate");
    second.ws.close();
    await sleep(500);
    const again = await open(a);
    assert.ok(again.ws, "a connection closed on isolate b makes room on isolate a");
    for (const s of [first, again]) s.ws.close();
  } finally {
    await Promise.race([mf.dispose(), sleep(5_000)]);
  }
});
