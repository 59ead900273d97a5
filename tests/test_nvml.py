"""The NVML meter against a scripted fake `pynvml`, and the real one on a machine without a
driver (this one)."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonshift.energy import EstimateMeter, RaplMeter, open_meter
from carbonshift.meters import MeterError, MeterUnavailable, NvmlMeter, close_meter
from tests.fakes.nvml import (
    FakeGpu,
    FakeNvml,
    NVMLError_DriverNotLoaded,
    NVMLError_GpuIsLost,
    NVMLError_LibraryNotFound,
)

H100 = "NVIDIA H100 80GB HBM3"
UUIDS = [f"GPU-{i}{i}{i}{i}0000-1111-2222-3333-444444444444" for i in range(4)]


class Clock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def no_thread(_: float) -> bool:
    """A poll wait that stops the background thread at once: the test samples by reading."""
    return True


def counter(start_mj: float, power_w: float, clock: Clock) -> FakeGpu:
    return FakeGpu(UUIDS[0], energy_mj=lambda t: start_mj + power_w * 1000 * t)


def meter(nvml: FakeNvml, clock: Clock, visible: str | None = None, **kw: object) -> NvmlMeter:
    env = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    return NvmlMeter(clock, nvml=nvml, environ=env, poll_wait=no_thread, **kw)  # type: ignore[arg-type]


def test_counter_deltas_from_a_counter_that_does_not_start_at_zero() -> None:
    clock = Clock(100.0)
    gpu = FakeGpu(UUIDS[0], energy_mj=lambda t: 8.0e9 + 300_000 * t)  # 300 W, counting for days
    m = meter(FakeNvml([gpu], clock), clock, pue=1.15)
    assert m.read_j() == 0.0
    clock.t = 110.0
    (device,) = m.devices()
    assert (device.method, device.measured) == ("counter", True)
    assert device.energy_j == pytest.approx(3000)
    assert m.read_j() == pytest.approx(3000 * 1.15)  # the board's energy, then the PUE, once
    clock.t = 120.0
    assert m.read_j() == pytest.approx(6000 * 1.15)
    assert m.measured
    assert m.label == f"measured: NVML total energy, 1 x {H100} (GPU 0) x PUE 1.15"
    m.close()


def test_a_counter_that_restarts_keeps_counting() -> None:
    clock = Clock()
    readings = iter([5_000_000, 6_000_000, 400_000, 900_000])  # the driver reloaded after 6e6
    gpu = FakeGpu(UUIDS[0], energy_mj=lambda t: next(readings))
    m = meter(FakeNvml([gpu], clock), clock)
    assert m.read_j() == pytest.approx(1000)
    assert m.read_j() == pytest.approx(1400)  # 400 J since the restart, nothing lost or negative
    assert m.read_j() == pytest.approx(1900)
    m.close()


def test_only_the_visible_gpus_are_read_and_named() -> None:
    clock = Clock()
    gpus = [FakeGpu(UUIDS[i], energy_mj=lambda t, i=i: (i + 1) * 100_000 * t) for i in range(3)]
    nvml = FakeNvml(gpus, clock)
    m = meter(nvml, clock, visible="0,2")
    clock.t = 10.0
    assert [(d.index, d.uuid, d.energy_j) for d in m.devices()] == [
        (0, UUIDS[0], pytest.approx(1000)), (2, UUIDS[2], pytest.approx(3000))]
    assert m.read_j() == pytest.approx(4000)
    assert m.label == f"measured: NVML total energy, 2 x {H100} (GPU 0, 2) x PUE 1.00"
    assert "nvmlDeviceGetMigMode" not in nvml.calls  # MIG devices are listed only when named
    m.close()


def test_uuids_and_an_invalid_entry_as_cuda_reads_them() -> None:
    clock = Clock()
    gpus = [FakeGpu(UUIDS[i], energy_mj=lambda t: 0.0) for i in range(3)]
    m = meter(FakeNvml(gpus, clock), clock, visible=f"{UUIDS[2][:8]},-1,0")
    assert [d.index for d in m.devices()] == [2]
    m.close()


def test_a_mig_slice_is_metered_as_its_whole_board() -> None:
    clock = Clock()
    gpus = [FakeGpu(UUIDS[0], energy_mj=lambda t: 0.0),
            FakeGpu(UUIDS[1], energy_mj=lambda t: 200_000 * t,
                    mig_uuids=["MIG-aaaaaaaa-0000", "MIG-bbbbbbbb-0000"])]
    m = meter(FakeNvml(gpus, clock), clock, visible="MIG-bbbbbbbb")
    clock.t = 1.0
    (device,) = m.devices()
    assert (device.index, device.mig, device.energy_j) == (1, True, pytest.approx(200))
    assert "(GPU 1 [MIG: whole board])" in m.label
    m.close()


@pytest.mark.parametrize("visible", ["", "-1", "GPU-ffff", "5"])
def test_no_visible_gpu_is_unavailable_and_nvml_is_shut_down(visible: str) -> None:
    nvml = FakeNvml([FakeGpu(UUIDS[0], energy_mj=lambda t: 0.0)])
    with pytest.raises(MeterUnavailable, match="no GPU visible: CUDA_VISIBLE_DEVICES="):
        meter(nvml, Clock(), visible=visible)
    assert nvml.calls.count("nvmlInit") == nvml.calls.count("nvmlShutdown") == 1
    assert nvml.initialised == 0


@pytest.mark.parametrize("error", [NVMLError_LibraryNotFound(), NVMLError_DriverNotLoaded()])
def test_no_library_or_driver_is_unavailable(error: Exception) -> None:
    nvml = FakeNvml([], init_error=error)  # type: ignore[arg-type]
    with pytest.raises(MeterUnavailable, match="nvmlInit failed: fake NVML error"):
        meter(nvml, Clock())
    assert "nvmlShutdown" not in nvml.calls  # init failed: nothing to shut down


def test_no_gpu_at_all_is_unavailable() -> None:
    nvml = FakeNvml([])
    with pytest.raises(MeterUnavailable, match="NVML lists no GPU"):
        meter(nvml, Clock())
    assert nvml.calls.count("nvmlShutdown") == 1


def test_a_failure_while_opening_shuts_nvml_down() -> None:
    nvml = FakeNvml([FakeGpu(UUIDS[0], energy_mj=lambda t: 0.0)])
    nvml.fail_next["nvmlDeviceGetName"] = NVMLError_GpuIsLost()
    with pytest.raises(MeterUnavailable, match="name failed: fake NVML error 15"):
        meter(nvml, Clock())
    assert nvml.initialised == 0 and nvml.calls.count("nvmlShutdown") == 1


def test_shutdown_once_however_often_closed() -> None:
    nvml = FakeNvml([FakeGpu(UUIDS[0], power_mw=lambda t: 100_000.0)])
    with meter(nvml, Clock()) as m:
        m.close()
    close_meter(m)
    assert nvml.calls.count("nvmlInit") == nvml.calls.count("nvmlShutdown") == 1
    with pytest.raises(MeterError, match="closed"):
        m.read_j()


def test_a_read_error_is_the_meters_own() -> None:
    clock = Clock()
    nvml = FakeNvml([FakeGpu(UUIDS[0], energy_mj=lambda t: 0.0),
                     FakeGpu(UUIDS[1], power_mw=lambda t: 1.0)], clock)
    m = meter(nvml, clock)
    nvml.fail_next["nvmlDeviceGetTotalEnergyConsumption"] = NVMLError_GpuIsLost()
    with pytest.raises(MeterError, match="NVML energy: fake NVML error 15") as e:
        m.read_j()
    assert not isinstance(e.value, MeterUnavailable) and e.value.__cause__ is None
    nvml.fail_next["nvmlDeviceGetPowerUsage"] = NVMLError_GpuIsLost()
    with pytest.raises(MeterError, match="NVML power"):
        m.read_j()
    assert m.read_j() == 0.0  # the next read works again
    m.close()


def test_a_pue_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="pue: 0.9 is below 1"):
        meter(FakeNvml([FakeGpu(UUIDS[0], energy_mj=lambda t: 0.0)]), Clock(), pue=0.9)


# Power polling: a GPU without the energy counter.


def piecewise(times: list[float], powers_w: list[float]):  # noqa: ANN201 - a curve
    return lambda t: float(np.interp(t, times, powers_w)) * 1000.0  # mW, as NVML gives


def test_not_supported_counter_falls_back_to_power_polling() -> None:
    clock = Clock()
    # 100 W rising to 300 W over 10 s, then 300 W for 10 s: 2000 J + 3000 J.
    gpu = FakeGpu(UUIDS[0], name="Tesla P100-PCIE-16GB",
                  power_mw=piecewise([0, 10, 20], [100, 300, 300]))
    m = meter(FakeNvml([gpu], clock), clock)
    for t in (5.0, 10.0, 20.0):
        clock.t = t
        m.read_j()
    assert m.read_j() == pytest.approx(5000)
    assert m.devices()[0].method == "power" and m.measured
    assert m.label == "measured: NVML power polling, 1 x Tesla P100-PCIE-16GB (GPU 0) x PUE 1.00"
    m.close()


def simpson(times: list[float], curve) -> float:  # noqa: ANN001
    """Simpson's rule per segment: exact for a linear piece, and computed another way."""
    return sum((b - a) / 6 * (curve(a) + 4 * curve((a + b) / 2) + curve(b)) / 1000.0
               for a, b in zip(times, times[1:], strict=False))


@st.composite
def curves(draw: st.DrawFn) -> tuple[list[float], list[float], list[float]]:
    gaps = draw(st.lists(st.floats(0.01, 100.0), min_size=1, max_size=8))
    times = list(np.cumsum([0.0, *gaps]))
    powers = draw(st.lists(st.floats(0.0, 1000.0), min_size=len(times), max_size=len(times)))
    extra = draw(st.lists(st.floats(0.0, float(times[-1])), max_size=8))
    return [float(t) for t in times], powers, extra


@settings(max_examples=60, deadline=None)
@given(curves())
def test_polling_integrates_a_piecewise_linear_curve_exactly(
        drawn: tuple[list[float], list[float], list[float]]) -> None:
    times, powers, extra = drawn
    clock = Clock(times[0])
    curve = piecewise(times, powers)
    m = meter(FakeNvml([FakeGpu(UUIDS[0], power_mw=curve)], clock), clock)
    for t in sorted({*times, *extra}):  # every corner is sampled, and some points between
        clock.t = t
        m.read_j()
    expected = simpson(sorted({*times}), curve)
    assert m.read_j() == pytest.approx(expected, rel=1e-9, abs=1e-6)
    m.close()


def test_the_polling_thread_samples_on_its_own() -> None:
    clock, waits, done = Clock(), [], threading.Event()

    def wait(interval_s: float) -> bool:  # the thread's sleep: the fake clock moves instead
        waits.append(interval_s)
        if len(waits) > 20:
            done.set()
            return True
        clock.t += interval_s
        return False

    nvml = FakeNvml([FakeGpu(UUIDS[0], power_mw=lambda t: (100 + 10 * t) * 1000)], clock)
    m = NvmlMeter(clock, nvml=nvml, environ={}, poll_interval_s=0.5, poll_wait=wait)
    assert done.wait(5.0)
    # 20 samples 0.5 s apart on a ramp: 100 W x 10 s + 10 W/s x 10 s^2 / 2, and the read adds no
    # time (the clock stands still after the thread stops).
    assert m.read_j() == pytest.approx(1000 + 500)
    assert set(waits) == {0.5} and nvml.calls.count("nvmlDeviceGetPowerUsage") >= 22
    m.close()


def test_no_power_reading_means_a_labelled_utilisation_estimate() -> None:
    clock = Clock()
    gpu = FakeGpu(UUIDS[0], name="NVIDIA A10G", limit_mw=300_000, utilisation_pct=lambda t: 50.0)
    m = meter(FakeNvml([gpu], clock), clock, pue=1.1)
    clock.t = 10.0
    assert m.read_j() == pytest.approx(300 * 0.5 * 10 * 1.1)
    assert not m.measured and not m.devices()[0].measured
    assert m.label == "estimate: NVML utilisation x power limit, 1 x NVIDIA A10G (GPU 0) x PUE 1.10"
    m.close()


def test_mixed_boards_each_read_their_way_and_label_says_so() -> None:
    clock = Clock()
    gpus = [FakeGpu(UUIDS[0], energy_mj=lambda t: 1e6 + 100_000 * t),
            FakeGpu(UUIDS[1], name="Tesla P100-PCIE-16GB", power_mw=lambda t: 50_000.0)]
    m = meter(FakeNvml(gpus, clock), clock)
    clock.t = 4.0
    assert [(d.method, d.energy_j) for d in m.devices()] == [
        ("counter", pytest.approx(400)), ("power", pytest.approx(200))]
    assert m.label == (f"measured: NVML total energy, 1 x {H100} (GPU 0); "
                       "NVML power polling, 1 x Tesla P100-PCIE-16GB (GPU 1) x PUE 1.00")
    m.close()


def test_force_polling_reads_power_even_with_a_counter() -> None:
    clock = Clock()
    gpu = FakeGpu(UUIDS[0], energy_mj=lambda t: 0.0, power_mw=lambda t: 100_000.0)
    m = meter(FakeNvml([gpu], clock), clock, force_polling=True)
    clock.t = 2.0
    assert m.devices()[0].method == "power" and m.read_j() == pytest.approx(200)
    m.close()


# open_meter: NVML when it works, else RAPL when asked, else the labelled estimate.


def test_open_meter_prefers_nvml() -> None:
    clock = Clock()
    nvml = FakeNvml([FakeGpu(UUIDS[0], energy_mj=lambda t: 0.0)], clock)
    m = open_meter(300.0, clock, "plan", prefer_nvml=True, pue=1.15, nvml=nvml, environ={})
    assert isinstance(m, NvmlMeter) and m.label.startswith("measured: NVML total energy")
    close_meter(m)
    assert nvml.initialised == 0


def test_open_meter_without_nvml_carries_on_with_the_estimate(tmp_path: Path) -> None:
    clock = Clock()
    nvml = FakeNvml([], init_error=NVMLError_LibraryNotFound())
    m = open_meter(300.0, clock, "1 x A10G", prefer_nvml=True, pue=1.15, nvml=nvml, environ={},
                   rapl_root=tmp_path)
    assert isinstance(m, EstimateMeter) and m.power_w == 300.0  # the plan's PUE, not twice
    assert m.label == "estimate: 1 x A10G (NVML unavailable: nvmlInit failed: " \
                      "fake NVML error 12)"
    close_meter(m)  # nothing to close: fine


def test_open_meter_falls_to_rapl_when_asked(tmp_path: Path) -> None:
    zone = tmp_path / "intel-rapl:0"
    zone.mkdir()
    (zone / "max_energy_range_uj").write_text("1000000")
    (zone / "energy_uj").write_text("5")
    m = open_meter(1.0, Clock(), "x", rapl_root=tmp_path, prefer_rapl=True, prefer_nvml=True,
                   nvml=FakeNvml([]), environ={})
    assert isinstance(m, RaplMeter)


def test_open_meter_with_an_empty_visible_list_is_the_estimate() -> None:
    nvml = FakeNvml([FakeGpu(UUIDS[0], energy_mj=lambda t: 0.0)])
    m = open_meter(1.0, Clock(), "x", prefer_nvml=True, nvml=nvml,
                   environ={"CUDA_VISIBLE_DEVICES": ""})
    assert m.label == "estimate: x (NVML unavailable: no GPU visible: CUDA_VISIBLE_DEVICES='')"


# The real pynvml, on this machine: no driver.

no_driver = pytest.mark.skipif(Path("/dev/nvidiactl").exists(), reason="a GPU driver is here")


@no_driver
def test_the_real_pynvml_without_a_driver_is_unavailable() -> None:
    with pytest.raises(MeterUnavailable, match="nvmlInit failed: "):
        NvmlMeter(Clock())


@no_driver
def test_the_real_open_meter_without_a_driver_is_the_labelled_estimate() -> None:
    m = open_meter(250.0, Clock(), "1 x A10G 300 W x 0.80 x PUE 1.15", prefer_nvml=True, pue=1.15)
    assert isinstance(m, EstimateMeter)
    assert m.label.startswith("estimate: 1 x A10G 300 W x 0.80 x PUE 1.15 (NVML unavailable: ")


def test_without_nvidia_ml_py_installed_the_estimate_carries_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    with pytest.raises(MeterUnavailable, match="nvidia-ml-py is not installed"):
        NvmlMeter(Clock())
    m = open_meter(10.0, Clock(), "x", prefer_nvml=True)
    assert m.label.startswith("estimate: x (NVML unavailable: nvidia-ml-py is not installed")


def test_a_board_that_fails_other_than_not_supported_makes_nvml_unavailable() -> None:
    nvml = FakeNvml([FakeGpu(UUIDS[0], energy_mj=lambda t: 0.0, power_mw=lambda t: 1.0)])
    nvml.fail_next["nvmlDeviceGetTotalEnergyConsumption"] = NVMLError_GpuIsLost()
    with pytest.raises(MeterUnavailable, match="NVML total energy failed: fake NVML error 15"):
        meter(nvml, Clock())  # not silently polled: a lost GPU is not a GPU without a counter
    assert nvml.initialised == 0 and nvml.calls.count("nvmlShutdown") == 1


def test_a_board_with_nothing_to_read_makes_nvml_unavailable() -> None:
    nvml = FakeNvml([FakeGpu(UUIDS[0])])  # no counter, no power, no utilisation
    with pytest.raises(MeterUnavailable, match="neither energy, power nor utilisation"):
        meter(nvml, Clock())
    assert nvml.initialised == 0
