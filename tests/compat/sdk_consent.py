"""Segment's Python SDK (`segment-analytics-python`, unchanged) sending the consent context a
consent manager sets (`context.consent.categoryPreferences`, Segment's shape):

    python sdk_consent.py <collector url> <write key> <run id>

Sends "Signed Up" events for people who granted analytics, who refused it, and who said
nothing; prints the message ids of each group as JSON once the SDK has flushed. Exits non-zero
when the SDK reports a delivery error.
"""
import json
import sys

import segment.analytics.client as segment

GROUPS = {
    "granted": {"consent": {"categoryPreferences": {"analytics": True, "marketing": False}}},
    "refused": {"consent": {"categoryPreferences": {"analytics": False, "marketing": True}}},
    "unsaid": {},
}


def main() -> None:
    url, key, run = sys.argv[1], sys.argv[2], sys.argv[3]
    errors = []
    client = segment.Client(write_key=key, host=url, max_retries=3,
                            on_error=lambda e, batch: errors.append(str(e)))
    out = {}
    for group, context in GROUPS.items():
        ids = []
        for i in range(5):
            ok, msg = client.track(user_id=f"{run}-{group}-{i}", event="Signed Up",
                                   properties={"plan": "free"}, context=context)
            assert ok, msg
            ids.append(msg["messageId"])
        out[group] = ids
    client.flush()
    client.shutdown()
    if errors:
        sys.exit(f"SDK delivery errors: {errors}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
