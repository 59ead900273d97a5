"""The planner's batched lookups against the per-job code they replaced: each job's rows, their
ranking (one sort for all jobs) and the Python columns slots read, on random queues with ties,
limits, static rows and rows on another signal."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from carbonshift.catalog import Catalog
from carbonshift.job import resolve
from carbonshift.planner import evaluate
from carbonshift.planner.table import OBJECTIVE_DECIMALS, RowTable
from carbonshift.series import Signal
from tests.helpers import T0, job, series_at

REGIONS = ["aws:us-east-1", "aws:eu-west-2", "aws:us-west-1", "aws:eu-central-1", "aws:sa-east-1"]
TYPES = ["g5.xlarge", "g6.xlarge", "g5.12xlarge", "p3.2xlarge"]


def reference_rows(table: RowTable, j: int) -> list[int]:
    return [int(i) for i in np.flatnonzero(table.rows.job == j)]


def reference_ranked(table: RowTable, j: int) -> list[int]:
    """ranked_rows as it was: one lexsort per job over a scan of every row."""
    rows = np.flatnonzero((table.rows.job == j) & table.comparable)
    objective = np.round(table.objective[rows], OBJECTIVE_DECIMALS)
    emissions = np.round(table.emissions_kg[rows], OBJECTIVE_DECIMALS)
    order = np.lexsort((rows, emissions, objective, ~table.allowed[rows]))
    return [int(r) for r in rows[order]]


def random_table(seed: int, catalog: Catalog) -> RowTable:
    rng = random.Random(seed)
    signal = rng.choice([Signal.LCA, Signal.DIRECT])  # direct: static rows are not comparable
    flat = rng.random() < 0.3  # every hour alike: objectives tie across regions
    forecasts = {
        key: series_at(
            [200.0 if flat else rng.uniform(20, 500) for _ in range(48)],
            step_min=60,
            zone=key,
            signal=signal,
        )
        for key in rng.sample(REGIONS, 3)
    }
    specs = []
    for n in range(40):
        extra: dict[str, Any] = {}
        if rng.random() < 0.3:
            extra.update(objective="cost", carbon_price_usd_per_t=rng.choice([0, 100]))
        if rng.random() < 0.2:
            extra["carbon_budget_kg"] = rng.choice([0.01, 1.0, 100.0])
        if rng.random() < 0.2:
            extra["cost_cap_usd"] = rng.choice([0.5, 50.0])
        if rng.random() < 0.2:
            extra.update(interruptible=True, resume_overhead="5m")
        specs.append(
            job(
                f"j{n}",
                work={"duration": f"{rng.randint(1, 6)}h", "instance_type": "g5.xlarge"},
                within=f"{rng.randint(8, 40)}h",
                regions=rng.sample(REGIONS, rng.randint(1, 4)),
                instance_types=rng.sample(TYPES, rng.randint(1, 3)),
                urgent=rng.random() < 0.1,
                **extra,
            )
        )
    resolved = []
    for spec in specs:
        try:
            resolved.append(resolve(spec, catalog, T0))
        except ValueError:
            continue  # not plannable (e.g. no type offered in its regions): not in the table
    return evaluate(resolved, forecasts)


@pytest.mark.parametrize("seed", range(12))
def test_batched_lookups_match_the_per_job_code(seed: int, catalog: Catalog) -> None:
    table = random_table(seed, catalog)
    assert len(table.jobs) > 20
    for j in range(len(table.jobs)):
        assert table.rows_of(j).tolist() == reference_rows(table, j)
        assert table.ranked(j) == reference_ranked(table, j)
    v = table.values
    for name, column in [
        ("start_s", table.starts.start_s),
        ("mean_g_per_kwh", table.mean_g_per_kwh),
        ("energy_kwh", table.energy_kwh),
        ("emissions_kg", table.emissions_kg),
        ("cost_usd", table.cost_usd),
        ("objective", table.objective),
        ("coverage", table.starts.coverage),
        ("static", table.static),
        ("region_row", table.rows.region_row),
    ]:
        assert getattr(v, name) == column.tolist(), name
