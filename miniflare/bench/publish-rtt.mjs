// The publish's own round trip, as the load generator's one publisher sees it: sequential
// batches of 10 events (fanout.mjs's shape), no subscriber, on chain HTBTTE or round-robin
// over BENCH001..BENCH<chains>. With a sequential publisher, a row's rate cannot pass
// 10 events per round trip, and no delivery can arrive sooner than the publish is stored:
// this is the floor under the unsaturated rows' p50/p99 and the many-chain rows' rate.
// Speaks only the contract's token and publish routes, so it measures the reference peer too.

async function token(base) {
  const res = await fetch(`${base}/oauth/v1/tokens`, {
    method: "POST",
    headers: {
      "Content-Type": "application/x-www-form-urlencoded",
      Authorization: "Basic " + Buffer.from("pms-core-001:pms-secret-001").toString("base64"),
      "x-app-key": "PMSKEY001",
      enterpriseId: "BROWNS",
    },
    body: `grant_type=client_credentials&scope=${encodeURIComponent("urn:pms:publish")}`,
  });
  return (await res.json()).access_token;
}

/** `count` sequential publishes (after `warmup` more): round-trip p50, p99 and max in ms. */
export async function publishRoundTrip(base, { chains = 1, count = 2000, warmup = 200 } = {}) {
  const bearer = `Bearer ${await token(base)}`;
  const chainAt = (i) => (chains === 1 ? "HTBTTE" : `BENCH${String((i % chains) + 1).padStart(3, "0")}`);
  const hotelOf = (c) => (c === "HTBTTE" ? "HTB01" : `${c}H1`);
  const times = [];
  let seq = 0;
  for (let i = 0; i < warmup + count; i++) {
    const chain = chainAt(i);
    const body = JSON.stringify(Array.from({ length: 10 }, () => ({
      moduleName: "Reservation", eventName: "CHECK IN", primaryKey: `RTT:${seq++}`, timestamp: new Date().toISOString(),
      hotelId: hotelOf(chain), detail: [{ elementName: "Room", newValue: "101", oldValue: null }],
    })));
    const t0 = performance.now();
    const res = await fetch(`${base}/events/v1/chains/${chain}/events`, { method: "POST", headers: { Authorization: bearer, "Content-Type": "application/json" }, body });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`publish to ${chain}: ${res.status}`);
    if (i >= warmup) times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const at = (p) => times[Math.min(times.length - 1, Math.floor(p * times.length))];
  return { p50: at(0.5), p99: at(0.99), max: times.at(-1) };
}
