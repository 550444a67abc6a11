#!/usr/bin/env bash
# Sets everything up and runs every check: formatting, clippy (native and wasm), native
# tests, wasm tests, the build, the end-to-end tests on workerd and a deploy dry run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false

step() { printf '\n== %s\n' "$*"; }
step "cargo fmt --check"
cargo fmt --check
step "cargo clippy (native and wasm32)"
cargo clippy --all-targets -- -D warnings
# The library and the CLI also stay clean of clippy's pedantic group (allowed lints: lib.rs).
cargo clippy --lib --bins -- -D warnings -W clippy::pedantic
cargo clippy --target wasm32-unknown-unknown --lib -- -D warnings -W clippy::pedantic
# The configuration commands built for Node (scripts/build-cli.sh), in their own target dir.
cargo clippy --target wasm32-unknown-unknown --lib --no-default-features --features node-tools --target-dir target/cli \
  -- -D warnings -W clippy::pedantic
step "native tests"
cargo test
step "alert rules (promtool check and test rules)"
promtool check rules docs/alerts.yml
promtool test rules docs/alerts.test.yml
step "wasm tests (wasm-bindgen-test under node)"
cargo test --target wasm32-unknown-unknown --test wasm
step "build"
bash scripts/build.sh
step "end-to-end tests on workerd"
E2E_LOG_FILE="$(mktemp -d)/runtime.log"
# Every response is checked against schema/openapi.yaml; this file records which were seen.
E2E_SPEC_COVERAGE="$(dirname "$E2E_LOG_FILE")/spec-coverage.txt"
export E2E_LOG_FILE E2E_SPEC_COVERAGE
npm run --silent test:e2e
node miniflare/spec-coverage.mjs "$E2E_SPEC_COVERAGE"
step "schemathesis against the served OpenAPI document, as each role (45 s each)"
node miniflare/schemathesis.mjs 45
step "log hygiene over the whole end-to-end run"
node --test miniflare/log-hygiene.check.mjs
step "deploy dry run (staging and production environments)"
for env in staging production; do
  npx wrangler deploy --dry-run --env "$env" --outdir "build/dry-run-$env" 2>&1 | grep -E "Total Upload|dry-run"
done
echo "all checks passed"
