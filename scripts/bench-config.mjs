#!/usr/bin/env node
// Writes config/bench.json: the demo configuration plus chains BENCH001…BENCH100 of enterprise
// BROWNS, one property BENCH<nnn>H1 each, granted to client-app-001 and pms-core-001, so every
// benchmark row can run on it, and the many-chain rows spread over 100 chains' objects.
//   node scripts/bench-config.mjs [CHAINS]
import { readFileSync, writeFileSync } from "node:fs";

const chains = Number(process.argv[2] ?? 100);
const config = JSON.parse(readFileSync(new URL("../config/demo.json", import.meta.url), "utf8"));
const codes = Array.from({ length: chains }, (_, i) => `BENCH${String(i + 1).padStart(3, "0")}`);
config.chains.push(...codes.map((code) => ({ code, enterprise: "BROWNS", properties: [`${code}H1`] })));
for (const client of config.clients.filter((c) => c.id === "client-app-001" || c.id === "pms-core-001")) {
  client.grants.push(...codes.map((chain) => ({ chain })));
}
writeFileSync(new URL("../config/bench.json", import.meta.url), JSON.stringify(config, null, 1) + "\n");
console.log(`config/bench.json: ${config.chains.length} chains`);
