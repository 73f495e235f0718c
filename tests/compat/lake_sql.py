"""One SQL query over the lake with DuckDB, as a data engineer would run it:

    python lake_sql.py <lake root directory> <sql>

The views `events` and `dlq` are the two tables (every Parquet file below `events/` and `dlq/`,
Hive partitioning, files with different columns unified by name; a table without files is an
empty table without columns). Prints the result as a JSON
list of objects (bytes as text, lossy).
"""
import glob
import json
import os
import sys

import duckdb


def main() -> None:
    root, sql = sys.argv[1], sys.argv[2]
    con = duckdb.connect()
    for table in ("events", "dlq"):
        pattern = os.path.join(root, table, "**", "*.parquet")
        if not glob.glob(pattern, recursive=True):
            # No file (yet, or every row erased): an empty table, so counts are 0.
            con.execute(f"CREATE TABLE {table} (no_rows INTEGER)")
            continue
        con.execute(
            f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{pattern}', "
            "hive_partitioning = true, union_by_name = true)"
        )
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, row)) for row in cur.fetchall()]

    def plain(v):
        if isinstance(v, (bytes, bytearray)):
            return v.decode("utf-8", "replace")
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (int, float, str, bool)) or v is None:
            return v
        return str(v)

    print(json.dumps([plain(r) for r in rows]))


if __name__ == "__main__":
    main()
