"""Recomputes the chaos test's KPIs from the lake's Parquet files with DuckDB: an independent
reader (none of Northstar's code), used to check the processor's final window values.

Usage: python chaos_recompute.py <lake dir> <dropped.json> <out.json>

dropped.json maps a message id to the window lengths (ms) in which the processor must have
dropped it as too late ({"id": [60000, 3600000], ...}). The KPIs mirror CATALOG in
tests/tests/chaos.rs, written here by hand as SQL. out.json lists one object per
(kpi, window length, window start, segment) with exact decimal values as strings, the
all-segments total of each window included (every dimension '__all__', from a grouping set over
the window alone: a user in several segments counts once in a distinct total).
"""
import json
import sys

import duckdb

MIN, HOUR, DAY = 60_000, 3_600_000, 86_400_000

# name -> (windows, segment expressions, filter, aggregate expression)
KPIS = {
    "events": ([MIN, HOUR], ["event", "os"], "TRUE", "COUNT(*)"),
    "active_users": ([HOUR, DAY], ["os"], "distinct_id IS NOT NULL", "COUNT(DISTINCT distinct_id)"),
    "checkouts": ([MIN, HOUR], ["plan"], "event = 'Checkout Started'", "COUNT(*)"),
    "orders": ([MIN, HOUR], ["plan"], "event = 'Order Completed'", "COUNT(*)"),
    "revenue": ([MIN, HOUR], ["plan"], "event = 'Order Completed' AND revenue IS NOT NULL", "SUM(revenue)"),
}
# ratio name -> (numerator, denominator), same windows and segments as its sides
RATIOS = {"conversion": ("orders", "checkouts")}


def main(lake: str, dropped_path: str, out_path: str) -> None:
    con = duckdb.connect()
    with open(dropped_path) as f:
        dropped = json.load(f)
    con.execute("CREATE TABLE dropped (message_id VARCHAR, window_ms BIGINT)")
    rows = [(mid, w) for mid, ws in dropped.items() for w in ws]
    if rows:
        con.executemany("INSERT INTO dropped VALUES (?, ?)", rows)
    con.execute(
        f"""CREATE VIEW ev AS SELECT
              message_id,
              event,
              coalesce(user_id, anonymous_id) AS distinct_id,
              epoch_ms(timestamp) AS ts_ms,
              coalesce(json_extract_string(context, '$.os.name'), '__none__') AS os,
              coalesce(json_extract_string(properties, '$.plan'), '__none__') AS plan,
              CAST(json_extract_string(properties, '$.revenue') AS DECIMAL(18, 6)) AS revenue
            FROM read_parquet('{lake}/events/**/*.parquet', hive_partitioning = true)
            WHERE event <> 'Closer'"""
    )
    out = []
    values = {}
    for name, (windows, segments, where, agg) in KPIS.items():
        seg = ", ".join(segments)
        for w in windows:
            cols = ", ".join(f"coalesce({s}, '__all__')" for s in segments)
            q = f"""SELECT start, {cols}, CAST({agg} AS VARCHAR)
                    FROM (SELECT (ts_ms // {w}) * {w} AS start, * FROM ev
                          WHERE {where}
                            AND message_id NOT IN (SELECT message_id FROM dropped WHERE window_ms = {w}))
                    GROUP BY GROUPING SETS ((start, {seg}), (start))"""
            for row in con.execute(q).fetchall():
                start, segment, value = row[0], list(row[1:-1]), row[-1]
                out.append({"kpi": name, "window_ms": w, "start_ms": start,
                            "segment": segment, "value": value})
                values[(name, w, start, tuple(segment))] = value
    for name, (num, den) in RATIOS.items():
        windows = KPIS[num][0]
        for w in windows:
            keys = {(k[2], k[3]) for k in values if k[1] == w and k[0] in (num, den)}
            for start, segment in sorted(keys):
                out.append({"kpi": name, "window_ms": w, "start_ms": start, "segment": list(segment),
                            "numerator": values.get((num, w, start, segment), "0"),
                            "denominator": values.get((den, w, start, segment), "0")})
    total = con.execute("SELECT COUNT(*), COUNT(DISTINCT message_id) FROM ev").fetchone()
    with open(out_path, "w") as f:
        json.dump({"rows": total[0], "distinct_ids": total[1], "windows": out}, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
