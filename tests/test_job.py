from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from carbonshift.catalog import Catalog
from carbonshift.job import JobSpecError, load_jobs, parse_jobs, resolve
from tests.helpers import T0, job

BASE = {"name": "j", "work": {"duration": "1h", "instance_type": "g5.xlarge"}, "within": "4h"}


def _error(item: dict[str, object]) -> JobSpecError:
    queue = parse_jobs([item])
    assert not queue.jobs
    (error,) = queue.errors
    return error


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (
            {
                "deadline": "2020-01-01T00:00:00Z",
                "earliest_start": "2020-01-02T00:00:00Z",
                "within": None,
            },
            "deadline",
            "not after earliest_start",
        ),
        ({"within": None}, "deadline", "give a deadline"),
        (
            {"work": {"duration": "soon", "instance_type": "g5.xlarge"}},
            "work",
            "cannot read duration",
        ),
        ({"name": "has space"}, "name", "pattern"),
        ({"utilisation": 1.5}, "utilisation", "less than or equal to 1"),
        ({"replicas": 2}, "replicas", "placement: spread"),
        ({"colour": "green"}, "colour", "Extra inputs"),
        ({"earliest_start": "2020-01-01"}, "earliest_start", "no time of day"),
        ({"deadline": "tomorrow", "within": None}, "deadline", "cannot read time 'tomorrow'"),
    ],
)
def test_bad_specs_name_the_field(change: dict[str, object], field: str, message: str) -> None:
    item = {**BASE, **change}
    item = {k: v for k, v in item.items() if v is not None}
    error = _error(item)
    assert error.field.startswith(field), error
    assert message in str(error)
    assert str(error).startswith(f"job {item['name']!r}: {error.field}: ")


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"regions": ["aws:us-east-1", "aws:atlantis-1"]}, "regions[1]", "unknown region"),
        (
            {"instance_types": ["g5.xlarge", "x9.huge"]},
            "instance_types[1]",
            "unknown instance type",
        ),
        ({"work": {"duration": "1h", "instance_type": "x9.huge"}}, "work.instance_type", "unknown"),
        ({"work": {"gpu_hours": 1, "reference_gpu": "Z1"}}, "work.reference_gpu", "unknown GPU"),
        ({"within": "30m"}, "deadline", "needs 1h on its fastest allowed instance"),
        ({"regions": ["gcp:us-east1"], "providers": ["aws"]}, "regions[0]", "providers"),
        ({"regions": ["gcp:us-east1"]}, "instance_types", "none of the allowed instance types"),
    ],
)
def test_catalog_errors_name_the_field(
    catalog: Catalog, change: dict[str, object], field: str, message: str
) -> None:
    spec = job(**{**BASE, **change})
    with pytest.raises(JobSpecError) as info:
        resolve(spec, catalog, T0)
    assert info.value.field == field
    assert message in str(info.value)


def test_default_regions_are_all_of_allowed_providers(catalog: Catalog) -> None:
    spec = job(work={"gpu_hours": 1}, regions=[], providers=["gcp"], within="8h")
    resolved = resolve(spec, catalog, T0)
    regions = {c.region.key for c in resolved.candidates}
    assert regions == {r.key for r in catalog.regions_of(["gcp"])}


def test_home_candidate_is_first_region(catalog: Catalog) -> None:
    spec = job(
        regions=["aws:eu-west-2", "aws:us-east-1"], instance_types=["g6.xlarge", "g5.xlarge"]
    )
    resolved = resolve(spec, catalog, T0)
    assert resolved.home.region.key == "aws:eu-west-2"
    assert resolved.home.instance_type.name == "g6.xlarge"


def test_within_is_relative_to_earliest_start(catalog: Catalog) -> None:
    spec = job(earliest_start=None, within="6h")
    resolved = resolve(spec, catalog, T0 + timedelta(hours=1))
    assert resolved.deadline_s - resolved.earliest_s == 6 * 3600


def test_interruptible_uses_spot_price(catalog: Catalog) -> None:
    on_demand = resolve(job(), catalog, T0).home
    spot = resolve(job(interruptible=True), catalog, T0).home
    assert spot.cost_usd < on_demand.cost_usd
    assert spot.cost_usd == pytest.approx(catalog.instance_type("g5.xlarge").spot_usd_per_h / 6)


def test_bad_job_file_keeps_good_jobs(tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text(
        "jobs:\n"
        "  - name: good\n    work: {duration: 1h, instance_type: g5.xlarge}\n    within: 4h\n"
        "  - name: bad\n    work: {duration: 1h, instance_type: g5.xlarge}\n    within: 4h\n"
        "    carbon_budget_kg: -3\n"
        "  - name: good\n    work: {duration: 1h, instance_type: g5.xlarge}\n    within: 4h\n"
    )
    queue = load_jobs(path)
    assert [j.name for j in queue.jobs] == ["good"]
    assert [(e.job, e.field) for e in queue.errors] == [
        ("bad", "carbon_budget_kg"),
        ("good", "name"),
    ]


def test_unreadable_job_file(tmp_path: Path) -> None:
    path = tmp_path / "jobs.yaml"
    path.write_text("jobs: [unclosed\n")
    with pytest.raises(ValueError, match=r"jobs.yaml: not valid YAML at line 2 .*: fix the file"):
        load_jobs(path)
    with pytest.raises(ValueError, match="cannot read the job file"):
        load_jobs(tmp_path / "missing.yaml")
    path.write_bytes(b"jobs: \xff\xfe\n")
    with pytest.raises(ValueError, match="jobs.yaml: cannot read the job file"):
        load_jobs(path)


def test_earliest_start_in_the_past_means_now(catalog: Catalog) -> None:
    spec = job(earliest_start=T0 - timedelta(hours=3), within="6h")
    resolved = resolve(spec, catalog, T0)
    assert resolved.earliest_s == int(T0.timestamp())
    assert resolved.deadline_s == int((T0 + timedelta(hours=3)).timestamp())
