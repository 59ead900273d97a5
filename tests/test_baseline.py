"""The baseline study: emissions for every start hour against a brute-force integration,
hand-worked examples on two regions over three days, the hour-of-day x region aggregation, the
CLI, and bad input refused in one line."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonshift import baseline
from carbonshift.baseline import (
    BaselineError,
    EnergyProfile,
    Segment,
    StudyRequest,
    emissions_kg,
    hours_of_day,
    mean_by_hour,
    profile_from,
)
from carbonshift.catalog import Catalog
from carbonshift.checkpoint import LocalStore
from carbonshift.cli import main
from carbonshift.ledger import LedgerRecord, append
from carbonshift.series import IntensitySeries, Signal
from carbonshift.study_charts import baseline_heatmap_svg

DAY0 = datetime(2023, 1, 2, tzinfo=UTC)
LONDON, VIRGINIA = "aws:eu-west-2", "aws:us-east-1"


def brute_force_kg(series: IntensitySeries, segments: list[tuple[float, float]], start_s: float
                   ) -> float:
    """Each segment's energy in each series interval it overlaps, times that interval's value:
    no cumulative integral, no interpolation."""
    total_g = 0.0
    t = start_s
    for duration_s, power_w in segments:
        a, b = t, t + duration_s
        for i, value in enumerate(series.g_per_kwh):
            lo = series.start_s + i * series.step_s
            overlap = min(b, lo + series.step_s) - max(a, lo)
            if overlap > 0:
                total_g += power_w / 1000 * overlap / 3600 * value
        t = b
    return total_g / 1000


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(0, 1500), min_size=4, max_size=60),
    step_s=st.sampled_from([900, 1800, 3600]),
    segments=st.lists(
        st.tuples(st.integers(1, 12 * 60).map(lambda m: m * 60.0), st.floats(0, 20_000)),
        min_size=1, max_size=4),
    offsets=st.lists(st.integers(0, 40 * 3600), min_size=1, max_size=8),
)
def test_every_start_matches_a_brute_force_integration(
    values: list[float], step_s: int, segments: list[tuple[float, float]], offsets: list[int]
) -> None:
    series = IntensitySeries(1_700_000_100, step_s, np.array(values), Signal.LCA, "t", "Z")
    profile = profile_from(None, None, segments)
    starts = series.start_s + np.array(offsets, dtype=np.int64)
    got = emissions_kg(series, profile, starts)
    for start, kg in zip(starts, got, strict=True):
        if start + profile.duration_s > series.end_s:
            assert math.isnan(kg)  # the run leaves the history: no figure, never a guess
        else:
            assert kg == pytest.approx(brute_force_kg(series, segments, float(start)),
                                       rel=1e-9, abs=1e-12)


def write_traces(folder: Path, days: int = 3) -> Path:
    """GB: 100 g/kWh but 10 from 02:00 to 03:00 UTC each day; US-MIDA-PJM: 200 throughout."""
    folder.mkdir(parents=True, exist_ok=True)
    hours = [DAY0 + timedelta(hours=h) for h in range(24 * days)]
    gb = [f"{t:%Y-%m-%dT%H:%MZ},{10 if t.hour == 2 else 100}" for t in hours]
    pjm = [f"{t:%Y-%m-%dT%H:%MZ},200" for t in hours]
    (folder / "GB_test.csv").write_text("timestamp,g_per_kwh\n" + "\n".join(gb) + "\n")
    (folder / "US-MIDA-PJM_test.csv").write_text("timestamp,g_per_kwh\n" + "\n".join(pjm) + "\n")
    return folder


def two_region_study(tmp_path: Path, catalog: Catalog, **options: object
                     ) -> baseline.BaselineStudy:
    request = StudyRequest(regions=[LONDON, VIRGINIA], energy_kwh=1.0, duration_s=7200,
                           traces=str(write_traces(tmp_path / "traces")), **options)
    return baseline.run(request, catalog)


def test_hand_worked_two_regions_three_days(tmp_path: Path, catalog: Catalog) -> None:
    """1 kWh over 2 h is 0.5 kW: a run over the 10 g hour in London emits 0.5 x (10 + 100) g =
    0.055 kg, any other London run 0.1 kg, every Virginia run 0.2 kg."""
    s = two_region_study(tmp_path, catalog)
    assert len(s.starts_s) == 71  # 72 hours, and the last start must end by the traces' end
    assert s.starts_s[0] == DAY0.timestamp() and np.all(np.diff(s.starts_s) == 3600)
    london, virginia = s.regions
    expected = np.full(24, 0.1)
    expected[[1, 2]] = 0.055
    np.testing.assert_allclose(london.by_hour_kg, expected, rtol=1e-12)
    np.testing.assert_allclose(virginia.by_hour_kg, 0.2, rtol=1e-12)
    assert (london.best_hour, london.median_kg) == (1, pytest.approx(0.1))
    x = s.summary()
    assert x["best"] == {"region": LONDON, "hour": 1, "mean_kg": pytest.approx(0.055)}
    assert x["worst"]["region"] == VIRGINIA and x["worst"]["mean_kg"] == pytest.approx(0.2)
    assert x["usual"] == {"region": LONDON, "median_kg": pytest.approx(0.1)}
    assert x["best_vs_worst_kg"] == pytest.approx(0.145)
    assert x["best_vs_worst_fraction"] == pytest.approx(0.725)
    assert x["best_vs_usual_kg"] == pytest.approx(0.045)
    assert x["best_vs_usual_fraction"] == pytest.approx(0.45)


def test_since_and_until_bound_the_starts_and_the_runs(tmp_path: Path, catalog: Catalog) -> None:
    s = two_region_study(tmp_path, catalog, since=DAY0 + timedelta(hours=1, minutes=30),
                         until=DAY0 + timedelta(hours=6))
    # whole hours from 02:00; the last 2 h run must end by 06:00
    assert [datetime.fromtimestamp(int(t), UTC).hour for t in s.starts_s] == [2, 3, 4]
    assert s.regions[0].emissions_kg.tolist() == pytest.approx([0.055, 0.1, 0.1])


def test_hours_of_day_in_local_time_follow_daylight_saving() -> None:
    winter = datetime(2023, 1, 10, 5, tzinfo=UTC).timestamp()
    summer = datetime(2023, 7, 10, 4, tzinfo=UTC).timestamp()
    starts = np.array([winter, summer], dtype=np.int64)
    assert hours_of_day(starts, "local", "America/New_York").tolist() == [0, 0]
    assert hours_of_day(starts, "utc", "America/New_York").tolist() == [5, 4]


def test_local_time_moves_the_cheap_hour(tmp_path: Path, catalog: Catalog) -> None:
    s = two_region_study(tmp_path, catalog, local_time=True)
    assert s.regions[0].best_hour == 1  # London is on UTC in January
    request = StudyRequest(regions=[VIRGINIA], energy_kwh=1.0, duration_s=7200,
                           traces=str(tmp_path / "traces"), local_time=True)
    assert baseline.run(request, catalog).clock == "local"


def test_hour_of_day_aggregation_is_the_mean_of_its_starts() -> None:
    kg = np.array([1.0, 2.0, 3.0, 10.0, 5.0])
    hours = np.array([0, 0, 5, 23, 5])
    means = mean_by_hour(kg, hours)
    assert means[0] == 1.5 and means[5] == 4.0 and means[23] == 10.0
    assert np.isnan(means[[1, 2, 3, 4, 6, 22]]).all()  # no start: no figure, not 0


def test_a_segmented_profile_weights_each_interval_by_its_power(
        tmp_path: Path, catalog: Catalog) -> None:
    """1 h at 1000 W then 1 h at 0 W: a London start at 02:00 meets only the 10 g hour."""
    request = StudyRequest(regions=[LONDON], segments=[Segment(duration_s=3600, power_w=1000),
                                                       Segment(duration_s=3600, power_w=0)],
                           traces=str(write_traces(tmp_path / "t")))
    s = baseline.run(request, catalog)
    assert s.regions[0].by_hour_kg[2] == pytest.approx(0.010)
    assert s.regions[0].by_hour_kg[1] == pytest.approx(0.100)
    assert s.profile.energy_kwh == pytest.approx(1.0)


def test_a_ledger_records_profile_is_its_energy_over_its_run(
        tmp_path: Path, catalog: Catalog) -> None:
    store = LocalStore(tmp_path / "store")
    append(store, LedgerRecord(
        run_id="run-7", job="nightly", job_id="run-7", outcome="completed", region=LONDON,
        instance_type="g5.xlarge", started_at=datetime(2026, 5, 1, 8, tzinfo=UTC),
        ended_at=datetime(2026, 5, 1, 10, tzinfo=UTC), energy_kwh=1.0, energy_measured=True,
        emissions_kg=0.1, mean_g_per_kwh=100, signal="lca"))
    request = StudyRequest(ledger_record="run-7", store=str(tmp_path / "store"),
                           traces=str(write_traces(tmp_path / "t")))
    s = baseline.run(request, catalog)
    assert [r.region for r in s.regions] == [LONDON]  # the record's region by default
    assert s.profile.source == "ledger record run-7"
    assert s.profile.duration_s == 7200 and s.profile.energy_kwh == pytest.approx(1.0)
    assert s.regions[0].by_hour_kg[1] == pytest.approx(0.055)
    with pytest.raises(BaselineError, match="--ledger-record 'run-8': no such run"):
        baseline.run(request.model_copy(update={"ledger_record": "run-8"}), catalog)


@pytest.mark.parametrize(("request_fields", "message"), [
    ({"regions": [LONDON], "energy_kwh": 1.0}, r"duration \(--duration\) is missing"),
    ({"regions": [LONDON], "duration_s": 60}, r"energy_kwh \(--energy-kwh\) is missing"),
    ({"regions": [], "energy_kwh": 1.0, "duration_s": 3600}, r"regions \(--region\) is missing"),
    ({"regions": ["aws:eu-west-1"], "energy_kwh": 1.0, "duration_s": 3600},
     "no trace of its zone IE"),
    ({"regions": [LONDON], "energy_kwh": 1.0, "duration_s": 5 * 86400},
     "holds no whole-hour start of a 120h run"),
    ({"regions": [LONDON], "energy_kwh": 1.0, "duration_s": 60,
      "segments": [Segment(duration_s=60, power_w=1)]}, "not both"),
    ({"regions": [LONDON], "ledger_record": "r"}, r"needs store \(--store\)"),
    ({"regions": ["mars:north-1"], "energy_kwh": 1.0, "duration_s": 60}, "unknown region"),
])
def test_bad_requests_are_one_line_errors(
        tmp_path: Path, catalog: Catalog, request_fields: dict[str, object], message: str
) -> None:
    request = StudyRequest(traces=str(write_traces(tmp_path / "t")), **request_fields)
    with pytest.raises(ValueError, match=message) as caught:
        baseline.run(request, catalog)
    assert "\n" not in str(caught.value)


def test_bad_segments_name_the_segment() -> None:
    with pytest.raises(BaselineError, match=r"segment 1: duration_s: .*greater than 0") as caught:
        profile_from(None, None, [(60, 5), (0, 5)])
    assert "\n" not in str(caught.value)
    with pytest.raises(BaselineError, match="energy_kwh"):
        EnergyProfile.flat(math.nan, 60)


def test_the_cli_prints_the_table_and_json(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    traces = write_traces(tmp_path / "t")
    chart = tmp_path / "heat.svg"
    argv = ["baseline", "--region", LONDON, "--region", VIRGINIA, "--energy-kwh", "1",
            "--duration", "2h", "--traces", str(traces)]
    assert main([*argv, "--chart", str(chart)]) == 0
    out = capsys.readouterr().out
    assert "mean kg CO2 per run by start hour (UTC)" in out
    # 0.055 kg shows as 0.05 or 0.06 (its last bit decides); 0.1 and 0.2 are exact
    assert re.search(r"^01:00 +0\.0[56] +0\.20$", out, re.M), out
    assert re.search(r"^05:00 +0\.10 +0\.20$", out, re.M), out
    assert f"Best slot: {LONDON} at 01:00 UTC" in out
    assert chart.read_text().startswith("<?xml")
    # The output says where the heat-map went (its last line), and nothing when none was asked.
    assert out.splitlines()[-1] == f"wrote {chart} (heat-map)"
    assert main(argv) == 0
    assert "wrote" not in capsys.readouterr().out
    assert main([*argv, "--json", "--chart", str(tmp_path / "h2.svg")]) == 0
    assert json.loads(capsys.readouterr().out)["files"] == [str(tmp_path / "h2.svg")]
    assert main([*argv, "--json", "--local-time"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["files"] == []
    assert found["hours"] == "local time of each region"
    assert found["starts"] == 71 and found["summary"]["best"]["region"] == LONDON
    assert found["regions"][1]["mean_kg_by_hour"][0] == pytest.approx(0.2)


@pytest.mark.parametrize(("argv", "message"), [
    (["--energy-kwh", "-1", "--duration", "2h"], "--energy-kwh: .*give 0 or more kWh"),
    (["--energy-kwh", "1", "--duration", "0"], "--duration: .*more than 0"),
    (["--segment", "2h"], "write DURATION:POWER_W"),
    (["--segment", "2h:-5"], "watts, 0 or more"),
    (["--energy-kwh", "1", "--duration", "2h", "--since", "tomorrow"], "cannot read time"),
])
def test_bad_options_are_refused_by_argparse(
        argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["baseline", "--region", LONDON, *argv])
    assert done.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.search(message, err), err


def test_a_study_error_exits_2_with_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["baseline", "--region", "aws:eu-west-1", "--energy-kwh", "1", "--duration",
                 "1h", "--traces", str(write_traces(tmp_path / "t"))])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "no trace of its zone IE" in err


def test_the_heatmap_is_deterministic_and_labelled(tmp_path: Path, catalog: Catalog) -> None:
    s = two_region_study(tmp_path, catalog)
    svg = baseline_heatmap_svg(s)
    assert svg == baseline_heatmap_svg(s)  # same figures, same bytes (no date, fixed salt)
    for label in (LONDON, VIRGINIA, "start hour (UTC)", "kg CO2 per run (mean)", "best slot",
                  ">00<", ">23<", "0.1<", "0.2<"):
        assert label in svg, label
    assert "<dc:date>" not in svg


def test_bundled_traces_give_a_full_year(catalog: Catalog) -> None:
    s = baseline.run(StudyRequest(regions=[LONDON, VIRGINIA], energy_kwh=40, duration_s=4 * 3600),
                     catalog)
    assert len(s.starts_s) == 8757  # 2023's 8760 hours, less the 3 whose 4 h run leaves it
    assert not np.isnan(np.array([r.by_hour_kg for r in s.regions])).any()
    best, worst = s.slot("best"), s.slot("worst")
    assert best[2] < s.home.median_kg < worst[2]


def test_naive_since_and_until_are_utc(tmp_path: Path, catalog: Catalog) -> None:
    s = two_region_study(tmp_path, catalog, since=datetime(2023, 1, 2, 2),
                         until=datetime(2023, 1, 2, 5))
    assert [datetime.fromtimestamp(int(t), UTC).hour for t in s.starts_s] == [2, 3]


def test_a_ledger_record_with_a_metered_profile_gives_that_profile() -> None:
    """1.5 kWh in 30 min (3 kW), nothing metered for 30 min (a gap: 0 W), 0.5 kWh in 60 min."""
    from carbonshift.ledger import EnergyStep

    record = LedgerRecord(
        run_id="run-9", job="nightly", job_id="run-9", outcome="completed", region=LONDON,
        instance_type="g5.xlarge", started_at=datetime(2026, 5, 1, 8, tzinfo=UTC),
        ended_at=datetime(2026, 5, 1, 10, tzinfo=UTC), energy_kwh=2.0, energy_measured=True,
        emissions_kg=0.1, mean_g_per_kwh=50, signal="lca",
        profile=[EnergyStep(offset_s=0, duration_s=1800, energy_kwh=1.5),
                 EnergyStep(offset_s=3600, duration_s=3600, energy_kwh=0.5)])
    p = EnergyProfile.of_record(record)
    assert [(s.duration_s, s.power_w) for s in p.segments] == [
        (1800, pytest.approx(3000)), (1800, 0.0), (3600, pytest.approx(500))]
    assert p.energy_kwh == pytest.approx(2.0) and p.duration_s == 7200
    assert p.source == "ledger record run-9 (its metered profile)"


def test_a_retried_runs_latest_attempt_is_studied(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    first = LedgerRecord(
        run_id="run-7", job="nightly", job_id="run-7", outcome="failed", region=LONDON,
        instance_type="g5.xlarge", started_at=datetime(2026, 5, 1, 8, tzinfo=UTC),
        ended_at=datetime(2026, 5, 1, 9, tzinfo=UTC), energy_kwh=0.5, energy_measured=True,
        emissions_kg=0.05, mean_g_per_kwh=100, signal="lca")
    second = first.model_copy(update={
        "outcome": "completed", "started_at": datetime(2026, 5, 1, 10, tzinfo=UTC),
        "ended_at": datetime(2026, 5, 1, 12, tzinfo=UTC), "energy_kwh": 1.0})
    append(store, second)
    append(store, first)
    append(store, first.model_copy(update={"run_id": "run-77"}))  # a prefix of no concern
    assert baseline.find_record(store, "run-7") == second
