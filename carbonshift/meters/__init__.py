"""Energy meters for hardware the core reads directly: GPUs through NVML.

`carbonshift.energy.open_meter(prefer_nvml=True)` is the usual way in; it falls back to RAPL or
the labelled estimate when NVML is unavailable.
"""

from __future__ import annotations

from carbonshift.meters.nvml import (
    DeviceEnergy,
    MeterError,
    MeterUnavailable,
    NvmlLike,
    NvmlMeter,
    load_pynvml,
)


def close_meter(meter: object) -> None:
    """Release what a meter holds (NVML, a polling thread); meters that hold nothing have no
    `close`, and that is fine."""
    close = getattr(meter, "close", None)
    if callable(close):
        close()


__all__ = [
    "DeviceEnergy",
    "MeterError",
    "MeterUnavailable",
    "NvmlLike",
    "NvmlMeter",
    "close_meter",
    "load_pynvml",
]
