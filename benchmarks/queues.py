"""Synthetic job queues for the scale benchmarks: `carbonshift plan --json` on 10,000 jobs and the
planning flow on 1,000.

A queue mixes the example queue's kinds of job (deployments/jobs.yaml): on-demand jobs measured on
an instance type, GPU-hour jobs ranked on cost + a carbon price, interruptible jobs with a resume
overhead and a few urgent ones, each over 2 to 4 of `regions` catalog regions. Seeded: the same
arguments give the same queue.

    python benchmarks/queues.py 10000 /tmp/jobs-10k.yaml [--regions 20] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from carbonshift.catalog import default_catalog  # noqa: E402

# An instant inside the bundled 2023 traces.
NOW = datetime(2023, 6, 1, 12, tzinfo=UTC)
ENTRYPOINT = "carbonshift.examples.tiny_train:train"


def catalog_regions(count: int) -> list[str]:
    """The first `count` catalog regions, alternating providers so both are in any prefix."""
    keys = list(default_catalog().regions)
    aws = [k for k in keys if k.startswith("aws:")]
    gcp = [k for k in keys if k.startswith("gcp:")]
    mixed = [k for pair in zip(aws, gcp, strict=False) for k in pair]
    mixed += [k for k in keys if k not in mixed]
    if not 1 <= count <= len(mixed):
        raise ValueError(f"regions: give 1 to {len(mixed)}, not {count}")
    return mixed[:count]


def make_queue(
    jobs: int, *, regions: int = 20, seed: int = 1, now: datetime = NOW, entrypoint: bool = True
) -> list[dict[str, Any]]:
    """`jobs` job mappings as a job file holds them under `jobs:`; a third start a few hours
    after `now`, the others when the planner runs."""
    rng = random.Random(seed)
    keys = catalog_regions(regions)
    catalog = default_catalog()
    by_provider = {p: [k for k in keys if k.startswith(p + ":")] for p in ("aws", "gcp")}
    out: list[dict[str, Any]] = []
    for n in range(jobs):
        provider = "aws" if rng.random() < 0.5 or not by_provider["gcp"] else "gcp"
        pool = by_provider[provider] or keys
        chosen = rng.sample(pool, min(len(pool), rng.randint(2, 4)))
        types = [
            t.name
            for t in catalog.instance_types.values()
            if t.provider == provider and t.offered_in(catalog.region(chosen[0]))
        ]
        kind = rng.random()
        job: dict[str, Any] = {"name": f"job-{n:05d}"}
        if entrypoint:
            job["entrypoint"] = ENTRYPOINT
        if kind < 0.4:  # on-demand, measured on an instance type
            job["work"] = {"duration": f"{rng.randint(1, 8)}h", "instance_type": rng.choice(types)}
            job["within"] = f"{rng.randint(12, 36)}h"
        elif kind < 0.65:  # GPU-hours on cost + carbon price, two instance types
            job["work"] = {"gpu_hours": rng.choice([8, 16, 32, 64]), "reference_gpu": "A100"}
            job["within"] = f"{rng.randint(24, 48)}h"
            job["instance_types"] = rng.sample(types, min(2, len(types)))
            job["objective"] = "cost"
            job["carbon_price_usd_per_t"] = rng.choice([50, 100, 200])
        elif kind < 0.95:  # interruptible
            job["work"] = {"duration": f"{rng.randint(1, 6)}h", "instance_type": rng.choice(types)}
            job["within"] = f"{rng.randint(12, 30)}h"
            job["interruptible"] = True
            job["resume_overhead"] = "5m"
        else:  # urgent
            job["work"] = {"duration": f"{rng.randint(1, 3)}h", "instance_type": rng.choice(types)}
            job["within"] = "6h"
            job["urgent"] = True
        if rng.random() < 0.3:
            start = now + timedelta(minutes=30 * rng.randint(0, 12))
            job["earliest_start"] = start.isoformat()
        job["regions"] = chosen
        out.append(job)
    return out


def write_queue(path: Path, jobs: int, *, regions: int = 20, seed: int = 1) -> Path:
    path.write_text(
        yaml.safe_dump({"jobs": make_queue(jobs, regions=regions, seed=seed)}, sort_keys=False),
        encoding="utf-8",
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("jobs", type=int)
    parser.add_argument("path", type=Path)
    parser.add_argument("--regions", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    write_queue(args.path, args.jobs, regions=args.regions, seed=args.seed)


if __name__ == "__main__":
    main()
