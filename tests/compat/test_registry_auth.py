"""Confluent's Python client against the Northstar registry with authentication on.

Run by tests/tests/registry_auth.rs, which starts the registry with an auth file holding a
read-write user, a read-only user and a token, and passes the URL and the credentials in
NORTHSTAR_REGISTRY_URL, RW_USER_INFO and RO_USER_INFO.
"""

import json
import os
import uuid

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

REGISTRY = os.environ["NORTHSTAR_REGISTRY_URL"]
RW = os.environ["RW_USER_INFO"]
RO = os.environ["RO_USER_INFO"]

SCHEMA = json.dumps({
    "type": "record", "name": "Order", "namespace": "shop",
    "fields": [{"name": "id", "type": "string"}],
})


def client(user_info=None):
    conf = {"url": REGISTRY}
    if user_info:
        conf["basic.auth.user.info"] = user_info
    return SchemaRegistryClient(conf)


def subject():
    return f"orders-{uuid.uuid4().hex[:8]}-value"


def test_read_write_user_registers_and_reads():
    s = subject()
    c = client(RW)
    sid = c.register_schema(s, Schema(SCHEMA, "AVRO"))
    assert client(RW).get_latest_version(s).schema_id == sid
    c.set_compatibility(s, "FULL")


def test_credentials_in_the_url_work_too():
    user, password = RW.split(":", 1)
    scheme, rest = REGISTRY.split("://", 1)
    c = SchemaRegistryClient({"url": f"{scheme}://{user}:{password}@{rest}"})
    assert c.get_subjects() is not None


def test_read_only_user_reads_but_cannot_write():
    s = subject()
    sid = client(RW).register_schema(s, Schema(SCHEMA, "AVRO"))
    ro = client(RO)
    assert ro.get_latest_version(s).schema_id == sid
    assert ro.get_schema(sid).schema_str
    with pytest.raises(SchemaRegistryError) as refused:
        ro.register_schema(subject(), Schema(SCHEMA, "AVRO"))
    assert refused.value.http_status_code == 403
    assert refused.value.error_code == 40301
    with pytest.raises(SchemaRegistryError) as refused:
        ro.set_compatibility(s, "NONE")
    assert refused.value.http_status_code == 403


@pytest.mark.parametrize("user_info", [None, "northstar-services:wrong", "nobody:x"])
def test_no_or_wrong_credentials_are_refused(user_info):
    with pytest.raises(SchemaRegistryError) as refused:
        client(user_info).get_subjects()
    assert refused.value.http_status_code == 401
    assert refused.value.error_code == 40101
