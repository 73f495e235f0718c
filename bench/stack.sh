# shellcheck shell=bash disable=SC2034  # sourced: TANSU_PID and TICK are for the sourcing script
# Sourced by the bench scripts: a throwaway Tansu broker (sqlite storage, with the header index
# of deploy/local/tansu-index.py), the topics (3 partitions) and the registry, in a temporary
# directory removed on exit. Needs ROOT, BIN, TANSU, BROKER_PORT and REGISTRY_PORT; sets DIR,
# PIDS (processes killed on exit), TANSU_PID (the broker's: the mock's with NS_BROKER=mock),
# NORTHSTAR_KAFKA__BROKERS, NORTHSTAR_REGISTRY_URL,
# and the helpers `cpu PID` (user + system seconds × CLK_TCK) and TICK.
#
# NS_BROKER=mock: librdkafka's in-memory mock cluster instead (target/release/northstar-mock-kafka,
# in its own process), a broker that is not the bottleneck; its topics are the default ones plus
# those named in NS_MOCK_TOPICS, 3 partitions each (the mock cannot create topics on request).
DIR="$(mktemp -d)"
PIDS=()
bench_cleanup() {
  # Newest first, the broker last: a service stopping drains to the broker.
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill "${PIDS[$i]}" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "${PIDS[$i]}" 2>/dev/null || break; sleep 0.1; done
    kill -9 "${PIDS[$i]}" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap bench_cleanup EXIT
export NORTHSTAR_REGISTRY_URL="http://127.0.0.1:$REGISTRY_PORT"
# One broker (or librdkafka's mock cluster): one replica per topic.
export NORTHSTAR_TOPICS__REPLICATION_FACTOR=1 NORTHSTAR_TOPICS__MIN_INSYNC_REPLICAS=1

if [ "${NS_BROKER:-tansu}" = mock ]; then
  # shellcheck disable=SC2086  # NS_MOCK_TOPICS is a list of topic names
  "$BIN/northstar-mock-kafka" --partitions 3 events.raw events.clean events.dlq kpi.aggregates _schemas \
    ${NS_MOCK_TOPICS:-} >"$DIR/mock.addr" 2>"$DIR/mock.log" &
  PIDS+=($!)
  TANSU_PID=$!
  for _ in $(seq 100); do [ -s "$DIR/mock.addr" ] && break; sleep 0.1; done
  NORTHSTAR_KAFKA__BROKERS="$(head -1 "$DIR/mock.addr")"
  [ -n "$NORTHSTAR_KAFKA__BROKERS" ] || { cat "$DIR/mock.log" >&2; exit 1; }
  export NORTHSTAR_KAFKA__BROKERS
else
  export NORTHSTAR_KAFKA__BROKERS="127.0.0.1:$BROKER_PORT"
  (cd "$DIR" && exec "$TANSU" broker --listener-url "tcp://127.0.0.1:$BROKER_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$BROKER_PORT" --storage-engine sqlite://tansu.db) \
    >"$DIR/tansu.log" 2>&1 &
  PIDS+=($!)
  TANSU_PID=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$BROKER_PORT") 2>/dev/null && break; sleep 0.2; done
  python3 "$ROOT/deploy/local/tansu-index.py" "$DIR/tansu.db"
  "$BIN/northstar-schemas" create-topics --partitions 3 2>/dev/null
fi
NORTHSTAR_LISTEN="127.0.0.1:$REGISTRY_PORT" NORTHSTAR_ADMIN_LISTEN=127.0.0.1:0 "$BIN/northstar-schemas" serve >"$DIR/registry.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -sf -o /dev/null "$NORTHSTAR_REGISTRY_URL/subjects" && break; sleep 0.2; done
"$BIN/northstar-schemas" register >/dev/null

cpu() { awk '{ split($0, a, ") "); split(a[2], f, " "); print (f[12] + f[13]) }' "/proc/$1/stat"; }
TICK="$(getconf CLK_TCK)"
