"""The VM agent opens the meter its spec names: NVML, RAPL, `auto` or the estimate."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from carbonshift.checkpoint import LocalStore
from carbonshift.energy import EstimateMeter
from carbonshift.meters import NvmlMeter, close_meter
from carbonshift.meters import nvml as nvml_module
from carbonshift.remote.agent import agent_for
from carbonshift.remote.protocol import SPEC, MeterSpec, RunSpec, control_prefix, join, write
from carbonshift.run.supervisor import SystemClock
from tests.fakes.nvml import FakeGpu, FakeNvml

no_driver = pytest.mark.skipif(Path("/dev/nvidiactl").exists(), reason="a GPU driver is here")


def spec_uri(tmp_path: Path, meter: MeterSpec) -> str:
    store = LocalStore(tmp_path / "store")
    spec = RunSpec(job="tiny", run_id="r1", provider="local",
                   entrypoint="carbonshift.examples.tiny_train:train",
                   checkpoint_store=store.uri, checkpoint_prefix="tiny/r1", meter=meter)
    folder = control_prefix("tiny/r1", "r1")
    write(store, join(folder, SPEC), spec)
    return f"{store.uri}/{folder}/{SPEC}"


def test_meter_spec_kinds_and_pue() -> None:
    assert MeterSpec().kind == "estimate" and MeterSpec().pue == 1.0
    assert MeterSpec(kind="nvml", pue=1.15).pue == 1.15
    with pytest.raises(ValidationError, match="pue"):
        MeterSpec(kind="nvml", pue=0.5)
    with pytest.raises(ValidationError, match="kind"):
        MeterSpec(kind="gpu")  # type: ignore[arg-type]


def test_an_nvml_spec_measures_the_visible_gpus(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNvml([FakeGpu("GPU-0000", energy_mj=lambda t: 1e9)])
    monkeypatch.setattr(nvml_module, "load_pynvml", lambda: fake)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    meter = MeterSpec(kind="nvml", power_w=300.0, label="1 x A10G", pue=1.15)
    agent = agent_for(spec_uri(tmp_path, meter), wait_s=0.0, clock=SystemClock())
    assert isinstance(agent.meter, NvmlMeter) and agent.meter.pue == 1.15
    assert agent.meter.label.startswith("measured: NVML total energy, 1 x NVIDIA H100")
    close_meter(agent.meter)
    assert fake.calls.count("nvmlShutdown") == 1


@no_driver
@pytest.mark.parametrize("kind", ["nvml", "auto"])
def test_without_a_driver_the_agent_carries_on_with_the_estimate(tmp_path: Path,
                                                                 kind: str) -> None:
    meter = MeterSpec(kind=kind, power_w=300.0, label="1 x A10G", pue=1.15)  # type: ignore[arg-type]
    agent = agent_for(spec_uri(tmp_path, meter), wait_s=0.0, clock=SystemClock())
    if kind == "auto" and agent.meter.label.startswith("measured: RAPL"):
        pytest.skip("this machine's RAPL is readable: auto measures the CPU packages")
    assert isinstance(agent.meter, EstimateMeter) and agent.meter.power_w == 300.0
    assert agent.meter.label.startswith("estimate: 1 x A10G (NVML unavailable: ")


def test_an_estimate_spec_never_opens_nvml(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNvml([FakeGpu("GPU-0000", energy_mj=lambda t: 0.0)])
    monkeypatch.setattr(nvml_module, "load_pynvml", lambda: fake)
    agent = agent_for(spec_uri(tmp_path, MeterSpec(power_w=100.0, label="x")), wait_s=0.0)
    assert agent.meter.label == "estimate: x" and fake.calls == []
