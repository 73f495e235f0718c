#!/usr/bin/env bash
# End-to-end cost of the stream processor: events per CPU-second of the processor process against
# a pre-filled `events.raw` (Kafka in and out, Avro, dedup, KPI windows, checkpoints), with the
# catalog of bench/wide-catalog.yaml (10 KPIs x 3 windows x 2 segment dimensions).
#
#   bash bench/processor_e2e.sh [EVENTS]        (default 1,000,000)
#
# Starts a throwaway Tansu broker (sqlite storage), the registry, fills the topic with
# `northstar-fill`, then starts the processor (release build) and samples its CPU time
# (/proc/<pid>/stat) from its first event until every event is processed and checkpointed
# (checkpoint offsets = partition ends). The broker's CPU is reported separately.
# NORTHSTAR_BENCH_PROCESSOR=<binary> measures another build of the processor (an older commit's,
# side by side with this one's on the same broker setup).
# NORTHSTAR_PLAN=<absolute path> (e.g. "$PWD/bench/tracking-plan.yaml") enforces a tracking plan in
# the processor (inherited by it like every NORTHSTAR_* setting).
# NORTHSTAR_BENCH_PERF=<file> also records a perf profile of the processor over that period
# (NORTHSTAR_BENCH_PERF_CALLGRAPH=dwarf for call stacks through code without frame pointers).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
N="${1:-1000000}"
TANSU="$(bash deploy/local/install-tansu.sh)"
cargo build --release -q -p northstar-stream-processor -p northstar-schemas -p northstar-e2e --bins
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"

BROKER_PORT=39192 REGISTRY_PORT=38181 METRICS_PORT=39565
# shellcheck source=bench/stack.sh
source "$ROOT/bench/stack.sh"

echo "filling events.raw with $N events…"
/usr/bin/time -f "fill: %U s user, %S s sys (producer client ceiling)" "$BIN/northstar-fill" --brokers "$NORTHSTAR_KAFKA__BROKERS" --registry "$NORTHSTAR_REGISTRY_URL" --events "$N"

metric_sum() { curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | awk -v m="$1" '$1 ~ "^"m"({|$)" { s += $2 } END { printf "%d", s }'; }

(cd "$DIR" && exec env NORTHSTAR_LISTEN="127.0.0.1:$METRICS_PORT" \
  NORTHSTAR_CATALOG="$ROOT/bench/wide-catalog.yaml" NORTHSTAR_CHECKPOINT_ROOT="file://$DIR/checkpoints" \
  RUST_LOG=warn "${NORTHSTAR_BENCH_PROCESSOR:-$BIN/northstar-stream-processor}") >"$DIR/processor.log" 2>&1 &
PIDS+=($!)
PROC=$!
until [ "$(metric_sum northstar_processor_events_in_total 2>/dev/null || echo 0)" -gt 0 ]; do sleep 0.05; done
cpu0="$(cpu "$PROC")"; in0="$(metric_sum northstar_processor_events_in_total)"
broker0="$(cpu "$TANSU_PID")"; t0="$(date +%s.%N)"
if [ -n "${NORTHSTAR_BENCH_PERF:-}" ]; then  # a profile of the measured period: perf report -i FILE
  perf record -F 499 --call-graph "${NORTHSTAR_BENCH_PERF_CALLGRAPH:-fp}" -p "$PROC" -o "$NORTHSTAR_BENCH_PERF" >/dev/null 2>&1 &
  PERF=$!
fi
until [ "$(metric_sum northstar_processor_checkpoint_offset)" -ge "$N" ]; do sleep 0.5; done
cpu1="$(cpu "$PROC")"; in1="$(metric_sum northstar_processor_events_in_total)"
if [ -n "${PERF:-}" ]; then kill -INT "$PERF"; wait "$PERF" 2>/dev/null || true; fi
broker1="$(cpu "$TANSU_PID")"; t1="$(date +%s.%N)"
out="$(metric_sum northstar_processor_events_out_total)"; aggs="$(metric_sum northstar_processor_aggregates_out_total)"
awk -v n="$((in1 - in0))" -v c0="$cpu0" -v c1="$cpu1" -v b0="$broker0" -v b1="$broker1" -v t="$TICK" \
    -v w0="$t0" -v w1="$t1" -v out="$out" -v aggs="$aggs" 'BEGIN {
  cpu = (c1 - c0) / t; bcpu = (b1 - b0) / t; wall = w1 - w0
  printf "processor: %d events in %.2f CPU-s (%.1f s wall): %.0f events per CPU-second, %.2f us/event\n", n, cpu, wall, n / cpu, cpu * 1e6 / n
  printf "%.4f\n", cpu * 1e6 / n > "'"$DIR/processor_us"'"
  printf "outputs: %d clean records, %d aggregate updates; broker (Tansu) CPU over the same time: %.2f s\n", out, aggs, bcpu
}'
# The processor idle (everything processed): what it costs per second of wall time while it
# waits, part of the figure above since the broker sets the pace.
idle="${NORTHSTAR_BENCH_IDLE_SECS:-10}"
c0="$(cpu "$PROC")"; sleep "$idle"; c1="$(cpu "$PROC")"
awk -v c0="$c0" -v c1="$c1" -v t="$TICK" -v s="$idle" 'BEGIN {
  printf "idle: %.3f CPU-s over %d s (%.2f %% of a core)\n", (c1 - c0) / t, s, (c1 - c0) / t / s * 100 }'
# The Kafka client's own cost over the same pre-filled topic, in the same run: a bare rdkafka
# consume → produce copy loop with the processor's client settings (the processor's ceiling).
# It copies into events.dlq, which the processor leaves empty (the fill has no invalid event).
"$BIN/northstar-copy-loop" --brokers "$NORTHSTAR_KAFKA__BROKERS" --from events.raw --to events.dlq \
  --events "$N" | tee "$DIR/copy.txt"
awk -v p="$(cat "$DIR/processor_us")" '/copy loop:/ { for (i = 1; i <= NF; i++) if ($i ~ /us\/record/) c = $(i - 1) }
  END { printf "processor / copy loop CPU per event: %.2fx\n", p / c }' "$DIR/copy.txt"
