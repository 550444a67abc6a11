#!/usr/bin/env bash
# `pms-events config`: the configuration code alone (src/config/operator_tools.rs through
# src/node_tools.rs), no Worker glue, built for Node into bin/wasm. Run by scripts/build.sh and
# before `npm pack`, so the package checks configurations where no Rust toolchain is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --quiet --lib --release --target wasm32-unknown-unknown --no-default-features --features node-tools \
  --target-dir target/cli
wasm-bindgen --target nodejs --out-dir bin/wasm target/cli/wasm32-unknown-unknown/release/pms_events.wasm
# wasm-bindgen's Node glue is CommonJS; the package is ES modules.
echo '{ "type": "commonjs" }' > bin/wasm/package.json
echo "cli: bin/wasm for pms-events config"
