#!/usr/bin/env bash
# The lake sink's memory with many partitions open at once, under different caps on open files:
#
#   bash bench/lake_open_files.sh [EVENTS] [NAMES] [CAPS…]     (default 300000 2000 64 512 100000)
#
# Fills `events.clean` (3 partitions) with EVENTS synthetic events spread over NAMES event names
# (`northstar-fill --names`: with the ~3 event hours of the run, NAMES × 3 partition paths per
# clean partition), then, for each cap, runs a lake sink (release build, its own consumer group
# and lake, files rolled only by the cap — age 1 h, size 128 MiB) until every event is consumed,
# stops it with SIGTERM (its drain writes what is still buffered) and reports its peak resident
# memory (VmHWM), CPU per event, files written, how often the cap or the byte budget forced a
# flush, and how many rows went to `event_name=__other__` past the name cap. The other budgets
# come from the caller's environment, e.g. NORTHSTAR_MAX_EVENT_NAMES=100000 (the default cap is
# 1,000 names per clean partition) or NORTHSTAR_MAX_BUFFERED_BYTES=33554432 (default 256 MiB).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
N="${1:-300000}"
NAMES="${2:-2000}"
shift $(( $# > 2 ? 2 : $# ))
CAPS=("$@")
[ "${#CAPS[@]}" -gt 0 ] || CAPS=(64 512 100000)
TANSU="$(bash deploy/local/install-tansu.sh)"
cargo build --release -q -p northstar-sink -p northstar-schemas -p northstar-e2e --bins
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
BROKER_PORT=39392 REGISTRY_PORT=38381 METRICS_PORT=39765
# shellcheck source=bench/stack.sh
source "$ROOT/bench/stack.sh"

echo "filling events.clean with $N events over $NAMES event names…"
"$BIN/northstar-fill" --brokers "$NORTHSTAR_KAFKA__BROKERS" --registry "$NORTHSTAR_REGISTRY_URL" \
  --topic events.clean --events "$N" --names "$NAMES" >/dev/null

metric() { curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | awk -v m="$1" '$1 == m { printf "%d", $2 }'; }

for cap in "${CAPS[@]}"; do
  LAKE="$DIR/lake-$cap"
  (cd "$DIR" && exec env NORTHSTAR_LISTEN="127.0.0.1:$METRICS_PORT" NORTHSTAR_ROOT="file://$LAKE" \
    NORTHSTAR_GROUP_ID="bench-open-files-$cap" NORTHSTAR_MAX_OPEN_FILES="$cap" \
    NORTHSTAR_MAX_FILE_AGE_SECS=3600 NORTHSTAR_DEAD_LETTER_TABLE=false RUST_LOG=warn \
    "$BIN/northstar-sink" lake) >"$DIR/lake-$cap.log" 2>&1 &
  SINK=$!
  PIDS+=("$SINK")
  until [ -n "$(metric 'northstar_lake_sink_buffered_rows{table="events"}' 2>/dev/null)" ]; do sleep 0.1; done
  cpu0="$(cpu "$SINK")"
  while :; do
    done_rows=$(( $(metric 'northstar_lake_sink_rows_written_total{table="events"}') + $(metric 'northstar_lake_sink_buffered_rows{table="events"}') ))
    [ "$done_rows" -ge "$N" ] && break
    sleep 0.5
  done
  open="$(metric 'northstar_lake_sink_open_files{table="events"}')"
  capped="$(metric 'northstar_lake_sink_open_files_capped_total')"
  budget="$(metric 'northstar_lake_sink_budget_flushes_total')"
  other="$(metric 'northstar_lake_sink_event_names_capped_total')"
  kill -TERM "$SINK"
  hwm=0; cpu1="$cpu0"
  while kill -0 "$SINK" 2>/dev/null; do
    h="$(awk '/VmHWM/ { print $2 }' "/proc/$SINK/status" 2>/dev/null || true)"
    c="$(cpu "$SINK" 2>/dev/null || true)"
    [ -n "$h" ] && hwm="$h"
    [ -n "$c" ] && cpu1="$c"
    sleep 0.05
  done
  wait "$SINK" 2>/dev/null || true
  files="$(find "$LAKE/events" -name '*.parquet' | wc -l)"
  awk -v cap="$cap" -v n="$N" -v c0="$cpu0" -v c1="$cpu1" -v t="$TICK" -v hwm="$hwm" -v files="$files" \
      -v open="$open" -v capped="$capped" -v budget="$budget" -v other="$other" 'BEGIN {
    cpu = (c1 - c0) / t
    printf "max_open_files %6d: peak RSS %5.0f MB, %5.2f us/event (%.0f events per CPU-second), %5d files, %d open at the end of input, %d cap flushes, %d budget flushes, %d rows under __other__\n", cap, hwm / 1024, cpu * 1e6 / n, n / cpu, files, open, capped, budget, other
  }'
done
