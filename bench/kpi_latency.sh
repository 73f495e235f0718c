#!/usr/bin/env bash
# Freshness of the KPIs: from the collector's HTTP 200 for an event to the metrics sink's
# /metrics showing it, percentiles over PROBES events sent one at a time, while demo traffic
# runs in the background (deploy/local/demo_traffic.py live at RATE events an hour).
#
#   bash bench/kpi_latency.sh [PROBES] [RATE]        (default 200 probes, 36,000 events an hour)
#
# A throwaway Tansu broker and registry (bench/stack.sh), then ingest, the processor and the
# metrics sink (release builds, example catalog, default settings).
# Each probe is a `Latency Probe` track event; it is visible once the open 1h window of the
# `events` KPI's `Latency Probe` segment holds it (bench/kpi_latency.py polls /metrics every
# 10 ms), spaced by random gaps of 0-1 s so that they sample every phase of the processor's
# emission tick. Extra settings for the processor only: NS_PROCESSOR_ENV="K=V K=V" (e.g.
# NORTHSTAR_KAFKA__PROPERTIES__FETCH_WAIT_MAX_MS=500).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PROBES="${1:-200}"
RATE="${2:-36000}"
TANSU="$(bash deploy/local/install-tansu.sh)"
cargo build --release -q -p northstar-sink -p northstar-schemas -p northstar-ingest -p northstar-stream-processor --bins
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
CATALOG="$ROOT/deploy/kpi-catalog.yaml"
BROKER_PORT=39392 REGISTRY_PORT=38381
INGEST_PORT=38380 PROCESSOR_PORT=39465 METRICS_PORT=39464
export TANSU BROKER_PORT REGISTRY_PORT
# shellcheck source=bench/stack.sh
source "$ROOT/bench/stack.sh"

service() {
  local name="$1"; shift
  (cd "$DIR" && exec env RUST_LOG=warn NORTHSTAR_CATALOG="$CATALOG" "$@") >"$DIR/$name.log" 2>&1 &
  PIDS+=($!)
}
service ingest NORTHSTAR_LISTEN="127.0.0.1:$INGEST_PORT" NORTHSTAR_ADMIN_LISTEN=127.0.0.1:0 NORTHSTAR_WRITE_KEYS__bench-key=bench "$BIN/northstar-ingest"
# shellcheck disable=SC2086 # NS_PROCESSOR_ENV is a list of K=V words
service processor NORTHSTAR_LISTEN="127.0.0.1:$PROCESSOR_PORT" NORTHSTAR_CHECKPOINT_ROOT="file://$DIR/checkpoints" \
  ${NS_PROCESSOR_ENV:-} "$BIN/northstar-stream-processor"
service metrics NORTHSTAR_LISTEN="127.0.0.1:$METRICS_PORT" "$BIN/northstar-sink" metrics
for url in "http://127.0.0.1:$INGEST_PORT/readyz" "http://127.0.0.1:$METRICS_PORT/readyz"; do
  until curl -sf -o /dev/null "$url"; do sleep 0.2; done
done
python3 deploy/local/demo_traffic.py live --per-hour "$RATE" --url "http://127.0.0.1:$INGEST_PORT" \
  --write-key bench-key --control "$DIR/control" >"$DIR/demo.log" 2>&1 &
PIDS+=($!)
sleep 10
python3 bench/kpi_latency.py --probes "$PROBES" --ingest "http://127.0.0.1:$INGEST_PORT" \
  --metrics "http://127.0.0.1:$METRICS_PORT/metrics" --write-key bench-key
