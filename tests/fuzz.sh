#!/usr/bin/env bash
# Runs the cargo fuzz targets (libFuzzer), each from its committed seed corpus: the collector's
# request decoder (ingest/fuzz, `request`) for NORTHSTAR_FUZZ_SECONDS seconds (default 60) and
# the processor's plan-driven validation (stream-processor/fuzz, `plan_gate`) for half that.
# Installs what is missing first (cargo-fuzz into the cache folder, Rust nightly through
# rustup), idempotently. A crash, panic or broken invariant fails the run and leaves the input
# in <crate>/fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${NORTHSTAR_CACHE:-$HOME/.cache/northstar}"
SECONDS_TO_RUN="${NORTHSTAR_FUZZ_SECONDS:-60}"
if [ ! -x "$CACHE/cargo-fuzz/bin/cargo-fuzz" ]; then
  cargo install cargo-fuzz --locked --root "$CACHE/cargo-fuzz" >&2
fi
if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal >&2
fi
export PATH="$CACHE/cargo-fuzz/bin:$PATH"
ROOT="$PWD"

# fuzz CRATE_DIR TARGET SECONDS MAX_LEN: runs one target; its exit status.
fuzz() {
  local dir="$1" target="$2" secs="$3" max_len="$4" corpus status=0 runs
  corpus="$(mktemp -d)"
  # New inputs go to the temporary corpus; the committed seeds are read only.
  (cd "$ROOT/$dir" && cargo +nightly fuzz run "$target" --sanitizer none --release \
    --target-dir "$CACHE/fuzz-target" "$corpus" "fuzz/corpus/$target" -- \
    -max_total_time="$secs" -max_len="$max_len" -print_final_stats=1) >"$corpus/log" 2>&1 || status=$?
  grep -E "^(#[0-9]+ +DONE|==[0-9]+==|thread .* panicked|SUMMARY|error)" "$corpus/log" || true
  if [ "$status" -ne 0 ]; then tail -60 "$corpus/log" | cut -c1-300 >&2; fi
  runs="$(awk '/stat::number_of_executed_units/ { print $2 }' "$corpus/log")"
  echo "fuzz $target: ${runs:-0} inputs in ${secs} s, exit status $status"
  rm -rf "$corpus"
  return "$status"
}

status=0
fuzz ingest request "$SECONDS_TO_RUN" 40000 || status=$?
fuzz stream-processor plan_gate "$((SECONDS_TO_RUN / 2))" 4096 || status=$?
exit "$status"
