"""Probes of bench/kpi_latency.sh: sends one `Latency Probe` event at a time to the collector and
times, from its HTTP 200, until the metrics sink's /metrics shows it in the open 1h window of the
`events` KPI (segment event="Latency Probe"). Python stdlib only.

Probes are spaced by a random gap (uniform over `--gap` seconds): a fixed gap would phase-lock the
probes with the processor's emission tick (each probe becomes visible just after a tick, then the
next is sent a fixed time later, always at the same point of the tick's cycle), and the measured
latency would then be whatever that one phase gives, not its distribution."""

import argparse
import base64
import json
import random
import re
import time
import urllib.request
import uuid

SERIES = re.compile(
    r'^northstar_kpi_open_value\{kpi="events",window="1h",event="Latency Probe",segment="Latency Probe"\} (\S+)',
    re.M,
)
START = re.compile(r'^northstar_kpi_open_window_start_seconds\{kpi="events",window="1h"\} (\S+)', re.M)


def scrape(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    value = SERIES.search(text)
    start = START.search(text)
    return (float(value.group(1)) if value else 0.0, float(start.group(1)) if start else None)


def send(url, key):
    body = json.dumps({"batch": [{
        "type": "track", "event": "Latency Probe", "userId": "probe",
        "messageId": f"probe-{uuid.uuid4()}",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
    }]}).encode()
    auth = base64.b64encode(f"{key}:".encode()).decode()
    req = urllib.request.Request(f"{url}/v1/batch", data=body, method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Basic {auth}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200, r.status


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--probes", type=int, default=200)
    a.add_argument("--ingest", required=True)
    a.add_argument("--metrics", required=True)
    a.add_argument("--write-key", required=True)
    a.add_argument("--gap", type=float, default=1.0, help="probe spacing: uniform over 0..GAP s")
    a.add_argument("--seed", type=int, default=1)
    args = a.parse_args()
    rng = random.Random(args.seed)
    acks, visible = [], []
    for _ in range(args.probes):
        before, start = scrape(args.metrics)
        t0 = time.monotonic()
        send(args.ingest, args.write_key)
        t1 = time.monotonic()
        while True:
            value, now_start = scrape(args.metrics)
            if now_start != start:  # the hour turned: this probe is the new window's first
                before, start = 0.0, now_start
            if value >= before + 1:
                break
            if time.monotonic() - t1 > 30:
                raise SystemExit("a probe never became visible within 30 s")
            time.sleep(0.01)
        t2 = time.monotonic()
        acks.append((t1 - t0) * 1000)
        visible.append((t2 - t1) * 1000)
        time.sleep(rng.uniform(0, args.gap))
    print(f"{args.probes} probes, random gaps of 0-{args.gap:g} s, 10 ms polling of /metrics")
    print("send -> HTTP 200:     p50 %.0f ms, p99 %.0f ms" % (pct(acks, 50), pct(acks, 99)))
    print("HTTP 200 -> /metrics: p50 %.0f ms, p99 %.0f ms, max %.0f ms"
          % (pct(visible, 50), pct(visible, 99), max(visible)))


if __name__ == "__main__":
    main()
