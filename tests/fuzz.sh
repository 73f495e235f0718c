#!/usr/bin/env bash
# Runs the collector's request-decoder fuzz target (ingest/fuzz, cargo fuzz + libFuzzer) for
# NORTHSTAR_FUZZ_SECONDS seconds (default 60), starting from the committed seed corpus.
# Installs what is missing first (cargo-fuzz into the cache folder, Rust nightly through
# rustup), idempotently. A crash, panic or broken invariant fails the run and leaves the input
# in ingest/fuzz/artifacts/.
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
corpus="$(mktemp -d)"
trap 'rm -rf "$corpus"' EXIT
cd ingest
# New inputs go to the temporary corpus; the committed seeds are read only.
status=0
cargo +nightly fuzz run request --sanitizer none --release --target-dir "$CACHE/fuzz-target" \
  "$corpus" fuzz/corpus/request -- -max_total_time="$SECONDS_TO_RUN" -max_len=40000 \
  -print_final_stats=1 >"$corpus/log" 2>&1 || status=$?
grep -E "^(#[0-9]+ +DONE|==[0-9]+==|thread .* panicked|SUMMARY|error)" "$corpus/log" || true
if [ "$status" -ne 0 ]; then tail -60 "$corpus/log" | cut -c1-300 >&2; fi
runs="$(awk '/stat::number_of_executed_units/ { print $2 }' "$corpus/log")"
echo "fuzz: ${runs:-0} inputs in ${SECONDS_TO_RUN} s, exit status $status"
exit "$status"
