#!/usr/bin/env python3
"""Adds the index Tansu 0.6.0's sqlite storage lacks: `header (topition, offset_id)`.

Tansu fetches each record's headers with one query per record that joins `header` on
(topition, offset_id); its schema has no index there, so every fetch scans the whole header
table and the broker's cost grows with the square of the records that carry headers (Northstar
puts the source position on every derived record). Measured: a chaos run stalled after ~25,000
events with the broker at 100 % CPU in sqlite3BtreeNext under `fetch`; with the index the same
run completes. Idempotent; safe while the broker runs (SQLite schema change, WAL mode).

Usage: python3 tansu-index.py <path to the broker's .db file>
"""
import sqlite3
import sys
import time


def main(path: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            con = sqlite3.connect(path, timeout=30)
            tables = {r[0] for r in con.execute("select name from sqlite_master where type = 'table'")}
            if "header" in tables:
                con.execute("create index if not exists header_topition_offset on header (topition, offset_id)")
                con.commit()
                return
        except sqlite3.Error as e:
            if time.monotonic() > deadline:
                sys.exit(f"cannot index {path}: {e}")
        if time.monotonic() > deadline:
            sys.exit(f"{path} has no header table (is it a Tansu sqlite database?)")
        time.sleep(0.2)


if __name__ == "__main__":
    main(sys.argv[1])
