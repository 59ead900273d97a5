"""Checkpoint store throughput on S3: a 256 MB checkpoint part uploaded to the S3 emulator (moto's
server, started here) through `S3Store.put` and through boto3's `upload_file`, in the same run.

Prints one JSON object:

- `store_mb_s`: `S3Store.put` of the bytes (in memory, as the checkpoint manager holds them):
  a multipart upload with a SHA-256 per part (computed once, ahead of the part's upload, and
  also naming the bytes in the upload's marker for a resume), `concurrency` parts at a time,
  parts sent from views of the bytes. Median of `repeats`.
- `raw_mb_s`: `upload_file` of the same bytes from a file (boto3's transfer manager, its
  defaults: 8 MiB parts, 10 threads), through the same client (same botocore settings), median.
- `raw_default_client_mb_s`: `upload_file` through a client with botocore's own defaults (which,
  on a plain-http endpoint such as the emulator's, also SHA-256-signs every body), median.
- `ratio`: store_mb_s / raw_mb_s (the target is >= 0.9); `part_mb`, `concurrency`, `mb`,
  `repeats`, `cpus`.
- `store_cpu_s`, `raw_cpu_s`: median CPU seconds of this process (client and emulator together)
  per upload: less sensitive than the speeds to other work on a shared machine.
- `runs_mb_s`, `runs_cpu_s`: every run, in the order of the repeats.

The runs rotate (raw, store, raw-default; store, raw-default, raw; ...) so that each method runs
in each position, each after an `os.sync()` (the emulator keeps objects in temporary files: the
previous upload's writeback must not slow the next one down). The emulator runs in this process:
its request handling shares the CPUs (and the GIL) with the uploads, both sides alike.
`checkpoint_store.py --mb 64 --part-mb 8 --concurrency 4` for other sizes.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from carbonshift.checkpoint.s3 import S3Store  # noqa: E402

MB = 1024 * 1024
BUCKET = "carbonshift-bench"


def timed(size: int, upload: Callable[[], object]) -> tuple[float, float]:
    """MB/s and CPU seconds (this process: the uploads and the emulator) of one upload."""
    start, start_cpu = time.perf_counter(), time.process_time()
    upload()
    return size / MB / (time.perf_counter() - start), time.process_time() - start_cpu


def check_and_delete(client: Any, name: str, i: int, size: int, expected_sha256: str) -> None:
    key = {"raw": f"raw/{i}", "store": f"bench/store/{i}"}.get(name, f"raw-default/{i}")
    head = client.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    assert head["ContentLength"] == size, (key, head["ContentLength"])
    if name == "store":  # S3's checksum of the parts' SHA-256s: the bytes arrived whole
        assert head["ChecksumSHA256"].split("-")[0] == expected_sha256, key
        left = client.list_objects_v2(Bucket=BUCKET, Prefix="bench/store/").get("Contents", [])
        assert [o["Key"] for o in left] == [key], left  # the upload's marker went with it
    client.delete_object(Bucket=BUCKET, Key=key)  # the emulator would keep them all


def composite_sha256(data: bytes, part_size: int) -> str:
    digests = b"".join(
        hashlib.sha256(data[i : i + part_size]).digest() for i in range(0, len(data), part_size)
    )
    return base64.b64encode(hashlib.sha256(digests).digest()).decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=256)
    parser.add_argument("--part-mb", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the emulator's request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(  # this process only: fake credentials for the emulator
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
    )
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    try:
        session = boto3.Session()
        store = S3Store(
            BUCKET,
            "bench",
            session=session,
            part_size=args.part_mb * MB,
            concurrency=args.concurrency,
        )
        client = store.client
        default_client = session.client("s3")
        client.create_bucket(Bucket=BUCKET)
        size = args.mb * MB
        data = os.urandom(size)
        expected = composite_sha256(data, args.part_mb * MB)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "checkpoint.bin"
            path.write_bytes(data)
            # Connections and the emulator's first-request costs, untimed.
            store.put("warm/store", os.urandom(args.part_mb * MB + 1))
            client.upload_file(str(path), BUCKET, "warm/raw")
            runs: dict[str, Callable[[int], object]] = {
                "raw": lambda i: client.upload_file(str(path), BUCKET, f"raw/{i}"),
                "store": lambda i: store.put(f"store/{i}", data),
                "raw_default_client": lambda i: default_client.upload_file(
                    str(path), BUCKET, f"raw-default/{i}"
                ),
            }
            speeds: dict[str, list[float]] = {name: [] for name in runs}
            cpu_s: dict[str, list[float]] = {name: [] for name in runs}
            order = list(runs)
            for i in range(args.repeats):
                # Each method in each position in turn; every upload starts with the disk quiet.
                for name in order[i % len(order) :] + order[: i % len(order)]:
                    os.sync()
                    mb_s, used_s = timed(size, lambda n=name, k=i: runs[n](k))
                    speeds[name].append(mb_s)
                    cpu_s[name].append(used_s)
                    check_and_delete(client, name, i, size, expected)
        median = {name: statistics.median(values) for name, values in speeds.items()}
        median_cpu_s = {name: statistics.median(values) for name, values in cpu_s.items()}
        print(
            json.dumps(
                {
                    "store_mb_s": round(median["store"], 1),
                    "raw_mb_s": round(median["raw"], 1),
                    "ratio": round(median["store"] / median["raw"], 3),
                    "raw_default_client_mb_s": round(median["raw_default_client"], 1),
                    "store_cpu_s": round(median_cpu_s["store"], 2),
                    "raw_cpu_s": round(median_cpu_s["raw"], 2),
                    "part_mb": args.part_mb,
                    "concurrency": args.concurrency,
                    "mb": args.mb,
                    "repeats": args.repeats,
                    "cpus": os.cpu_count(),
                    "runs_mb_s": {k: [round(v, 1) for v in vs] for k, vs in speeds.items()},
                    "runs_cpu_s": {k: [round(v, 2) for v in vs] for k, vs in cpu_s.items()},
                }
            )
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
