"""The rest of a stopped run's work, to the same deadline, plus one resume overhead."""

from __future__ import annotations

from datetime import timedelta

import pytest

from carbonshift.catalog import Catalog
from carbonshift.job import WorkGpuHours, WorkOnInstance
from carbonshift.run import NothingLeft, remaining_job
from carbonshift.training import TrainingOutcome
from tests.helpers import T0, job
from tests.run.fakes import placement

NOW = T0 + timedelta(minutes=20)


def stopped_at(step: int, total: int = 100) -> TrainingOutcome:
    return TrainingOutcome(False, step, total, f"file:///c/ckpt-{step:012d}", "stop requested")


def test_the_rest_of_a_duration(catalog: Catalog) -> None:
    spec = job("j", work={"duration": "1h", "instance_type": "g5.xlarge"}, within="12h",
               resume_overhead="2m", urgent=True)
    where = placement(deadline_h=12)
    rest = remaining_job(spec, where, stopped_at(25), NOW, catalog)
    assert isinstance(rest.work, WorkOnInstance)
    assert rest.work.duration_s == pytest.approx(0.75 * 3600 + 120)
    assert rest.work.instance_type == "g5.xlarge"
    assert rest.earliest_start == NOW and rest.deadline == where.deadline
    assert rest.within_s is None and not rest.urgent and rest.name == "j"


def test_the_rest_of_gpu_hours_pays_the_overhead_on_the_planned_instance(
    catalog: Catalog,
) -> None:
    spec = job("j", work={"gpu_hours": 4, "reference_gpu": "A100"}, within="12h",
               resume_overhead="30m")
    rest = remaining_job(spec, placement(), stopped_at(50), NOW, catalog)
    itype = catalog.instance_type("g5.xlarge")
    gpu = catalog.gpu("A100")
    assert isinstance(rest.work, WorkGpuHours) and rest.work.reference_gpu == "A100"
    assert rest.work.gpu_hours == pytest.approx(2 + 0.5 * itype.throughput / gpu.throughput_factor)


@pytest.mark.parametrize("outcome", [stopped_at(100), TrainingOutcome(False, 0, 0, None)])
def test_nothing_left_is_a_domain_error(catalog: Catalog, outcome: TrainingOutcome) -> None:
    spec = job("j", work={"duration": "1h", "instance_type": "g5.xlarge"}, within="12h")
    with pytest.raises(NothingLeft, match="job 'j': .*nothing left to re-plan"):
        remaining_job(spec, placement(), outcome, NOW, catalog)


def test_a_resumed_run_counts_its_rest_from_where_it_resumed(catalog: Catalog) -> None:
    """The second stop of a job: its run resumed at step 25 with the work of steps 25..100
    (here 3 h); stopped at step 50, two thirds of that work is left, not half of it."""
    spec = job("j", work={"duration": "3h", "instance_type": "g5.xlarge"}, within="12h")
    rest = remaining_job(spec, placement(deadline_h=12), stopped_at(50), NOW, catalog,
                         started_step=25)
    assert isinstance(rest.work, WorkOnInstance)
    assert rest.work.duration_s == pytest.approx(2 * 3600)
