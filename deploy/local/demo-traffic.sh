#!/usr/bin/env bash
# Sends demo events through the Segment-compatible HTTP API.
# Usage: demo-traffic.sh [URL] [WRITE_KEY] [BATCHES] [EVENTS_PER_BATCH]
set -euo pipefail
URL="${1:-http://127.0.0.1:8080}"
KEY="${2:-demo-write-key}"
BATCHES="${3:-20}"
PER="${4:-50}"
NAMES=("Signed Up" "Activated" "Invited Teammate" "Created Project" "Upgraded Plan")
OSES=("iOS" "Android" "Mac OS X" "Windows")
ok=0
for b in $(seq 1 "$BATCHES"); do
  body='{"batch":['
  for i in $(seq 1 "$PER"); do
    n=$(( (RANDOM % 100) ))
    if   [ $n -lt 40 ]; then name=${NAMES[0]}
    elif [ $n -lt 70 ]; then name=${NAMES[1]}
    elif [ $n -lt 85 ]; then name=${NAMES[2]}
    elif [ $n -lt 95 ]; then name=${NAMES[3]}
    else name=${NAMES[4]}; fi
    os=${OSES[$((RANDOM % 4))]}
    ts="$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)"
    [ "$i" -gt 1 ] && body+=','
    plan=$([ $((RANDOM % 3)) -eq 0 ] && echo pro || echo free)
    revenue=0
    [ "$name" = "Upgraded Plan" ] && revenue="$((RANDOM % 90 + 10)).$((RANDOM % 100))"
    body+="{\"type\":\"track\",\"event\":\"$name\",\"userId\":\"demo-user-$((RANDOM % 200))\",\"messageId\":\"demo-$$-$b-$i-$RANDOM\",\"timestamp\":\"$ts\",\"properties\":{\"plan\":\"$plan\",\"revenue\":$revenue},\"context\":{\"os\":{\"name\":\"$os\"}}}"
  done
  body+=']}'
  code=$(curl -s -o /dev/null -w '%{http_code}' -u "$KEY:" -H 'content-type: application/json' --data-binary "$body" "$URL/v1/batch")
  if [ "$code" = 200 ]; then ok=$((ok + PER)); else echo "batch $b answered $code" >&2; fi
done
echo "demo traffic: $ok events accepted"
