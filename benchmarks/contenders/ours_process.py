"""Arguments and the spec file -> one of our operations, run once -> one JSON line."""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

import monetr_backup as mb
from monetr_backup import stages

# What backup() itself uses, not exported by monetr_backup.stages: the batch size it
# gives compress() for a part size, and the reader thread's part filling (readv into
# 1 MiB blocks, hashed as they are read) that open_pg_dump runs on its pipe.
from monetr_backup._format.compress import batch_size_for
from monetr_backup._postgres.pg_dump import read_hashed_part

# Run as a script: the packages are in benchmarks/, this file's parent folder.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.spec import postgres_config, s3_config


def _proc_io() -> dict[str, int]:
    try:
        text = Path("/proc/self/io").read_text()
    except OSError:
        return {}
    values: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        values[name.strip()] = int(value)
    return values


class NullSink:
    """An ArchiveSink that counts the bytes and keeps none of them."""

    def __init__(self) -> None:
        self.bytes = 0

    async def write(self, data: bytes) -> None:
        self.bytes += len(data)

    async def commit(self) -> None:
        pass

    async def abort(self) -> None:
        pass


async def run_backup(args: argparse.Namespace, spec: dict[str, Any]) -> dict[str, Any]:
    s3 = s3_config(spec, args.endpoint)
    storage = None
    if args.storage_bucket:
        storage = mb.S3Storage(s3=s3, bucket=args.storage_bucket)
    manifest = await mb.backup(
        mb.S3Archive(s3=s3, bucket=spec["bucket"], key=args.key),
        database=postgres_config(spec, args.database),
        storage=storage,
        # The generated objects are not the seeded rows' files: take them all, as the
        # S3 -> S3 comparison with the other contenders does.
        options=mb.BackupOptions(storage_mode=mb.StorageMode.ALL),
    )
    return {
        "dump_bytes": manifest.dump_bytes,
        "members": manifest.member_count,
        "objects": manifest.object_count,
        "object_bytes": manifest.object_bytes,
    }


async def run_restore(args: argparse.Namespace, spec: dict[str, Any]) -> dict[str, Any]:
    result = await mb.restore(
        mb.S3Archive(s3=s3_config(spec, args.endpoint), bucket=spec["bucket"], key=args.key),
        database=postgres_config(spec, args.database),
    )
    return {"dump_bytes": result.dump_bytes, "members": result.manifest.member_count}


async def run_objects(args: argparse.Namespace, spec: dict[str, Any]) -> dict[str, Any]:
    s3 = s3_config(spec, args.endpoint)
    if args.mode == "backup":
        # The whole storage path of backup(): source, manifest hashing, tar; no codec.
        sink = NullSink()
        manifest = await mb.backup(
            sink,
            storage=mb.S3Storage(s3=s3, bucket=args.bucket),
            options=mb.BackupOptions(codec=mb.Codec.NONE),
        )
        return {
            "objects": manifest.object_count,
            "object_bytes": manifest.object_bytes,
            "tar_bytes": sink.bytes,
        }
    skipped: list[stages.SkippedObject] = []
    count = 0
    size = 0
    tar_bytes = 0

    async def counted(members: AsyncIterator[stages.Member]) -> AsyncIterator[stages.Member]:
        nonlocal count, size
        async for member in members:
            count += 1
            size += member.size
            yield member

    async with stages.open_s3_client(s3) as client:
        source = stages.s3_objects(client, args.bucket, "", skipped)
        # Writes to /dev/null never block.
        with open(os.devnull, "wb") as out:  # noqa: ASYNC230
            async for chunk in stages.encode_tar(counted(source)):
                out.write(chunk)
                tar_bytes += len(chunk)
    return {"objects": count, "object_bytes": size, "tar_bytes": tar_bytes}


class RecordedDump:
    """A recorded ``pg_dump`` file as a DumpSource: parts read as open_pg_dump reads them.

    Like :func:`monetr_backup.stages.open_pg_dump`, a worker thread fills each part in
    place (``read_hashed_part``: readv into 1 MiB blocks, SHA-256 in that thread) while
    one part waits for the consumer; only the pipe from pg_dump is a file here.
    """

    def __init__(self, parts: AsyncIterator[stages.DumpPart], part_size: int) -> None:
        self.parts = parts
        self.part_size = part_size
        self.dump_format = mb.DumpFormat.CUSTOM
        self.version = "recorded"
        self.server_version = "recorded"

    async def wait(self) -> None:
        pass


async def run_ceiling(args: argparse.Namespace, spec: dict[str, Any]) -> dict[str, Any]:
    """A recorded dump -> dump part members -> tar -> gzip -> a discarding sink.

    backup()'s chain with BackupOptions' defaults (part size, codec, level, batch) and
    ``--threads`` compress threads, without a database or S3: how fast this process
    alone turns a dump into an archive.
    """
    options = mb.BackupOptions(compress_threads=args.threads)
    part_size = options.dump_part_size
    fd = os.open(args.dump, os.O_RDONLY | os.O_CLOEXEC)
    send, receive = anyio.create_memory_object_stream[stages.DumpPart](1)

    async def read_parts() -> None:
        async with send:
            while True:
                part = await anyio.to_thread.run_sync(read_hashed_part, fd, part_size)
                if not part.blocks:
                    break
                await send.send(part)
                if part.size < part_size:
                    break

    created = datetime.now(UTC)
    header = mb.Header(
        created_at=created,
        library_version=mb.__version__,
        top_folder=f"monetr-backup-{created:%Y%m%dT%H%M%SZ}",
        database="recorded",
        dump_format=mb.DumpFormat.CUSTOM,
        dump_part_size=part_size,
        storage=None,
        codec=options.codec,
    )
    manifests: list[mb.Manifest] = []
    sink = NullSink()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(read_parts)
            with receive:
                members = stages.archive_members(
                    header,
                    RecordedDump(receive, part_size),
                    None,
                    [],
                    progress=stages.ProgressTracker(
                        None, options.progress_interval, operation="backup"
                    ),
                    on_manifest=manifests.append,
                )
                chunks = stages.compress(
                    stages.encode_tar(members),
                    options.codec,
                    options.level,
                    batch_size=batch_size_for(part_size),
                    threads=args.threads,
                )
                async for chunk in chunks:
                    await sink.write(chunk)
            await sink.commit()
    finally:
        os.close(fd)
    return {
        "dump_bytes": manifests[0].dump_bytes,
        "members": manifests[0].member_count,
        "archive_bytes": sink.bytes,
        "threads": args.threads,
    }


RUNNERS = {
    "backup": run_backup,
    "restore": run_restore,
    "objects": run_objects,
    "ceiling": run_ceiling,
}


def main() -> None:
    """Run the operation the arguments name and print what it measured as one JSON line.

    Running the library in a process of its own, like ``aws`` in the shell baselines,
    means its CPU time (this process plus its pg_dump/pg_restore children) and peak RSS
    are measured the same way as every other contender's::

        ours_process.py backup  --spec SPEC --key KEY [--database DB] [--storage-bucket B]
        ours_process.py restore --spec SPEC --key KEY --database DB
        ours_process.py objects --spec SPEC --bucket B --mode source|backup
        ours_process.py ceiling --spec SPEC --dump FILE --threads N

    ``SPEC`` is the file :func:`harness.spec.write_spec` wrote; ``--endpoint`` replaces
    its S3 endpoint (the latency proxy). The JSON holds ``elapsed`` (seconds inside this
    process, from just before the library call to just after: no interpreter start-up or
    imports), ``write_bytes`` (bytes this process caused to be written to disk during the
    call, from /proc/self/io; pg_dump and pg_restore are separate processes and not
    included), the process's own ``maxrss_kib`` and the operation's counters, and its CPU
    seconds: ``cpu_self`` (all of it, at exit), ``cpu_start`` (before the call: the
    interpreter and imports), ``cpu_call`` (the process during the call) and ``cpu_loop``
    (the event loop's thread during the call: anyio runs the loop in the thread that
    calls ``anyio.run``; worker threads and pg_dump/pg_restore are not in it).
    ``ceiling`` needs no server: ``--dump`` is a recorded ``pg_dump -Fc -Z0`` file.
    """
    parser = argparse.ArgumentParser(description="run one of our contenders, print JSON")
    parser.add_argument("operation", choices=sorted(RUNNERS))
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--endpoint", help="S3 endpoint to use instead of the spec's")
    parser.add_argument("--key", help="archive key (backup, restore)")
    parser.add_argument("--storage-bucket", help="backup: also back up this bucket")
    parser.add_argument(
        "--database",
        help="backup: database to dump (default: the spec's); restore: target (exists, empty)",
    )
    parser.add_argument("--bucket", help="objects: the storage bucket")
    parser.add_argument("--mode", choices=["source", "backup"], default="source")
    parser.add_argument("--dump", type=Path, help="ceiling: a recorded pg_dump -Fc -Z0 file")
    parser.add_argument("--threads", type=int, default=1, help="ceiling: compress threads")
    args = parser.parse_args()
    spec = json.loads(args.spec.read_text())
    runner = RUNNERS[args.operation]

    io_before = _proc_io()
    cpu_start = time.process_time()
    loop_start = time.thread_time()
    started = time.perf_counter()
    result = anyio.run(runner, args, spec)
    elapsed = time.perf_counter() - started
    cpu_loop = time.thread_time() - loop_start
    cpu_call = time.process_time() - cpu_start
    io_after = _proc_io()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result.update(
        elapsed=elapsed,
        write_bytes=io_after.get("write_bytes", 0) - io_before.get("write_bytes", 0),
        cancelled_write_bytes=(
            io_after.get("cancelled_write_bytes", 0) - io_before.get("cancelled_write_bytes", 0)
        ),
        write_bytes_process=io_after.get("write_bytes", 0),
        maxrss_kib=usage.ru_maxrss,
        cpu_self=usage.ru_utime + usage.ru_stime,
        cpu_start=cpu_start,
        cpu_call=cpu_call,
        cpu_loop=cpu_loop,
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
