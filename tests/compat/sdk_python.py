"""Sends the same set of calls through two Python SDKs nobody here wrote, pointed at the
collector, unchanged: Segment's `segment-analytics-python` (its default batching, no gzip)
and RudderStack's `rudder-sdk-python` (gzip by default):

    python sdk_python.py <collector url> <write key> <run id>

Prints, as JSON, every message each SDK reports having queued (its own `messageId`,
`timestamp`, `context.library`, and the fields this script set), for the Rust test to find in
`events.raw`. Exits non-zero when an SDK reports a delivery error.
"""
import json
import sys

import rudderstack.analytics.client as rudder
import segment.analytics.client as segment


def calls(client, sdk: str, run: str) -> list:
    user, anon = f"{run}-{sdk}-user", f"{run}-{sdk}-anon"
    sent = []

    def keep(result):
        ok, msg = result
        assert ok, msg
        sent.append(json.loads(json.dumps(msg, default=str)))

    keep(client.track(user_id=user, event="Order Completed",
                      properties={"sdk": sdk, "revenue": 42.5, "items": [{"sku": "a-1", "qty": 2}]},
                      context={"campaign": {"name": "fall", "source": "newsletter"}}))
    keep(client.identify(user_id=user, traits={"email": f"{sdk}@example.test", "plan": "pro"}))
    keep(client.page(user_id=user, name="Pricing", properties={"url": "https://shop.test/pricing"}))
    keep(client.screen(user_id=user, name="Home", properties={"tab": "main"}))
    keep(client.group(user_id=user, group_id=f"{run}-{sdk}-group", traits={"name": "Acme", "employees": 12}))
    keep(client.alias(previous_id=anon, user_id=user))
    keep(client.track(anonymous_id=anon, event="Anonymous Visit", properties={"sdk": sdk, "ü": "ß"}))
    return sent


def main() -> None:
    url, key, run = sys.argv[1], sys.argv[2], sys.argv[3]
    errors = []
    out = {}
    for sdk, module, extra in (("segment-python", segment, {}),
                               ("rudder-python", rudder, {"gzip": True})):
        client = module.Client(write_key=key, host=url, max_retries=3,
                               on_error=lambda e, batch: errors.append(str(e)), **extra)
        out[sdk] = calls(client, sdk, run)
        client.flush()
        client.shutdown()
    if errors:
        sys.exit(f"SDK delivery errors: {errors}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
