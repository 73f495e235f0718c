#!/usr/bin/env bash
# Start-up time of the metrics sink on `kpi.aggregates` holding 30 days of the example catalog's
# windows (deploy/kpi-catalog.yaml), in the two layouts a compacted topic can be in:
#   ring          ring-slot keys (this version): one record per retained window and series;
#   window-start  the window start in the key (before): one record per window since the start.
#
#   bash bench/metrics_restart.sh [WINDOW_START_RECORDS]   (default 1,000,000 of the 6.9 M)
#
# A throwaway Tansu broker and registry (bench/stack.sh); `northstar-fill-aggregates` writes the
# records (dense: every series in every window, 3 input partitions); then a metrics sink (release
# build) starts and the script times it from exec until `northstar_metrics_sink_caught_up 1`
# (it serves no KPI series before), with its CPU time. The window-start layout is measured on
# its first WINDOW_START_RECORDS records (Tansu writes about 14,000 records a second) and the
# full topic's time extrapolated at the measured rate (the rate to use for an uncompacted topic
# too, from its record count).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
OLD="${1:-1000000}"
TANSU="$(bash deploy/local/install-tansu.sh)"
cargo build --release -q -p northstar-sink -p northstar-schemas -p northstar-e2e --bins
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
CATALOG="$ROOT/deploy/kpi-catalog.yaml"

BROKER_PORT=39292 REGISTRY_PORT=38281
METRICS_PORT=39564
# shellcheck source=bench/stack.sh
source "$ROOT/bench/stack.sh"

fill() {
  "$BIN/northstar-fill-aggregates" --brokers "$NORTHSTAR_KAFKA__BROKERS" --registry "$NORTHSTAR_REGISTRY_URL" \
    --catalog "$CATALOG" "$@"
}

metric() { curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

# start_up TOPIC LABEL: prints the sink's start-up time, CPU and records read.
start_up() {
  local t0 t1 pid c1 n
  t0="$(date +%s.%N)"
  (cd "$DIR" && exec env NORTHSTAR_LISTEN="127.0.0.1:$METRICS_PORT" NORTHSTAR_CATALOG="$CATALOG" \
    NORTHSTAR_TOPICS__AGGREGATES="$1" RUST_LOG=warn "$BIN/northstar-sink" metrics) >"$DIR/sink-$2.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  until [ "$(metric northstar_metrics_sink_caught_up 2>/dev/null)" = "1" ]; do sleep 0.02; done
  t1="$(date +%s.%N)"; c1="$(cpu "$pid")"
  n="$(metric northstar_metrics_sink_records_total)"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  awk -v l="$2" -v n="$n" -v w="$(echo "$t1 - $t0" | bc)" -v c="$c1" -v t="$TICK" 'BEGIN {
    printf "%-14s %9d records read: caught up %.2f s after start, %.2f CPU-s (%.0f records per second)\n", l, n, w, c / t, n / w }'
  RATE="$(awk -v n="$n" -v w="$(echo "$t1 - $t0" | bc)" 'BEGIN { printf "%.0f", n / w }')"
}

ring="$(fill --layout ring --count-only)"
full="$(fill --layout window-start --count-only)"
echo "30 days of deploy/kpi-catalog.yaml, 3 input partitions: $ring records (ring keys, compacted), $full (window start in the key, compacted)"
fill --layout ring
start_up kpi.aggregates ring
# Then the older layout's records on top (the topic names are fixed: same topic).
fill --layout window-start --limit "$OLD"
start_up kpi.aggregates "+window-start"
awk -v full="$full" -v r="$RATE" 'BEGIN {
  printf "window-start, all %d records: %.0f s at that rate\n", full, full / r }'
