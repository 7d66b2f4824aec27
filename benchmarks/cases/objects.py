"""A bucket of storage objects -> tar on /dev/null, directly and through the latency proxy."""

from __future__ import annotations

from contenders import objects_loop
from harness import latency_proxy
from harness.bench import PROXY_BUCKET, STORAGE_BUCKET, Bench
from harness.log import log
from harness.measure import clean_env
from harness.race import Contender, run_interleaved, summarize
from harness.report import failed_row, fmt, print_table, ratio
from harness.settings import MB, MIB

__all__ = ["run_case"]


def run_case(bench: Bench) -> None:
    """Race the sequential GET loop against our object source and backup(storage=...)."""
    settings = bench.settings
    bench.buckets()
    bench.storage()
    env = clean_env()
    proxied_bucket = PROXY_BUCKET if settings.proxy_objects < settings.objects else STORAGE_BUCKET
    proxied = (
        (bench.proxy_count, bench.proxy_bytes)
        if proxied_bucket == PROXY_BUCKET
        else (bench.object_count, bench.object_bytes)
    )
    log(
        f"\n# case objects: {bench.object_count:,} objects ({bench.object_bytes / MIB:.1f} MiB)"
        f" direct, {proxied[0]:,} ({proxied[1] / MIB:.1f} MiB) through a"
        f" {settings.delay_ms:g} ms proxy, {settings.rounds} round(s)"
    )
    groups: list[tuple[str, list[Contender], tuple[int, int]]] = []
    s3_port = f"127.0.0.1:{bench.s3.ports['s3']}"
    with latency_proxy.running(s3_port, settings.delay_ms, env) as proxy_url:
        for label, where, bucket, endpoint, counts in (
            ("direct", "direct", STORAGE_BUCKET, None, (bench.object_count, bench.object_bytes)),
            (f"+{settings.delay_ms:g} ms", "proxy", proxied_bucket, proxy_url, proxied),
        ):
            extra = ["--endpoint", endpoint] if endpoint else []
            contenders = [
                Contender(
                    f"sequential botocore GET -> tar ({label})",
                    lambda r, t, bucket=bucket, endpoint=endpoint: (  # type: ignore[misc]
                        objects_loop.command(t, bench.spec, bucket, endpoint)
                    ),
                    env,
                    json_output=True,
                    tags=f"baseline sequential {where}",
                ),
                Contender(
                    f"ours: s3_objects -> encode_tar ({label})",
                    lambda r, t, bucket=bucket, extra=extra: bench.ours.command(  # type: ignore[misc]
                        t, "objects", "--bucket", bucket, "--mode", "source", *extra
                    ),
                    env,
                    json_output=True,
                    tags=f"ours ours-source {where}",
                ),
                Contender(
                    f"ours: backup(storage=S3Storage) ({label})",
                    lambda r, t, bucket=bucket, extra=extra: bench.ours.command(  # type: ignore[misc]
                        t, "objects", "--bucket", bucket, "--mode", "backup", *extra
                    ),
                    env,
                    json_output=True,
                    tags=f"ours ours-backup {where}",
                ),
            ]
            if where == "proxy":
                # The plain generator fetches one object at a time by design: through the
                # proxy it only repeats the sequential baseline.
                contenders = [c for c in contenders if "ours-source" not in c.tags]
                # The sequential baseline is latency-bound (a delay per GET, ~5 min for
                # 10,000 objects) and varies little: one round.
                contenders[0].max_rounds = 1
            groups.append((label, contenders, counts))
        everyone = [c for _, cs, _ in groups for c in cs]
        run_interleaved("objects", everyone, settings.rounds, bench.meter, settings)

    headers = [
        "contender",
        "objects",
        "MiB",
        "wall s",
        "min-max s",
        "objects/s",
        "MB/s",
        "x sequential",
        "CPU s",
        "srv CPU s",
        "RSS MiB",
        "in-proc s",
    ]
    rows = []
    for _label, contenders, (count, size) in groups:
        base = summarize(contenders[0])
        base_wall = base.wall if base else None
        for c in contenders:
            s = summarize(c)
            if s is None:
                rows.append(failed_row(c, len(headers)))
                continue
            seen = int(s.info.get("objects", 0))
            rows.append(
                [
                    c.name,
                    f"{seen:,}" + ("" if seen == count else f" (!= {count:,})"),
                    fmt(size / MIB, ".1f"),
                    fmt(s.wall),
                    f"{s.wall_min:.1f}-{s.wall_max:.1f}",
                    fmt(seen / s.wall, ".0f"),
                    fmt(size / MB / s.wall, ".1f"),
                    ratio(base_wall, s.wall),
                    fmt(s.cpu),
                    fmt(s.server_cpu),
                    fmt(s.rss, ".0f"),
                    fmt(s.info.get("elapsed")),
                ]
            )
    notes = [
        f"small objects of {settings.object_size} bytes plus"
        f" {len(settings.large_objects)} large ones; everything written as tar to /dev/null",
        "x sequential: speed relative to the sequential baseline in the same setting"
        " (direct or through the proxy)",
        f"proxy: 127.0.0.1 TCP proxy adding {settings.delay_ms:g} ms before each request"
        " (benchmarks/harness/latency_proxy.py)",
        "backup(storage=...) row: the full storage path of backup() (manifest hashing"
        " included), codec none, into a discarding ArchiveSink",
        "s3_objects row: the plain generator, one GET at a time (direct only; through the"
        " proxy it would repeat the sequential baseline)",
        "through the proxy the sequential baseline runs in round 1 only (latency-bound)",
    ]
    bench.tables.append(print_table("storage objects (S3 -> tar)", headers, rows, notes))
