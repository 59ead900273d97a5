"""Energy meters for hardware the core reads directly: GPUs through NVML.

`carbonshift.energy.open_meter(prefer_nvml=True)` is the usual way in; it falls back to RAPL or
the labelled estimate when NVML is unavailable.
"""

from __future__ import annotations

import logging
from typing import Any

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


log = logging.getLogger("carbonshift.meters")


def read_with_devices(meter: Any) -> tuple[float, list[DeviceEnergy] | None]:
    """The meter's energy in joules (PUE included) and, where it reads each GPU, their energies
    (before PUE) from that same reading, so that the devices times the PUE are the total. A
    meter without devices, or one whose boards cannot be read now: `read_j()` and None."""
    devices, pue = getattr(meter, "devices", None), getattr(meter, "pue", None)
    if callable(devices) and isinstance(pue, int | float):
        try:
            found: list[DeviceEnergy] = list(devices())
        except MeterError as e:  # a lost board: the total may still be read
            log.warning("energy by device unavailable: %s", e)
        else:
            if found:
                return sum(d.energy_j for d in found) * float(pue), found
    return float(meter.read_j()), None


__all__ = [
    "DeviceEnergy",
    "MeterError",
    "MeterUnavailable",
    "NvmlLike",
    "NvmlMeter",
    "close_meter",
    "load_pynvml",
    "read_with_devices",
]
