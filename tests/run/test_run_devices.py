"""Energy by device on the run's report: per GPU where the meter reads each one, else the
total as one entry, labelled measured or estimated, remote totals named as such."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from carbonshift.accounting import segment_of
from carbonshift.catalog import Catalog
from carbonshift.energy import EnergyMeter, EstimateMeter
from carbonshift.meters import close_meter
from carbonshift.meters.nvml import DeviceEnergy as GpuEnergy
from carbonshift.meters.nvml import MeterError
from carbonshift.remote.observer import RemoteMeter
from carbonshift.remote.protocol import DeviceReading
from carbonshift.run import RunReport, Supervisor, run_meter
from carbonshift.run.supervisor import _pue, devices_of
from carbonshift.training import TrainingContext, TrainingOutcome
from tests.fakes.nvml import FakeGpu, FakeNvml
from tests.run.fakes import START, FakeClock, placement
from tests.run.test_supervisor import JOB, Run


class GpuMeter:
    label = "measured: NVML counter (2 GPUs)"
    pue = 1.2

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def read_j(self) -> float:
        return 2 * 3.6e6 * self.pue

    def devices(self) -> list[GpuEnergy]:
        if self.fail:
            raise MeterError("the NVML meter is closed")
        return [GpuEnergy(0, "GPU-a", "NVIDIA H100", "counter", 3.6e6),
                GpuEnergy(1, "GPU-b", "NVIDIA H100", "utilisation", 3.6e6)]


class Labelled:
    def __init__(self, label: str) -> None:
        self.label = label

    def read_j(self) -> float:
        return 0.0


def test_each_gpu_before_pue() -> None:
    meter = GpuMeter()
    gpu0, gpu1 = devices_of(meter, total_kwh=2.4)
    assert (gpu0.device, gpu0.energy_kwh, gpu0.measured) == ("GPU 0 NVIDIA H100", 1.0, True)
    assert gpu0.method == "NVML counter"
    assert gpu1.measured is False  # utilisation x board power is an estimate
    assert _pue(meter) == 1.2


def test_a_lost_board_leaves_the_total() -> None:
    (total,) = devices_of(GpuMeter(fail=True), total_kwh=2.4)
    # One row, the boards' energy like every device row: the total without its PUE of 1.2.
    assert total.device == "instance" and total.energy_kwh == pytest.approx(2.0)
    assert total.measured


@pytest.mark.parametrize(("label", "device", "measured"), [
    ("estimate: 1 x A10G 300 W", "instance", False),
    ("measured: RAPL (CPU packages)", "instance", True),
    ("measured: NVML counter (1 GPU) (on the instance)", "instance (total only)", True),
    ("estimate: plan (on the instance)", "instance (total only)", False),
])
def test_one_total_without_devices(label: str, device: str, measured: bool) -> None:
    (total,) = devices_of(Labelled(label), total_kwh=0.5)
    assert (total.device, total.measured, total.energy_kwh, total.method) == (
        device, measured, 0.5, label)
    assert _pue(Labelled(label)) is None


def test_the_report_carries_energy_by_device() -> None:
    report = Run(actual_g=200.0, trains_for_s=1800.0).supervise()
    (total,) = report.devices
    assert total.energy_kwh == pytest.approx(report.accounting.energy_kwh)
    assert total.device == "instance" and not total.measured and report.pue is None
    assert report.ledger is None  # settled after the run, by the caller
    assert report.accounting.signal == "lca" and report.accounting.intervals_on_forecast == 0


# One PUE, applied once: the meter's energy, the report's `pue`, the device rows and the
# ledger's segment agree (device rows are the boards' energy; the total is them x the PUE).


def supervise_with(meter_for: Callable[[FakeClock], EnergyMeter], before_s: float = 0.0) -> tuple[
        RunReport, EnergyMeter]:
    run = Run(actual_g=200.0, trains_for_s=1800.0)
    run.clock.t -= before_s  # the meter opens this long before the instance is provisioned
    meter = meter_for(run.clock)
    run.clock.t += before_s
    report = Supervisor(run.compute, meter, run.actuals, run.clock, run.rule).run(
        JOB, run.where, "run-1", run.ctx, run.trainer)
    close_meter(meter)
    return report, meter


def nvml_meter(pue: float) -> Callable[[FakeClock], EnergyMeter]:
    def open_it(clock: FakeClock) -> EnergyMeter:
        t0 = clock.now()
        fake = FakeNvml([FakeGpu("GPU-a", energy_mj=lambda t: 300_000.0 * (t - t0)),
                         FakeGpu("GPU-b", energy_mj=lambda t: 100_000.0 * (t - t0))], clock.now)
        return run_meter(placement(), clock.now, plan_pue=1.15, pue=pue, nvml=fake, environ={})
    return open_it


@pytest.mark.parametrize("pue", [1.0, 1.25])
def test_a_local_gpu_run_states_one_pue_everywhere(pue: float, catalog: Catalog) -> None:
    report, _ = supervise_with(nvml_meter(pue), before_s=600.0)
    gpu0, gpu1 = report.devices
    # Only the run's 30 minutes, not the 10 the meter was open before the instance was up.
    assert gpu0.energy_kwh == pytest.approx(300 * 1800 / 3.6e6) and gpu0.measured
    assert gpu1.energy_kwh == pytest.approx(100 * 1800 / 3.6e6)
    assert report.pue == pue
    assert report.accounting.energy_kwh == pytest.approx(
        (gpu0.energy_kwh + gpu1.energy_kwh) * pue)
    segment = segment_of(report, placement(), catalog, spot=False, outcome="completed")
    assert segment.pue == pue  # the ledger's field: the meter's, not the aws catalog's 1.15


def test_a_local_estimate_states_this_machines_pue_not_the_planned_providers(
        catalog: Catalog) -> None:
    def estimate(clock: FakeClock) -> EnergyMeter:
        return run_meter(placement(), clock.now, plan_pue=1.15, nvml=FakeNvml([]), environ={})

    report, meter = supervise_with(estimate)
    assert isinstance(meter, EstimateMeter) and "PUE 1.00" in meter.label
    assert report.pue == 1.0
    assert report.accounting.energy_kwh == pytest.approx(0.3 / 1.15 * 0.5)  # 30 min of 1 h
    (row,) = report.devices
    assert (row.device, row.measured) == ("instance", False)
    assert row.energy_kwh == pytest.approx(report.accounting.energy_kwh)
    segment = segment_of(report, placement(), catalog, spot=False, outcome="completed")
    assert segment.pue == 1.0


def test_an_estimates_row_is_before_its_pue_like_the_boards() -> None:
    report, _ = supervise_with(lambda clock: EstimateMeter(345.0, clock.now, "x", pue=1.15))
    (row,) = report.devices
    assert report.pue == 1.15
    assert row.energy_kwh * 1.15 == pytest.approx(report.accounting.energy_kwh)


def test_a_remote_runs_gpus_are_its_device_rows_and_its_ledgers(catalog: Catalog) -> None:
    run = Run(actual_g=200.0, trains_for_s=1800.0)
    meter = RemoteMeter(pue=1.15)
    gpus = [DeviceReading(index=i, uuid=f"GPU-{i}", name="NVIDIA A10G", energy_kwh=0.1 * (i + 1),
                          measured=True) for i in range(2)]
    total_j = 0.3 * 3.6e6 * 1.15  # what the agent sends: the boards' sum x the PUE
    # The VM's one reading (as the observer records it while the run goes on).
    original = run.trainer.__call__

    def trainer(ctx: TrainingContext) -> TrainingOutcome:
        meter.record(START + 1700, START + 1700, total_j, "measured: NVML", gpus)
        return original(ctx)

    report = Supervisor(run.compute, meter, run.actuals, run.clock, run.rule).run(
        JOB, run.where, "run-1", run.ctx, trainer)
    assert [(d.device, d.energy_kwh, d.measured) for d in report.devices] == [
        ("GPU 0 NVIDIA A10G", pytest.approx(0.1), True),
        ("GPU 1 NVIDIA A10G", pytest.approx(0.2), True)]
    assert report.pue == 1.15
    assert report.accounting.energy_kwh == pytest.approx(0.3 * 1.15)
    segment = segment_of(report, placement(), catalog, spot=False, outcome="completed")
    assert segment.devices == report.devices and segment.pue == 1.15
