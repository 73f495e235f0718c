"""The row sets of the lake's tables, as pyarrow reads them (Hive partitioning, the files'
schemas unified), reduced to digests the maintenance test compares before and after a command:

    python lake_rowset.py <lake root directory> [--exclude-user ID]... [--exclude-anon ID]...
                          [--min-date YYYY-MM-DD]

Per table (events, dlq): the number of files, of rows, the SHA-256 of the sorted rows (every
column, partition values included, as JSON) after leaving out the rows of the excluded users
(events: user_id/anonymous_id; dead letters: userId/anonymousId of the payload, decoded with
fastavro and the registry's schema when it is a Confluent-framed Avro event, else as JSON) and
the events dated before --min-date, and how many rows were left out that way.
"""
import argparse
import glob
import hashlib
import json

import io
import struct
import urllib.request

import fastavro
import pyarrow as pa
import pyarrow.dataset as ds

REGISTRY = None
SCHEMAS: dict = {}


def decode_avro(payload: bytes):
    if REGISTRY is None or len(payload) < 5 or payload[0] != 0:
        return None
    schema_id = struct.unpack(">I", payload[1:5])[0]
    if schema_id not in SCHEMAS:
        with urllib.request.urlopen(f"{REGISTRY}/schemas/ids/{schema_id}") as r:
            SCHEMAS[schema_id] = fastavro.parse_schema(json.loads(json.load(r)["schema"]))
    try:
        return fastavro.schemaless_reader(io.BytesIO(payload[5:]), SCHEMAS[schema_id])
    except Exception:  # not an event after all
        return None


def subject_of_dead_letter(row: dict, users: set, anons: set) -> bool:
    payload = decode_avro(row.get("payload") or b"")
    if payload is None:
        try:
            payload = json.loads(row.get("payload_text") or "")
        except ValueError:
            return False
    return isinstance(payload, dict) and (payload.get("userId") in users
                                          or payload.get("anonymousId") in anons)


def table_rowset(path: str, table: str, users: set, anons: set, min_date: str | None) -> dict:
    files = sorted(f for f in glob.glob(f"{path}/**/*.parquet", recursive=True))
    if not files:
        return {"files": 0, "rows": 0, "digest": hashlib.sha256(b"").hexdigest(), "left_out": 0}
    parts = ds.partitioning(pa.schema([("event_date", pa.string()), ("event_hour", pa.string()),
                                       ("event_name", pa.string())]), flavor="hive")
    if table == "dlq":
        parts = ds.partitioning(pa.schema([("event_date", pa.string())]), flavor="hive")
    first = ds.dataset(files, format="parquet", partitioning=parts, partition_base_dir=path)
    schema = pa.unify_schemas([f.physical_schema for f in first.get_fragments()]
                              + [parts.schema])
    dataset = ds.dataset(files, format="parquet", partitioning=parts, partition_base_dir=path,
                         schema=schema)
    rows = dataset.to_table().to_pylist()
    kept, left_out = [], 0
    for row in rows:
        if table == "events":
            subject = row.get("user_id") in users or row.get("anonymous_id") in anons
            old = min_date is not None and row["event_date"] < min_date
        else:
            subject = subject_of_dead_letter(row, users, anons)
            old = False
        if subject or old:
            left_out += 1
            continue
        kept.append(json.dumps(row, sort_keys=True, default=str))
    kept.sort()
    digest = hashlib.sha256("\n".join(kept).encode()).hexdigest()
    return {"files": len(files), "rows": len(rows), "digest": digest, "left_out": left_out}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("lake")
    ap.add_argument("--exclude-user", action="append", default=[])
    ap.add_argument("--exclude-anon", action="append", default=[])
    ap.add_argument("--min-date")
    ap.add_argument("--registry", help="schema registry URL, to decode Avro dead letters")
    a = ap.parse_args()
    global REGISTRY
    REGISTRY = a.registry
    users, anons = set(a.exclude_user), set(a.exclude_anon)
    print(json.dumps({t: table_rowset(f"{a.lake}/{t}", t, users, anons, a.min_date)
                      for t in ("events", "dlq")}))


if __name__ == "__main__":
    main()
