"""Writes the request bodies of bench/ingest_wrk.sh: a batch of N events of about 600 bytes of
JSON each (a product-page track call as analytics.js sends it), and one such single event.

    python ingest_body.py OUT_DIR [N]
"""
import json
import sys


def event(i: int) -> dict:
    return {
        "type": "track",
        "event": "Product Viewed",
        "userId": f"user-{i % 5000:06d}",
        "anonymousId": f"anon-{i:08d}-7f3c",
        "messageId": f"bench-{i:012d}",
        "timestamp": "2026-11-26T10:00:00.000Z",
        "properties": {"product_id": f"sku-{i % 977:05d}", "name": "Trail Runner 2", "price": 89.9,
                       "currency": "EUR", "category": "shoes", "quantity": 1,
                       "tags": ["running", "outdoor"]},
        "context": {"library": {"name": "analytics.js", "version": "2.1.0"},
                    "page": {"path": "/products/trail-runner-2",
                             "url": "https://shop.example/products/trail-runner-2",
                             "referrer": "https://www.google.com/"},
                    "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
                                 "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
                    "locale": "en-US"},
    }


def main() -> None:
    out, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 100
    batch = [event(i) for i in range(n)]
    sizes = [len(json.dumps(e, separators=(",", ":"))) for e in batch]
    with open(f"{out}/batch.json", "w") as f:
        json.dump({"batch": batch, "sentAt": "2026-11-26T10:00:00.050Z"}, f, separators=(",", ":"))
    with open(f"{out}/single.json", "w") as f:
        json.dump(event(0), f, separators=(",", ":"))
    print(f"{n} events of {min(sizes)}-{max(sizes)} bytes")


if __name__ == "__main__":
    main()
