"""A scripted stand-in for `pynvml`: the functions the NVML meter calls, on made-up GPUs.

Each GPU's energy counter (mJ), power (mW) and utilisation (%) are functions of a shared clock,
or raise NotSupported; errors can be scripted per call. Calls are recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_GPU_IS_LOST = 15


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return f"fake NVML error {self.value}"


class NVMLError_NotSupported(NVMLError):  # noqa: N801 - pynvml's name
    def __init__(self) -> None:
        super().__init__(NVML_ERROR_NOT_SUPPORTED)


class NVMLError_NotFound(NVMLError):  # noqa: N801
    def __init__(self) -> None:
        super().__init__(NVML_ERROR_NOT_FOUND)


class NVMLError_DriverNotLoaded(NVMLError):  # noqa: N801
    def __init__(self) -> None:
        super().__init__(NVML_ERROR_DRIVER_NOT_LOADED)


class NVMLError_LibraryNotFound(NVMLError):  # noqa: N801
    def __init__(self) -> None:
        super().__init__(NVML_ERROR_LIBRARY_NOT_FOUND)


class NVMLError_GpuIsLost(NVMLError):  # noqa: N801
    def __init__(self) -> None:
        super().__init__(NVML_ERROR_GPU_IS_LOST)


Curve = Callable[[float], float]


@dataclass
class FakeGpu:
    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    energy_mj: Curve | None = None  # None: NotSupported (pre-Volta)
    power_mw: Curve | None = None  # None: NotSupported
    utilisation_pct: Curve | None = None
    limit_mw: int = 700_000
    mig_uuids: list[str] = field(default_factory=list)  # non-empty: MIG mode on


@dataclass(frozen=True)
class MigHandle:
    parent: int
    slot: int


class FakeNvml:
    """Module-like: `FakeNvml(gpus, clock).nvmlDeviceGetPowerUsage(handle)` and the rest."""

    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported
    NVMLError_NotFound = NVMLError_NotFound
    NVMLError_DriverNotLoaded = NVMLError_DriverNotLoaded
    NVMLError_LibraryNotFound = NVMLError_LibraryNotFound
    NVMLError_GpuIsLost = NVMLError_GpuIsLost

    def __init__(self, gpus: list[FakeGpu], clock: Callable[[], float] = lambda: 0.0,
                 init_error: NVMLError | None = None) -> None:
        self.gpus, self.clock, self.init_error = gpus, clock, init_error
        self.calls: list[str] = []
        self.fail_next: dict[str, NVMLError] = {}  # function name -> error raised once
        self.initialised = 0

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name in self.fail_next:
            raise self.fail_next.pop(name)
        if name not in ("nvmlInit", "nvmlShutdown") and self.initialised <= 0:
            raise NVMLError(1)  # NVML_ERROR_UNINITIALIZED

    def _gpu(self, handle: object) -> FakeGpu:
        assert isinstance(handle, int), f"not a GPU handle: {handle!r}"
        return self.gpus[handle]

    def nvmlInit(self) -> None:
        self._call("nvmlInit")
        if self.init_error is not None:
            raise self.init_error
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self._call("nvmlShutdown")
        self.initialised -= 1

    def nvmlDeviceGetCount(self) -> int:
        self._call("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        self._call("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.gpus):
            raise NVMLError(2)  # invalid argument
        return index

    def nvmlDeviceGetUUID(self, handle: object) -> str:
        self._call("nvmlDeviceGetUUID")
        if isinstance(handle, MigHandle):
            return self.gpus[handle.parent].mig_uuids[handle.slot]
        return self._gpu(handle).uuid

    def nvmlDeviceGetName(self, handle: object) -> str:
        self._call("nvmlDeviceGetName")
        return self._gpu(handle).name

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: object) -> int:
        self._call("nvmlDeviceGetTotalEnergyConsumption")
        curve = self._gpu(handle).energy_mj
        if curve is None:
            raise NVMLError_NotSupported()
        return int(curve(self.clock()))

    def nvmlDeviceGetPowerUsage(self, handle: object) -> float:
        self._call("nvmlDeviceGetPowerUsage")
        curve = self._gpu(handle).power_mw
        if curve is None:
            raise NVMLError_NotSupported()
        return curve(self.clock())

    def nvmlDeviceGetPowerManagementLimit(self, handle: object) -> int:
        self._call("nvmlDeviceGetPowerManagementLimit")
        return self._gpu(handle).limit_mw

    def nvmlDeviceGetUtilizationRates(self, handle: object) -> SimpleNamespace:
        self._call("nvmlDeviceGetUtilizationRates")
        curve = self._gpu(handle).utilisation_pct
        if curve is None:
            raise NVMLError_NotSupported()
        return SimpleNamespace(gpu=curve(self.clock()), memory=0)

    def nvmlDeviceGetMigMode(self, handle: object) -> list[int]:
        self._call("nvmlDeviceGetMigMode")
        on = int(bool(self._gpu(handle).mig_uuids))
        return [on, on]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: object) -> int:
        self._call("nvmlDeviceGetMaxMigDeviceCount")
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: object, index: int) -> MigHandle:
        self._call("nvmlDeviceGetMigDeviceHandleByIndex")
        if index >= len(self._gpu(handle).mig_uuids):
            raise NVMLError_NotFound()
        assert isinstance(handle, int)
        return MigHandle(handle, index)
