"""A plan becomes a placement in one place, or a domain error that says why it cannot run."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from carbonshift.catalog import Catalog
from carbonshift.energy import EstimateMeter
from carbonshift.meters import NvmlMeter, close_meter
from carbonshift.plan import FeasiblePlan, InfeasiblePlan, Plan, SpreadPlan
from carbonshift.planner import plan_jobs
from carbonshift.run import NotRunnable, placement_of, run_meter
from carbonshift.run.placement import LOCAL_PUE, estimate_label
from tests.fakes.nvml import FakeGpu, FakeNvml
from tests.helpers import T0, job, series_at

LONDON = "aws:eu-west-2"


def plan(catalog: Catalog, **fields: object) -> Plan:
    spec = job("p", regions=[LONDON], **{"within": "6h", **fields})
    (found,) = plan_jobs([spec], {LONDON: series_at([300, 100] * 40, zone="GB")}, now=T0,
                         catalog=catalog)
    return found


def test_a_feasible_plan_is_placed(catalog: Catalog) -> None:
    p = plan(catalog)
    where = placement_of(p)
    assert isinstance(p, FeasiblePlan)
    assert where.job == "p" and where.slot == p.chosen and where.deadline == p.deadline
    assert where.forecast == p.forecast and where.explanation == p.explanation
    assert where.power_w == pytest.approx(where.slot.energy_kwh * 1000 / (10 / 60))


def test_an_infeasible_plan_says_why(catalog: Catalog) -> None:
    p = plan(catalog, within="1m")
    assert isinstance(p, InfeasiblePlan) and p.reason
    with pytest.raises(NotRunnable) as e:
        placement_of(p)
    assert str(e.value) == p.reason


def test_a_spread_plan_is_not_run_as_one_replica(catalog: Catalog) -> None:
    forecasts = {LONDON: series_at([100] * 24, zone="GB"),
                 "aws:eu-central-1": series_at([50] * 24, zone="DE")}
    spec = job("s", regions=list(forecasts), placement="spread", replicas=2, within="2h",
               work={"duration": "30m", "instance_type": "g5.xlarge"})
    (p,) = plan_jobs([spec], forecasts, now=T0, catalog=catalog)
    with pytest.raises(NotRunnable, match="placement: spread plans are not scheduled"):
        placement_of(p)


def test_a_spread_of_one_replica_is_its_slot(catalog: Catalog) -> None:
    forecasts = {LONDON: series_at([100] * 24, zone="GB")}
    spec = job("s", regions=list(forecasts), placement="spread", replicas=1, within="2h",
               work={"duration": "30m", "instance_type": "g5.xlarge"})
    (p,) = plan_jobs([spec], forecasts, now=T0, catalog=catalog)
    assert isinstance(p, SpreadPlan)
    where = placement_of(p)
    assert where.slot == p.shards[0] and where.deadline == p.deadline


# A local run's meter: this machine's GPUs through NVML, else the plan's estimate; PUE once.


def test_a_local_run_on_a_gpu_machine_meters_with_the_nvml_counter(catalog: Catalog) -> None:
    where = placement_of(plan(catalog))
    now = [0.0]
    fake = FakeNvml([FakeGpu("GPU-aaaa", energy_mj=lambda t: 5e6 + 300_000.0 * t)],
                    lambda: now[0])
    meter = run_meter(where, lambda: now[0], plan_pue=catalog.pue["aws"], nvml=fake, environ={})
    try:
        now[0] = 3600.0
        assert isinstance(meter, NvmlMeter)
        assert meter.label == ("measured: NVML total energy, 1 x NVIDIA H100 80GB HBM3 (GPU 0) "
                               "x PUE 1.00")
        assert meter.pue == LOCAL_PUE == 1.0  # this machine's, not the planned provider's 1.15
        assert meter.read_j() == pytest.approx(300 * 3600)  # the board's, once, x 1.0
    finally:
        close_meter(meter)
    assert fake.initialised == 0  # NVML shut down


def test_without_an_energy_counter_a_local_run_polls_power(catalog: Catalog) -> None:
    where = placement_of(plan(catalog))
    now = [0.0]
    fake = FakeNvml([FakeGpu("GPU-aaaa", power_mw=lambda t: 250_000.0)], lambda: now[0])
    meter = run_meter(where, lambda: now[0], plan_pue=1.15, nvml=fake, environ={})
    try:
        now[0] = 100.0
        assert isinstance(meter, NvmlMeter) and meter.devices()[0].method == "power"
        assert meter.label.startswith("measured: NVML power polling")
        assert meter.read_j() == pytest.approx(250 * 100)
    finally:
        close_meter(meter)


def test_without_a_gpu_a_local_run_is_the_plans_estimate_on_this_machines_pue(
        catalog: Catalog) -> None:
    where = placement_of(plan(catalog))
    plan_pue = catalog.pue["aws"]
    assert f"PUE {plan_pue:.2f} x" in where.explanation.energy_estimate
    now = [T0.timestamp()]
    meter = run_meter(where, lambda: now[0], plan_pue=plan_pue, nvml=FakeNvml([]), environ={})
    now[0] += timedelta(hours=2).total_seconds()
    assert isinstance(meter, EstimateMeter) and meter.pue == 1.0
    # The plan's power had the planned provider's PUE in it: taken out, this machine's put in.
    assert meter.read_j() == pytest.approx(where.power_w / plan_pue * 7200)
    planned = where.explanation.energy_estimate.split(" = ")[0]
    # The label keeps the plan's factors but not its hours: the run lasted 2 h, not the plan's
    # 10 min, and the meter multiplies by the time run.
    hours = f" x {where.slot.duration_s / 3600:.2f} h"
    assert planned.endswith(hours)
    factors = planned.removesuffix(hours).replace(f"PUE {plan_pue:.2f}", "PUE 1.00")
    assert meter.label == ("estimate: " + factors + " x time run"
                           " (NVML unavailable: NVML lists no GPU)")
    assert not re.search(r"\d h\b", meter.label)


@pytest.mark.parametrize(("planned", "expected"), [
    ("1 x A10G 300 W x 0.90 x PUE 1.15 x 0.17 h = 0.05 kWh",
     "1 x A10G 300 W x 0.90 x PUE 1.30 x time run"),
    ("2 replicas x 8 x H100 700 W x 0.80 x PUE 1.10 / 1.15 x 12.00 h = 99.00 kWh",
     "2 replicas x 8 x H100 700 W x 0.80 x PUE 1.30 x time run"),
    ("a static figure", "a static figure x PUE 1.30 x time run"),
])
def test_the_estimate_label_states_the_factors_not_the_plans_hours(planned: str,
                                                                   expected: str) -> None:
    assert estimate_label(planned, 1.3) == expected


def test_a_configured_local_pue_is_applied_once_to_either_meter(catalog: Catalog) -> None:
    where = placement_of(plan(catalog))
    now = [0.0]
    fake = FakeNvml([FakeGpu("GPU-aaaa", energy_mj=lambda t: 200_000.0 * t)], lambda: now[0])
    gpu = run_meter(where, lambda: now[0], plan_pue=1.15, pue=1.3, nvml=fake, environ={})
    estimate = run_meter(where, lambda: now[0], plan_pue=1.15, pue=1.3, nvml=FakeNvml([]),
                         environ={})
    now[0] = 10.0
    assert gpu.read_j() == pytest.approx(200 * 10 * 1.3) and "x PUE 1.30" in gpu.label
    assert estimate.read_j() == pytest.approx(where.power_w / 1.15 * 1.3 * 10)
    assert "PUE 1.30" in estimate.label and getattr(estimate, "pue", None) == 1.3
    close_meter(gpu)
    with pytest.raises(ValueError, match="pue: 0.9 is below 1"):
        run_meter(where, lambda: 0.0, plan_pue=0.9, nvml=FakeNvml([]), environ={})


def test_a_local_run_meters_at_the_configured_local_pue(catalog: Catalog) -> None:
    """runs.local_meter wires `compute.local_pue` to run_meter: the GPUs' energy and the
    estimate are this machine's at that PUE, never the planned provider's."""
    from carbonshift.config import TrainingConfig
    from carbonshift.runs import local_meter

    where = placement_of(plan(catalog))
    config = TrainingConfig.model_validate({"compute": {"local_pue": 1.4}})
    now = [0.0]
    fake = FakeNvml([FakeGpu("GPU-aaaa", energy_mj=lambda t: 100_000.0 * t)], lambda: now[0])
    gpu = local_meter(config, catalog, where, lambda: now[0], nvml=fake, environ={})
    estimate = local_meter(config, catalog, where, lambda: now[0], nvml=FakeNvml([]), environ={})
    now[0] = 10.0
    try:
        assert getattr(gpu, "pue", None) == 1.4 and gpu.read_j() == pytest.approx(100 * 10 * 1.4)
        assert getattr(estimate, "pue", None) == 1.4
        assert estimate.read_j() == pytest.approx(where.power_w / catalog.pue["aws"] * 1.4 * 10)
    finally:
        close_meter(gpu)
    default = local_meter(TrainingConfig(), catalog, where, lambda: 0.0, nvml=FakeNvml([]),
                          environ={})
    assert getattr(default, "pue", None) == LOCAL_PUE
