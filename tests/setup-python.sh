#!/usr/bin/env bash
# Creates the Python environment of the compatibility tests (Confluent's client, DuckDB,
# pyarrow, moto's S3 server, Segment's and RudderStack's Python SDKs, Grafana's dashboard models
# from grafana-foundation-sdk, jsonschema and PyYAML for the chart's values schema), once.
# Prints the interpreter's path. Idempotent.
set -euo pipefail
CACHE="${NORTHSTAR_CACHE:-$HOME/.cache/northstar}"
VENV="$CACHE/venv"
PY="$VENV/bin/python"
if [ -x "$PY" ] && "$PY" -c "import confluent_kafka.schema_registry.avro, pytest, fastavro, duckdb, pyarrow, pyarrow.fs, moto.server, flask_cors, segment.analytics, rudderstack.analytics, grafana_foundation_sdk.models.dashboard, jsonschema, yaml" 2>/dev/null; then
  echo "$PY"
  exit 0
fi
mkdir -p "$CACHE"
python3 -m venv "$VENV" >&2
"$PY" -m pip install -q --upgrade pip >&2
"$PY" -m pip install -q "confluent-kafka[avro,schemaregistry]" pytest duckdb pyarrow "moto[server]" \
  segment-analytics-python rudder-sdk-python grafana-foundation-sdk jsonschema pyyaml >&2
echo "$PY"
