"""The baseline-study and emissions-report flows in-process under the test Prefect server: they
publish their table, markdown and image artifacts; the report's files land in the store; the
prefect.yaml deployments validate and deploy."""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.flows import load_flow_from_entrypoint

from carbonshift.checkpoint import LocalStore
from carbonshift.ledger import append
from flows.baseline import baseline_study
from flows.report import emissions_report
from tests.test_baseline import LONDON, VIRGINIA, write_traces
from tests.test_report import NOW, ledger

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def latest(key: str) -> Any:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    assert found, f"no artifact {key}"
    return sorted(found, key=lambda a: a.created)[-1]


def svg_of(artifact: Any) -> str:
    data = str(artifact.data)
    assert data.startswith("data:image/svg+xml;base64,")
    return base64.b64decode(data.split(",", 1)[1]).decode()


def test_the_baseline_flow_publishes_table_heatmap_and_headline(
        prefect_server: None, tmp_path: Path) -> None:
    result = baseline_study(regions=[LONDON, VIRGINIA], energy_kwh=1.0, duration_s=7200,
                            traces=str(write_traces(tmp_path / "t")))
    best = result["summary"]["best"]
    assert best == {"region": LONDON, "hour": 1, "mean_kg": pytest.approx(0.055)}
    table = latest("baseline-study-table")
    rows = yaml.safe_load(str(table.data))  # JSON is YAML
    assert len(rows) == 24 and rows[5] == {"hour": "05:00", LONDON: 0.1, VIRGINIA: 0.2}
    assert "start hour (UTC)" in svg_of(latest("baseline-study-heatmap"))
    text = str(latest("baseline-study").data)
    assert f"Best slot: {LONDON} at 01:00 UTC" in text and "`baseline-study-heatmap`" in text


def test_the_baseline_flow_refuses_a_bad_request(prefect_server: None, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no trace of its zone IE"):
        baseline_study(regions=["aws:eu-west-1"], energy_kwh=1.0, duration_s=3600,
                       traces=str(write_traces(tmp_path / "t")))


def test_the_report_flow_publishes_and_stores_its_files(
        prefect_server: None, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    for r in ledger():
        append(store, r)
    result = emissions_report(store=str(store.root), now=NOW)
    assert result["segments"] == 4 and result["totals"][0]["saved_kg"] == pytest.approx(3.5)
    prefix = "reports/20261116T0900_20261130T0900"
    assert result["files"] == [f"{store.uri}/{prefix}/{name}"
                               for name in ("report.md", "report.csv", "ledger.jsonl",
                                            "report.svg")]
    assert store.get(f"{prefix}/report.csv").decode().startswith("run_id,job,job_id")
    text = str(latest("emissions-report").data)
    assert "Share of possible savings: 50%" in text and "`emissions-report-chart`" in text
    assert f"{prefix}/report.csv" in text
    rows = yaml.safe_load(str(latest("emissions-report-table").data))
    assert [r["job"] for r in rows] == ["a", "b", "c"] and rows[2]["pending"] == 1
    assert "run now, home region" in svg_of(latest("emissions-report-chart"))


def test_the_report_flow_on_an_empty_period_says_so(prefect_server: None, tmp_path: Path) -> None:
    result = emissions_report(store=str(tmp_path / "nothing"), now=NOW, days=7)
    assert result["segments"] == 0 and result["files"] == []
    assert "Nothing to report: no run ended between" in str(latest("emissions-report").data)
    assert not (tmp_path / "nothing").exists()  # a reader's store: nothing made


def test_the_deployments_in_prefect_yaml_validate() -> None:
    found = yaml.safe_load((REPO / "prefect.yaml").read_text())
    by_entry = {d["entrypoint"]: d for d in found["deployments"]}
    for entrypoint, name in (("flows/report.py:emissions_report", "emissions-report"),
                             ("flows/baseline.py:baseline_study", "baseline-study")):
        deployment = by_entry[entrypoint]
        loaded = load_flow_from_entrypoint(entrypoint, use_placeholder_flow=False)
        assert loaded.name == name and deployment["enforce_parameter_schema"] is True
        loaded.validate_parameters(deployment["parameters"])
    (weekly,) = by_entry["flows/report.py:emissions_report"]["schedules"]
    assert weekly == {"cron": "0 6 * * 1", "timezone": "UTC"}


@pytest.mark.slow
def test_prefect_deploys_the_report_and_the_study(prefect_server: None) -> None:
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.settings import PREFECT_API_URL

    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.create_work_pool(WorkPoolCreate(name="carbonshift-process", type="process"))
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--name",
         "emissions-report/weekly", "--name", "baseline-study/on-demand"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with get_client(sync_client=True) as client:
        weekly = client.read_deployment_by_name("emissions-report/weekly")
        study = client.read_deployment_by_name("baseline-study/on-demand")
    assert weekly.parameters == {"store": ".carbonshift/checkpoints", "days": 14}
    (schedule,) = weekly.schedules
    assert schedule.schedule.cron == "0 6 * * 1" and schedule.active
    assert study.parameters["regions"] == [LONDON, VIRGINIA]
