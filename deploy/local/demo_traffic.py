#!/usr/bin/env python3
"""Demo traffic shaped like a product, sent to the collector's Segment API (Python stdlib only).

People sign up (platform and plan chosen once per person), about half activate within seconds
of signing up (same minute, so a window's activations never exceed its sign-ups), active people
come back on later days and use the product (viewed pages, created projects, invited teammates),
some upgrade and pay. Volume follows a daily rhythm (quiet at night UTC, busiest in the
afternoon) and a weekly one (weekends quieter).

  demo_traffic.py backfill --weeks 4 --per-hour 40       history up to now (time order)
  demo_traffic.py live --per-hour 600                     forever, timestamps = now
  demo_traffic.py anomaly spike --count 400               a sign-up flood in the open minute
  demo_traffic.py anomaly outage --minutes 70             no sign-ups from the running live traffic

Common options: --url (collector), --write-key, --seed, --users. Events are deterministic for a
seed and a start time (--now-ms), so tests can recompute them.
"""
import argparse
import base64
import json
import math
import random
import sys
import time
import urllib.error
import urllib.request

OSES = [("iOS", 0.35), ("Android", 0.35), ("Mac OS X", 0.18), ("Windows", 0.12)]
PLANS = [("free", 0.7), ("pro", 0.25), ("team", 0.05)]
ACTIONS = [("Viewed Page", 0.6), ("Created Project", 0.25), ("Invited Teammate", 0.15)]
HOUR_MS = 3_600_000


def pick(rng, weighted):
    r = rng.random() * sum(w for _, w in weighted)
    for value, w in weighted:
        r -= w
        if r <= 0:
            return value
    return weighted[-1][0]


def rhythm(ts_ms):
    """Relative volume at a time: a daily sine peaking at 15:00 UTC, weekends at 60 %."""
    hours = (ts_ms / HOUR_MS) % 24
    daily = 0.25 + 0.75 * (1 + math.sin(2 * math.pi * (hours - 9) / 24)) / 2
    weekday = int((ts_ms // (24 * HOUR_MS) + 3) % 7)  # 0 = Monday (the epoch was a Thursday)
    return daily * (0.6 if weekday >= 5 else 1.0)


class Product:
    """The people and what they do; one random generator, so a seed replays the same traffic."""

    def __init__(self, seed, users, run):
        self.rng = random.Random(seed)
        self.seed = seed
        # Message ids are unique per run (mode and start time), so that a backfill, live traffic
        # and floods with the same seed never look like retries of each other to the processor's
        # deduplication.
        self.run = run
        self.max_users = users
        self.people = []  # (user id, os, plan)
        self.counter = 0
        self.held = []  # events generated for later than the span asked (activations)

    def _id(self, prefix):
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def _event(self, name, person, ts_ms, properties=None):
        user, os_name, plan = person
        props = {"plan": plan}
        props.update(properties or {})
        return {
            "type": "track",
            "event": name,
            "userId": user,
            "messageId": self._id(f"demo-{self.seed}-{self.run}"),
            "timestamp": iso(ts_ms),
            "properties": props,
            "context": {"os": {"name": os_name}, "library": {"name": "northstar-demo", "version": "1"}},
        }

    def signup(self, ts_ms):
        person = (f"user-{len(self.people) + 1}", pick(self.rng, OSES), pick(self.rng, PLANS))
        self.people.append(person)
        out = [self._event("Signed Up", person, ts_ms)]
        if self.rng.random() < 0.5:
            # Activation seconds later, inside the same minute (and so the same 1m, 1h, 1d window).
            room = 59_999 - ts_ms % 60_000
            if room > 1_000:
                out.append(self._event("Activated", person, ts_ms + self.rng.randint(500, room)))
        return out

    def activity(self, ts_ms):
        if not self.people:
            return self.signup(ts_ms)
        person = self.people[self.rng.randrange(len(self.people))]
        if self.rng.random() < 0.04:
            revenue = round(self.rng.choice([9, 19, 49, 99]) * (1 + self.rng.random() * 0.1), 2)
            return [self._event("Upgraded Plan", person, ts_ms, {"revenue": revenue})]
        return [self._event(pick(self.rng, ACTIONS), person, ts_ms)]

    def events_between(self, start_ms, end_ms, per_hour, signups=True):
        """Every event from start to end (ms), in time order, at `per_hour` at the busiest hour."""
        out = [e for e in self.held if e["timestamp"] < iso(end_ms)]
        self.held = [e for e in self.held if e["timestamp"] >= iso(end_ms)]
        t = start_ms
        while t < end_ms:
            rate = per_hour * rhythm(t) / HOUR_MS  # events per ms
            t += int(self.rng.expovariate(rate)) + 1 if rate > 0 else HOUR_MS
            if t >= end_ms:
                break
            growing = len(self.people) < self.max_users
            if signups and (self.rng.random() < (0.25 if growing else 0.05)):
                out.extend(self.signup(t))
            else:
                out.extend(self.activity(t))
        out.sort(key=lambda e: e["timestamp"])
        # An activation can fall after the span: it waits for its time.
        self.held.extend(e for e in out if e["timestamp"] >= iso(end_ms))
        return [e for e in out if e["timestamp"] < iso(end_ms)]


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def now_ms():
    return int(time.time() * 1000)


def send(url, key, events, batch=500):
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    sent = 0
    for i in range(0, len(events), batch):
        body = json.dumps({"batch": events[i : i + batch]}).encode()
        for attempt in range(20):
            req = urllib.request.Request(
                f"{url}/v1/batch", data=body, method="POST",
                headers={"Authorization": auth, "Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    if r.status == 200:
                        sent += len(events[i : i + batch])
                        break
            except urllib.error.HTTPError as e:
                if e.code not in (429, 503):
                    raise SystemExit(f"the collector refused a batch: {e.code} {e.read()[:200]!r}")
                time.sleep(float(e.headers.get("Retry-After", "1")))
            except urllib.error.URLError:
                time.sleep(1)
        else:
            raise SystemExit("the collector did not accept a batch after 20 attempts")
    return sent


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["backfill", "live", "anomaly"])
    p.add_argument("kind", nargs="?", choices=["spike", "outage"])
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("--write-key", default="demo-write-key")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--weeks", type=float, default=4)
    p.add_argument("--per-hour", type=float, default=60)
    p.add_argument("--count", type=int, default=400)
    p.add_argument("--minutes", type=float, default=70)
    p.add_argument("--now-ms", type=int, default=None, help="backfill up to this time (default: now)")
    p.add_argument("--print", action="store_true", help="print the events as JSON lines instead of sending")
    p.add_argument("--control", default="data/demo-traffic.control",
                   help="file through which `anomaly outage` pauses the sign-ups of live traffic")
    a = p.parse_args()
    end = a.now_ms or now_ms()
    product = Product(a.seed, a.users, f"{a.mode}{a.kind or ''}-{end}")
    if a.mode == "backfill":
        events = product.events_between(end - int(a.weeks * 7 * 24 * HOUR_MS), end, a.per_hour)
        if a.print:
            for e in events:
                print(json.dumps(e))
            return
        n = send(a.url, a.write_key, events)
        print(f"backfill: {n} events over {a.weeks} weeks accepted", file=sys.stderr)
    elif a.mode == "anomaly" and a.kind == "spike":
        # The flood belongs to the open minute: late in a minute it would land in a window that
        # closes before an alert rule sees it, so wait for the next one.
        if now_ms() % 60_000 > 30_000:
            wait = 60_000 - now_ms() % 60_000
            print(f"anomaly: waiting {wait / 1000:.0f} s for the next minute", file=sys.stderr)
            time.sleep(wait / 1000 + 0.5)
        t = now_ms()
        events = [e for _ in range(a.count) for e in product.signup(t)]
        for e in events:  # activations "seconds later" are sent now, not dated in the future
            e["timestamp"] = min(e["timestamp"], iso(t))
        n = send(a.url, a.write_key, events)
        print(f"anomaly: {n} events of a sign-up flood accepted", file=sys.stderr)
    elif a.mode == "anomaly":
        until = now_ms() + int(a.minutes * 60_000)
        with open(a.control, "w") as f:
            f.write(str(until))
        print(f"anomaly: live traffic sends no sign-ups until {iso(until)}", file=sys.stderr)
    else:
        live(a, product)


def outage_until(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def live(a, product):
    last = now_ms()
    while True:
        time.sleep(1)
        t = now_ms()
        events = product.events_between(last, t, a.per_hour, signups=t >= outage_until(a.control))
        last = t
        if events:
            send(a.url, a.write_key, events)


if __name__ == "__main__":
    main()
