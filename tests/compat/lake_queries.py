"""Runs the example queries of docs/lake.md, as written there, with DuckDB against a lake, and
prints their results as JSON (query name → rows as lists) for the Rust test to check:

    python lake_queries.py <docs/lake.md> <lake root directory>

A query is a ```sql block preceded by a `<!-- query: <name> -->` line; it reads the `events`
view the document tells readers to create.
"""
import json
import re
import sys

import duckdb


def queries(doc: str) -> dict:
    found = re.findall(r"<!-- query: (\w+) -->\s*```sql\n(.*?)```", doc, flags=re.S)
    if not found:
        raise SystemExit("no queries found in the document")
    return dict(found)


def main(doc_path: str, lake: str) -> None:
    with open(doc_path) as f:
        doc = f.read()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        f"""CREATE VIEW events AS SELECT * FROM read_parquet('{lake}/events/**/*.parquet',
              hive_partitioning = true, union_by_name = true)"""
    )
    out = {name: [list(r) for r in con.execute(sql).fetchall()] for name, sql in queries(doc).items()}
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
