#!/usr/bin/env bash
# Sets everything up, builds, and serves the worker with the demo configuration on
# http://127.0.0.1:8787: real workerd, a socket straight to the Worker as in a deployment
# (scripts/serve.mjs; state kept in .wrangler/state/serve). Options go to serve.mjs
# (--config FILE, --port N, --fresh). `--watch` serves through `wrangler dev` instead, which
# reloads when build/ changes (run scripts/build.sh) but puts a development proxy in front of
# the Worker: slower, and with state of its own in .wrangler/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false
if [ "${1:-}" = "--watch" ]; then
  shift
  exec npx wrangler dev --ip 127.0.0.1 --port 8787 "$@"
fi
exec node scripts/serve.mjs "$@"
