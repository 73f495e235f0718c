"""A backend service producing straight to `events.raw`, as Confluent's Python client does it:
SerializingProducer + AvroSerializer against our registry, using the event schema registered
there (subject `events.raw-value`, fetched, not copied), keyed by user id:

    python avro_backend.py <brokers> <registry url> <run id> <count>

Prints the message ids it produced, as JSON, once every record is acknowledged.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from avro_records import produce_all  # noqa: E402


def main() -> None:
    brokers, registry_url, run, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    now_us = int(time.time() * 1_000_000)
    records = []
    for i in range(count):
        records.append({
            "type": "track", "messageId": f"{run}-backend-{i}", "userId": f"{run}-backend-user-{i % 3}",
            "anonymousId": None, "event": "Invoice Paid", "name": None, "groupId": None,
            "previousId": None, "timestamp": now_us - i * 1000, "originalTimestamp": None,
            "sentAt": None, "receivedAt": now_us,
            "context": json.dumps({"library": {"name": "billing-service"}}),
            "properties": json.dumps({"amount": 10 + i, "currency": "EUR"}),
            "traits": "{}", "integrations": "{}", "sourceId": "billing",
        })
    print(json.dumps(produce_all(brokers, registry_url, "events.raw", records)))


if __name__ == "__main__":
    main()
