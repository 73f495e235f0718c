"""The lake sink's job done with pyarrow, as a Python team would write it — the peer of
`northstar-sink lake` in bench/lake_sink_vs_pyarrow.sh:

    python pyarrow_loader.py BROKERS REGISTRY_URL TOPIC EVENTS OUT_DIR

Consumes TOPIC from the beginning with confluent-kafka (batches of 10,000), decodes each
Confluent-framed Avro event with fastavro (schema fetched from the registry by id), builds the
same columns as the sink (envelope, timestamps, JSON text, positions, the 25 flattened context
fields, a typed prop_<key> per top-level property), groups rows by event date, hour and name
into files of at most 11,111 rows, and writes each with pa.Table.from_pylist + pq.write_table
(zstd 3, dictionary, statistics with the page index, 131,072-row groups). Prints the CPU time of
the whole process (all threads) per row.
"""
import datetime as dt
import io
import json
import os
import struct
import sys
import time
import urllib.request
from collections import defaultdict
from urllib.parse import quote

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
from confluent_kafka import Consumer, TopicPartition

from kafka_env import kafka_settings

CONTEXT = [("library", "name"), ("library", "version"), ("ip",), ("userAgent",), ("locale",),
           ("timezone",), ("page", "url"), ("page", "path"), ("page", "referrer"),
           ("page", "title"), ("page", "search"), ("os", "name"), ("os", "version"),
           ("device", "type"), ("device", "model"), ("device", "manufacturer"), ("device", "id"),
           ("app", "name"), ("app", "version"), ("app", "build"), ("campaign", "name"),
           ("campaign", "source"), ("campaign", "medium"), ("campaign", "term"),
           ("campaign", "content")]
CONTEXT_NAMES = ["context_" + "_".join(
    {"userAgent": "user_agent"}.get(p, p) for p in path) for path in CONTEXT]
UTC = dt.timezone.utc
SETTINGS = dict(compression="zstd", compression_level=3, use_dictionary=True,
                write_statistics=True, write_page_index=True, row_group_size=131072)


def text(v):
    if v is None or isinstance(v, (dict, list)):
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    return v if isinstance(v, str) else json.dumps(v)


def main() -> None:
    brokers, registry, topic, n, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    start = time.process_time()
    consumer = Consumer({**kafka_settings(brokers), "group.id": "pyarrow-loader",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in parts])
    schemas = {}
    groups = defaultdict(list)
    seen = 0
    while seen < n:
        for m in consumer.consume(num_messages=10000, timeout=1.0):
            if m.error():
                continue
            seen += 1
            payload = m.value()
            sid = struct.unpack(">I", payload[1:5])[0]
            if sid not in schemas:
                with urllib.request.urlopen(f"{registry}/schemas/ids/{sid}") as r:
                    schemas[sid] = fastavro.parse_schema(json.loads(json.load(r)["schema"]))
            e = fastavro.schemaless_reader(io.BytesIO(payload[5:]), schemas[sid])
            ts = e["timestamp"]
            if isinstance(ts, int):
                ts = dt.datetime.fromtimestamp(ts / 1e6, UTC)
            name = e["event"] if e["type"] == "track" else (e["name"] or e["type"])
            row = {"message_id": e["messageId"], "type": e["type"], "event": e["event"],
                   "name": e["name"], "user_id": e["userId"], "anonymous_id": e["anonymousId"],
                   "group_id": e["groupId"], "previous_id": e["previousId"], "timestamp": ts,
                   "original_timestamp": e["originalTimestamp"], "sent_at": e["sentAt"],
                   "received_at": e["receivedAt"], "context": e["context"],
                   "properties": e["properties"], "traits": e["traits"],
                   "integrations": e["integrations"], "source_id": e["sourceId"],
                   "source_partition": m.partition(), "source_offset": m.offset(),
                   "clean_partition": m.partition(), "clean_offset": m.offset()}
            ctx = json.loads(e["context"])
            for col, path in zip(CONTEXT_NAMES, CONTEXT):
                v = ctx
                for p in path:
                    v = v.get(p) if isinstance(v, dict) else None
                row[col] = text(v)
            for k, v in json.loads(e["properties"]).items():
                if isinstance(v, (str, bool)):
                    row["prop_" + k] = v
                elif isinstance(v, (int, float)):
                    row["prop_" + k] = float(v)
            key = (ts.strftime("%Y-%m-%d"), ts.strftime("%H"), name)
            groups[key].append(row)
    consumer.close()
    files = 0
    for (date, hour, name), rows in groups.items():
        rows.sort(key=lambda r: (r["timestamp"], r["clean_partition"], r["clean_offset"]))
        for i in range(0, len(rows), 11111):
            table = pa.Table.from_pylist(rows[i:i + 11111])
            path = f"{out}/event_date={date}/event_hour={hour}/event_name={quote(name, safe='')}"
            os.makedirs(path, exist_ok=True)
            pq.write_table(table, f"{path}/part-{files:05}.parquet", **SETTINGS)
            files += 1
    cpu = time.process_time() - start
    print(f"pyarrow loader (confluent-kafka + fastavro + from_pylist + write_table), {seen} rows "
          f"in {files} files: {cpu:.2f} CPU-s, {seen / cpu:.0f} rows per CPU-second, "
          f"{cpu * 1e6 / seen:.2f} us/row")


if __name__ == "__main__":
    main()
