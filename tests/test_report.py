"""The emissions report over a ledger of recorded runs (written with ledger.append into a local
store, and once into S3 on moto): figures worked by hand, pending counterfactuals counted apart,
the empty period, the CSV and JSON-lines files, the markdown snapshot and the CLI."""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from carbonshift import report
from carbonshift.checkpoint import LocalStore
from carbonshift.checkpoint.store import open_store
from carbonshift.cli import main
from carbonshift.ledger import Counterfactual, EnergyStep, LedgerRecord, append, parse

SNAPSHOTS = Path(__file__).parent / "snapshots"
NOW = datetime(2026, 11, 30, 9, tzinfo=UTC)
LONDON, VIRGINIA = "aws:eu-west-2", "aws:us-east-1"


def snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no snapshot {name}: run with UPDATE_SNAPSHOTS=1 and review it"
    assert text == path.read_text(encoding="utf-8")


def record(run_id: str, job: str, region: str, ended: datetime, kg: float, *,
           run_now: float | None = None, pending: bool = False, best: float | None = None,
           delay_s: float = 0.0, energy_kwh: float = 10.0, measured: bool = True,
           previous: str | None = None, job_id: str | None = None, signal: str = "lca",
           marginal: float | None = None) -> LedgerRecord:
    started = ended - timedelta(hours=2)
    cfs = []
    if run_now is not None or pending:
        cfs.append(Counterfactual(kind="run-now-home", region=VIRGINIA,
                                  start=started - timedelta(seconds=delay_s),
                                  emissions_kg=None if pending else run_now, pending=pending))
    if best is not None:
        cfs.append(Counterfactual(kind="best-in-hindsight", region=LONDON, start=started,
                                  emissions_kg=best))
    return LedgerRecord(
        run_id=run_id, job=job, job_id=job_id or run_id, previous_run_id=previous,
        outcome="completed" if previous or job != "a" else "rescheduled", region=region,
        instance_type="g5.xlarge", submitted_at=started - timedelta(seconds=delay_s),
        started_at=started, ended_at=ended, energy_kwh=energy_kwh, energy_measured=measured,
        emissions_kg=kg, mean_g_per_kwh=kg / energy_kwh * 1000, signal=signal,
        counterfactuals=cfs, delay_s=delay_s, avoided_marginal_kg=marginal, cost_usd=2.0)


def ledger() -> list[LedgerRecord]:
    """Four segments of three jobs; job a was rescheduled once (a1 -> a2)."""
    day = NOW - timedelta(days=3)
    return [
        record("a1", "a", LONDON, day, 2.0, run_now=5.0, best=1.0, delay_s=3600, marginal=0.4),
        record("b1", "b", VIRGINIA, day + timedelta(hours=5), 4.0, run_now=4.0, best=2.0,
               measured=False),
        record("c1", "c", LONDON, day + timedelta(days=1), 1.5, pending=True, best=1.0,
               delay_s=7200),
        record("a2", "a", LONDON, day + timedelta(days=2), 1.0, run_now=1.5, best=0.5,
               delay_s=18000, previous="a1", job_id="a1"),
        # outside the default 14 days: never counted
        record("old", "a", LONDON, NOW - timedelta(days=20), 9.0, run_now=9.0),
    ]


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    found = LocalStore(tmp_path / "store")
    for r in ledger():
        append(found, r)
    return found


def test_the_figures_add_up_as_worked_by_hand(store: LocalStore) -> None:
    since, until = report.period(NOW, None, None, None)
    assert (since, until) == (NOW - timedelta(days=14), NOW)
    r = report.load(str(store.root), since, until)
    assert [s.record.run_id for s in r.segments] == ["a1", "b1", "c1", "a2"]
    (t,) = r.overall()
    assert t.emissions_kg == pytest.approx(8.5)
    assert (t.energy_kwh, t.measured_kwh) == (40.0, 30.0)
    # c1 is pending: out of the savings; a1 + b1 + a2 would have emitted 10.5 run-now, did 7.0
    assert (t.compared, t.pending, t.uncompared) == (3, 1, 0)
    assert t.pending_kg == pytest.approx(1.5)
    assert t.run_now_kg == pytest.approx(10.5) and t.saved_kg == pytest.approx(3.5)
    assert t.saved_fraction == pytest.approx(1 / 3)
    # possible: a1 4.0 + b1 2.0 + a2 1.0 = 7.0; captured: 3.0 + 0.0 + 0.5 = 3.5
    assert (t.possible_kg, t.captured_kg) == (pytest.approx(7.0), pytest.approx(3.5))
    assert t.share_of_possible == pytest.approx(0.5)
    # per job, the first start's delay: a 1 h (a2's 5 h is a resumed segment's), b 0, c 2 h
    assert sorted(t.delays_s) == [0, 3600, 7200]
    assert (t.delay(50), t.delay(90), t.delay(100)) == (3600, pytest.approx(6480), 7200)
    assert t.avoided_marginal_kg == pytest.approx(0.4)
    by_region = {x.key: x for x in r.by_region()}
    assert by_region[LONDON].emissions_kg == pytest.approx(4.5)
    assert by_region[LONDON].saved_kg == pytest.approx(3.5)
    assert by_region[VIRGINIA].saved_kg == pytest.approx(0.0)
    by_job = {x.key: x for x in r.by_job()}
    assert by_job["a"].segments == 2 and by_job["a"].delays_s == (3600,)
    assert by_job["c"].compared == 0 and by_job["c"].pending == 1


def test_signals_are_never_summed_together(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    append(store, record("x", "x", LONDON, NOW - timedelta(days=1), 1.0, signal="lca"))
    append(store, record("y", "y", LONDON, NOW - timedelta(days=1), 3.0, signal="direct"))
    r = report.load(str(store.root), NOW - timedelta(days=2), NOW)
    assert [(t.signal, t.emissions_kg) for t in r.overall()] == [("direct", 3.0), ("lca", 1.0)]
    text = report.markdown(r)
    assert "## Totals, direct intensity" in text and "## Totals, lca intensity" in text
    assert "1 segment with no run-now counterfactual" in text


def test_the_markdown_snapshot(store: LocalStore) -> None:
    r = report.load(str(store.root), *report.period(NOW, None, None, None))
    text = report.markdown(r, chart="report.svg").replace(store.uri, "file:///ledger")
    assert "pending" in text and "Share of possible savings: 50%" in text
    snapshot("report_markdown.md", text)


def test_csv_and_jsonl_outputs(store: LocalStore, tmp_path: Path) -> None:
    r = report.load(str(store.root), *report.period(NOW, None, None, None))
    written = report.write(r, tmp_path / "out")
    assert sorted(p.name for p in written) == sorted(report.FILES)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "report.csv").read_text())))
    assert [row["run_id"] for row in rows] == ["a1", "b1", "c1", "a2"]
    assert list(rows[0]) == list(report.CSV_COLUMNS)
    assert rows[0]["saved_kg"] == "3.0" and rows[0]["possible_kg"] == "4.0"
    assert rows[2]["run_now_kg"] == "" and rows[2]["run_now_pending"] == "True"
    again = parse((tmp_path / "out" / "ledger.jsonl").read_text(), "ledger.jsonl")
    assert again == [s.record for s in r.segments]  # the period's records, as the ledger has them
    svg = (tmp_path / "out" / "report.svg").read_text()
    assert "kg CO2" in svg and "run now, home region" in svg and "<dc:date>" not in svg
    assert svg == report.chart_svg(r)


def test_daily_run_now_is_shown_only_where_every_segment_has_one(store: LocalStore) -> None:
    r = report.load(str(store.root), *report.period(NOW, None, None, None))
    days, emitted, run_now = report.daily(r, "lca")
    assert len(days) == 15 and days[0] == (NOW - timedelta(days=14)).date()  # 09:00 to 09:00
    assert days[-1] == NOW.date()
    i = days.index((NOW - timedelta(days=3)).date())
    assert emitted[i] == pytest.approx(6.0) and run_now[i] == pytest.approx(9.0)
    assert emitted[i + 1] == pytest.approx(1.5) and run_now[i + 1] is None  # c1 is pending


def test_empty_period_has_a_clear_message_and_exit_code_3(
        store: LocalStore, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["report", "--store", str(store.root), "--since", "2026-01-01T00:00Z",
                 "--until", "2026-01-08T00:00Z"])
    err = capsys.readouterr().err
    assert code == report.EMPTY_EXIT_CODE == 3
    assert err.count("\n") == 1 and "no run ended between 2026-01-01 00:00 and 2026-01-08" in err
    empty = report.load(str(store.root), NOW - timedelta(days=60), NOW - timedelta(days=59))
    assert empty.empty and "Nothing to report" in report.markdown(empty)


def test_the_cli_prints_markdown_writes_files_and_json(
        store: LocalStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["report", "--store", str(store.root), "--until", NOW.isoformat(), "--days", "14"]
    assert main([*argv, "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Emissions report, 2026-11-16 09:00 to 2026-11-30 09:00 UTC")
    assert f"wrote {tmp_path / 'o' / 'report.csv'}" in out
    assert main([*argv, "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["segments"] == 4 and found["jobs"] == 3
    assert found["totals"][0]["saved_kg"] == pytest.approx(3.5)
    assert found["totals"][0]["pending_segments"] == 1


@pytest.mark.parametrize(("argv", "message"), [
    (["--days", "7", "--since", "2026-01-01T00:00Z"], "give --days or --since, not both"),
    (["--days", "0"], "--days 0.0: give more than 0 and at most 3650 days"),
    (["--days", "1e308"], "--days 1e+308: give more than 0 and at most 3650 days"),
    (["--days", "800000"], "at most 3650 days"),
    (["--since", "2026-02-01T00:00Z", "--until", "2026-01-01T00:00Z"], "is not before --until"),
    (["--store", "s3://"], "--store"),
])
def test_bad_periods_are_one_line_errors(
        tmp_path: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["report", "--store", str(tmp_path), *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err


@pytest.mark.integration
def test_a_ledger_in_s3(aws: str) -> None:
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="team-ledger")
    s3, _ = open_store("s3://team-ledger/runs")
    for r in ledger():
        append(s3, r)
    r = report.load("s3://team-ledger/runs", *report.period(NOW, None, None, None))
    assert [s.record.run_id for s in r.segments] == ["a1", "b1", "c1", "a2"]
    assert r.overall()[0].saved_kg == pytest.approx(3.5)
    uris = report.put(r, s3, "reports/week")
    assert uris[1] == "s3://team-ledger/runs/reports/week/report.csv"
    assert s3.get("reports/week/ledger.jsonl").decode() == report.jsonl_text(r)


def test_a_day_without_runs_has_no_run_now_figure(store: LocalStore) -> None:
    r = report.load(str(store.root), *report.period(NOW, None, None, None))
    days, emitted, run_now = report.daily(r, "lca")
    assert emitted[0] == 0.0 and run_now[0] is None


def test_a_period_without_offsets_is_utc() -> None:
    naive = datetime(2026, 11, 30, 9)
    assert report.period(naive, 7, None, None) == (NOW - timedelta(days=7), NOW)
    assert report.period(NOW, None, naive - timedelta(days=1), naive)[0].tzinfo is not None


def actual_trace(folder: Path, start: datetime, hours: int, g_per_kwh: float) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [f"{start + timedelta(hours=h):%Y-%m-%dT%H:%MZ},{g_per_kwh}" for h in range(hours)]
    (folder / "US-MIDA-PJM_actual.csv").write_text("timestamp,g_per_kwh\n" + "\n".join(rows))
    return folder


def test_traces_of_actuals_complete_a_pending_run_now(
        store: LocalStore, tmp_path: Path) -> None:
    """c1's run-now: 10 kWh from 05:00 on 2026-11-28 in Virginia at 300 g/kWh = 3.0 kg."""
    traces = actual_trace(tmp_path / "t", datetime(2026, 11, 27, tzinfo=UTC), 72, 300)
    r = report.load(str(store.root), *report.period(NOW, None, None, None), traces)
    (t,) = r.overall()
    assert (t.completed, t.pending, t.compared) == (1, 0, 4)
    assert t.run_now_kg == pytest.approx(13.5) and t.saved_kg == pytest.approx(5.0)
    assert t.share_of_possible == pytest.approx(5.0 / 9.0)
    text = report.markdown(r)
    assert f"Completed by this report: 1 run-now counterfactual pending in the ledger, from " \
           f"the recorded actual intensity in `{traces}`" in text
    row = report.rows(r)[2]
    assert (row["run_now_kg"], row["run_now_completed"], row["run_now_pending"]) == (
        pytest.approx(3.0), True, False)
    assert '"pending":true' in report.jsonl_text(r)  # the ledger's records are left as they are


def test_actuals_that_miss_the_window_leave_it_pending(
        store: LocalStore, tmp_path: Path) -> None:
    traces = actual_trace(tmp_path / "t", datetime(2026, 11, 28, 6, tzinfo=UTC), 24, 300)
    r = report.load(str(store.root), *report.period(NOW, None, None, None), traces)
    (t,) = r.overall()
    assert (t.completed, t.pending) == (0, 1)


def test_the_cli_completes_with_traces(
        store: LocalStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    traces = actual_trace(tmp_path / "t", datetime(2026, 11, 27, tzinfo=UTC), 72, 300)
    assert main(["report", "--store", str(store.root), "--until", NOW.isoformat(),
                 "--traces", str(traces), "--json"]) == 0
    totals = json.loads(capsys.readouterr().out)["totals"][0]
    assert (totals["completed_segments"], totals["pending_segments"]) == (1, 0)


def profiled(run_id: str = "p1") -> LedgerRecord:
    """2 kWh over 05:00-07:00 on 2026-11-28, all of it in the first hour (the second idle);
    its run-now counterfactual (Virginia, from 05:00) pending."""
    started = datetime(2026, 11, 28, 5, tzinfo=UTC)
    return LedgerRecord(
        run_id=run_id, job="p", job_id=run_id, outcome="completed", region=LONDON,
        instance_type="g5.xlarge", submitted_at=started, planned_at=started,
        started_at=started, ended_at=started + timedelta(hours=2), energy_kwh=2.0,
        energy_measured=True, emissions_kg=0.2, mean_g_per_kwh=100, signal="lca",
        home_region=VIRGINIA, counterfactuals=[Counterfactual(
            kind="run-now-home", region=VIRGINIA, start=started, pending=True)],
        profile=[EnergyStep(offset_s=0, duration_s=1800, energy_kwh=1.5),
                 EnergyStep(offset_s=1800, duration_s=1800, energy_kwh=0.5),
                 EnergyStep(offset_s=3600, duration_s=3600, energy_kwh=0.0)])


def stepped_trace(folder: Path) -> Path:
    """Virginia's actuals: 100 g/kWh 05:00-06:00, 500 g/kWh 06:00-07:00 on 2026-11-28."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["2026-11-28T04:00Z,900", "2026-11-28T05:00Z,100", "2026-11-28T06:00Z,500",
            "2026-11-28T07:00Z,900"]
    (folder / "US-MIDA-PJM_actual.csv").write_text("timestamp,g_per_kwh\n" + "\n".join(rows))
    return folder


def test_traces_complete_a_run_now_with_the_records_energy_profile(tmp_path: Path) -> None:
    """All 2 kWh fell in the first hour (100 g/kWh): 0.2 kg. Spread flat over both hours it
    would be 1 kWh x 100 + 1 kWh x 500 = 0.6 kg, which is not what the run drew."""
    store = LocalStore(tmp_path / "s")
    append(store, profiled())
    traces = stepped_trace(tmp_path / "t")
    r = report.load(str(store.root), *report.period(NOW, None, None, None), traces)
    assert r.segments[0].run_now_kg == pytest.approx(0.2)


def test_the_settle_path_and_the_traces_path_agree(tmp_path: Path) -> None:
    """The report flow settles from the providers (accounting.complete, the record's profile);
    `--traces` completes from recorded traces: the same record, the same actuals, one figure."""
    from carbonshift.traces import read_trace

    traces = stepped_trace(tmp_path / "t")
    (path,) = traces.iterdir()
    series = read_trace(path, signal="lca")
    store = LocalStore(tmp_path / "s")
    append(store, profiled())
    period = report.period(NOW, None, None, None)
    by_traces = report.load(str(store.root), *period, traces).segments[0].run_now_kg
    settled = report.load(str(store.root), *period, settle=lambda region, a, b: series, now=NOW)
    assert settled.segments[0].run_now_kg == pytest.approx(0.2) == by_traces


def windowed(folder: Path) -> tuple[LedgerRecord, Path]:
    """profiled(), emitting 0.15 kg, whose job could start 05:00-06:00 (deadline 08:00) in
    Virginia or London, its best slot pending; London's actuals 50 g/kWh from 04:00 to 09:00."""
    stepped_trace(folder)
    rows = [f"2026-11-28T{h:02d}:00Z,50" for h in range(4, 9)]
    (folder / "GB_actual.csv").write_text("timestamp,g_per_kwh\n" + "\n".join(rows))
    base = profiled()
    started = base.started_at
    best = Counterfactual(kind="best-in-hindsight", region=VIRGINIA, start=started, pending=True)
    return base.model_copy(update={
        "emissions_kg": 0.15, "deadline": started + timedelta(hours=3),
        "candidate_regions": [VIRGINIA, LONDON],
        "counterfactuals": [*base.counterfactuals, best]}), folder


def test_traces_complete_a_pending_best_slot_as_the_settle_path_does(tmp_path: Path) -> None:
    """In London the 2 kWh emit 2 x 50 g = 0.1 kg at any start; in Virginia the least is 0.2 kg
    (05:00, all of it at 100 g/kWh). Best 0.1 kg; run-now 0.2 kg; saved 0.05 of a possible 0.1."""
    from carbonshift.traces import read_trace

    record, folder = windowed(tmp_path / "t")
    store = LocalStore(tmp_path / "s")
    append(store, record)
    period = report.period(NOW, None, None, None)
    r = report.load(str(store.root), *period, folder, now=NOW)
    (seg,) = r.segments
    assert (seg.best_kg, seg.best_pending, seg.best_completed) == (pytest.approx(0.1), False, True)
    assert seg.run_now_kg == pytest.approx(0.2)
    (t,) = r.overall()
    assert (t.best_completed, t.share_of_possible) == (1, pytest.approx(0.5))
    assert ("Completed by this report: 1 run-now counterfactual and 1 best-in-hindsight "
            "counterfactual pending in the ledger") in report.markdown(r)
    assert report.rows(r)[0]["best_in_hindsight_completed"] is True
    assert report.jsonl_text(r).count('"pending":true') == 2  # the ledger is left as it was

    series = {VIRGINIA: read_trace(folder / "US-MIDA-PJM_actual.csv"),
              LONDON: read_trace(folder / "GB_actual.csv")}
    settled = report.load(str(store.root), *period, settle=lambda region, a, b: series[region],
                          now=NOW)
    assert settled.segments[0].best_kg == pytest.approx(seg.best_kg)


def test_a_best_slot_whose_window_has_not_passed_stays_pending(tmp_path: Path) -> None:
    record, folder = windowed(tmp_path / "t")
    store = LocalStore(tmp_path / "s")
    append(store, record)
    before_deadline = datetime(2026, 11, 28, 7, 30, tzinfo=UTC)
    period = report.period(NOW, None, None, None)
    (seg,) = report.load(str(store.root), *period, folder, now=before_deadline).segments
    assert (seg.best_kg, seg.best_pending, seg.best_completed) == (None, True, False)
    (london,) = [p for p in folder.iterdir() if p.name.startswith("GB")]
    london.unlink()  # a candidate region without actuals: pending too, after the deadline
    (seg,) = report.load(str(store.root), *period, folder, now=NOW).segments
    assert (seg.best_kg, seg.best_pending) == (None, True)


def completed_from_traces(tmp_path: Path, **changes: object) -> report.Segment:
    record, folder = windowed(tmp_path / "t")
    cfs = [c for c in record.counterfactuals if c.kind != "run-now-home"]
    store = LocalStore(tmp_path / "s")
    append(store, record.model_copy(update={"counterfactuals": cfs, **changes}))
    period = report.period(NOW, None, None, None)
    (seg,) = report.load(str(store.root), *period, folder, now=NOW).segments
    return seg


def test_a_record_without_a_run_now_counterfactual_still_gets_its_best_slot(
        tmp_path: Path) -> None:
    seg = completed_from_traces(tmp_path)
    assert (seg.best_kg, seg.best_completed, seg.run_now_kg) == (pytest.approx(0.1), True, None)


def test_a_completed_best_slot_is_never_above_the_run_now_the_ledger_knows(
        tmp_path: Path) -> None:
    """Run-now was settled from the providers at 0.05 kg; the traces' best is 0.1 kg. Run-now's
    slot is one of the best slot's candidates, so the best is 0.05, and nothing was possible."""
    run_now = Counterfactual(kind="run-now-home", region=VIRGINIA, start=profiled().started_at,
                             emissions_kg=0.05, signal="lca")
    record, _ = windowed(tmp_path / "t")
    best = [c for c in record.counterfactuals if c.kind == "best-in-hindsight"]
    seg = completed_from_traces(tmp_path, counterfactuals=[run_now, *best])
    assert (seg.best_kg, seg.run_now_kg, seg.possible_kg) == (
        pytest.approx(0.05), pytest.approx(0.05), pytest.approx(0.0))


def test_a_record_settled_on_marginal_intensity_is_not_completed_on_average_traces(
        tmp_path: Path) -> None:
    run_now = Counterfactual(kind="run-now-home", region=VIRGINIA, start=profiled().started_at,
                             emissions_kg=0.3, signal="moer")
    record, _ = windowed(tmp_path / "t")
    best = [c for c in record.counterfactuals if c.kind == "best-in-hindsight"]
    seg = completed_from_traces(tmp_path, counterfactuals=[run_now, *best],
                                marginal_emissions_kg=0.2)
    assert (seg.best_kg, seg.best_pending, seg.best_completed) == (None, True, False)


def test_a_record_without_a_profile_is_settled_flat_not_at_zero(tmp_path: Path) -> None:
    """An older record has no profile: its energy spread evenly, 1 kWh x 100 + 1 kWh x 500."""
    from carbonshift.traces import read_trace

    (path,) = stepped_trace(tmp_path / "t").iterdir()
    series = read_trace(path, signal="lca")
    store = LocalStore(tmp_path / "s")
    append(store, profiled().model_copy(update={"profile": []}))
    period = report.period(NOW, None, None, None)
    settled = report.load(str(store.root), *period, settle=lambda region, a, b: series, now=NOW)
    assert settled.segments[0].run_now_kg == pytest.approx(0.6)
    by_traces = report.load(str(store.root), *period, tmp_path / "t").segments[0].run_now_kg
    assert by_traces == pytest.approx(0.6)


def test_intervals_stood_in_for_are_counted_and_named(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    counted = {"intervals": 10, "intervals_on_forecast": 2, "intervals_on_fallback": 3}
    append(store, record("x", "x", LONDON, NOW - timedelta(days=1), 1.0).model_copy(
        update=counted))
    append(store, record("y", "y", LONDON, NOW - timedelta(days=1), 1.0).model_copy(
        update={"intervals": 4}))
    r = report.load(str(store.root), NOW - timedelta(days=2), NOW)
    (t,) = r.overall()
    assert (t.intervals, t.on_forecast, t.on_fallback) == (14, 2, 3)
    assert ("- Intensity: actual for 9 of 14 metered intervals that drew energy; 2 on the "
            "forecast, 3 on the fallback (the region's annual mean, no forecast either)"
            in report.markdown(r))
    row = next(csv.DictReader(io.StringIO(report.csv_text(r))))
    assert (row["intervals"], row["intervals_on_forecast"], row["intervals_on_fallback"]) == (
        "10", "2", "3")
    assert report.as_json(r)["totals"][0]["intervals_on_fallback"] == 3


def test_the_chart_draws_each_signal_in_its_own_panel(tmp_path: Path) -> None:
    """A ledger on two signals: one labelled panel per signal, as the tables keep them apart,
    each with its own days' figures (never one bar summing kg of both)."""
    import re

    store = LocalStore(tmp_path / "s")
    append(store, record("x", "x", LONDON, NOW - timedelta(days=1), 1.0, signal="lca",
                         run_now=2.0))
    append(store, record("y", "y", LONDON, NOW - timedelta(days=1), 3.0, signal="moer"))
    r = report.load(str(store.root), NOW - timedelta(days=2), NOW)
    svg = report.chart_svg(r)
    assert len(re.findall(r'<g id="axes_\d+">', svg)) == 2
    assert "lca intensity (location-based)" in svg and "moer intensity" in svg
    assert report.daily(r, "lca")[1][-2] == 1.0 and report.daily(r, "moer")[1][-2] == 3.0
    assert svg == report.chart_svg(r)  # deterministic


def attempt(started: datetime, kg: float) -> LedgerRecord:
    """One attempt of flow run `retried` (a retried flow run keeps its id), one hour long."""
    return record("retried", "r", LONDON, started + timedelta(hours=2), kg).model_copy(
        update={"started_at": started, "ended_at": started + timedelta(hours=1)})


def test_both_attempts_of_a_retried_flow_run_are_kept_and_counted(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    first = attempt(NOW - timedelta(hours=6), 1.0)  # failed after an hour: it drew energy
    second = attempt(NOW - timedelta(hours=4), 2.0)
    assert append(store, first) != append(store, second)
    r = report.load(str(store.root), NOW - timedelta(days=1), NOW)
    assert [s.record.emissions_kg for s in r.segments] == [1.0, 2.0]
    (t,) = r.overall()
    assert (t.segments, t.emissions_kg, t.energy_kwh) == (2, 3.0, 20.0)


def test_a_task_retry_writing_the_same_segment_again_is_one_record(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    segment = attempt(NOW - timedelta(hours=6), 1.0)
    key = append(store, segment)
    # settled later: the same segment, now with a figure, rewrites the same object
    assert append(store, segment.model_copy(update={"cost_usd": 3.0})) == key
    assert key == f"ledger/v1/{NOW:%Y-%m-%d}/retried.20261130T030000.000000Z.jsonl"
    (only,) = report.load(str(store.root), NOW - timedelta(days=1), NOW).segments
    assert only.record.cost_usd == 3.0


def test_records_under_the_older_key_are_read_and_settled_in_place(tmp_path: Path) -> None:
    """`ledger/v1/<day>/<run id>.jsonl`, written before the start was in the key: read, and
    rewritten where it is (never copied under the new key, which would count it twice)."""
    from carbonshift.ledger import entries, read
    from carbonshift.traces import read_trace

    store = LocalStore(tmp_path / "s")
    old = profiled()
    store.put(old.legacy_key(), old.line().encode())
    period = report.period(NOW, None, None, None)
    (path,) = stepped_trace(tmp_path / "t").iterdir()
    series = read_trace(path, signal="lca")
    settled = report.load(str(store.root), *period, settle=lambda region, a, b: series, now=NOW)
    assert settled.segments[0].run_now_kg == pytest.approx(0.2)
    assert [k for k, _ in entries(store, *period)] == [old.legacy_key()]
    (back,) = read(store, *period)
    assert not back.counterfactuals[0].pending  # settled in place
    # the same segment under both keys (an older writer and a newer one): counted once
    append(store, back)
    assert [k for k, _ in entries(store, *period)] == [back.key()]


def test_embodied_emissions_are_totalled_apart(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    append(store, record("x", "x", LONDON, NOW - timedelta(days=1), 1.0).model_copy(
        update={"gpu_hours": 8.0, "embodied_kg": 0.08}))
    append(store, record("y", "y", LONDON, NOW - timedelta(days=1), 2.0))  # no figure
    r = report.load(str(store.root), NOW - timedelta(days=2), NOW)
    (t,) = r.overall()
    assert t.emissions_kg == 3.0  # operational only
    assert (t.embodied_kg, t.gpu_hours, t.embodied_segments) == (0.08, 8.0, 1)
    assert ("- Embodied emissions (hardware manufacturing, an estimate shown apart, not added): "
            "0.0800 kg CO2e over 8.0 GPU-hours of 1 of 2 segments") in report.markdown(r)
    rows = list(csv.DictReader(io.StringIO(report.csv_text(r))))
    assert [row["embodied_kg"] for row in rows] == ["0.08", ""]
    assert report.as_json(r)["totals"][0]["embodied_kg"] == 0.08


# The evidence's runs: 14 s each, best-in-hindsight pending until the window (6 h) has passed.


def tiny(run_id: str, *, best_pending: bool = True, best: float | None = None) -> LedgerRecord:
    r = record(run_id, run_id, LONDON, NOW - timedelta(hours=1), 0.00027026,
               run_now=0.00027026, energy_kwh=0.0011266, measured=False)
    cf = Counterfactual(kind="best-in-hindsight", region=LONDON, start=r.started_at,
                        emissions_kg=None if best_pending else best, pending=best_pending)
    best_cfs = [cf] if best_pending or best is not None else []  # None: none recorded
    return r.model_copy(update={"counterfactuals": [*r.counterfactuals, *best_cfs],
                                "gpu_hours": 0.0037552, "embodied_kg": 3.8836e-05})


def tiny_report(*records: LedgerRecord) -> report.Report:
    return report.build(records, NOW - timedelta(days=1), NOW, "file:///ledger")


def test_a_pending_best_slot_is_called_pending_and_says_how_it_is_completed() -> None:
    r = tiny_report(tiny("e1"), tiny("e2"))
    (t,) = r.overall()
    assert (t.best_pending, t.possible_segments, t.share_of_possible) == (2, 0, None)
    text = report.markdown(r)
    assert ("- **Share of possible savings: pending** (the best slot in hindsight is pending "
            "for 2 segments: the actual intensity over its job's window, up to the deadline, is "
            "not all published yet; the `emissions-report` flow works it out from the providers "
            "once it is and writes it to the ledger, and later reports read it (`--traces DIR` "
            "works it out here from recorded actuals)).") in text
    assert "would have saved nothing" not in text and "not recorded" not in text
    assert report.as_json(r)["totals"][0]["best_pending_segments"] == 2


def test_a_share_over_some_segments_names_the_pending_rest() -> None:
    settled = record("a", "a", LONDON, NOW - timedelta(hours=2), 2.0, run_now=5.0, best=1.0)
    (line,) = [x for x in report.markdown(tiny_report(settled, tiny("e1"))).splitlines()
               if "Share of possible" in x]
    assert line.startswith("- **Share of possible savings: 75%** (3.000 of the 4.000 kg the "
                           "best slot in hindsight would have saved, over 1 of 2 segments; not "
                           "counted: the best slot in hindsight is pending for 1 segment:")


@pytest.mark.parametrize(("best", "why"), [
    (0.00027026, "the best slot in hindsight would have saved nothing against run-now, over 1 "
                 "of 1 segment"),
    (None, "no segment has both a run-now and a best-in-hindsight counterfactual recorded"),
])
def test_no_share_says_why(best: float | None, why: str) -> None:
    r = tiny_report(tiny("e1", best_pending=False, best=best))
    assert f"- **Share of possible savings: n/a** ({why})." in report.markdown(r)


def test_a_tiny_run_shows_three_significant_digits_and_the_files_stay_exact() -> None:
    r = tiny_report(tiny("e1"), tiny("e2"), tiny("e3"))
    text = report.markdown(r)
    # 3 x 0.00027026 kg = 0.00081078 kg; 3 x 0.0011266 kWh = 0.0033798 kWh
    assert "- **Emitted: 0.000811 kg CO2** from 0.00338 kWh (all of it estimated)." in text
    assert "0.0000 kg CO2e over 0.0113 GPU-hours" not in text
    assert "0.000117 kg CO2e over 0.0113 GPU-hours" in text
    assert "| e1 | lca | 1 | 0.00113 | 0.000270 | 0.000270 | 0.000 |" in text  # saved: exactly 0
    rows = list(csv.DictReader(io.StringIO(report.csv_text(r))))
    assert float(rows[0]["emissions_kg"]) == 0.00027026 and rows[0]["energy_kwh"] == "0.0011266"
    assert report.as_json(r)["totals"][0]["emissions_kg"] == pytest.approx(0.00081078, rel=1e-12)
    assert report.job_rows(r)[0]["emissions_kg"] == 0.00027


@pytest.mark.parametrize(("value", "decimals", "shown"), [
    (0.00027026, 3, "0.000270"), (0.0011266, 2, "0.00113"), (0.08, 3, "0.0800"),
    (0.5, 3, "0.500"), (15.35, 3, "15.350"), (0.0, 3, "0.000"), (8.0, 1, "8.0"),
    (-0.0042, 3, "-0.00420"), (0.0000123, 3, "0.000012"), (5.42e-20, 3, "0.000"),
    (-1e-12, 3, "0.000"), (1.53e-7, 3, "0.000"),
])
def test_figures_under_one_keep_three_significant_digits(value: float, decimals: int,
                                                         shown: str) -> None:
    assert report._fixed(value, decimals) == shown


def test_the_chart_has_headroom_above_its_highest_bar_or_dot() -> None:
    import matplotlib

    from carbonshift.charts import HEADROOM
    from carbonshift.study_charts import RC, Panel, report_figure

    day = NOW.date()
    panels = [Panel("lca", [0.00081, 0.0002], [0.00084, None]),
              Panel("direct", [3.0, 0.0], [None, None])]
    with matplotlib.rc_context(RC):
        fig = report_figure([day, day + timedelta(days=1)], panels, title="t")
    tops = [ax.get_ylim() for ax in fig.axes]
    assert tops[0] == (0, pytest.approx(0.00084 * (1 + HEADROOM)))  # the dot is the highest
    assert tops[1] == (0, pytest.approx(3.0 * (1 + HEADROOM)))
