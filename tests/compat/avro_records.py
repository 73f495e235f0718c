"""A backend service producing given event records straight to a topic with Confluent's Python
client (SerializingProducer + AvroSerializer, the schema registered as `events.raw-value`,
fetched from our registry, never registered by the client):

    python avro_records.py <brokers> <registry url> <topic> <records.json>

<records.json> is a JSON list of partial records, each merged over a valid track event
(`properties` and `context` given as JSON objects are serialised as the schema's JSON text;
`_pad_bytes: N` adds a property of N bytes). Keyed by userId, else anonymousId. Prints the
message ids produced, as JSON, once every record is acknowledged.
"""
import json
import sys
import time

from confluent_kafka import SerializingProducer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import StringSerializer


def record(partial: dict, now_us: int) -> dict:
    out = {
        "type": "track", "messageId": None, "userId": None, "anonymousId": None,
        "event": "Upgraded Plan", "name": None, "groupId": None, "previousId": None,
        "timestamp": now_us, "originalTimestamp": None, "sentAt": None, "receivedAt": now_us,
        "context": {"library": {"name": "billing-service"}}, "properties": {},
        "traits": "{}", "integrations": "{}", "sourceId": "billing",
    }
    pad = partial.pop("_pad_bytes", 0)
    out.update(partial)
    if pad:
        out["properties"] = dict(out["properties"], padding="x" * pad)
    for part in ("context", "properties", "traits", "integrations"):
        if not isinstance(out[part], str):
            out[part] = json.dumps(out[part])
    return out


def produce_all(brokers: str, registry_url: str, topic: str, records: list) -> list:
    """Produces `records` (complete) keyed by user, as Confluent's client does with the schema
    registered as `events.raw-value` (fetched, never registered); returns their message ids
    once every record is acknowledged, or exits with the delivery errors."""
    registry = SchemaRegistryClient({"url": registry_url})
    schema = registry.get_latest_version("events.raw-value").schema
    producer = SerializingProducer({
        "bootstrap.servers": brokers,
        "enable.idempotence": True,
        "key.serializer": StringSerializer("utf_8"),
        "value.serializer": AvroSerializer(registry, schema.schema_str,
                                           conf={"auto.register.schemas": False,
                                                 "use.latest.version": True}),
    })
    ids, errors = [], []
    for r in records:
        producer.produce(topic, key=r["userId"] or r["anonymousId"] or "", value=r,
                         on_delivery=lambda err, msg: errors.append(str(err)) if err else None)
        ids.append(r["messageId"])
    producer.flush(30)
    if errors:
        sys.exit(f"delivery errors: {errors}")
    return ids


def main() -> None:
    brokers, registry_url, topic, path = sys.argv[1:5]
    with open(path) as f:
        partials = json.load(f)
    now_us = int(time.time() * 1_000_000)
    records = [record(dict(p), now_us) for p in partials]
    print(json.dumps(produce_all(brokers, registry_url, topic, records)))


if __name__ == "__main__":
    main()
