#!/usr/bin/env bash
# Stops exactly the processes ./deploy/local/up.sh started (by pid): demo traffic and
# monitoring first, then the services, the broker last, each with SIGTERM (so it drains,
# flushes and commits) and SIGKILL after 30 s (each service exits by itself within its 25 s
# grace period, runtime::shutdown).
set -euo pipefail
cd "$(dirname "$0")/../.."
PIDS=data/pids
[ -d "$PIDS" ] || { echo "nothing to stop"; exit 0; }
for name in demo-traffic alertmanager prometheus ingest processor lake-sink metrics-sink registry broker; do
  f="$PIDS/$name.pid"
  [ -f "$f" ] || continue
  pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; echo "$name (pid $pid) killed"; else echo "$name (pid $pid) stopped"; fi
  fi
  rm -f "$f"
done
