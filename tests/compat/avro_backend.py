"""A backend service producing straight to `events.raw`, as Confluent's Python client does it:
SerializingProducer + AvroSerializer against our registry, using the event schema registered
there (subject `events.raw-value`, fetched, not copied), keyed by user id:

    python avro_backend.py <brokers> <registry url> <run id> <count>

Prints the message ids it produced, as JSON, once every record is acknowledged.
"""
import json
import sys
import time

from confluent_kafka import SerializingProducer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import StringSerializer


def main() -> None:
    brokers, registry_url, run, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    registry = SchemaRegistryClient({"url": registry_url})
    schema = registry.get_latest_version("events.raw-value").schema
    producer = SerializingProducer({
        "bootstrap.servers": brokers,
        "enable.idempotence": True,
        "key.serializer": StringSerializer("utf_8"),
        # The subject exists: use it as registered, never register a variant.
        "value.serializer": AvroSerializer(registry, schema.schema_str,
                                           conf={"auto.register.schemas": False,
                                                 "use.latest.version": True}),
    })
    now_us = int(time.time() * 1_000_000)
    ids, errors = [], []
    for i in range(count):
        user = f"{run}-backend-user-{i % 3}"
        record = {
            "type": "track", "messageId": f"{run}-backend-{i}", "userId": user,
            "anonymousId": None, "event": "Invoice Paid", "name": None, "groupId": None,
            "previousId": None, "timestamp": now_us - i * 1000, "originalTimestamp": None,
            "sentAt": None, "receivedAt": now_us,
            "context": json.dumps({"library": {"name": "billing-service"}}),
            "properties": json.dumps({"amount": 10 + i, "currency": "EUR"}),
            "traits": "{}", "integrations": "{}", "sourceId": "billing",
        }
        producer.produce("events.raw", key=user, value=record,
                         on_delivery=lambda err, msg: errors.append(str(err)) if err else None)
        ids.append(record["messageId"])
    producer.flush(30)
    if errors:
        sys.exit(f"delivery errors: {errors}")
    print(json.dumps(ids))


if __name__ == "__main__":
    main()
