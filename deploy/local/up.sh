#!/usr/bin/env bash
# Brings the whole local stack up on loopback: Tansu (Kafka protocol, sqlite storage), the schema
# registry, ingest, stream processor, lake sink and metrics sink (with the KPI board), Prometheus
# with the rules and Alertmanager with the routes generated from deploy/kpi-catalog.yaml; backfills
# four weeks of product-shaped demo traffic once, keeps live traffic flowing, and prints where to
# look. Idempotent: running services are left alone. State lives in ./data;
# ./deploy/local/down.sh stops what this started.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
STATE=data
mkdir -p "$STATE/broker" "$STATE/logs" "$STATE/pids" "$STATE/lake"

need() { command -v "$1" >/dev/null 2>&1 || { echo "up.sh needs $1" >&2; exit 1; }; }
need cargo
need curl
need python3
# Prometheus and Alertmanager from Debian's packages, when missing.
bash tests/setup-prometheus.sh
need prometheus
need prometheus-alertmanager
CATALOG="${NORTHSTAR_CATALOG:-deploy/kpi-catalog.yaml}"
# The tracking plan the processor enforces (docs/tracking-plan.md); NORTHSTAR_PLAN= (empty) for none.
PLAN="${NORTHSTAR_PLAN-deploy/tracking-plan.yaml}"
# The key of the plan's PII hashes: made once for this machine, never in the repository
# (production: a Secret; docs/tracking-plan.md).
PII_KEY_FILE="${NORTHSTAR_PII_KEY_FILE:-$STATE/pii.key}"
if [ ! -s "$PII_KEY_FILE" ]; then
  (umask 077 && printf 'v1:%s\n' "$(head -c 32 /dev/urandom | base64 -w0)" >"$PII_KEY_FILE")
fi

TANSU="$(bash deploy/local/install-tansu.sh)"
echo "building (release)…"
# librdkafka's TLS and SASL link the system OpenSSL (ADR 0019): its headers, once.
if ! pkg-config --exists openssl 2>/dev/null; then
  apt-get update -qq && apt-get install -y -qq libssl-dev pkg-config >/dev/null
fi
cargo build --release --bins
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"

export NORTHSTAR_KAFKA__BROKERS=127.0.0.1:9092
export NORTHSTAR_REGISTRY_URL=http://127.0.0.1:8081
# One broker: every topic has one replica (the defaults, 3 and 2, suit a production cluster).
export NORTHSTAR_TOPICS__REPLICATION_FACTOR=1 NORTHSTAR_TOPICS__MIN_INSYNC_REPLICAS=1

running() {
  local pidfile="$STATE/pids/$1.pid"
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

# Where each service answers while it runs (a service that no longer answers is shutting down).
health_url() {
  case "$1" in
    broker) echo tcp:9092 ;;
    registry) echo http://127.0.0.1:8081/subjects ;;
    ingest) echo http://127.0.0.1:8080/healthz ;;
    processor) echo http://127.0.0.1:9465/healthz ;;
    lake-sink) echo http://127.0.0.1:9466/healthz ;;
    metrics-sink) echo http://127.0.0.1:9464/healthz ;;
    prometheus) echo http://127.0.0.1:9090/-/healthy ;;
    alertmanager) echo http://127.0.0.1:9093/-/healthy ;;
    *) echo "" ;;
  esac
}

answers() {  # a health URL, or tcp:PORT
  case "$1" in
    tcp:*) (exec 3<>"/dev/tcp/127.0.0.1/${1#tcp:}") 2>/dev/null ;;
    *) curl -sf -m 2 -o /dev/null "$1" ;;
  esac
}

# A service stopped a moment ago (SIGTERM, down.sh, a reboot of the broker) may still be
# draining: every service exits within its grace period (25 s by default). Wait for it to
# finish rather than take it for running; one that neither answers nor exits is killed.
settle() {
  local name="$1" url pid
  running "$name" || return 0
  url="$(health_url "$name")" pid="$(cat "$STATE/pids/$name.pid")"
  if [ -z "$url" ] || answers "$url"; then return 0; fi
  echo "  $name (pid $pid) is not answering: waiting for it to finish shutting down…"
  for _ in $(seq 1 70); do
    running "$name" || return 0
    answers "$url" && return 0  # it was starting, not stopping
    sleep 0.5
  done
  echo "  $name (pid $pid) neither answers nor exits: killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
  sleep 0.5
}

start() {
  local name="$1"; shift
  settle "$name"
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
# The collector follows the suppression list (erased subjects, keyed hashes): it needs the key.
start ingest env NORTHSTAR_PII_KEY_FILE="$PII_KEY_FILE" "$BIN/northstar-ingest" --config deploy/local/ingest.toml
if [ -n "$PLAN" ]; then
  "$BIN/northstar-schemas" plan lint "$PLAN" --catalog "$CATALOG" | tail -1 ||
    echo "  the tracking plan has lint errors (northstar-schemas plan lint $PLAN --catalog $CATALOG); the processor still enforces it"
fi
start processor env NORTHSTAR_LISTEN=127.0.0.1:9465 NORTHSTAR_CATALOG="$CATALOG" ${PLAN:+NORTHSTAR_PLAN="$PLAN"} \
  NORTHSTAR_PII_KEY_FILE="$PII_KEY_FILE" "$BIN/northstar-stream-processor"
start lake-sink env NORTHSTAR_LISTEN=127.0.0.1:9466 NORTHSTAR_ROOT=file://./data/lake \
  NORTHSTAR_MAX_FILE_AGE_SECS=10 ${PLAN:+NORTHSTAR_PLAN="$PLAN"} NORTHSTAR_PII_KEY_FILE="$PII_KEY_FILE" \
  "$BIN/northstar-sink" lake
start metrics-sink env NORTHSTAR_LISTEN=127.0.0.1:9464 NORTHSTAR_CATALOG="$CATALOG" \
  NORTHSTAR_ALERTMANAGER_URL=http://127.0.0.1:9093 "$BIN/northstar-sink" metrics

# Rules, routes and dashboards from the catalog the services run (regenerated on every run, so a
# catalog edit reaches them; deploy/ holds the same files generated from the example catalog).
MON="$STATE/monitoring"
"$BIN/northstar-sink" dashboards generate --catalog "$CATALOG" --out "$MON" \
  --docs-url "file://$ROOT/docs/runbooks.md" >/dev/null
cp deploy/prometheus/prometheus.yml "$MON/prometheus/prometheus.yml"
if running prometheus; then curl -sf -X POST http://127.0.0.1:9090/-/reload || true; fi
start prometheus prometheus --config.file="$MON/prometheus/prometheus.yml" \
  --storage.tsdb.path="$STATE/prometheus" --web.listen-address=127.0.0.1:9090 --web.enable-lifecycle
start alertmanager prometheus-alertmanager --config.file="$MON/alertmanager/alertmanager.yml" \
  --storage.path="$STATE/alertmanager" --web.listen-address=127.0.0.1:9093 --cluster.listen-address=
wait_http http://127.0.0.1:8080/readyz
wait_http http://127.0.0.1:9465/healthz
wait_http http://127.0.0.1:9466/healthz
wait_http http://127.0.0.1:9464/healthz
wait_http http://127.0.0.1:9090/-/ready
wait_http http://127.0.0.1:9093/-/ready

# Consumers that joined their groups but were given no partition (Tansu 0.6.0 after an unclean
# stop, docs/operations.md) rejoin by themselves once input waits; say so rather than stay silent.
wait_assigned() {  # name, metrics URL, consumer group
  for _ in $(seq 1 120); do
    curl -sf "$2" | grep -Eq "^northstar_consumer_assigned_partitions\{group=\"$3\"\} [1-9]" && return 0
    sleep 0.5
  done
  echo "  $1 holds no partition of its group $3 yet: it leaves and rejoins by itself once events" \
    "wait (northstar_consumer_stalled, see $STATE/logs/$1.log)" >&2
}
wait_assigned processor http://127.0.0.1:9465/metrics northstar-stream-processor
wait_assigned lake-sink http://127.0.0.1:9466/metrics northstar-lake-sink

DEMO=(python3 deploy/local/demo_traffic.py --url http://127.0.0.1:8080 --write-key demo-write-key)
if [ ! -f "$STATE/backfilled" ]; then
  echo "backfilling four weeks of demo traffic (once)…"
  "${DEMO[@]}" backfill --weeks 4 --per-hour 40
  touch "$STATE/backfilled"
fi
start demo-traffic "${DEMO[@]}" live --per-hour 1800

cat <<INFO

Northstar is up.
  KPI board       http://127.0.0.1:9464/                  (North Star, KPIs, completeness, firing alerts)
  Prometheus      http://127.0.0.1:9090/alerts            (generated rules: $MON/prometheus/rules/)
  Alertmanager    http://127.0.0.1:9093/                  (routes: $MON/alertmanager/alertmanager.yml)
  KPI metrics     http://127.0.0.1:9464/metrics           (northstar_kpi_open_value, _final_value, _final_window_value)
  Tracking API    http://127.0.0.1:8080/v1/batch          (write key: demo-write-key, HTTP Basic user)
  Service metrics ingest :9467/metrics, processor :9465/metrics, lake sink :9466/metrics
  Schema registry http://127.0.0.1:8081/subjects
  Parquet lake    $ROOT/$STATE/lake/events/event_date=YYYY-MM-DD/event_hour=HH/event_name=NAME/  (files appear within ~10 s)
  Grafana         the dashboards are in deploy/grafana/ (deploy/compose/ provisions them; no Grafana runs here)
  Logs            $ROOT/$STATE/logs/
Live demo traffic runs in the background (about 1,800 events an hour). Try:
  curl -s -u demo-write-key: http://127.0.0.1:8080/v1/track -d '{"event":"Signed Up","userId":"u1"}'
  ${DEMO[*]} anomaly spike --count 400      # a sign-up flood: NorthstarKpiOpenWindowAboveBound fires
  ${DEMO[*]} anomaly outage --minutes 70   # no sign-ups: NorthstarKpiBelowThreshold after the hour
  NORTHSTAR_ROOT=file://./data/lake NORTHSTAR_PII_KEY_FILE=$PII_KEY_FILE \
    $BIN/northstar-sink lake-admin replay --dry-run           # dead letters that would go back (docs/tracking-plan.md)
  NORTHSTAR_ROOT=file://./data/lake NORTHSTAR_PII_KEY_FILE=$PII_KEY_FILE \
    $BIN/northstar-sink lake-admin erase --user-id user-1     # erase a person everywhere (docs/privacy.md)
Stop: ./deploy/local/down.sh
INFO
