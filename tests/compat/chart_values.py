"""Checks the chart's values against its values.schema.json, as Helm does at install.

    python chart_values.py <chart dir>

Prints one line per check; exits 1 when the shipped values are invalid or a known mistake
(a typo'd key, a password among the plain Kafka properties, a wrong type) is not refused.
"""

import copy
import json
import sys

import jsonschema
import yaml

chart = sys.argv[1]
schema = json.load(open(f"{chart}/values.schema.json", encoding="utf-8"))
values = yaml.safe_load(open(f"{chart}/values.yaml", encoding="utf-8"))
jsonschema.validate(values, schema)
print("values.yaml: valid")


def refused(name, edit):
    bad = copy.deepcopy(values)
    edit(bad)
    try:
        jsonschema.validate(bad, schema)
    except jsonschema.ValidationError as e:
        print(f"{name}: refused ({e.message[:70]})")
        return True
    print(f"{name}: NOT refused")
    return False


ok = all([
    refused("typo", lambda v: v.update(topic={})),
    refused("password in kafka.properties",
            lambda v: v["kafka"]["properties"].update({"sasl.password": "x"})),
    refused("secretProperties without a key",
            lambda v: v["kafka"]["secretProperties"].update({"sasl.password": {"secret": "s"}})),
    refused("replication factor 0", lambda v: v["topics"].update(replicationFactor=0)),
    refused("a lake root that is no URL", lambda v: v["lakeSink"].update(root="/lake")),
])
sys.exit(0 if ok else 1)
