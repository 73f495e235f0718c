#!/usr/bin/env bash
# Two builds (or two configurations) of the stream processor measured at the same time, on the
# same broker and the same pre-filled topic: each in its own consumer group, with its own output
# topics, checkpoints and metrics port. Both see the same broker pace and the same VM noise, which
# one-after-the-other runs (bench/processor_ab.sh) do not: there the same build varied by 1.5x
# between runs, because the processor's cost per event grows with the wall time Tansu takes.
#
#   bash bench/processor_ab_concurrent.sh OTHER_BINARY [RUNS] [EVENTS]   (default 5 runs of 500,000)
#
# OTHER_BINARY: another build of the processor, or a wrapper script that `exec`s one with other
# settings (`exec env NORTHSTAR_EMIT_INTERVAL_MS=1000 "$NS_PROC_BIN" "$@"`: the measured pid
# must be the processor's). The topic is filled once; every run starts both processors in new
# groups (so each reads all EVENTS), swapping their ports each run, and measures each one's
# CPU from its first event until its checkpoints cover every event. The table gives each run's
# µs per event and the ratio (this build / the other), then the median ratio.
# NS_BROKER=mock: on librdkafka's in-memory mock cluster instead of Tansu (bench/stack.sh), so
# that the broker does not set the pace. It keeps only the newest 5 MB of each partition
# (≈ 30,000 events), so a pre-filled backlog larger than ≈ 90,000 events is cut: use it with
# NS_RATE.
# NS_RATE=R: live traffic instead of a backlog. Each run starts both processors, waits until
# both have caught up with what the topic holds, then sends EVENTS new events at R per second
# (`northstar-fill --rate`, stamped with the wall clock) and measures each processor's CPU
# from the first event sent until its checkpoints cover the last one: the cost per event of
# keeping up with current input, where the emission interval and the fetch wait matter.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
OTHER="${1:?usage: processor_ab_concurrent.sh OTHER_BINARY [RUNS] [EVENTS]}"
RUNS="${2:-5}" N="${3:-500000}"
[ -x "$OTHER" ] || { echo "not an executable: $OTHER" >&2; exit 2; }
TANSU="$(bash deploy/local/install-tansu.sh)"
cargo build --release -q -p northstar-stream-processor -p northstar-schemas -p northstar-e2e --bins
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
THIS="$BIN/northstar-stream-processor"

BROKER_PORT=39192 REGISTRY_PORT=38181
# The second processor's outputs (the first one writes to the default topics).
NS_MOCK_TOPICS="events.clean.b events.dlq.b kpi.aggregates.b"
# shellcheck source=bench/stack.sh
source "$ROOT/bench/stack.sh"
[ "${NS_BROKER:-tansu}" = mock ] ||
  NORTHSTAR_TOPICS__CLEAN=events.clean.b NORTHSTAR_TOPICS__DLQ=events.dlq.b NORTHSTAR_TOPICS__AGGREGATES=kpi.aggregates.b \
    "$BIN/northstar-schemas" create-topics --partitions 3 2>/dev/null
fill() { "$BIN/northstar-fill" --brokers "$NORTHSTAR_KAFKA__BROKERS" --registry "$NORTHSTAR_REGISTRY_URL" --events "$N" "$@" >&2; }
if [ -z "${NS_RATE:-}" ]; then
  echo "filling events.raw with $N events…" >&2
  fill
fi

metric_sum() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 ~ "^"m"({|$)" { s += $2 } END { printf "%d", s }'; }

# start SIDE BINARY PORT RUN: a processor in its own group; prints its pid.
start() {
  local side="$1" bin="$2" port="$3" run="$4" topics=()
  [ "$side" = b ] && topics=(NORTHSTAR_TOPICS__CLEAN=events.clean.b NORTHSTAR_TOPICS__DLQ=events.dlq.b
    NORTHSTAR_TOPICS__AGGREGATES=kpi.aggregates.b)
  mkdir -p "$DIR/$side-$run"
  (cd "$DIR/$side-$run" && exec env "${topics[@]}" NORTHSTAR_LISTEN="127.0.0.1:$port" \
    NORTHSTAR_GROUP_ID="bench-$side-$run" NORTHSTAR_CATALOG="$ROOT/bench/wide-catalog.yaml" \
    NORTHSTAR_CHECKPOINT_ROOT="file://$DIR/$side-$run/checkpoints" RUST_LOG=warn \
    "$bin") >"$DIR/$side-$run/processor.log" 2>&1 &
  echo $!
}

printf '| run | other: µs/event (aggregates) | this: µs/event (aggregates) | this / other | wall (s) |\n|---:|---:|---:|---:|---:|\n'
ratios=()
for r in $(seq 1 "$RUNS"); do
  if ((r % 2)); then pa=39565 pb=39566; else pa=39566 pb=39565; fi
  A="$(start a "$OTHER" "$pa" "$r")" B="$(start b "$THIS" "$pb" "$r")"
  PIDS+=("$A" "$B")
  declare -A c0=() c1=() e0=() e1=() aggs=()
  total="$N" filler=""
  if [ -n "${NS_RATE:-}" ]; then
    # Live: both caught up with the events of the earlier runs, then new events at NS_RATE/s.
    before=$(((r - 1) * N)) total=$((r * N))
    for side in a b; do
      if [ "$side" = a ]; then pid="$A" port="$pa"; else pid="$B" port="$pb"; fi
      caught_up=""
      for _ in $(seq 600); do
        kill -0 "$pid" 2>/dev/null || { echo "processor $side of run $r exited" >&2; tail -20 "$DIR/$side-$r/processor.log" >&2; exit 1; }
        [ "$(metric_sum "$port" northstar_processor_assigned_partitions 2>/dev/null || echo 0)" -ge 3 ] &&
          [ "$(metric_sum "$port" northstar_processor_checkpoint_offset 2>/dev/null || echo 0)" -ge "$before" ] &&
          { caught_up=1; break; }
        sleep 0.2
      done
      # Measuring a processor still catching up would mix backlog and live costs.
      [ -n "$caught_up" ] || { echo "processor $side of run $r did not catch up with $before events in 120 s" >&2; exit 1; }
    done
    for side in a b; do
      if [ "$side" = a ]; then pid="$A" port="$pa"; else pid="$B" port="$pb"; fi
      c0[$side]="$(cpu "$pid")" e0[$side]="$(metric_sum "$port" northstar_processor_events_in_total)"
    done
    fill --rate "$NS_RATE" &
    filler=$!
  fi
  t0="$(date +%s)"
  while [ -z "${c1[a]:-}" ] || [ -z "${c1[b]:-}" ]; do
    for side in a b; do
      if [ "$side" = a ]; then pid="$A" port="$pa"; else pid="$B" port="$pb"; fi
      kill -0 "$pid" 2>/dev/null || { echo "processor $side of run $r exited:" >&2; sed '/^Stack backtrace/q' "$DIR/$side-$r/processor.log" | tail -20 >&2; exit 1; }
      if [ -z "${c0[$side]:-}" ] && [ "$(metric_sum "$port" northstar_processor_events_in_total 2>/dev/null || echo 0)" -gt 0 ]; then
        c0[$side]="$(cpu "$pid")" e0[$side]="$(metric_sum "$port" northstar_processor_events_in_total)"
      fi
      if [ -n "${c0[$side]:-}" ] && [ -z "${c1[$side]:-}" ] && [ "$(metric_sum "$port" northstar_processor_checkpoint_offset)" -ge "$total" ]; then
        c1[$side]="$(cpu "$pid")" e1[$side]="$(metric_sum "$port" northstar_processor_events_in_total)"
        aggs[$side]="$(metric_sum "$port" northstar_processor_aggregates_out_total)"
      fi
    done
    sleep 0.2
  done
  wall=$(($(date +%s) - t0))
  [ -z "$filler" ] || wait "$filler"
  kill "$A" "$B"; wait "$A" "$B" 2>/dev/null || true
  read -r ua ub ratio < <(awk -v a0="${c0[a]}" -v a1="${c1[a]}" -v b0="${c0[b]}" -v b1="${c1[b]}" -v t="$TICK" \
    -v na="$((e1[a] - e0[a]))" -v nb="$((e1[b] - e0[b]))" \
    'BEGIN { ua = (a1 - a0) / t * 1e6 / na; ub = (b1 - b0) / t * 1e6 / nb; printf "%.2f %.2f %.3f\n", ua, ub, ub / ua }')
  ratios+=("$ratio")
  printf '| %d | %s (%s) | %s (%s) | %s | %s |\n' "$r" "$ua" "${aggs[a]}" "$ub" "${aggs[b]}" "$ratio" "$wall"
  unset c0 c1 e0 e1 aggs
done
median="$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')"
echo "median ratio (this / other): $median"
