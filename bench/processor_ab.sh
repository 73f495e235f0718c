#!/usr/bin/env bash
# Two builds of the stream processor side by side, interleaved (A B A B …), so that a VM whose
# pace drifts over the hour (a noisy neighbour, the broker's speed) shifts both alike:
#
#   bash bench/processor_ab.sh OTHER_BINARY [RUNS] [EVENTS]     (default 3 runs of 1,000,000)
#
# OTHER_BINARY is the processor built from another commit (for example:
#   git worktree add /tmp/old <commit> && (cd /tmp/old && CARGO_TARGET_DIR=<this repo>/target \
#     cargo build --release -p northstar-stream-processor) && cp target/release/northstar-stream-processor /tmp/old-processor
# then rebuild this tree). Each run builds this tree (bench/processor_e2e.sh): to keep editing
# meanwhile, run it from a worktree of the commit to measure, with its own CARGO_TARGET_DIR.
# Each run is bench/processor_e2e.sh on a fresh broker; the table gives
# every pair's µs per event and their ratio (this build / the other), then the median ratio.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OTHER="${1:?usage: processor_ab.sh OTHER_BINARY [RUNS] [EVENTS]}"
RUNS="${2:-3}" N="${3:-1000000}"
[ -x "$OTHER" ] || { echo "not an executable: $OTHER" >&2; exit 2; }
LOGS="$(mktemp -d)"
us_per_event() { sed -n 's/^processor: .*, \([0-9.]*\) us\/event$/\1/p' "$1"; }
wall() { sed -n 's/^processor: .*(\([0-9.]*\) s wall).*/\1/p' "$1"; }

printf '| run | other: us/event (wall) | this: us/event (wall) | this / other |\n|---:|---:|---:|---:|\n'
ratios=()
for r in $(seq 1 "$RUNS"); do
  NORTHSTAR_BENCH_PROCESSOR="$OTHER" bash "$ROOT/bench/processor_e2e.sh" "$N" >"$LOGS/other-$r.log" 2>&1
  bash "$ROOT/bench/processor_e2e.sh" "$N" >"$LOGS/this-$r.log" 2>&1
  a="$(us_per_event "$LOGS/other-$r.log")" b="$(us_per_event "$LOGS/this-$r.log")"
  if [ -z "$a" ] || [ -z "$b" ]; then echo "run $r failed; logs in $LOGS" >&2; exit 1; fi
  ratio="$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", b / a }')"
  ratios+=("$ratio")
  printf '| %d | %s (%s s) | %s (%s s) | %s |\n' "$r" "$a" "$(wall "$LOGS/other-$r.log")" "$b" \
    "$(wall "$LOGS/this-$r.log")" "$ratio"
done
median="$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')"
echo "median ratio (this / other): $median; logs in $LOGS"
