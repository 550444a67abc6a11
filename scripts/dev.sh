#!/usr/bin/env bash
# Sets everything up, builds, and serves the worker with the demo configuration on
# http://127.0.0.1:8787 (real workerd through wrangler dev; state kept in .wrangler/).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false
exec npx wrangler dev --ip 127.0.0.1 --port 8787 "$@"
