"""GPU energy (the GPU check of issue 11): the energy counter against integrated power polling.

NEEDS A GPU: an NVIDIA driver, `pynvml` (nvidia-ml-py) and torch with CUDA. Without them it
prints `{"available": false, "reason": ...}` and exits 1; it measures nothing on a CPU machine.

For about DURATION_S seconds (60 by default; `gpu_energy.py 30` for 30) it runs float32 matmuls
on every visible CUDA device while three meters watch the same GPUs (CUDA_VISIBLE_DEVICES
honoured): carbonshift's NVML meter as a run would open it (the total-energy counter where the
board has one), the same meter forced to poll power every 0.1 s and integrate it, and the raw
counter read directly before and after. Prints one JSON object: the devices and each one's
method, the three energies (J, boards only, no PUE), `polling_over_counter` (their ratio: near
1 when polling at 10 Hz sees what the counter counts) and the matmul throughput.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from carbonshift.meters import MeterUnavailable, NvmlMeter, load_pynvml  # noqa: E402

SIZE = 8192


def unavailable(reason: str) -> int:
    print(json.dumps({"available": False, "reason": reason}))
    return 1


def main(argv: list[str]) -> int:
    duration_s = float(argv[1]) if len(argv) > 1 else 60.0
    try:
        import torch
    except ImportError:
        return unavailable("torch is not installed")
    if not torch.cuda.is_available():
        return unavailable("torch sees no CUDA device")
    try:
        nvml = load_pynvml()
        counter = NvmlMeter(time.monotonic)
        polling = NvmlMeter(time.monotonic, poll_interval_s=0.1, force_polling=True)
    except MeterUnavailable as e:
        return unavailable(str(e))
    handles = [nvml.nvmlDeviceGetHandleByIndex(d.index) for d in counter.devices()]
    direct_start = [_direct_mj(nvml, h) for h in handles]

    devices = [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    pairs = [
        (torch.randn(SIZE, SIZE, device=d), torch.randn(SIZE, SIZE, device=d)) for d in devices
    ]
    started = time.monotonic()
    matmuls = 0
    while time.monotonic() - started < duration_s:
        for a, b in pairs:
            a @ b
        matmuls += len(pairs)
        if matmuls % (8 * len(pairs)) == 0:
            torch.cuda.synchronize()
    torch.cuda.synchronize()
    elapsed_s = time.monotonic() - started

    by_device = counter.devices()
    polled = polling.devices()
    direct = [
        None if s is None or e is None else (e - s) / 1000.0
        for s, e in zip(direct_start, [_direct_mj(nvml, h) for h in handles], strict=True)
    ]
    counter_j, polling_j = sum(d.energy_j for d in by_device), sum(d.energy_j for d in polled)
    # The ratio only where a counter exists: elsewhere both meters poll, and agree by design.
    with_counter = [(d, p) for d, p in zip(by_device, polled, strict=True) if d.method == "counter"]
    counted_j = sum(d.energy_j for d, _ in with_counter)
    polled_j = sum(p.energy_j for _, p in with_counter)
    result: dict[str, Any] = {
        "available": True,
        "duration_s": round(elapsed_s, 3),
        "devices": [
            {
                "index": d.index,
                "uuid": d.uuid,
                "name": d.name,
                "method": d.method,
                "meter_j": round(d.energy_j, 1),
                "polling_j": round(p.energy_j, 1),
                "counter_direct_j": None if c is None else round(c, 1),
            }
            for d, p, c in zip(by_device, polled, direct, strict=True)
        ],
        "meter_label": counter.label,
        "meter_j": round(counter_j, 1),
        "polling_j": round(polling_j, 1),
        "counter_direct_j": None if None in direct else round(sum(c or 0.0 for c in direct), 1),
        "polling_over_counter": round(polled_j / counted_j, 4) if counted_j > 0 else None,
        "mean_power_w": round(counter_j / elapsed_s, 1),
        "tflops": round(2 * SIZE**3 * matmuls / elapsed_s / 1e12, 1),
    }
    counter.close()
    polling.close()
    print(json.dumps(result))
    return 0


def _direct_mj(nvml: Any, handle: Any) -> float | None:
    try:
        return float(nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
    except nvml.NVMLError_NotSupported:
        return None


if __name__ == "__main__":
    sys.exit(main(sys.argv))
