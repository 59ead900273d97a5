"""Energy by device on the run's report: per GPU where the meter reads each one, else the
total as one entry, labelled measured or estimated, remote totals named as such."""

from __future__ import annotations

import pytest

from carbonshift.meters.nvml import DeviceEnergy as GpuEnergy
from carbonshift.meters.nvml import MeterError
from carbonshift.run.supervisor import _pue, devices_of
from tests.run.test_supervisor import Run


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
    assert total.device == "instance" and total.energy_kwh == 2.4 and total.measured


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
