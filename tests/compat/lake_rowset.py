"""The row sets of the lake's tables, as pyarrow reads them (Hive partitioning, the files'
schemas unified), reduced to digests the maintenance test compares before and after a command:

    python lake_rowset.py <lake root directory> [--exclude-user ID]... [--exclude-anon ID]...
                          [--follow-links] [--min-date YYYY-MM-DD]

Per table (events, dlq): the number of files, of rows, the SHA-256 of the sorted rows (every
column, partition values included, as JSON) after leaving out the rows of the excluded users
(events: user_id/anonymous_id; dead letters: userId/anonymousId of the payload, decoded with
fastavro and the registry's schema when it is a Confluent-framed Avro event, else as JSON) and
the events dated before --min-date, and how many rows were left out that way.

With --follow-links, the excluded users are the person's identity links too, computed here
independently of `lake-admin erase`: an alias row joins its user id and previous id (either
way, to a fixed point); an anonymous id on a row of one of those user ids is linked, and its
rows are the person's when they carry no user id or one of the person's.
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


def owns(user, anon, users: set, anons: set, linked: set) -> bool:
    return (user in users or anon in anons
            or (anon in linked and (user is None or user in users)))


def subject_of_dead_letter(row: dict, users: set, anons: set, linked: set) -> bool:
    payload = decode_avro(row.get("payload") or b"")
    if payload is None:
        try:
            payload = json.loads(row.get("payload_text") or "")
        except ValueError:
            return False
    return isinstance(payload, dict) and owns(payload.get("userId"), payload.get("anonymousId"),
                                              users, anons, linked)


def links(path: str, users: set) -> tuple:
    """The person's user ids (alias closure) and linked anonymous ids, from the events."""
    files = sorted(glob.glob(f"{path}/**/*.parquet", recursive=True))
    if not files:
        return set(users), set()
    rows = ds.dataset(files, format="parquet").to_table(
        columns=["type", "user_id", "anonymous_id", "previous_id"]).to_pylist()
    aliases = {(r["user_id"], r["previous_id"]) for r in rows
               if r["type"] == "alias" and r["user_id"] and r["previous_id"]}
    closure = set(users)
    while True:
        grown = closure | {x for u, p in aliases if u in closure or p in closure for x in (u, p)}
        if grown == closure:
            break
        closure = grown
    linked = (closure - set(users)) | {r["anonymous_id"] for r in rows
                                       if r["user_id"] in closure and r["anonymous_id"]}
    return closure, linked


def table_rowset(path: str, table: str, users: set, anons: set, linked: set,
                 min_date: str | None) -> dict:
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
            subject = owns(row.get("user_id"), row.get("anonymous_id"), users, anons, linked)
            old = min_date is not None and row["event_date"] < min_date
        else:
            subject = subject_of_dead_letter(row, users, anons, linked)
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
    ap.add_argument("--follow-links", action="store_true")
    ap.add_argument("--min-date")
    ap.add_argument("--registry", help="schema registry URL, to decode Avro dead letters")
    a = ap.parse_args()
    global REGISTRY
    REGISTRY = a.registry
    users, anons, linked = set(a.exclude_user), set(a.exclude_anon), set()
    if a.follow_links:
        users, linked = links(f"{a.lake}/events", users)
        linked -= anons
    print(json.dumps({t: table_rowset(f"{a.lake}/{t}", t, users, anons, linked, a.min_date)
                      for t in ("events", "dlq")}))


if __name__ == "__main__":
    main()
