"""Confluent's own Python client (PyPI confluent-kafka) against the Northstar schema registry.

Run by tests/tests/registry.rs, which starts a throwaway broker and registry and passes their
addresses in NORTHSTAR_REGISTRY_URL and NORTHSTAR_BROKERS.
"""

import json
import os
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

REGISTRY = os.environ["NORTHSTAR_REGISTRY_URL"]
BROKERS = os.environ["NORTHSTAR_BROKERS"]

V1 = json.dumps({
    "type": "record", "name": "Order", "namespace": "shop",
    "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "double"}],
})
V2_COMPATIBLE = json.dumps({
    "type": "record", "name": "Order", "namespace": "shop",
    "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "double"},
               {"name": "currency", "type": "string", "default": "EUR"}],
})
V2_INCOMPATIBLE = json.dumps({
    "type": "record", "name": "Order", "namespace": "shop",
    "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "double"},
               {"name": "coupon", "type": "string"}],
})


def fresh_client():
    # A new client per test: nothing answered from the client's own cache.
    return SchemaRegistryClient({"url": REGISTRY})


def subject():
    return f"orders-{uuid.uuid4().hex[:8]}-value"


def test_register_is_idempotent_and_readable():
    client, name = fresh_client(), subject()
    schema_id = client.register_schema(name, Schema(V1, "AVRO"))
    assert fresh_client().register_schema(name, Schema(V1, "AVRO")) == schema_id
    fetched = fresh_client().get_schema(schema_id)
    assert json.loads(fetched.schema_str) == json.loads(V1)
    assert name in client.get_subjects()
    assert client.get_versions(name) == [1]
    latest = client.get_latest_version(name)
    assert (latest.schema_id, latest.version, latest.subject) == (schema_id, 1, name)
    assert client.get_version(name, 1).schema_id == schema_id
    found = fresh_client().lookup_schema(name, Schema(V1, "AVRO"))
    assert (found.schema_id, found.version) == (schema_id, 1)


def test_backward_is_default_and_enforced():
    client, name = fresh_client(), subject()
    assert client.get_compatibility() == "BACKWARD"
    first = client.register_schema(name, Schema(V1, "AVRO"))
    assert client.test_compatibility(name, Schema(V2_INCOMPATIBLE, "AVRO")) is False
    with pytest.raises(SchemaRegistryError) as err:
        client.register_schema(name, Schema(V2_INCOMPATIBLE, "AVRO"))
    assert err.value.http_status_code == 409
    assert err.value.error_code == 409
    assert client.test_compatibility(name, Schema(V2_COMPATIBLE, "AVRO")) is True
    second = client.register_schema(name, Schema(V2_COMPATIBLE, "AVRO"))
    assert second != first
    assert client.get_versions(name) == [1, 2]


def test_subject_level_config():
    client, name = fresh_client(), subject()
    client.register_schema(name, Schema(V1, "AVRO"))
    # The client returns the registry's JSON answer as it is: {"compatibility": "NONE"}.
    assert client.set_compatibility(subject_name=name, level="NONE") == {"compatibility": "NONE"}
    assert client.get_compatibility(name) == "NONE"
    client.register_schema(name, Schema(V2_INCOMPATIBLE, "AVRO"))
    assert client.get_versions(name) == [1, 2]


def test_errors_carry_confluent_codes():
    client = fresh_client()
    with pytest.raises(SchemaRegistryError) as err:
        client.get_versions("no-such-subject")
    assert (err.value.http_status_code, err.value.error_code) == (404, 40401)
    with pytest.raises(SchemaRegistryError) as err:
        client.get_schema(987654)
    assert (err.value.http_status_code, err.value.error_code) == (404, 40403)
    with pytest.raises(SchemaRegistryError) as err:
        client.register_schema(subject(), Schema('{"type": "record", "name": }', "AVRO"))
    assert err.value.http_status_code == 422


def test_avro_serializer_round_trip_through_the_broker():
    client = fresh_client()
    topic = f"compat-{uuid.uuid4().hex[:8]}"
    serializer = AvroSerializer(client, V1)
    deserializer = AvroDeserializer(fresh_client())
    order = {"id": "o-1", "amount": 12.5}
    ctx = SerializationContext(topic, MessageField.VALUE)
    payload = serializer(order, ctx)
    assert payload[0] == 0, "Confluent wire format magic byte"
    schema_id = int.from_bytes(payload[1:5], "big")
    assert fresh_client().get_latest_version(f"{topic}-value").schema_id == schema_id

    admin = AdminClient({"bootstrap.servers": BROKERS})
    for future in admin.create_topics([NewTopic(topic, num_partitions=1)]).values():
        future.result(30)
    producer = Producer({"bootstrap.servers": BROKERS, "enable.idempotence": True})
    producer.produce(topic, value=payload, key=b"o-1", partition=0)
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": BROKERS, "group.id": f"g-{topic}",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    try:
        msg = None
        for _ in range(30):
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                break
        assert msg is not None and msg.error() is None, "record not consumed back"
        assert deserializer(msg.value(), ctx) == order
    finally:
        consumer.close()
