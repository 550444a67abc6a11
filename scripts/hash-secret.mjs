#!/usr/bin/env node
// Prints the secretHash of a client secret for the service configuration:
//   node scripts/hash-secret.mjs 'the-client-secret' [iterations]
// Format: pbkdf2-sha256$<iterations>$<salt base64>$<hash base64> (see src/secret.rs).
import { pbkdf2Sync, randomBytes } from "node:crypto";

const [secret, iterationsArg] = process.argv.slice(2);
if (!secret) {
  console.error("usage: node scripts/hash-secret.mjs <secret> [iterations]");
  process.exit(2);
}
const iterations = Number(iterationsArg ?? 10000);
const salt = randomBytes(16);
const hash = pbkdf2Sync(secret, salt, iterations, 32, "sha256");
console.log(`pbkdf2-sha256$${iterations}$${salt.toString("base64")}$${hash.toString("base64")}`);
