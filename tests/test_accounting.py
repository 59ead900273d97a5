"""The accounting against hand-worked examples and an independent brute-force integration:
intervals straddling intensity steps, missing actuals named, counterfactuals on actual intensity
(pending until published), the best slot in hindsight, the share of possible savings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonshift.accounting import (
    EPS_KG,
    Segment,
    best_in_hindsight,
    complete,
    figures,
    profile_of,
    replay_kg,
    run_now_home,
    settle,
    share_of_possible,
)
from carbonshift.energy import Accounting, Sample, account
from carbonshift.ledger import DeviceEnergy, EnergyStep
from carbonshift.series import IntensitySeries, Signal
from tests.helpers import T0, series_at

S = T0.timestamp()
KWH = 3.6e6  # joules
LATER = T0 + timedelta(days=3)  # every window below has passed: actuals are published


def actuals_from(by_region: Mapping[str, IntensitySeries | None]):  # type: ignore[no-untyped-def]
    """The actual-intensity port over fixed series; records what was asked."""
    asked: list[tuple[str, float, float]] = []

    def fetch(region: str, start_s: float, end_s: float) -> IntensitySeries | None:
        asked.append((region, start_s, end_s))
        return by_region.get(region)

    fetch.asked = asked  # type: ignore[attr-defined]
    return fetch


def flat_hour(kwh: float = 1.0, steps: int = 4) -> list[EnergyStep]:
    """`kwh` spread evenly over one hour, in `steps` metered intervals."""
    d = 3600 / steps
    return [EnergyStep(offset_s=i * d, duration_s=d, energy_kwh=kwh / steps) for i in range(steps)]


# -- integration ----------------------------------------------------------------------------


def test_intervals_straddling_an_intensity_step() -> None:
    # 30-minute steps: 100 then 300 g/kWh. 1 kWh over 00:00-00:20 (all at 100); 2 kWh over
    # 00:20-00:40, which straddles the step: 10 min at 100 and 10 at 300, a mean of 200.
    actual = series_at([100.0, 300.0], step_min=30)
    samples = [Sample(S, 0.0), Sample(S + 1200, 1 * KWH), Sample(S + 2400, 3 * KWH)]
    acc = account(samples, actual, None, None, shift_s=0, fallback_g_per_kwh=999)
    assert acc.emissions_kg == pytest.approx(1 * 0.100 + 2 * 0.200)
    assert acc.intervals_on_forecast == 0 and acc.estimated == ()
    assert acc.signal == "lca"
    # Not average power x average intensity: 3 kWh x 166.7 g/kWh (the 40 min mean) = 0.5 kg.
    assert acc.emissions_kg != pytest.approx(3 * actual.mean_over(S, S + 2400) / 1000)


def test_missing_actuals_name_the_intervals_on_the_forecast() -> None:
    actual = series_at([100.0] * 6, step_min=5)  # 00:00-00:30 measured
    forecast = series_at([200.0] * 9, step_min=5)  # 00:00-00:45 forecast
    samples = [Sample(S + 900 * i, i * KWH) for i in range(5)]  # 1 kWh per 15 min, to 01:00
    acc = account(samples, actual, forecast, None, shift_s=0, fallback_g_per_kwh=400)
    # 00:00-00:30 actual (100), 00:30-00:45 forecast (200), 00:45-01:00 fallback (400).
    assert acc.emissions_kg == pytest.approx(0.1 + 0.1 + 0.2 + 0.4)
    assert (acc.intervals, acc.intervals_on_forecast, acc.intervals_on_fallback) == (4, 1, 1)
    assert acc.estimated == ((S + 1800, S + 2700, "forecast"), (S + 2700, S + 3600, "fallback"))
    assert acc.intensity_source == "actual+fallback+forecast"


def test_contiguous_forecast_intervals_are_one_span() -> None:
    forecast = series_at([200.0] * 12, step_min=5)
    samples = [Sample(S + 600 * i, i * KWH) for i in range(4)]
    acc = account(samples, None, forecast, None, shift_s=0, fallback_g_per_kwh=400)
    assert acc.estimated == ((S, S + 1800, "forecast"),) and acc.intervals_on_forecast == 3


def test_a_forecast_on_another_signal_is_not_summed_with_the_actuals() -> None:
    actual = series_at([100.0] * 6, step_min=5)
    moer = series_at([900.0] * 12, step_min=5, signal=Signal.MOER)
    samples = [Sample(S, 0.0), Sample(S + 1800, KWH), Sample(S + 3600, 2 * KWH)]
    acc = account(samples, actual, moer, None, shift_s=0, fallback_g_per_kwh=400)
    assert acc.emissions_kg == pytest.approx(0.1 + 0.4)  # the fallback, never the MOER 900
    assert acc.signal == "lca" and acc.estimated == ((S + 1800, S + 3600, "fallback"),)


def brute_force_kg(
    profile: Sequence[EnergyStep], values: Sequence[float], step_s: int, t0: float, start: float
) -> float:
    """Energy x intensity by walking every interval across the grid cells it overlaps."""
    total = 0.0
    for p in profile:
        a, b = start + p.offset_s, start + p.offset_s + p.duration_s
        g_s = 0.0
        for i, v in enumerate(values):
            lo, hi = t0 + i * step_s, t0 + (i + 1) * step_s
            g_s += v * max(0.0, min(b, hi) - max(a, lo))
        total += p.energy_kwh * (g_s / (b - a)) / 1000
    return total


steps_st = st.lists(
    st.tuples(st.integers(1, 3000), st.floats(0, 5, allow_nan=False)), min_size=1, max_size=12
)


@settings(max_examples=150, deadline=None)
@given(
    steps=steps_st,
    values=st.lists(st.floats(0, 1500, allow_nan=False), min_size=30, max_size=60),
    start_off=st.integers(0, 3600),
)
def test_replay_matches_brute_force_integration(
    steps: list[tuple[int, float]], values: list[float], start_off: int
) -> None:
    series = series_at(values, step_min=5)
    profile, t = [], 0.0
    for duration, kwh in steps:
        profile.append(EnergyStep(offset_s=t, duration_s=duration, energy_kwh=kwh))
        t += duration
    (kg,) = replay_kg(profile, series, [S + start_off])
    if start_off + t > 300 * len(values):
        assert kg is None  # past the series: not known, never extrapolated
    else:
        assert kg == pytest.approx(
            brute_force_kg(profile, values, 300, S, S + start_off), rel=1e-9, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(steps=steps_st, values=st.lists(st.floats(0, 1500, allow_nan=False), min_size=125,
                                       max_size=125))  # 10.4 h: longer than any profile
def test_account_and_replay_agree_with_brute_force(
    steps: list[tuple[int, float]], values: list[float]
) -> None:
    series = series_at(values, step_min=5)
    samples, t, e = [Sample(S, 0.0)], S, 0.0
    for duration, kwh in steps:
        t, e = t + duration, e + kwh * KWH
        samples.append(Sample(t, e))
    acc = account(samples, series, None, None, shift_s=0, fallback_g_per_kwh=0)
    profile = profile_of(samples)
    expected = brute_force_kg(profile, values, 300, S, S)
    assert acc.emissions_kg == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert replay_kg(profile, series, [S])[0] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert sum(p.energy_kwh for p in profile) == pytest.approx(acc.energy_kwh)


# -- counterfactuals ------------------------------------------------------------------------


def test_run_now_home_on_actual_intensity() -> None:
    home = series_at([400.0, 200.0], step_min=60)
    fetch = actuals_from({"aws:eu-west-2": home})
    c = run_now_home(flat_hour(2.0), "aws:eu-west-2", T0 + timedelta(minutes=30), fetch, LATER)
    # Started 00:30: half the energy at 400, half at 200.
    assert not c.pending and c.emissions_kg == pytest.approx(1 * 0.4 + 1 * 0.2)
    assert c.kind == "run-now-home" and c.start == T0 + timedelta(minutes=30)
    assert c.signal == "lca" and c.intensity_source == "actual"


@pytest.mark.parametrize("case", ["not yet over", "no actuals", "actuals short"])
def test_run_now_home_is_pending_until_actuals_exist(case: str) -> None:
    series = {"no actuals": None, "actuals short": series_at([300.0] * 6, step_min=5)}
    fetch = actuals_from({"h": series.get(case, series_at([300.0] * 24, step_min=5))})
    now = T0 + timedelta(minutes=50) if case == "not yet over" else LATER
    c = run_now_home(flat_hour(), "h", T0, fetch, now)
    assert c.pending and c.emissions_kg is None and c.region == "h" and c.start == T0
    if case == "not yet over":
        assert fetch.asked == []  # nothing asked of a provider for a future span


def hourly(values: Sequence[float], zone: str) -> IntensitySeries:
    return series_at(values, step_min=60, zone=zone)


def test_best_in_hindsight_picks_the_cleanest_region_and_start() -> None:
    # Window 00:00-06:00; a 1 h job. West is cleanest at 03:00-04:00 (50 g/kWh).
    fetch = actuals_from({
        "east": hourly([300, 280, 260, 240, 220, 200, 200, 200], "east"),
        "west": hourly([400, 400, 400, 50, 400, 400, 400, 400], "west"),
    })
    best = best_in_hindsight(flat_hour(2.0), ["east", "west"], (T0, T0 + timedelta(hours=6)),
                             fetch, LATER)
    assert not best.pending
    assert (best.region, best.start) == ("west", T0 + timedelta(hours=3))
    assert best.emissions_kg == pytest.approx(2 * 0.050)


def test_best_in_hindsight_between_grid_steps() -> None:
    # Half-hour steps: the cleanest hour is 01:30-02:30, found on the 15-minute start grid.
    fetch = actuals_from({"a": series_at([300, 300, 300, 100, 100, 300, 300, 300], step_min=30)})
    best = best_in_hindsight(flat_hour(), ["a"], (T0, T0 + timedelta(hours=4)), fetch, LATER)
    assert best.start == T0 + timedelta(hours=1, minutes=30)
    assert best.emissions_kg == pytest.approx(0.1)


def test_best_in_hindsight_counts_the_run_itself() -> None:
    # The run started off the grid (00:07) in the one clean hour: hindsight cannot beat it.
    values = [300.0] * 7 + [10.0] * 12 + [300.0] * 40  # 5-minute steps; clean 00:35-01:35
    fetch = actuals_from({"a": series_at(values, step_min=5)})
    ran = T0 + timedelta(minutes=35)
    best = best_in_hindsight(flat_hour(), ["a"], (T0, T0 + timedelta(hours=4)), fetch, LATER,
                             also=[("a", ran)], grid_s=3600)
    assert best.start == ran and best.emissions_kg == pytest.approx(0.010)


def test_best_in_hindsight_pending_until_the_window_is_known() -> None:
    fetch = actuals_from({"east": hourly([300] * 8, "east"), "west": None})
    window = (T0, T0 + timedelta(hours=6))
    assert best_in_hindsight(flat_hour(), ["east"], window, fetch, T0 + timedelta(hours=5)).pending
    missing = best_in_hindsight(flat_hour(), ["east", "west"], window, fetch, LATER)
    assert missing.pending and missing.emissions_kg is None
    short = actuals_from({"east": hourly([300] * 4, "east")})  # ends 04:00, window 06:00
    assert best_in_hindsight(flat_hour(), ["east"], window, short, LATER).pending


def test_a_failing_provider_leaves_the_figure_pending() -> None:
    def broken(region: str, start_s: float, end_s: float) -> IntensitySeries | None:
        raise RuntimeError("HTTP 503")

    assert run_now_home(flat_hour(), "h", T0, broken, LATER).pending
    assert best_in_hindsight(flat_hour(), ["h"], (T0, T0 + timedelta(hours=2)), broken,
                             LATER).pending


# -- share of possible savings --------------------------------------------------------------


@pytest.mark.parametrize(("run_now", "run", "best", "share"), [
    (1.0, 0.4, 0.2, 0.75),  # saved 0.6 of a possible 0.8
    (1.0, 0.2, 0.2, 1.0),  # as good as hindsight
    (1.0, 1.0, 0.2, 0.0),  # no better than starting at once
    (1.0, 1.4, 0.2, -0.5),  # worse than starting at once: negative, not hidden
    (1.0, 0.1, 0.2, 1.125),  # better than hindsight: only when the run's figure used forecasts
    (1.0, 0.8, 1.0, None),  # best == run-now: nothing could be saved, no share
    (1.0, 1.2, 1.0 + EPS_KG / 2, None),  # within rounding of run-now
    (None, 0.4, 0.2, None),  # run-now pending
    (1.0, 0.4, None, None),  # best pending
])
def test_share_of_possible_savings(run_now: float | None, run: float, best: float | None,
                                   share: float | None) -> None:
    got = share_of_possible(run_now, run, best)
    assert got == (None if share is None else pytest.approx(share))


# -- settling a segment ---------------------------------------------------------------------


def segment(samples: Sequence[Sample], acc: Accounting, **changes: object) -> Segment:
    fields: dict[str, object] = {
        "run_id": "run-2", "job": "nightly", "job_id": "run-1", "previous_run_id": "run-1",
        "outcome": "completed", "region": "west", "instance_type": "g5.xlarge", "spot": False,
        "submitted_at": T0 - timedelta(hours=1), "planned_at": T0, "home_region": "east",
        "home_signal": "lca", "candidate_regions": ["east", "west"],
        "deadline": T0 + timedelta(hours=6), "samples": samples, "accounting": acc,
        "devices": [DeviceEnergy(device="instance", energy_kwh=acc.energy_kwh, measured=False,
                                 method="estimate: 1 x A10G 300 W")],
        "pue": 1.1, "planned_cost_usd_per_s": 1.0 / 3600, "annual_mean_g_per_kwh": 250.0,
        "steps_done": 3000, "total_steps": 3000,
    }
    return Segment(**{**fields, **changes})  # type: ignore[arg-type]


EAST = hourly([300, 280, 260, 240, 220, 200, 200, 200], "east")
WEST = hourly([400, 400, 100, 50, 400, 400, 400, 400], "west")


def test_settle_a_run_hand_worked() -> None:
    # Ran in west 02:00-03:00 (100 g/kWh), 2 kWh; planned at 00:00, submitted at 23:00.
    samples = [Sample(S + 7200 + 900 * i, i * 0.5 * KWH) for i in range(5)]
    acc = account(samples, WEST, None, None, 0, 999)
    record = settle(segment(samples, acc), actuals_from({"east": EAST, "west": WEST}), LATER)
    assert record.emissions_kg == pytest.approx(0.2) and record.mean_g_per_kwh == pytest.approx(100)
    now, best = record.counterfactuals
    assert (now.kind, now.region, now.start) == ("run-now-home", "east", T0)
    assert now.emissions_kg == pytest.approx(2 * 0.300)
    assert (best.region, best.start) == ("west", T0 + timedelta(hours=3))
    assert best.emissions_kg == pytest.approx(2 * 0.050)
    f = figures(record)
    assert f.saved_kg == pytest.approx(0.4) and f.savings_fraction == pytest.approx(0.4 / 0.6)
    assert f.share == pytest.approx(0.4 / 0.5)  # saved 0.4 of a possible 0.5
    assert record.delay_s == 3 * 3600  # started 02:00, submitted 23:00 the day before
    assert record.cost_usd == pytest.approx(1.0)  # $1/h for one hour
    assert (record.job_id, record.previous_run_id) == ("run-1", "run-1")
    assert record.started_at == T0 + timedelta(hours=2)
    assert record.ended_at == T0 + timedelta(hours=3)
    assert record.energy_measured is False and record.pue == 1.1
    assert len(record.profile) == 4 and record.intervals == 4
    assert record.avoided_marginal_kg is None and record.marginal_emissions_kg is None


def test_settle_while_actuals_are_not_published_then_complete() -> None:
    samples = [Sample(S + 7200 + 900 * i, i * 0.5 * KWH) for i in range(5)]
    forecast = hourly([150] * 8, "west")
    acc = account(samples, None, forecast, None, 0, 999)  # no actuals yet: the forecast
    fetch = actuals_from({"east": EAST, "west": WEST})
    record = settle(segment(samples, acc), fetch, T0 + timedelta(hours=3, minutes=1))
    now, best = record.counterfactuals
    assert now.pending is False  # 00:00-01:00 at home has passed
    assert best.pending and best.emissions_kg is None  # the window runs to 06:00
    f = figures(record)
    assert f.pending and f.share is None
    assert record.intervals_on_forecast == 4 and record.estimated[0].source == "forecast"
    assert record.estimated[0].start == T0 + timedelta(hours=2)
    done = complete(record, fetch, LATER)
    assert not figures(done).pending
    assert done.counterfactuals[1].emissions_kg == pytest.approx(0.1)
    assert figures(done).share == pytest.approx((0.6 - 0.3) / (0.6 - 0.1))
    assert complete(done, fetch, LATER) is done  # nothing pending: unchanged


def test_marginal_actuals_give_an_avoided_estimate_apart() -> None:
    moer_east = series_at([800.0] * 8, step_min=60, zone="east", signal=Signal.MOER)
    moer_west = series_at([600.0] * 8, step_min=60, zone="west", signal=Signal.MOER)
    samples = [Sample(S + 7200, 0.0), Sample(S + 10800, 2 * KWH)]
    acc = account(samples, moer_west, None, None, 0, 999)
    assert acc.signal == "moer"
    record = settle(segment(samples, acc), actuals_from({"east": moer_east, "west": moer_west}),
                    LATER)
    # Location-based: 2 kWh x the region's annual mean (life-cycle), never the MOER figure.
    assert record.emissions_kg == pytest.approx(2 * 0.250) and record.signal == "lca"
    assert record.marginal_emissions_kg == pytest.approx(2 * 0.600)
    assert record.avoided_marginal_kg == pytest.approx(2 * (0.800 - 0.600))
    assert all(c.signal == "moer" for c in record.counterfactuals)
    f = figures(record)
    assert f.marginal and f.run_kg == pytest.approx(1.2) and f.saved_kg == pytest.approx(0.4)


def test_a_run_on_the_fallback_only_takes_the_baselines_signal() -> None:
    samples = [Sample(S, 0.0), Sample(S + 3600, KWH)]
    acc = account(samples, None, None, None, 0, 300)
    record = settle(segment(samples, acc, home_signal="lca"), actuals_from({}), LATER)
    assert record.signal == "lca" and record.intervals_on_fallback == 1
    assert record.intervals_on_forecast == 0 and record.intervals == 1
    assert all(c.pending for c in record.counterfactuals)


def test_record_round_trips_through_the_ledger(tmp_path: object) -> None:
    from pathlib import Path

    from carbonshift import ledger
    from carbonshift.accounting import restate
    from carbonshift.checkpoint import LocalStore

    samples = [Sample(S + 7200 + 900 * i, i * 0.5 * KWH) for i in range(5)]
    acc = account(samples, WEST, None, None, 0, 999)
    record = settle(segment(samples, acc, outcome="rescheduled"),
                    actuals_from({"east": EAST, "west": WEST}), LATER)
    store = LocalStore(Path(str(tmp_path)))
    ledger.append(store, record)
    (back,) = ledger.read(store, T0, T0 + timedelta(days=1))
    assert back == record
    assert restate(store, "run-2", "stopped", T0 + timedelta(hours=4)) is not None
    (again,) = ledger.read(store, T0, T0 + timedelta(days=1))
    assert again.outcome == "stopped" and again.counterfactuals == record.counterfactuals
    assert restate(store, "nope", "stopped", T0) is None


def test_start_of_profile_is_the_first_sample() -> None:
    samples = [Sample(S + 10, 0.0), Sample(S + 10, 5.0), Sample(S + 70, 3.6e6)]
    (step,) = profile_of(samples)  # a zero-length interval is no interval
    assert step.offset_s == 0 and step.duration_s == 60
    assert step.energy_kwh == pytest.approx((3.6e6 - 5.0) / KWH)
    assert datetime.fromtimestamp(S, UTC) == T0


def test_the_report_settles_pending_counterfactuals_and_writes_them_back(tmp_path: Path) -> None:
    from carbonshift.checkpoint import LocalStore
    from carbonshift.ledger import append, read
    from carbonshift.report import load

    samples = [Sample(S + 7200 + 900 * i, i * 0.5 * KWH) for i in range(5)]
    acc = account(samples, None, hourly([150] * 8, "west"), None, 0, 999)
    fetch = actuals_from({"east": EAST, "west": WEST})
    record = settle(segment(samples, acc), fetch, T0 + timedelta(hours=3, minutes=1))
    assert record.counterfactuals[1].pending
    store = LocalStore(tmp_path)
    append(store, record)
    since, until = T0 - timedelta(days=1), T0 + timedelta(days=2)
    unsettled = load(str(tmp_path), since, until)  # no providers: still pending
    assert unsettled.segments[0].best_kg is None
    report = load(str(tmp_path), since, until, settle=fetch, now=LATER)
    assert report.segments[0].best_kg == pytest.approx(0.1)
    (stored,) = read(store, since, until)  # written back: settled once, for every report
    assert not stored.counterfactuals[1].pending
    assert stored.counterfactuals[1].emissions_kg == pytest.approx(0.1)


def test_signals_are_never_subtracted_from_one_another() -> None:
    from carbonshift.ledger import Counterfactual

    samples = [Sample(S + 7200 + 900 * i, i * 0.5 * KWH) for i in range(5)]
    acc = account(samples, None, hourly([150] * 8, "west"), None, 0, 999)
    base = settle(segment(samples, acc), actuals_from({"east": EAST, "west": WEST}), LATER)
    moer_now = Counterfactual(kind="run-now-home", region="east", start=T0,
                              emissions_kg=1.6, signal="moer")
    mixed = base.model_copy(update={"counterfactuals": [moer_now, *base.counterfactuals[1:]],
                                    "marginal_emissions_kg": None})
    f = figures(mixed)
    # The run has no MOER figure: nothing to compare with the MOER run-now, no saving stated.
    assert not f.comparable and f.saved_kg is None and f.share is None
    from carbonshift.report import segment as report_segment

    seg = report_segment(mixed)
    assert seg.run_now_kg is None and seg.saved_kg is None  # not the 1.6 kg of MOER


def test_best_in_hindsight_leaves_out_a_region_on_another_signal() -> None:
    moer_east = series_at([10.0] * 8, step_min=60, zone="east", signal=Signal.MOER)
    samples = [Sample(S + 7200 + 900 * i, i * 0.5 * KWH) for i in range(5)]
    profile = profile_of(samples)
    fetch = actuals_from({"east": moer_east, "west": WEST})
    best = best_in_hindsight(profile, ["west", "east"], (T0, T0 + timedelta(hours=6)), fetch,
                             LATER)
    # east's 10 g/kWh of MOER would win a mixed minimum; on one signal, west is the best.
    assert best.signal == WEST.signal.value and best.region == "west"


def test_interval_counts_skip_idle_intervals_and_name_the_fallback() -> None:
    """Four 15-minute intervals: 1 kWh on actuals, an idle one (0 kWh: charged nothing), 1 kWh
    on the forecast only, 1 kWh on neither (the fallback, the region's annual mean)."""
    samples = [Sample(S + 900 * i, e * KWH) for i, e in enumerate([0, 1, 1, 2, 3])]
    actual = series_at([100.0], step_min=15, zone="west")
    forecast = series_at([200.0] * 3, step_min=15, zone="west")
    acc = account(samples, actual, forecast, None, 0, 999)
    record = settle(segment(samples, acc), actuals_from({}), T0 + timedelta(hours=1))
    # charged intervals: 3 = 1 actual + 1 forecast + 1 fallback; the idle one is none of them
    assert (record.intervals, record.intervals_on_forecast, record.intervals_on_fallback) == (
        3, 1, 1)
    assert [e.source for e in record.estimated] == ["forecast", "fallback"]
    assert record.emissions_kg == pytest.approx(0.1 + 0.2 + 0.999)


def test_the_run_its_ledger_record_its_table_and_the_report_count_intervals_alike(
    tmp_path: Path,
) -> None:
    """One definition of the interval counts: the run's accounting, its ledger record, the
    run's table and the report state the same figures for a run with an idle interval, one on
    actuals, two on the forecast and one on the fallback."""
    from carbonshift import report
    from carbonshift.artifacts import emissions_markdown
    from carbonshift.checkpoint import LocalStore
    from carbonshift.ledger import append

    energy = [0, 1, 1, 2, 3, 4]  # kWh at each 15-minute sample: the second interval is idle
    samples = [Sample(S + 900 * i, e * KWH) for i, e in enumerate(energy)]
    actual = series_at([100.0], step_min=15, zone="west")  # 00:00-00:15
    forecast = series_at([200.0] * 4, step_min=15, zone="west")  # to 01:00
    acc = account(samples, actual, forecast, None, 0, 999)
    record = settle(segment(samples, acc), actuals_from({}), T0 + timedelta(hours=2))
    counts = (1 + 2 + 1, 2, 1)  # drew energy: 1 actual + 2 forecast + 1 fallback; idle: none
    assert (acc.intervals, acc.intervals_on_forecast, acc.intervals_on_fallback) == counts
    assert (record.intervals, record.intervals_on_forecast, record.intervals_on_fallback) == counts
    table = emissions_markdown(record, "m", None, None)
    assert "actual for 1 of 4 intervals that drew energy; 2 on the forecast, 1 on the fallback" in (
        table
    )
    store = LocalStore(tmp_path)
    append(store, record)
    (t,) = report.load(str(tmp_path), T0 - timedelta(days=1), T0 + timedelta(days=1)).overall()
    assert (t.intervals, t.on_forecast, t.on_fallback) == counts


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from([0, 1, 2]), min_size=1, max_size=12), st.integers(0, 12),
       st.integers(0, 12))
def test_interval_counts_match_an_independent_count(
    kwh: list[int], actual_steps: int, forecast_steps: int
) -> None:
    """Against a count of the energy deltas: an interval is charged when it drew energy; on
    actuals where they cover it, else on the forecast where it covers it, else the fallback."""
    cumulative = [0]
    for k in kwh:
        cumulative.append(cumulative[-1] + k)
    samples = [Sample(S + 900 * i, e * KWH) for i, e in enumerate(cumulative)]
    actual = series_at([100.0] * actual_steps, step_min=15) if actual_steps else None
    forecast = series_at([200.0] * forecast_steps, step_min=15) if forecast_steps else None
    acc = account(samples, actual, forecast, None, 0, 999)
    drew = [i for i, k in enumerate(kwh) if k > 0]
    on_forecast = [i for i in drew if actual_steps <= i < forecast_steps]
    on_fallback = [i for i in drew if i >= max(actual_steps, forecast_steps)]
    assert (acc.intervals, acc.intervals_on_forecast, acc.intervals_on_fallback) == (
        len(drew), len(on_forecast), len(on_fallback))
    record = settle(segment(samples, acc), actuals_from({}), LATER)
    assert (record.intervals, record.intervals_on_forecast, record.intervals_on_fallback) == (
        acc.intervals, acc.intervals_on_forecast, acc.intervals_on_fallback)


def test_restate_rewrites_the_latest_attempt_in_place(tmp_path: Path) -> None:
    from carbonshift import ledger
    from carbonshift.accounting import restate
    from carbonshift.checkpoint import LocalStore

    samples = [Sample(S + 7200 + 900 * i, i * 0.5 * KWH) for i in range(5)]
    record = settle(segment(samples, account(samples, WEST, None, None, 0, 999),
                            outcome="rescheduled"), actuals_from({}), LATER)
    earlier = record.model_copy(update={"started_at": T0, "ended_at": T0 + timedelta(hours=1),
                                         "outcome": "failed"})
    store = LocalStore(tmp_path)
    store.put(record.legacy_key(), record.line().encode())  # an older writer's key
    ledger.append(store, earlier)  # the flow run's first attempt
    assert restate(store, "run-2", "stopped", T0 + timedelta(hours=4)) is not None
    found = ledger.entries(store, T0, T0 + timedelta(days=1))
    assert [(k, r.outcome) for k, r in found] == [
        (earlier.key(), "failed"), (record.legacy_key(), "stopped")]


def test_embodied_emissions_per_gpu_hour_are_apart_from_the_operational() -> None:
    """4 GPUs for one hour: 4 GPU-hours x 11,200 kg / 1,082,990 GPU-hours (BLOOM's figures)."""
    from carbonshift.accounting import EMBODIED_KG_PER_GPU_HOUR

    samples = [Sample(S + 7200 + 900 * i, i * 0.5 * KWH) for i in range(5)]
    acc = account(samples, WEST, None, None, 0, 999)
    fetch = actuals_from({"east": EAST, "west": WEST})
    record = settle(segment(samples, acc, gpus=4), fetch, LATER)
    assert abs(EMBODIED_KG_PER_GPU_HOUR - 0.010342) < 1e-6
    assert record.gpu_hours == pytest.approx(4.0)
    assert record.embodied_kg == pytest.approx(4 * 11_200 / 1_082_990)
    assert record.emissions_kg == pytest.approx(0.2)  # operational only: nothing added
    assert figures(record).saved_kg == pytest.approx(0.4)
    unknown = settle(segment(samples, acc), fetch, LATER)  # GPU count unknown: no figure
    assert unknown.embodied_kg is None and unknown.gpu_hours is None
