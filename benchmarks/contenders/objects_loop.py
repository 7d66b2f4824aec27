"""A bucket -> each object GET in turn with stock botocore -> a tar stream on /dev/null."""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import botocore.config
import botocore.session


def command(prefix: list[str], spec: Path, bucket: str, endpoint: str | None) -> list[str]:
    """This module as the process after ``prefix``, through ``endpoint`` if given."""
    extra = ["--endpoint", endpoint] if endpoint else []
    return [
        *prefix,
        sys.executable,
        str(Path(__file__).resolve()),
        "--spec",
        str(spec),
        "--bucket",
        bucket,
        *extra,
    ]


def main() -> None:
    """List the bucket, GET each object into the tar stream, print one JSON line.

    What a user would write with the stock botocore client (default configuration apart
    from path-style addressing): one request at a time, each body streamed into
    ``tarfile`` (stream mode) on /dev/null. It runs in a process of its own, like our
    contenders, and reads the S3 server from the spec file :mod:`harness.spec` wrote.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--endpoint")
    args = parser.parse_args()
    s3: dict[str, Any] = json.loads(args.spec.read_text())["s3"]
    client: Any = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=args.endpoint or s3["endpoint_url"],
        region_name=s3["region"],
        aws_access_key_id=s3["access_key"],
        aws_secret_access_key=s3["secret_key"],
        config=botocore.config.Config(s3={"addressing_style": "path"}),
    )
    started = time.perf_counter()
    count = 0
    size = 0
    with (
        open(os.devnull, "wb") as out,
        tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=args.bucket):
            for listed in page.get("Contents", []):
                response = client.get_object(Bucket=args.bucket, Key=listed["Key"])
                info = tarfile.TarInfo(listed["Key"])
                info.size = response["ContentLength"]
                info.mtime = int(response["LastModified"].timestamp())
                info.mode = 0o600
                tar.addfile(info, response["Body"])
                count += 1
                size += info.size
    elapsed = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "objects": count,
                "object_bytes": size,
                "elapsed": elapsed,
                "maxrss_kib": usage.ru_maxrss,
                "cpu_self": usage.ru_utime + usage.ru_stime,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
