"""The charts: deterministic SVG (snapshot-tested), labelled axes with hour ticks, units, a
legend, the window shaded and the monitor's stops marked; safe to draw from several threads.
matplotlib writes each text it draws as glyph paths preceded by an XML comment with the text,
which is what these tests read. UPDATE_SNAPSHOTS=1 rewrites the snapshots (review the diff)."""

from __future__ import annotations

import dataclasses
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from xml.etree import ElementTree

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib import rc_context

from carbonshift.charts import (
    _MAX_TICKS,
    _RC,
    _TICK_MINUTES,
    HEADROOM,
    Mark,
    _run_figure,
    _tick_minutes,
    monitor_checks,
    plan_chart_svg,
    report_chart_svg,
    run_chart_svg,
    stop_marks,
)
from carbonshift.energy import Accounting, Sample
from carbonshift.monitor import Assessment, Verdict
from carbonshift.plan import Slot
from carbonshift.run import RunReport
from tests.helpers import T0, series_at
from tests.test_artifacts import snapshot

H = timedelta(hours=1)
EAST = series_at([300, 280, 120, 100, 260, 300] * 2, step_min=60)
LONDON = series_at([200, 90, 80, 210, 220, 230] * 2, step_min=60, zone="GB")


def texts(svg: str) -> list[str]:
    return [t.strip() for t in re.findall(r"<!-- (.*?) -->", svg)]


def slot(region: str, start_h: float, end_h: float, segments: list[tuple[float, float]]) -> Slot:
    return Slot(
        region=region, instance_type="g5.xlarge", start=T0 + start_h * H, end=T0 + end_h * H,
        segments=[(T0 + a * H, T0 + b * H) for a, b in segments],
        duration_s=3600 * (end_h - start_h),
        mean_g_per_kwh=85.0, energy_kwh=0.5, emissions_kg=0.04, cost_usd=2.0, objective=0.04,
        source="test", signal="lca", coverage=1.0)


def history() -> list[Assessment]:
    at = (T0 + 2.5 * H).timestamp()
    return [
        Assessment(Verdict.CONTINUE, "grace period", (T0 + 1.1 * H).timestamp()),
        Assessment(Verdict.CONTINUE, "ok", (T0 + 2 * H).timestamp(), 95.0, 90.0),
        Assessment(Verdict.STOP, "actual 150 g/kWh is +50% above the forecast 100", at,
                   150.0, 100.0),
    ]


def test_plan_chart_has_hour_ticks_units_legend_title_and_the_window() -> None:
    svg = plan_chart_svg({"aws:us-east-1": EAST, "aws:eu-west-2": LONDON},
                         slot("aws:eu-west-2", 1, 3, []), title="nightly: forecast per region")
    found = texts(svg)
    ticks = [t for t in found if re.fullmatch(r"\d\d:00", t)]
    assert ticks == [f"{h:02d}:00" for h in range(0, 13, 2)]  # 12 hours: a tick every 2 hours
    assert "time (UTC), from 2020-01-01 00:00" in found
    assert "carbon intensity (gCO2/kWh)" in found
    assert "nightly: forecast per region" in found
    assert {"aws:us-east-1", "aws:eu-west-2", "chosen run, aws:eu-west-2"} <= set(found)
    ElementTree.fromstring(svg)  # well-formed XML: a browser would refuse it otherwise


def test_plan_chart_shades_each_segment_of_an_interruptible_run() -> None:
    one = plan_chart_svg({"aws:eu-west-2": LONDON}, slot("aws:eu-west-2", 1, 5, []))
    two = plan_chart_svg({"aws:eu-west-2": LONDON}, slot("aws:eu-west-2", 1, 5, [(1, 2), (4, 5)]))
    # One shaded rectangle per segment in the plot (clipped to it), and one in the legend.
    shaded = re.compile(r'clip-path="url\(#\w+\)" style="fill: #4daf4a; opacity: 0.25"')
    assert len(shaded.findall(one)) == 1 and len(shaded.findall(two)) == 2
    assert two.count("fill: #4daf4a; opacity: 0.25") == 3
    assert texts(two).count("chosen run, aws:eu-west-2") == 1  # in the legend once


def test_plan_chart_without_forecast_says_so() -> None:
    svg = plan_chart_svg({}, None)
    assert "no forecast" in texts(svg)


def test_plan_chart_snapshot_is_deterministic() -> None:
    draw = lambda: plan_chart_svg(  # noqa: E731
        {"aws:us-east-1": EAST, "aws:eu-west-2": LONDON}, slot("aws:eu-west-2", 1, 3, []),
        title="nightly: forecast per region")
    svg = draw()
    assert svg == draw()
    assert "<dc:date>" not in svg  # no date in the metadata: the same bytes on every run
    snapshot("plan_chart.svg", svg)


def run_svg() -> str:
    return run_chart_svg(EAST, LONDON, T0 + H, T0 + 4 * H, stop_marks(history()),
                         monitor_checks(history()), title="nightly: forecast vs actual")


def test_run_chart_marks_the_stop_and_labels_everything() -> None:
    found = texts(run_svg())
    assert "forecast miss: re-plan (150 vs 100)" in found
    assert {"run", "forecast (test:A)", "actual (test:GB)", "actual at monitor checks",
            "monitor stop / re-plan", "carbon intensity (gCO2/kWh)",
            "nightly: forecast vs actual"} <= set(found)
    assert [t for t in found if re.fullmatch(r"\d\d:00", t)] == [
        f"{h:02d}:00" for h in range(0, 13, 2)]


def test_run_chart_snapshot() -> None:
    svg = run_svg()
    assert svg == run_svg()
    snapshot("run_chart.svg", svg)


def test_run_chart_of_a_short_run_without_actuals_has_minute_ticks_and_says_so() -> None:
    planned = series_at([100, 120, 110], step_min=5)
    svg = run_chart_svg(planned, None, T0, T0 + timedelta(minutes=12))
    found = texts(svg)
    assert "no actual intensity" in found
    # 15 minutes drawn: a tick every 2 minutes (every 5 would leave 4 ticks, fewer than fit).
    assert [t for t in found if re.fullmatch(r"\d\d:\d\d", t)] == [
        f"00:{m:02d}" for m in range(0, 15, 2)]


def test_a_run_of_a_few_minutes_gets_a_tick_per_minute() -> None:
    planned = series_at([100, 120], step_min=1)
    found = texts(run_chart_svg(planned, None, T0, T0 + timedelta(minutes=1)))
    ticks = [t for t in found if re.fullmatch(r"\d\d:\d\d", t)]
    assert len(ticks) >= 3 and ticks == [f"00:{m:02d}" for m in range(len(ticks))]


def test_run_chart_refuses_an_end_before_the_start() -> None:
    with pytest.raises(ValueError, match="^run_end: .* before run_start"):
        run_chart_svg(None, None, T0 + H, T0)


def test_stop_marks_label_forecast_misses_interruptions_and_the_limit() -> None:
    at = T0.timestamp()
    marks = stop_marks([
        Assessment(Verdict.CONTINUE, "ok", at, 90.0, 90.0),
        Assessment(Verdict.STOP, "above", at + 60, 150.0, 100.0),
        Assessment(Verdict.STOP, "the instance was interrupted", at + 120),
        Assessment(Verdict.HALT, "limit", at + 180),
    ])
    assert marks == [Mark(T0 + timedelta(seconds=60), "forecast miss: re-plan (150 vs 100)"),
                     Mark(T0 + timedelta(seconds=120), "interrupted: re-plan"),
                     Mark(T0 + timedelta(seconds=180), "stopped (re-plan limit)")]
    assert monitor_checks(history()) == [(T0 + 2 * H, 95.0), (T0 + 2.5 * H, 150.0)]


def report(samples: list[Sample]) -> RunReport:
    return RunReport(
        job="nightly", run_id="r1", region="aws:eu-west-2", instance="i-1", outcome=None,
        verdict=history()[-1], history=history(), samples=samples, meter_label="estimate",
        accounting=Accounting(0.5, 0.05, 0.1, "actual", 3), released=True)


def test_report_chart_spans_the_metered_run() -> None:
    samples = [Sample((T0 + H).timestamp(), 0.0), Sample((T0 + 4 * H).timestamp(), 1.8e6)]
    svg = report_chart_svg(report(samples), EAST, LONDON)
    assert svg is not None
    found = texts(svg)
    assert "nightly: forecast vs actual intensity in aws:eu-west-2" in found
    assert "forecast miss: re-plan (150 vs 100)" in found
    assert report_chart_svg(report([]), EAST, None) is None


def test_charts_drawn_on_threads_equal_the_ones_drawn_alone() -> None:
    alone = [run_svg(), plan_chart_svg({"aws:us-east-1": EAST}, None)]
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda _: run_svg(), range(4)))
        plans = list(pool.map(lambda _: plan_chart_svg({"aws:us-east-1": EAST}, None), range(4)))
    assert set(runs) == {alone[0]} and set(plans) == {alone[1]}


@given(st.integers(min_value=1, max_value=60 * 24 * 60))
def test_tick_spacing_keeps_few_ticks_and_whole_hours_past_two_hours(span_min: int) -> None:
    minutes = _tick_minutes(timedelta(minutes=span_min))
    assert span_min / minutes <= _MAX_TICKS
    if span_min > 30 * _MAX_TICKS:  # past 4.5 hours, ticks fall on whole hours
        assert minutes % 60 == 0
    # The smallest spacing that fits: every smaller one would draw too many ticks.
    assert all(span_min / m > _MAX_TICKS for m in _TICK_MINUTES if m < minutes)


def test_a_chart_over_days_ticks_every_six_hours_with_the_day() -> None:
    two_days = series_at([100.0] * 48, step_min=60)
    found = texts(plan_chart_svg({"aws:us-east-1": two_days}, None))
    # Each tick is a line with the day and a line with the hour: 01 Jan 00:00 to 03 Jan 00:00.
    assert [t for t in found if re.fullmatch(r"\d\d Jan", t)] == ["01 Jan"] * 4 + ["02 Jan"] * 4 + [
        "03 Jan"]
    assert [t for t in found if re.fullmatch(r"\d\d:00", t)] == [
        "00:00", "06:00", "12:00", "18:00"] * 2 + ["00:00"]


# Layout: nothing cut off at the SVG's edge, no line on the frame's top edge.


def sourced(values: list[float], source: str) -> object:
    return dataclasses.replace(series_at(values, step_min=1, zone="GB"), source=source)


def test_a_long_source_label_is_shown_whole_inside_the_figure() -> None:
    # The evidence's run: a 14 s run, forecast and actual replayed from a CSV whose name made
    # the legend run past the SVG's right edge ("forecast (replay:csv:GB_mi").
    source = "replay:csv:GB_minutes.csv"
    planned, actual = sourced([220, 218, 215, 210], source), sourced([240], source)
    args = (planned, actual, T0 + timedelta(seconds=40), T0 + timedelta(seconds=54))
    found = texts(run_chart_svg(*args))  # type: ignore[arg-type]
    # Wrapped (one line per comment), never shortened: every character of the label is drawn.
    for kind in ("forecast", "actual"):
        first = found.index(f"{kind} (replay:csv:GB_")
        assert found[first] + found[first + 1] == f"{kind} ({source})"
    with rc_context(_RC):
        fig = _run_figure(*args, (), (), "t", 720, 300)  # type: ignore[arg-type]
        drawn = fig.get_tightbbox()  # every artist's extent, in inches
    assert drawn is not None
    assert drawn.x0 >= 0 and drawn.y0 >= 0
    assert drawn.x1 <= 720 / 96 and drawn.y1 <= 300 / 96, drawn


@settings(max_examples=12, deadline=None)
@given(st.lists(st.sampled_from(["GB", "minutes", "electricitymaps", "carbon-intensity",
                                 "x" * 30, "history", "2026"]), min_size=1, max_size=6),
       st.sampled_from([":", "/", "_", "-"]))
def test_any_legend_fits_inside_the_figure(words: list[str], sep: str) -> None:
    source = sep.join(words)
    with rc_context(_RC):
        fig = _run_figure(sourced([200, 250], source), sourced([240, 260], source), T0,
                          T0 + timedelta(minutes=2), (), (), "t", 720, 300)  # type: ignore[arg-type]
        drawn = fig.get_tightbbox()
    assert drawn is not None and drawn.x1 <= 720 / 96 and drawn.y1 <= 300 / 96, (source, drawn)


def test_the_highest_value_has_headroom_above_it() -> None:
    with rc_context(_RC):
        fig = _run_figure(EAST, LONDON, T0 + H, T0 + 4 * H, (), [(T0 + 2 * H, 330.0)], "t",
                          720, 300)
    bottom, top = fig.axes[0].get_ylim()
    highest = max(*EAST.g_per_kwh, *LONDON.g_per_kwh, 330.0)
    assert bottom == 0 and top == pytest.approx(highest * (1 + HEADROOM))
    assert top >= highest * 1.08
