#!/usr/bin/env bash
# The collector's cost per event and its latency, with wrk (Debian), next to the raw client
# ceiling in the same run:
#
#   bash bench/ingest_wrk.sh [SECONDS]        (default 20 per measurement)
#
# A throwaway Tansu broker (sqlite storage) and registry (bench/stack.sh), the collector
# (release build) with one write key; bodies from bench/ingest_body.py (events of ~660 bytes:
# a product-page track call as analytics.js sends it).
# 1. Batches of 100 events to /v1/batch, 8 connections, as fast as they go: the saturating
#    rate, and events per CPU-second of the collector process (/proc/<pid>/stat).
# 2. The same at 70 % of that rate (each connection paced by wrk's delay(); the latency
#    percentiles are wrk's, from send to the 200 — which the collector gives only once the
#    broker acknowledged every event of the request).
#    And at 25 %, where the broker is far from its limit.
# 3. Single events to /v1/track, 16 connections: requests per CPU-second.
# 4. The raw client: `northstar-fill --from-batch`, a bare rdkafka producer sending the same
#    records with the collector's settings — loading the broker exactly as wrk loaded the
#    collector at 70 % and 25 % (8 loops of batch, wait for every acknowledgement, the same
#    delay: the same arrivals, bursts included), so that its batch acknowledgement percentiles
#    are the broker's share of the collector's latency and the difference is what the collector
#    adds; then as fast as it goes (its CPU per record: the ceiling).
# Every request must be answered 200 (wrk's non-2xx count is checked).
# NORTHSTAR_BENCH_PERF=<file> records a perf profile of the collector during measurement 1.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
D="${1:-20}"
TANSU="$(bash deploy/local/install-tansu.sh)"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q -p northstar-ingest -p northstar-schemas -p northstar-e2e --bins
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
BROKER_PORT=39592 REGISTRY_PORT=38581
INGEST_PORT=38680
# shellcheck source=bench/stack.sh
source "$ROOT/bench/stack.sh"

python3 "$ROOT/bench/ingest_body.py" "$DIR" 100
(cd "$DIR" && exec env NORTHSTAR_LISTEN="127.0.0.1:$INGEST_PORT" NORTHSTAR_ADMIN_LISTEN=127.0.0.1:0 NORTHSTAR_WRITE_KEYS__BENCHKEY=bench \
  RUST_LOG=warn "$BIN/northstar-ingest") >"$DIR/ingest.log" 2>&1 &
INGEST=$!
PIDS+=("$INGEST")
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$INGEST_PORT/readyz" && break; sleep 0.2; done
AUTH="Basic $(printf 'benchkey:' | base64)"
export AUTH

# wrk_run NAME PATH BODY DELAY_MS CONNECTIONS EVENTS_PER_REQUEST → prints a line, sets RPS
wrk_run() {
  local name="$1" path="$2" body="$3" delay="$4" conns="$5" per="$6" out c0 c1
  c0="$(cpu "$INGEST")"
  out="$(BODY_FILE="$body" DELAY_MS="$delay" wrk -t2 -c"$conns" -d"${D}s" --latency \
    -s "$ROOT/bench/wrk/post.lua" "http://127.0.0.1:$INGEST_PORT$path")"
  c1="$(cpu "$INGEST")"
  if grep -q "Non-2xx" <<<"$out"; then echo "$out" >&2; echo "$name: non-2xx answers" >&2; exit 1; fi
  RPS="$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")"
  # wrk prints e.g. 17.61ms or 1.02s: the median in ms.
  LAT50="$(awk '$1 == "50%" { v = $2; if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else { sub(/s$/, "", v); v *= 1000 } print v }' <<<"$out")"
  awk -v name="$name" -v c0="$c0" -v c1="$c1" -v t="$TICK" -v per="$per" -v d="$D" '
    /requests in/ { n = $1 }
    $1 == "50%" { p50 = $2 } $1 == "99%" { p99 = $2 } $1 == "99.900%" { p999 = $2 }
    END {
      cpu = (c1 - c0) / t
      printf "%s: %d requests (%d events) in %d s: %.0f requests/s, %.0f events/s; collector %.2f CPU-s: %.0f events per CPU-second, %.0f requests per CPU-second; latency p50 %s, p99 %s\n", name, n, n * per, d, n / d, n * per / d, cpu, n * per / cpu, n / cpu, p50, p99
    }' <<<"$out"
}

if [ -n "${NORTHSTAR_BENCH_PERF:-}" ]; then  # perf report -i FILE
  perf record -F 499 -g -p "$INGEST" -o "$NORTHSTAR_BENCH_PERF" -- sleep "$D" >/dev/null 2>&1 &
fi
wrk_run "batch of 100, saturating" /v1/batch "$DIR/batch.json" 0 8 100
SAT="$RPS"
# 70 % of the saturating rate over 8 paced connections: each request takes its latency plus
# wrk's delay, so each connection waits 8000/(0.7 × SAT) ms minus the saturated median latency.
DELAY="$(awk -v r="$SAT" -v l="$LAT50" 'BEGIN { d = 8000 / (0.7 * r) - l; printf "%d", (d < 1 ? 1 : d) }')"
wrk_run "batch of 100, 70 % of saturation (delay ${DELAY} ms)" /v1/batch "$DIR/batch.json" "$DELAY" 8 100
LAT70="$LAT50"
DELAY25="$(awk -v r="$SAT" -v l="$LAT50" 'BEGIN { d = 8000 / (0.25 * r) - l; printf "%d", (d < 1 ? 1 : d) }')"
wrk_run "batch of 100, 25 % of saturation (delay ${DELAY25} ms)" /v1/batch "$DIR/batch.json" "$DELAY25" 8 100
LAT25="$LAT50"
wrk_run "single event, saturating" /v1/track "$DIR/single.json" 0 16 1

# The broker's share of the latency: the same batches from a bare producer, same arrivals.
for load in "70 $DELAY $LAT70" "25 $DELAY25 $LAT25"; do
  read -r share delay lat <<<"$load"
  raw="$("$BIN/northstar-fill" --brokers "$NORTHSTAR_KAFKA__BROKERS" --registry "$NORTHSTAR_REGISTRY_URL" \
    --topic events.raw --from-batch "$DIR/batch.json" --connections 8 --delay-ms "$delay" --seconds "$D" 2>/dev/null)"
  echo "$raw"
  awk -v s="$share" -v c="$lat" '/p50/ { for (i = 1; i <= NF; i++) if ($i == "p50") r = $(i + 1)
    printf "added by the collector at %s %%: p50 %.2f ms (collector %.2f ms, raw client %.2f ms)\n", s, c - r, c, r }' <<<"$raw"
done
N=$(awk -v r="$SAT" -v d="$D" 'BEGIN { printf "%d", r * 100 * d }')
"$BIN/northstar-fill" --brokers "$NORTHSTAR_KAFKA__BROKERS" --registry "$NORTHSTAR_REGISTRY_URL" \
  --topic events.raw --events "$N" --from-batch "$DIR/batch.json" 2>/dev/null
