// Prints which documented (method, route, status) triples the end-to-end run received, and
// which it never did: the part of schema/openapi.yaml no test has checked against the worker.
// Usage: node miniflare/spec-coverage.mjs FILE (written by the harness under E2E_SPEC_COVERAGE).
import { readFileSync, existsSync } from "node:fs";
import { openapi } from "./spec-check.mjs";

const file = process.argv[2];
const seen = new Set(existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : []);
const documented = [];
for (const [template, item] of Object.entries(openapi.paths)) {
  for (const method of ["get", "post"]) {
    for (const status of Object.keys(item[method]?.responses ?? {})) documented.push(`${method.toUpperCase()} ${template} ${status}`);
  }
}
// 405 is answered for methods a route does not document; it is checked, not recorded.
const unseen = documented.filter((d) => !seen.has(d) && !d.endsWith(" 405"));
console.log(`spec coverage: ${documented.length - unseen.length} of ${documented.length} documented responses received and checked`);
if (unseen.length) console.log(`not exercised end to end: ${unseen.join("; ")}`);
