"""Job files with extreme or odd values: a job too short for the clock, work so small it rounds
to nothing, a region listed twice. The bad job is refused in one line naming its field, and every
other job is still planned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carbonshift.cli import main

NOW = "2023-06-01T00:00Z"
GOOD = "  - {name: good, work: {duration: 4h, instance_type: g5.xlarge}, within: 24h}\n"


def plan(tmp_path: Path, capsys: pytest.CaptureFixture[str], jobs: str) -> tuple[int, dict, str]:
    path = tmp_path / "jobs.yaml"
    path.write_text("jobs:\n" + jobs, encoding="utf-8")
    code = main(["plan", "--jobs", str(path), "--now", NOW, "--json"])
    out = capsys.readouterr()
    return code, json.loads(out.out), out.err


@pytest.mark.parametrize(
    "work",
    [
        "{duration: 0.0000001s, instance_type: g5.xlarge}",
        "{duration: 0.5s, instance_type: g5.xlarge}",
        "{gpu_hours: 1.0e-300}",
        "{gpu_hours: 1.0e-12}",
    ],
)
def test_work_too_small_to_run_is_refused_and_the_others_planned(
    work: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = f"  - {{name: tiny, work: {work}, within: 24h}}\n"
    code, out, err = plan(tmp_path, capsys, job + GOOD)
    assert code == 1
    by_name = {p["job"]: p for p in out["plans"]}
    assert by_name["good"]["feasible"]
    assert not by_name["tiny"]["feasible"] and by_name["tiny"]["field"] == "work"
    assert "at least 1 s" in by_name["tiny"]["reason"]
    assert "Traceback" not in err and "RuntimeWarning" not in err


def test_a_region_listed_twice_never_holds_two_replicas(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = plan(
        tmp_path,
        capsys,
        "  - {name: s, work: {duration: 4h, instance_type: g5.xlarge}, within: 24h,\n"
        "     regions: [aws:eu-west-2, aws:eu-west-2, aws:us-east-1], placement: spread,\n"
        "     replicas: 2}\n",
    )
    assert code == 0
    shards = out["plans"][0]["shards"]
    assert len(shards) == 2
    assert len({s["region"] for s in shards}) == 2


def test_a_region_listed_twice_is_one_candidate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = plan(
        tmp_path,
        capsys,
        "  - {name: c, work: {duration: 4h, instance_type: g5.xlarge}, within: 24h,\n"
        "     regions: [aws:eu-west-2, aws:us-east-1, aws:eu-west-2],\n"
        "     instance_types: [g5.xlarge, g5.xlarge]}\n",
    )
    assert code == 0
    alternatives = out["plans"][0]["alternatives"]
    assert sorted(a["region"] for a in alternatives) == ["aws:eu-west-2", "aws:us-east-1"]
    assert out["plans"][0]["explanation"]["now_home"]["region"] == "aws:eu-west-2"


SLOW_AND_FAST = (
    "  - {name: %s, work: {gpu_hours: 2}, within: 2h, regions: [aws:us-east-1],\n"
    "     instance_types: [g5.xlarge, p4d.24xlarge], objective: cost%s}\n"
)


@pytest.mark.parametrize("extra", [", interruptible: true", ""])
def test_an_instance_too_slow_for_the_window_is_never_planned(
    extra: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """2 A100-hours in 2 h: a g5.xlarge needs ~5.7 h. On spot it is the cheapest, and was
    planned 00:00 to 05:43 against a 02:00 deadline (a static slot past the deadline)."""
    code, out, _ = plan(tmp_path, capsys, SLOW_AND_FAST % ("j", extra))
    assert code == 0
    (p,) = out["plans"]
    assert p["feasible"]
    for slot in [p["chosen"], *p["alternatives"], p["explanation"]["now_home"]]:
        assert slot["end"] <= p["deadline"], slot
    assert p["chosen"]["instance_type"] == "p4d.24xlarge"


def test_a_throughput_that_makes_one_gpu_absurdly_slow_is_not_a_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--throughput H100=1e-300`: an OverflowError traceback from the H100 candidates."""
    path = tmp_path / "jobs.yaml"
    path.write_text(
        "jobs:\n  - {name: j, work: {gpu_hours: 8}, within: 24h, regions: [aws:us-east-1],\n"
        "     instance_types: [p5.48xlarge, p4d.24xlarge]}\n",
        encoding="utf-8",
    )
    code = main(["plan", "--jobs", str(path), "--now", NOW, "--json",
                 "--throughput", "H100=1e-300"])
    out = capsys.readouterr()
    assert code == 0, out.err
    (p,) = json.loads(out.out)["plans"]
    assert p["chosen"]["instance_type"] == "p4d.24xlarge"
    assert {a["instance_type"] for a in p["alternatives"]} == {"p4d.24xlarge"}


@pytest.mark.parametrize("price", ["1.0e308", "1.0e7"])
def test_an_absurd_carbon_price_is_refused_on_its_field(
    price: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """1e308 USD/t overflowed the objective of a big job to infinity, and `--json` then failed
    the whole queue with 'internal error: the result holds a non-finite number'."""
    job = (
        "  - {name: pricey, work: {duration: 2000h, instance_type: p4d.24xlarge}, within: 3000h,\n"
        f"     objective: cost, carbon_price_usd_per_t: {price}}}\n"
    )
    code, out, err = plan(tmp_path, capsys, job + GOOD)
    assert code == 1
    assert [e["field"] for e in out["errors"]] == ["carbon_price_usd_per_t"]
    assert {p["job"] for p in out["plans"]} == {"good"}
    assert "RuntimeWarning" not in err


def test_a_high_but_real_carbon_price_is_planned(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = (
        "  - {name: pricey, work: {duration: 2000h, instance_type: p4d.24xlarge}, within: 3000h,\n"
        "     objective: cost, carbon_price_usd_per_t: 1000000}\n"
    )
    code, out, _ = plan(tmp_path, capsys, job)
    assert code == 0 and out["plans"][0]["feasible"]
