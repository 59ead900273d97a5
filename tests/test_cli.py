from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonshift import project
from carbonshift.cli import _strict_json, main
from carbonshift.project import demo_env
from carbonshift.traces import bundled_traces_dir

TRACES = bundled_traces_dir()
REPO = Path(__file__).resolve().parents[1]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_backtest_json_contract(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "backtest",
        str(TRACES / "DE-LU_2023_hourly.csv"),
        str(TRACES / "GB_2023_hourly.csv"),
        "--duration",
        "4h",
        "--slack",
        "24h",
        "--json",
    )
    assert code == 0
    result = json.loads(out)
    assert out.count("\n") == 1
    assert result["jobs"] == 8760 - 28 + 1
    policies = result["policies"]
    assert set(policies) == {"now", "window", "interruptible"}
    assert set(policies["now"]) == {"mean_g_per_kwh"}
    assert policies["now"]["mean_g_per_kwh"] == pytest.approx(367.5, abs=0.5)  # DE 2023
    for name in ("window", "interruptible"):
        p = policies[name]
        assert p["savings"] == pytest.approx(
            1 - p["mean_g_per_kwh"] / policies["now"]["mean_g_per_kwh"]
        )
    assert policies["interruptible"]["savings"] >= policies["window"]["savings"]


def test_backtest_forecast_error_adds_share_of_perfect(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "backtest",
        str(TRACES / "GB_2023_hourly.csv"),
        "--duration",
        "2h",
        "--slack",
        "12h",
        "--forecast-error",
        "0.3",
        "--seed",
        "1",
        "--json",
    )
    assert code == 0
    window = json.loads(out)["policies"]["window"]
    assert 0 < window["share_of_perfect"] < 1
    assert window["perfect_foresight_savings"] > window["savings"]


def test_backtest_bad_input_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(
        capsys, "backtest", str(tmp_path / "missing.csv"), "--duration", "4h", "--slack", "1h"
    )
    assert code == 2
    assert err.startswith("carbonshift: error: ") and err.count("\n") == 1
    with pytest.raises(SystemExit):
        main(["backtest", "x.csv", "--duration", "four hours", "--slack", "1h"])


def test_plan_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "plan",
        "--jobs",
        str(REPO / "deployments" / "jobs.yaml"),
        "--now",
        "2023-06-01T00:00:00Z",
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    plans = {p["job"]: p for p in result["plans"]}
    assert plans
    for plan in plans.values():
        assert plan["feasible"], plan
        assert plan["chosen"]["start"] >= "2023-06-01T00:00:00"
        assert plan["explanation"]["energy_estimate"].endswith("kWh")
    urgent = [p for p in plans.values() if p["explanation"]["reason"].startswith("urgent")]
    assert len(urgent) == 1 and urgent[0]["chosen"]["start"].startswith("2023-06-01T00:00:00")


def test_plan_reports_bad_jobs_and_plans_the_rest(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(
        "jobs:\n"
        "  - {name: ok, work: {duration: 2h, instance_type: g5.xlarge}, within: 12h,"
        " regions: [aws:eu-west-2]}\n"
        "  - {name: typo, work: {duration: 2h, instance_type: g5.xlarge}, within: 12h,"
        " regions: [aws:eu-west-9]}\n"
        "  - {name: late, work: {duration: 2h, instance_type: g5.xlarge}, within: 1h}\n"
    )
    code, out, err = run(capsys, "plan", "--jobs", str(jobs), "--now", "2023-06-01T00:00:00Z")
    assert code == 1  # bad specs, though every other job was planned
    assert "ok " in out
    assert "typo               not scheduled: job 'typo': regions[0]: unknown region" in out
    assert "late               not scheduled: job 'late': deadline:" in out
    jobs.write_text(
        "jobs:\n  - {name: fine, work: {duration: 2h, instance_type: g5.xlarge}, within: 12h,"
        " regions: [aws:eu-west-2], carbon_budget_kg: 0.001}\n"
    )
    code, out, err = run(capsys, "plan", "--jobs", str(jobs), "--now", "2023-06-01T00:00:00Z")
    assert code == 0  # over budget is a planning outcome, not a bad spec
    assert "not scheduled: no candidate meets the carbon budget" in out
    jobs.write_text("jobs:\n  - {name: broken, work: {duration: 2h}, within: 12h}\n")
    code, out, err = run(capsys, "plan", "--jobs", str(jobs), "--now", "2023-06-01T00:00:00Z")
    assert code == 1
    assert "job 'broken': work" in err


def test_console_script_installed() -> None:
    exe = Path(sys.executable).with_name("carbonshift")
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True)
    assert "backtest" in result.stdout and "plan" in result.stdout


def test_demo_finds_the_project_code_from_any_folder(tmp_path: Path) -> None:
    """flows/ is not installed: `carbonshift demo` puts the project folder on PYTHONPATH, so
    `python -m flows.demo` imports from any working directory, editable finder or not."""
    env = demo_env({"PATH": os.environ.get("PATH", ""), "PYTHONPATH": "/elsewhere"})
    assert env["PYTHONPATH"].split(os.pathsep) == [str(REPO), "/elsewhere"]
    code = (
        "import importlib.util, sys\n"
        "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]\n"
        "print(importlib.util.find_spec('flows.demo').origin)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == REPO / "flows" / "demo.py"


def test_demo_outside_a_clone_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(project, "PROJECT", tmp_path)  # an install without the project folder
    code, out, err = run(capsys, "demo", "--exit")
    assert code == 2
    assert err.count("\n") == 1 and "from a clone" in err and str(tmp_path) in err


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats()  # NaN and the infinities too: they must be refused
    | st.text()
    | st.sampled_from(["NaN", "Infinity", "-Infinity", "a NaN b"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(_JSON_VALUES)
def test_strict_json_is_the_standard_encoders_json(value: object) -> None:
    # plan --json encodes with pydantic-core; the standard encoder (allow_nan=False) is the
    # reference: the same values back, and a refusal exactly where it refuses.
    try:
        reference = json.dumps(value, allow_nan=False)
    except ValueError:
        with pytest.raises(ValueError, match="non-finite"):
            _strict_json(value)
        return
    text = _strict_json(value)
    assert text.isascii()
    assert json.loads(text) == json.loads(reference)


def test_plan_json_from_worker_processes_is_one_process_json(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks.queues import NOW, make_queue
    from carbonshift.forks import MIN_SHARE, WORKERS_ENV

    items = make_queue(2 * MIN_SHARE + 17, regions=12, seed=3)
    items[5]["regions"] = ["aws:eu-west-9"]  # refused before scoring: the exit code says so
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(yaml.safe_dump({"jobs": items}))
    argv = ["plan", "--jobs", str(jobs), "--now", NOW.isoformat(), "--json"]
    from carbonshift import forks

    monkeypatch.setattr(forks, "can_fork", lambda: True)  # an earlier test's thread or not
    forked: list[int] = []
    real_fork = os.fork
    monkeypatch.setattr(os, "fork", lambda: forked.append(1) or real_fork())
    outputs = {}
    for workers in ("1", "2"):
        monkeypatch.setenv(WORKERS_ENV, workers)
        code, outputs[workers], err = run(capsys, *argv)
        assert code == 1 and "eu-west-9" in outputs[workers], err
        assert len(forked) == int(workers) - 1  # one worker beside this process, or none
    assert outputs["1"] == outputs["2"]
    plans = json.loads(outputs["2"])["plans"]
    assert [p["job"] for p in plans] == [i["name"] for i in items]
    assert sum(p["feasible"] for p in plans) > MIN_SHARE


def test_a_bad_worker_setting_is_refused_before_the_job_file_is_read(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARBONSHIFT_PLAN_WORKERS", "0")
    missing = tmp_path / "missing.yaml"
    for extra in ([], ["--json"]):
        code, out, err = run(
            capsys, "plan", "--jobs", str(missing), "--now", "2023-06-01T00:00Z", *extra
        )
        assert code == 2 and out == ""
        assert (
            err.startswith("carbonshift: error: CARBONSHIFT_PLAN_WORKERS='0': give")
            and err.count("\n") == 1
        )
