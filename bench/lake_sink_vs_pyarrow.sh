#!/usr/bin/env bash
# The lake sink's cost per event, side by side with pyarrow writing the same rows:
#
#   bash bench/lake_sink_vs_pyarrow.sh [EVENTS]        (default 1,000,000)
#
# Starts a throwaway Tansu broker (sqlite storage, with the header index), the registry, fills
# `events.clean` (3 partitions) with `northstar-fill` (Avro v1, the synthetic events of
# `northstar_schemas::synthetic`), then starts the lake sink (release build, local lake, files
# flushed every 5 s) and samples its CPU time (/proc/<pid>/stat) from its first file until every
# event is in the lake (the sink's own row counter). Its peak resident memory is reported too.
# Then pyarrow (from the test venv) reads those files back and writes the same rows again with
# the same settings (zstd level 3, dictionary, page statistics, 131,072-row groups), timing only
# the write (CPU time of the process), once per file as the sink wrote them. Last, the same
# job as the sink done in Python (bench/pyarrow_loader.py: confluent-kafka, fastavro, the same
# columns, from_pylist + write_table) on the same topic: CPU time of that whole process.
# NORTHSTAR_BENCH_PERF=<file> also records a perf profile of the sink over the measured period
# (NORTHSTAR_BENCH_PERF_CALLGRAPH=dwarf for call stacks).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
N="${1:-1000000}"
TANSU="$(bash deploy/local/install-tansu.sh)"
PY="$(bash tests/setup-python.sh)"
cargo build --release -q -p northstar-sink -p northstar-schemas -p northstar-e2e --bins
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"

BROKER_PORT=39292 REGISTRY_PORT=38281 METRICS_PORT=39665
# shellcheck source=bench/stack.sh
source "$ROOT/bench/stack.sh"

echo "filling events.clean with $N events…"
"$BIN/northstar-fill" --brokers "$NORTHSTAR_KAFKA__BROKERS" --registry "$NORTHSTAR_REGISTRY_URL" \
  --topic events.clean --events "$N" >/dev/null

rows() { curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | awk '$1 == "northstar_lake_sink_rows_written_total{table=\"events\"}" { printf "%d", $2 }'; }

LAKE="$DIR/lake"
(cd "$DIR" && exec env NORTHSTAR_LISTEN="127.0.0.1:$METRICS_PORT" NORTHSTAR_ROOT="file://$LAKE" \
  NORTHSTAR_MAX_FILE_AGE_SECS=5 RUST_LOG=warn "$BIN/northstar-sink" lake) >"$DIR/lake.log" 2>&1 &
PIDS+=($!)
SINK=$!
until [ -n "$(rows 2>/dev/null)" ]; do sleep 0.1; done
cpu0="$(cpu "$SINK")"; t0="$(date +%s.%N)"
if [ -n "${NORTHSTAR_BENCH_PERF:-}" ]; then  # a profile of the measured period: perf report -i FILE
  perf record -F 499 --call-graph "${NORTHSTAR_BENCH_PERF_CALLGRAPH:-fp}" -p "$SINK" -o "$NORTHSTAR_BENCH_PERF" >/dev/null 2>&1 &
  PERF=$!
fi
until [ "$(rows)" -ge "$N" ]; do sleep 0.5; done
cpu1="$(cpu "$SINK")"; t1="$(date +%s.%N)"
if [ -n "${PERF:-}" ]; then kill -INT "$PERF"; wait "$PERF" 2>/dev/null || true; fi
rss="$(awk '/VmHWM/ { print $2 }' "/proc/$SINK/status")"
files="$(find "$LAKE/events" -name '*.parquet' | wc -l)"
bytes="$(find "$LAKE/events" -name '*.parquet' -printf '%s\n' | awk '{ s += $1 } END { print s }')"
awk -v n="$N" -v c0="$cpu0" -v c1="$cpu1" -v t="$TICK" -v w0="$t0" -v w1="$t1" -v rss="$rss" \
    -v files="$files" -v bytes="$bytes" 'BEGIN {
  cpu = (c1 - c0) / t
  printf "lake sink: %d events in %.2f CPU-s (%.1f s wall): %.0f events per CPU-second, %.2f us/event; %d files, %.1f MB; peak RSS %.0f MB\n", n, cpu, w1 - w0, n / cpu, cpu * 1e6 / n, files, bytes / 1e6, rss / 1024
}'

"$PY" - "$LAKE/events" <<'PY'
import glob, io, sys, time
import pyarrow.parquet as pq
files = sorted(glob.glob(f"{sys.argv[1]}/**/*.parquet", recursive=True))
tables = [pq.read_table(f) for f in files]   # not timed: the same rows, as the sink wrote them
rows = sum(t.num_rows for t in tables)
cpu = 0.0
for t in tables:
    sink = io.BytesIO()
    start = time.process_time()
    pq.write_table(t, sink, compression="zstd", compression_level=3, use_dictionary=True,
                   write_statistics=True, write_page_index=True, row_group_size=131072)
    cpu += time.process_time() - start
print(f"pyarrow write of the same rows: {rows} rows in {cpu:.2f} CPU-s: "
      f"{rows / cpu:.0f} rows per CPU-second, {cpu * 1e6 / rows:.2f} us/row")
PY

"$PY" "$ROOT/bench/pyarrow_loader.py" "$NORTHSTAR_KAFKA__BROKERS" "$NORTHSTAR_REGISTRY_URL" \
  events.clean "$N" "$DIR/pyarrow-lake"
