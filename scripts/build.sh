#!/usr/bin/env bash
# Builds the worker into build/ with the locally installed wasm-bindgen and wasm-opt
# (worker-build would otherwise download them from a host this machine cannot reach).
# `--dev` skips wasm-opt for a fast edit-run loop.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export WASM_BINDGEN_BIN="$(command -v wasm-bindgen)"
export WASM_OPT_BIN="$PWD/node_modules/.bin/wasm-opt"
export ESBUILD_BIN="$PWD/node_modules/.bin/esbuild"
if [ "${1:-}" = "--dev" ]; then
  worker-build --release --no-opt
else
  worker-build --release
fi
node pages/build.mjs
bash scripts/build-cli.sh
ls -l build/index_bg.wasm | awk '{print "build: wasm " $5 " bytes"}'
