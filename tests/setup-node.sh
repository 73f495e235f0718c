#!/usr/bin/env bash
# Installs the Node.js SDK of the compatibility tests (@segment/analytics-node from npm) into
# the cache folder, once. Prints the folder whose node_modules holds it. Idempotent.
set -euo pipefail
CACHE="${NORTHSTAR_CACHE:-$HOME/.cache/northstar}"
DIR="$CACHE/node"
if [ -f "$DIR/node_modules/@segment/analytics-node/package.json" ]; then
  echo "$DIR"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  apt-get update -qq >&2 && apt-get install -y -qq nodejs npm >&2
fi
mkdir -p "$DIR"
cd "$DIR"
[ -f package.json ] || echo '{"name":"northstar-compat","private":true}' > package.json
npm install --silent --no-audit --no-fund "@segment/analytics-node@2" >&2
echo "$DIR"
