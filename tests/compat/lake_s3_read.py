"""Reads the lake's events table straight from S3 with pyarrow.dataset (its own S3 client, Hive
partitioning) and prints what it sees as JSON:

    python lake_s3_read.py <endpoint url> <bucket/prefix of the events table>

Credentials come from the standard AWS environment variables.
"""
import json
import os
import sys
from urllib.parse import urlparse

import pyarrow.dataset as ds
import pyarrow.fs as fs


def main() -> None:
    endpoint, path = sys.argv[1], sys.argv[2]
    url = urlparse(endpoint)
    s3 = fs.S3FileSystem(
        endpoint_override=url.netloc,
        scheme=url.scheme,
        access_key=os.environ.get("AWS_ACCESS_KEY_ID"),
        secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
        region=os.environ.get("AWS_REGION", "us-east-1"),
    )
    dataset = ds.dataset(path, format="parquet", filesystem=s3, partitioning="hive")
    table = dataset.to_table(columns=["message_id", "event_name", "timestamp"])
    ids = table.column("message_id").to_pylist()
    print(json.dumps({
        "rows": table.num_rows,
        "distinct_ids": len(set(ids)),
        "files": len(dataset.files),
        "timestamp_type": str(table.schema.field("timestamp").type),
    }))


if __name__ == "__main__":
    main()
