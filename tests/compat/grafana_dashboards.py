"""Checks dashboards against Grafana's own dashboard model (PyPI grafana-foundation-sdk, the
models Grafana generates from its schema): each file must parse and re-serialise without a field
lost or changed, every panel type and query type must be one the models know (a Prometheus
query decodes as the Prometheus dataquery, not as an unknown one).

Usage: python grafana_dashboards.py <dashboard.json>...   (exit 1 with every difference)
"""
import json
import sys

from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import prometheus
from grafana_foundation_sdk.models.dashboard import Dashboard, RowPanel


def differences(a, b, path="$"):
    """Every path where the two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k not in a:
                out.append(f"{path}.{k}: added by the model: {json.dumps(b[k])[:80]}")
            elif k not in b:
                out.append(f"{path}.{k}: lost by the model")
            else:
                out.extend(differences(a[k], b[k], f"{path}.{k}"))
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items became {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    if a != b or type(a) is not type(b):
        return [f"{path}: {json.dumps(a)[:80]} became {json.dumps(b)[:80]}"]
    return []


def check(path):
    with open(path) as f:
        original = json.load(f)
    model = Dashboard.from_json(original)
    again = json.loads(json.dumps(model, cls=JSONEncoder))
    problems = differences(original, again)
    for i, panel in enumerate(model.panels or []):
        if isinstance(panel, RowPanel):
            continue
        if cogruntime.panelcfg_config(panel.type_val) is None:
            problems.append(f"$.panels[{i}]: panel type {panel.type_val!r} unknown to the model")
        for j, target in enumerate(panel.targets or []):
            if not isinstance(target, prometheus.Dataquery):
                problems.append(f"$.panels[{i}].targets[{j}]: decoded as {type(target).__name__}, not a Prometheus query")
    return problems


def main(paths):
    register_default_plugins()
    failed = False
    for p in paths:
        problems = check(p)
        print(f"{p}: {'ok' if not problems else f'{len(problems)} problems'}")
        for line in problems:
            print(f"  {line}")
        failed |= bool(problems)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main(sys.argv[1:])
