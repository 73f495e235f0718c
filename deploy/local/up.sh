#!/usr/bin/env bash
# Brings the whole local stack up on loopback: Tansu (Kafka protocol, sqlite storage), the schema
# registry, ingest, stream processor, lake sink and metrics sink; registers the schemas; sends
# demo traffic through the HTTP API; prints where to look. Idempotent: running services are
# left alone. State lives in ./data; ./deploy/local/down.sh stops what this started.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
STATE=data
mkdir -p "$STATE/broker" "$STATE/logs" "$STATE/pids" "$STATE/lake"

need() { command -v "$1" >/dev/null 2>&1 || { echo "up.sh needs $1" >&2; exit 1; }; }
need cargo
need curl

TANSU="$(bash deploy/local/install-tansu.sh)"
echo "building (release)…"
cargo build --release --bins
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"

export NORTHSTAR_KAFKA__BROKERS=127.0.0.1:9092
export NORTHSTAR_REGISTRY_URL=http://127.0.0.1:8081

running() {
  local pidfile="$STATE/pids/$1.pid"
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

start() {
  local name="$1"; shift
  if running "$name"; then
    echo "  $name already running (pid $(cat "$STATE/pids/$name.pid"))"
    return
  fi
  nohup "$@" >"$STATE/logs/$name.log" 2>&1 &
  echo $! >"$STATE/pids/$name.pid"
  echo "  $name started (pid $!, log $STATE/logs/$name.log)"
}

wait_http() {
  for _ in $(seq 1 240); do
    curl -sf -o /dev/null "$1" && return 0
    sleep 0.5
  done
  echo "timed out waiting for $1; see $STATE/logs/" >&2
  exit 1
}

wait_port() {
  for _ in $(seq 1 120); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.5
  done
  echo "timed out waiting for port $1; see $STATE/logs/" >&2
  exit 1
}

echo "starting the stack…"
# Tansu resolves sqlite paths relative to its working directory (absolute ones are mangled).
start broker bash -c "cd '$STATE/broker' && exec '$TANSU' broker \
  --listener-url tcp://127.0.0.1:9092 --advertised-listener-url tcp://127.0.0.1:9092 \
  --storage-engine sqlite://tansu.db"
wait_port 9092
# Tansu 0.6.0's sqlite schema lacks an index its fetches need (see the script).
python3 deploy/local/tansu-index.py "$STATE/broker/tansu.db"
"$BIN/northstar-schemas" create-topics --partitions 3 2>>"$STATE/logs/topics.log"
start registry env NORTHSTAR_LISTEN=127.0.0.1:8081 "$BIN/northstar-schemas" serve
wait_http http://127.0.0.1:8081/subjects
"$BIN/northstar-schemas" register
start ingest "$BIN/northstar-ingest" --config deploy/local/ingest.toml
start processor env NORTHSTAR_LISTEN=127.0.0.1:9465 NORTHSTAR_CATALOG=deploy/kpi-catalog.yaml "$BIN/northstar-stream-processor"
start lake-sink env NORTHSTAR_LISTEN=127.0.0.1:9466 NORTHSTAR_ROOT=file://./data/lake \
  NORTHSTAR_MAX_FILE_AGE_SECS=10 "$BIN/northstar-sink" lake
start metrics-sink env NORTHSTAR_LISTEN=127.0.0.1:9464 "$BIN/northstar-sink" metrics
wait_http http://127.0.0.1:8080/readyz
wait_http http://127.0.0.1:9465/healthz
wait_http http://127.0.0.1:9466/healthz
wait_http http://127.0.0.1:9464/healthz

echo "sending demo traffic…"
bash deploy/local/demo-traffic.sh http://127.0.0.1:8080 demo-write-key 20 50

cat <<INFO

Northstar is up.
  Tracking API   http://127.0.0.1:8080/v1/batch   (write key: demo-write-key, HTTP Basic user)
  KPI metrics    http://127.0.0.1:9464/metrics     (northstar_kpi_value, northstar_kpi_window_value)
  Service metrics: ingest :8080/metrics, processor :9465/metrics, lake sink :9466/metrics
  Schema registry http://127.0.0.1:8081/subjects
  Parquet lake   $ROOT/$STATE/lake/events/event_date=YYYY-MM-DD/event_hour=HH/event_name=NAME/  (files appear within ~10 s)
  Logs           $ROOT/$STATE/logs/
Try:  curl -s -u demo-write-key: http://127.0.0.1:8080/v1/track -d '{"event":"Signed Up","userId":"u1"}'
Stop: ./deploy/local/down.sh
INFO
