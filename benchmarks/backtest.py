"""Backtest benchmark: a year of hourly data over 4 traces (4 h jobs, 24 h slack).

Prints one JSON object with the wall time of each variant, in seconds.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from carbonshift.backtest import backtest  # noqa: E402
from carbonshift.traces import bundled_traces_dir, read_trace  # noqa: E402

ZONES = ["DE-LU", "GB", "US-CAL-CISO", "US-MIDA-PJM"]


def timed(**kwargs: object) -> tuple[float, dict[str, object]]:
    traces = [read_trace(bundled_traces_dir() / f"{z}_2023_hourly.csv") for z in ZONES]
    t0 = time.perf_counter()
    result = backtest(traces, duration_s=4 * 3600, slack_s=24 * 3600, **kwargs)  # type: ignore[arg-type]
    return time.perf_counter() - t0, result


def main() -> None:
    perfect_s, result = timed()
    error_s, _ = timed(forecast_error=0.2, seed=1)
    overhead_s, _ = timed(resume_overhead_s=600)
    print(
        json.dumps(
            {
                "jobs": result["jobs"],
                "traces": len(ZONES),
                "perfect_foresight_s": round(perfect_s, 3),
                "forecast_error_s": round(error_s, 3),
                "resume_overhead_s": round(overhead_s, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
