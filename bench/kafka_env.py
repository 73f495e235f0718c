"""The Kafka client settings of the services, for the Python bench tools.

Reads what every Northstar service reads (docs/operations.md, "Kafka security"): librdkafka
properties from NORTHSTAR_KAFKA__PROPERTIES__<NAME> (underscores stand for dots) and secrets
from files named by NORTHSTAR_KAFKA__SECRET_FILES__<NAME>, so a bench tool reaches a secured
cluster exactly as the services do. Secrets are never printed.
"""

import os

PROPERTIES = "NORTHSTAR_KAFKA__PROPERTIES__"
SECRET_FILES = "NORTHSTAR_KAFKA__SECRET_FILES__"


def kafka_settings(brokers: str) -> dict:
    """A confluent-kafka configuration: `brokers` plus the services' `[kafka]` settings."""
    conf = {"bootstrap.servers": brokers}
    for key, value in os.environ.items():
        if key.startswith(PROPERTIES):
            conf[key[len(PROPERTIES):].lower().replace("_", ".")] = value
        elif key.startswith(SECRET_FILES):
            with open(value, encoding="utf-8") as f:
                conf[key[len(SECRET_FILES):].lower().replace("_", ".")] = f.read().rstrip("\r\n")
    return conf
