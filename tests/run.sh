#!/usr/bin/env bash
# Runs every test: unit tests of each crate, then the end-to-end and compatibility tests, which
# start their own throwaway broker (Tansu), registry and services. Installs what is missing
# first (Tansu into a cache folder, a Python venv with confluent-kafka). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
export NORTHSTAR_TANSU="$(bash deploy/local/install-tansu.sh)"
export NORTHSTAR_PYTHON="$(bash tests/setup-python.sh)"
# The e2e tests run the services' binaries as separate processes: build them first.
cargo build --workspace --bins
cargo test --workspace "$@"
