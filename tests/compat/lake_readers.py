"""Reads the lake the way a data engineer would, with two readers nobody here wrote — DuckDB
(read_parquet with Hive partitioning) and pyarrow.dataset (Hive partitioning) — and prints, per
reader, what it sees as JSON for the Rust test to compare with what was sent:

    python lake_readers.py <lake root directory>

Per reader: the row count, the sorted message ids, rows per event name, the column types, and
how many rows disagree with their partition directories (event_date/event_hour from the
`timestamp` column in UTC, event_name from the `event`/`name`/`type` columns).
"""
import glob
import json
import sys

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds


def with_duckdb(events: str) -> dict:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        f"""CREATE VIEW ev AS SELECT * FROM read_parquet('{events}/**/*.parquet',
              hive_partitioning = true, union_by_name = true)"""
    )
    ids = [r[0] for r in con.execute("SELECT message_id FROM ev ORDER BY 1").fetchall()]
    per_name = dict(con.execute("SELECT event, count(*) FROM ev GROUP BY 1").fetchall())
    types = {r[0]: r[1] for r in con.execute("DESCRIBE ev").fetchall()}
    mismatches = con.execute(
        """SELECT count(*) FROM ev WHERE
             CAST(event_date AS VARCHAR) <> strftime(timestamp, '%Y-%m-%d')
             OR lpad(CAST(event_hour AS VARCHAR), 2, '0') <> strftime(timestamp, '%H')
             OR CAST(event_name AS VARCHAR) <> CASE
                  WHEN type = 'track' THEN event
                  WHEN type IN ('page', 'screen') AND coalesce(name, '') <> '' THEN name
                  ELSE type END"""
    ).fetchone()[0]
    revenue = con.execute("SELECT sum(prop_revenue) FROM ev").fetchone()[0]
    per_os = dict(con.execute("SELECT context_os_name, count(*) FROM ev GROUP BY 1").fetchall())
    per_plan = dict(con.execute("SELECT prop_plan, count(*) FROM ev GROUP BY 1").fetchall())
    return {"rows": len(ids), "ids": ids, "per_name": per_name, "types": types,
            "partition_mismatches": mismatches, "revenue_sum": revenue, "per_os": per_os,
            "per_plan": per_plan}


def counts(values) -> dict:
    out: dict = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def with_pyarrow(events: str) -> dict:
    # Every partition value as a string, as written (no type inference of "07" as 7).
    keys = pa.schema([("event_date", pa.string()), ("event_hour", pa.string()),
                      ("event_name", pa.string())])
    dataset = ds.dataset(events, format="parquet", partitioning=ds.partitioning(keys, flavor="hive"))
    table = dataset.to_table()
    ids = sorted(table.column("message_id").to_pylist())
    per_name = counts(table.column("event").to_pylist())
    types = {f.name: str(f.type) for f in table.schema}
    ts = table.column("timestamp")
    date = pc.strftime(ts, format="%Y-%m-%d").to_pylist()
    hour = pc.strftime(ts, format="%H").to_pylist()
    mismatches = 0
    for i, row in enumerate(table.select(["type", "event", "name", "event_date", "event_hour",
                                          "event_name"]).to_pylist()):
        expected = (row["event"] if row["type"] == "track"
                    else row["name"] if row["type"] in ("page", "screen") and row["name"]
                    else row["type"])
        if (str(row["event_date"]) != date[i] or str(row["event_hour"]).zfill(2) != hour[i]
                or str(row["event_name"]) != expected):
            mismatches += 1
    return {"rows": table.num_rows, "ids": ids, "per_name": per_name, "types": types,
            "partition_mismatches": mismatches,
            "revenue_sum": pc.sum(table.column("prop_revenue")).as_py(),
            "per_os": counts(table.column("context_os_name").to_pylist()),
            "per_plan": counts(table.column("prop_plan").to_pylist())}


def dead_letters(dlq: str) -> dict:
    """The dead-letter table as DuckDB sees it: rows per reason, and how many keep their
    source position and original payload."""
    if not glob.glob(f"{dlq}/**/*.parquet", recursive=True):
        return {"per_reason": {}, "complete": 0}
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE VIEW d AS SELECT * FROM read_parquet('{dlq}/**/*.parquet', hive_partitioning = true)")
    per_reason = dict(con.execute("SELECT reason, count(*) FROM d GROUP BY 1").fetchall())
    complete = con.execute(
        """SELECT count(*) FROM d WHERE source_offset IS NOT NULL AND payload IS NOT NULL
             AND detail <> '' AND CAST(event_date AS VARCHAR) = strftime(dead_lettered_at, '%Y-%m-%d')"""
    ).fetchone()[0]
    return {"per_reason": per_reason, "complete": complete}


def main(lake: str) -> None:
    events = f"{lake}/events"
    print(json.dumps({"duckdb": with_duckdb(events), "pyarrow": with_pyarrow(events),
                      "dlq": dead_letters(f"{lake}/dlq")}))


if __name__ == "__main__":
    main(sys.argv[1])
