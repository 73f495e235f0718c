#!/usr/bin/env bash
# Installs Tansu 0.6.0 (the Kafka-protocol broker used locally and in tests) from crates.io into
# a cache folder, once. Prints the binary's path. Idempotent: does nothing when it is there.
set -euo pipefail
VERSION=0.6.0
CACHE="${NORTHSTAR_CACHE:-$HOME/.cache/northstar}"
ROOT="$CACHE/tansu-$VERSION"
BIN="$ROOT/bin/tansu"
if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "$VERSION"; then
  echo "$BIN"
  exit 0
fi
mkdir -p "$CACHE"
echo "installing tansu $VERSION into $ROOT (a cold build takes ~7 minutes on 2 cores)" >&2
# dynostore+libsql: the persistent sqlite:// storage engine (the memory engine mis-serves fetches).
cargo install tansu --locked --version "$VERSION" --features dynostore,libsql --root "$ROOT" >&2
echo "$BIN"
