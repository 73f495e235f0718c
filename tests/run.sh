#!/usr/bin/env bash
# Runs every test: unit tests of each crate, then the end-to-end and compatibility tests, which
# start their own throwaway broker (Tansu), registry and services. Installs what is missing
# first (Tansu into a cache folder, a Python venv with confluent-kafka). Idempotent.
# Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
NORTHSTAR_TANSU="$(bash deploy/local/install-tansu.sh)"
NORTHSTAR_PYTHON="$(bash tests/setup-python.sh)"
# The Node.js SDK of the compatibility tests (npm), once.
bash tests/setup-node.sh >/dev/null
# Prometheus, promtool, Alertmanager, amtool and Chromium (Debian), once.
bash tests/setup-prometheus.sh --with-browser
export NORTHSTAR_TANSU NORTHSTAR_PYTHON
# The e2e tests run the services' binaries as separate processes: build them first.
cargo build --workspace --bins
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --lib --bins --tests "$@" 2>&1 | tee "$log" || status=$?
# The collector's request decoder under libFuzzer for a minute (cargo fuzz; skipped when a
# test name filter is given).
if [ "$#" -eq 0 ]; then
  bash tests/fuzz.sh || status=$?
fi
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
