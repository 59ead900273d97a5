"""GPU energy through NVML (nvidia-ml-py, imported as `pynvml`), per visible GPU.

Each GPU is read the best way it allows: its total-energy counter (mJ since the driver loaded;
Volta and newer) as deltas; else its power draw (mW) polled and integrated; else, labelled an
estimate, its power limit x its utilisation, polled the same way. Readings are the boards'
energy times the PUE the caller gives (the data centre's overhead, applied here once: the plan's
estimate has it already). No library, no driver or no visible GPU -> `MeterUnavailable`, and the
caller falls back to its estimate.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

from carbonshift.meters.polling import PowerPoller, Wait
from carbonshift.meters.visible import Gpu, Selection, names_mig, select

Method = Literal["counter", "power", "utilisation"]
METHOD_NAMES: dict[Method, str] = {
    "counter": "NVML total energy",
    "power": "NVML power polling",
    "utilisation": "NVML utilisation x power limit",
}


class MeterError(Exception):
    """A meter that could not be read."""


class MeterUnavailable(MeterError):
    """No meter of this kind here (no library, driver or device): use the estimate."""


class NvmlLike(Protocol):
    """The part of `pynvml` this meter calls (a fake implements it in tests)."""

    NVMLError: type[Exception]
    NVMLError_NotSupported: type[Exception]

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int: ...
    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any: ...
    def nvmlDeviceGetUUID(self, handle: Any) -> str | bytes: ...
    def nvmlDeviceGetName(self, handle: Any) -> str | bytes: ...
    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int: ...
    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int: ...
    def nvmlDeviceGetPowerManagementLimit(self, handle: Any) -> int: ...
    def nvmlDeviceGetUtilizationRates(self, handle: Any) -> Any: ...
    def nvmlDeviceGetMigMode(self, handle: Any) -> list[int]: ...
    def nvmlDeviceGetMaxMigDeviceCount(self, handle: Any) -> int: ...
    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: Any, index: int) -> Any: ...


@dataclass(frozen=True)
class DeviceEnergy:
    """One GPU's energy since the meter opened (the board's, before PUE)."""

    index: int
    uuid: str
    name: str
    method: Method
    energy_j: float
    mig: bool = False

    @property
    def measured(self) -> bool:
        return self.method != "utilisation"


def load_pynvml() -> NvmlLike:
    try:
        return cast(NvmlLike, importlib.import_module("pynvml"))
    except ImportError as e:
        raise MeterUnavailable(f"nvidia-ml-py is not installed ({e})") from None


class NvmlMeter:
    """Energy of the GPUs `CUDA_VISIBLE_DEVICES` makes visible, since the meter opened."""

    def __init__(
        self,
        clock: Callable[[], float],
        pue: float = 1.0,
        nvml: NvmlLike | None = None,
        environ: Mapping[str, str] | None = None,
        poll_interval_s: float = 0.5,
        poll_wait: Wait | None = None,
        force_polling: bool = False,
    ) -> None:
        if pue < 1.0:
            raise ValueError(f"pue: {pue!r} is below 1, which no data centre reaches: give >= 1")
        self.pue = pue
        self._nvml = nvml if nvml is not None else load_pynvml()
        self._closed, self._reading = threading.Lock(), threading.Lock()
        self._open = False
        visible = (os.environ if environ is None else environ).get("CUDA_VISIBLE_DEVICES")
        self._call("nvmlInit", self._nvml.nvmlInit, unavailable=True)
        self._open = True
        try:
            self._devices = self._visible(visible)
            probed = [self._method(h, force_polling) for _, h, _ in self._devices]
            self._methods = [m for m, _ in probed]
            # The counter's first reading is where this meter's count starts.
            self._last_j = [float(first) / 1000.0 if m == "counter" else 0.0 for m, first in probed]
            self._total_j = [0.0] * len(self._devices)
            polled = [
                self._power_source(h, m)
                for (_, h, _), m in zip(self._devices, self._methods, strict=True)
                if m != "counter"
            ]
            self._poller = (
                PowerPoller(polled, clock, poll_interval_s, poll_wait) if polled else None
            )
        except BaseException:
            self.close()
            raise
        self.label = self._label()

    @property
    def measured(self) -> bool:
        return all(m != "utilisation" for m in self._methods)

    def read_j(self) -> float:
        """Energy in joules since the meter was opened, PUE included."""
        return sum(d.energy_j for d in self.devices()) * self.pue

    def devices(self) -> list[DeviceEnergy]:
        """Each GPU's own energy since the meter was opened, before PUE."""
        with self._reading:  # a heartbeat thread and the run's end may read at once
            if not self._open:
                raise MeterError("the NVML meter is closed")
            polled = iter(self._call("power", self._poller.energies_j) if self._poller else [])
            found = []
            for i, ((gpu, handle, name), method) in enumerate(
                zip(self._devices, self._methods, strict=True)
            ):
                energy_j = next(polled) if method != "counter" else self._count(i, handle)
                mig = gpu.index in self._selection.via_mig
                found.append(DeviceEnergy(gpu.index, gpu.uuid, name, method, energy_j, mig))
            return found

    def close(self) -> None:
        """Stop polling and shut NVML down (once, however often it is called)."""
        with self._closed:
            if not self._open:
                return
            self._open = False
        poller = getattr(self, "_poller", None)
        if poller is not None:
            poller.close()
        # Best effort: the process is done with NVML either way.
        with contextlib.suppress(self._nvml.NVMLError):
            self._nvml.nvmlShutdown()

    def __enter__(self) -> NvmlMeter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _count(self, i: int, handle: Any) -> float:
        now_j = self._counter(handle)
        delta = now_j - self._last_j[i]
        if delta < 0:  # the counter restarted (a driver reload) and counts from 0 again
            delta = now_j
        self._last_j[i] = now_j
        self._total_j[i] += delta
        return self._total_j[i]

    def _counter(self, handle: Any) -> float:
        mj = self._call("energy", self._nvml.nvmlDeviceGetTotalEnergyConsumption, handle)
        return float(mj) / 1000.0

    def _visible(self, visible: str | None) -> list[tuple[Gpu, Any, str]]:
        nvml = self._nvml
        count = self._call("nvmlDeviceGetCount", nvml.nvmlDeviceGetCount, unavailable=True)
        handles = [
            self._call("handle", nvml.nvmlDeviceGetHandleByIndex, i, unavailable=True)
            for i in range(count)
        ]
        with_mig = names_mig(visible)
        gpus = [
            Gpu(
                i,
                _text(self._call("UUID", nvml.nvmlDeviceGetUUID, h, unavailable=True)),
                self._mig_uuids(h) if with_mig else (),
            )
            for i, h in enumerate(handles)
        ]
        self._selection: Selection = select(visible, gpus)
        if not self._selection.gpus:
            why = (
                f"no GPU visible: CUDA_VISIBLE_DEVICES={visible!r}"
                if visible is not None
                else "NVML lists no GPU"
            )
            raise MeterUnavailable(why)
        return [
            (
                g,
                handles[g.index],
                _text(
                    self._call("name", nvml.nvmlDeviceGetName, handles[g.index], unavailable=True)
                ),
            )
            for g in self._selection.gpus
        ]

    def _mig_uuids(self, handle: Any) -> tuple[str, ...]:
        nvml = self._nvml
        try:
            if nvml.nvmlDeviceGetMigMode(handle)[0] != 1:
                return ()
            slots = nvml.nvmlDeviceGetMaxMigDeviceCount(handle)
        except nvml.NVMLError:  # no MIG on this board
            return ()
        found = []
        for slot in range(slots):
            try:
                mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
                found.append(_text(nvml.nvmlDeviceGetUUID(mig)))
            except nvml.NVMLError:  # an empty slot
                continue
        return tuple(found)

    def _method(self, handle: Any, force_polling: bool) -> tuple[Method, Any]:
        """The best way this GPU can be read, and that way's first reading."""
        nvml = self._nvml
        tries: list[tuple[Method, Callable[[], Any]]] = [
            ("counter", lambda: nvml.nvmlDeviceGetTotalEnergyConsumption(handle)),
            ("power", lambda: nvml.nvmlDeviceGetPowerUsage(handle)),
            ("utilisation", lambda: self._utilisation_w(handle)),
        ]
        for method, probe in tries[1:] if force_polling else tries:
            try:
                return method, probe()
            except nvml.NVMLError_NotSupported:
                continue
            except nvml.NVMLError as e:
                raise MeterUnavailable(f"{METHOD_NAMES[method]} failed: {e}") from None
        raise MeterUnavailable(
            "a visible GPU reports neither energy, power nor utilisation through NVML"
        )

    def _power_source(self, handle: Any, method: Method) -> Callable[[], float]:
        if method == "power":
            return lambda: float(self._nvml.nvmlDeviceGetPowerUsage(handle)) / 1000.0
        return lambda: self._utilisation_w(handle)

    def _utilisation_w(self, handle: Any) -> float:
        limit_w = float(self._nvml.nvmlDeviceGetPowerManagementLimit(handle)) / 1000.0
        busy = float(self._nvml.nvmlDeviceGetUtilizationRates(handle).gpu) / 100.0
        return limit_w * busy

    def _call(
        self, what: str, fn: Callable[..., Any], *args: Any, unavailable: bool = False
    ) -> Any:
        """`fn(*args)`, its NVML errors told as this meter's."""
        try:
            return fn(*args)
        except self._nvml.NVMLError as e:
            if unavailable:
                raise MeterUnavailable(f"{what} failed: {e}") from None
            raise MeterError(f"NVML {what}: {e}") from None

    def _label(self) -> str:
        parts = []
        for method in METHOD_NAMES:
            devices = [d for d, m in zip(self._devices, self._methods, strict=True) if m == method]
            if devices:
                parts.append(f"{METHOD_NAMES[method]}, {_describe(devices, self._selection)}")
        kind = "measured" if self.measured else "estimate"
        return f"{kind}: {'; '.join(parts)} x PUE {self.pue:.2f}"


def _describe(devices: Iterable[tuple[Gpu, Any, str]], selection: Selection) -> str:
    listed = list(devices)
    names = Counter(name for _, _, name in listed)
    boards = ", ".join(f"{n} x {name}" for name, n in names.items())
    indices = ", ".join(
        f"{g.index}{' [MIG: whole board]' if g.index in selection.via_mig else ''}"
        for g, _, _ in listed
    )
    return f"{boards} (GPU {indices})"


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
