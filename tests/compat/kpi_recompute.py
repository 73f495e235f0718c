"""Recomputes KPIs from the lake's Parquet files with DuckDB: an independent reader (none of
Northstar's code), to compare with what the pipeline exposed.

Usage: python kpi_recompute.py <lake dir> <spec.json> <out.json>

spec.json: {"kpis": [{"name", "aggregate": count|distinct_users|sum|ratio, "windows": [{"label",
"ms", "offset_ms"}], "filter": <SQL>, "sum": <SQL>, "segments": [<SQL>], "numerator",
"denominator"}], "dropped": {<message id>: [<window label>, ...]}}, with SQL over the view `ev`
(the lake's events table); `dropped` lists the windows in which the processor dropped an event
as too late (it is in the lake, not in those windows). Windows are aligned to
`offset_ms` (0: the epoch; Monday for weeks). out.json: one object per (kpi, window, start,
segment), the all-segments total included (every dimension '__all__', from a grouping set over
the window alone), values as exact decimal strings; a ratio carries its numerator and
denominator.
"""
import json
import sys

import duckdb


def main(lake, spec_path, out_path):
    con = duckdb.connect()
    with open(spec_path) as f:
        spec = json.load(f)
    con.execute(
        f"""CREATE VIEW ev AS SELECT *, epoch_ms(timestamp) AS ts_ms,
              coalesce(user_id, anonymous_id) AS distinct_id
            FROM read_parquet('{lake}/events/**/*.parquet', hive_partitioning = true, union_by_name = true)"""
    )
    values, out = {}, []
    plain = [k for k in spec["kpis"] if k["aggregate"] != "ratio"]
    for k in plain:
        agg = {
            "count": "COUNT(*)",
            "distinct_users": "COUNT(DISTINCT distinct_id)",
            "sum": f"coalesce(SUM(CAST({k.get('sum')} AS DECIMAL(18, 6))), 0)",
        }[k["aggregate"]]
        names = [f"s{i}" for i in range(len(k["segments"]))]
        inner = ", ".join(f"coalesce({expr}, '__none__') AS {n}" for expr, n in zip(k["segments"], names))
        for w in k["windows"]:
            start = f"((ts_ms - {w['offset_ms']}) // {w['ms']}) * {w['ms']} + {w['offset_ms']}"
            if names:
                cols = ", ".join(f"coalesce({n}, '__all__')" for n in names)
                group = f"GROUPING SETS ((start, {', '.join(names)}), (start))"
                select_inner = f"{start} AS start, {inner}"
            else:
                cols, group, select_inner = "", "start", f"{start} AS start"
            dropped = [m for m, ws in spec.get("dropped", {}).items() if w["label"] in ws]
            keep = " AND ".join(["TRUE"] + [f"message_id <> '{m}'" for m in dropped])
            q = f"""SELECT start{', ' + cols if cols else ''}, CAST({agg} AS VARCHAR)
                    FROM (SELECT {select_inner}, * FROM ev WHERE ({k['filter']}) AND {keep})
                    GROUP BY {group}"""
            for row in con.execute(q).fetchall():
                seg = list(row[1:-1])
                values[(k["name"], w["label"], row[0], tuple(seg))] = row[-1]
                out.append({"kpi": k["name"], "window": w["label"], "start_ms": row[0], "segment": seg, "value": row[-1]})
    for k in spec["kpis"]:
        if k["aggregate"] != "ratio":
            continue
        for w in k["windows"]:
            keys = {(key[2], key[3]) for key in values
                    if key[1] == w["label"] and key[0] in (k["numerator"], k["denominator"])}
            for start, seg in sorted(keys):
                out.append({"kpi": k["name"], "window": w["label"], "start_ms": start, "segment": list(seg),
                            "numerator": values.get((k["numerator"], w["label"], start, seg), "0"),
                            "denominator": values.get((k["denominator"], w["label"], start, seg), "0")})
    with open(out_path, "w") as f:
        json.dump({"windows": out}, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])
