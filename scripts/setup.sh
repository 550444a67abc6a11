#!/usr/bin/env bash
# Sets up everything the build, the local server and the tests need, on a fresh machine
# of this kind (only the package registries reachable). Idempotent: what is installed at
# the right version is not installed again.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n== %s\n' "$*"; }

# Native libraries that `cargo install worker-build` links against.
if ! command -v pkg-config >/dev/null || ! dpkg -s libssl-dev >/dev/null 2>&1; then
  step "apt: pkg-config libssl-dev"
  apt-get update -qq && apt-get install -y -qq pkg-config libssl-dev >/dev/null
fi

# Debian's Chromium for the browser tests of the pages (driven by playwright-core; no
# browser download from a CDN).
if ! command -v chromium >/dev/null; then
  step "apt: chromium (about 2 minutes cold)"
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi

# Debian's Prometheus: the end-to-end tests scrape the local server with it, and its promtool
# checks the metrics exposition and tests the alert rules (docs/alerts.yml).
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  step "apt: prometheus"
  apt-get update -qq && apt-get install -y -qq prometheus >/dev/null
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "rustup: wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
for component in clippy rustfmt; do
  rustup component list --installed | grep -q "^$component" || rustup component add "$component"
done

WORKER_BUILD_VERSION=0.8.7
if [ "$(worker-build --version 2>/dev/null | grep -o "[0-9][0-9.]*" | head -1)" != "$WORKER_BUILD_VERSION" ]; then
  step "cargo install worker-build $WORKER_BUILD_VERSION (about 6 minutes cold)"
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked
fi

# The wasm-bindgen CLI must be exactly the version in Cargo.lock (pinned in Cargo.toml).
BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/"/, "", $3); print $3; exit}' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$BINDGEN_VERSION" ]; then
  step "cargo install wasm-bindgen-cli $BINDGEN_VERSION (about 4 minutes cold)"
  # Not --locked: its lockfile names a crate version the registry no longer has.
  cargo install wasm-bindgen-cli --version "$BINDGEN_VERSION"
fi

# npm packages: wrangler, miniflare + workerd, ws, graphql-ws, binaryen's wasm-opt.
LOCK_SUM=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.lock-sum 2>/dev/null)" != "$LOCK_SUM" ]; then
  step "npm ci"
  npm ci --no-audit --no-fund
  echo "$LOCK_SUM" > node_modules/.lock-sum
fi

# schemathesis (PyPI) in a virtual environment of its own, for the OpenAPI fuzzing in the test
# command.
SCHEMATHESIS_VERSION=4.32.5
if [ "$(.tools/schemathesis/bin/schemathesis --version 2>/dev/null | awk '{print $3}')" != "$SCHEMATHESIS_VERSION" ]; then
  step "pip: schemathesis $SCHEMATHESIS_VERSION (into .tools/schemathesis)"
  rm -rf .tools/schemathesis
  python3 -m venv .tools/schemathesis
  .tools/schemathesis/bin/pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# Local secrets: the demo configuration and a fresh signing key, never committed.
if [ ! -f .dev.vars ]; then
  step "generating .dev.vars (demo configuration, new local signing key)"
  node scripts/dev-vars.mjs > .dev.vars
fi
echo "setup: ok"
