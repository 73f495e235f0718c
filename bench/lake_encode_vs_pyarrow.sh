#!/usr/bin/env bash
# The lake sink's Parquet encoding per row, side by side with pyarrow writing the same rows:
#
#   bash bench/lake_encode_vs_pyarrow.sh [EVENTS]        (default 1,000,000)
#
# 1. `cargo bench -p northstar-sink --bench encode`: the sink's code turns decoded events into
#    Arrow batches (flattened context, typed properties) and Parquet bytes, files grouped as the
#    sink groups them; prints CPU µs per row of each half and writes the files to a temp dir.
# 2. pyarrow (the test venv), on those very files' rows, with the same settings (zstd level 3,
#    dictionary, statistics with the page index, 131,072-row groups), CPU time per row of:
#    a. `pq.write_table` of the Arrow table (the write alone: compare with the sink's Parquet
#       write), and
#    b. `pa.Table.from_pylist` of the rows as Python dicts, then the write (rows to Parquet:
#       compare with the sink's build + write).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
N="${1:-1000000}"
PY="$(bash tests/setup-python.sh)"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
cargo bench -q -p northstar-sink --bench encode -- "$N" 11111 "$OUT"
"$PY" - "$OUT" <<'PY'
import glob, io, sys, time
import pyarrow as pa
import pyarrow.parquet as pq
files = sorted(glob.glob(f"{sys.argv[1]}/*.parquet"))
tables = [pq.read_table(f) for f in files]   # not timed: the rows the sink encoded
rows = sum(t.num_rows for t in tables)
settings = dict(compression="zstd", compression_level=3, use_dictionary=True,
                write_statistics=True, write_page_index=True, row_group_size=131072)
def write(t):
    pq.write_table(t, io.BytesIO(), **settings)
cpu = 0.0
for t in tables:
    start = time.process_time()
    write(t)
    cpu += time.process_time() - start
print(f"pyarrow write_table (write alone), same rows: {cpu * 1e6 / rows:.2f} us/row "
      f"({rows / cpu:.0f} rows per CPU-second)")
cpu = 0.0
for t in tables:
    dicts = t.to_pylist()                     # not timed
    start = time.process_time()
    write(pa.Table.from_pylist(dicts, schema=t.schema))
    cpu += time.process_time() - start
print(f"pyarrow from_pylist + write_table (rows to Parquet), same rows: {cpu * 1e6 / rows:.2f} us/row "
      f"({rows / cpu:.0f} rows per CPU-second)")
PY
