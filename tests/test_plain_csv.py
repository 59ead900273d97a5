"""Traces read without pandas are the traces pandas reads: against pandas itself (the reference
reader, forced), on the bundled traces and on files drawn plain, odd and broken alike."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carbonshift import traces
from carbonshift.plain_csv import read_plain_csv
from carbonshift.series import IntensitySeries, Signal

BUNDLED = sorted(traces.bundled_traces_dir().glob("*.csv"))
EM_LCA = traces.EM_COLUMNS[Signal.LCA]
EM_DIRECT = traces.EM_COLUMNS[Signal.DIRECT]


def outcome(read: Callable[[], IntensitySeries]) -> tuple[object, ...]:
    """What a read gives, comparably: the series' every field, or the error's type and text."""
    try:
        s = read()
    except Exception as e:
        return ("raised", type(e).__name__, str(e))
    return (
        s.start_s,
        s.step_s,
        s.g_per_kwh.tobytes(),
        s.signal,
        s.source,
        s.zone,
        repr(s.fills),
    )


def both(
    path: Path, monkeypatch: pytest.MonkeyPatch, signal: Signal
) -> tuple[tuple[object, ...], ...]:
    """What the reader gives, and what pandas alone gives (gaps of two points filled)."""
    fast = outcome(lambda: traces._read_trace(path, signal, 2))
    with monkeypatch.context() as m:
        m.setattr(traces, "read_plain_csv", lambda _: None)
        reference = outcome(lambda: traces._read_trace(path, signal, 2))
    return fast, reference


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.name)
@pytest.mark.parametrize("signal", [Signal.LCA, Signal.DIRECT])
def test_the_bundled_traces_are_plain_and_read_as_pandas_reads_them(
    path: Path, signal: Signal, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = read_plain_csv(path)
    assert plain is not None and plain.times(traces.EM_TIME) is not None
    assert plain.values(traces.EM_COLUMNS[signal]) is not None
    fast, reference = both(path, monkeypatch, signal=signal)
    assert fast[0] != "raised" and fast == reference


def test_plan_imports_no_pandas_on_plain_traces() -> None:
    code = "import sys, carbonshift.cli as c; c.main(['plan', '--jobs', sys.argv[1], '--now', "
    code += "'2023-06-01T00:00Z']); print(sorted(m for m in sys.modules if m == 'pandas'))"
    jobs = Path(__file__).resolve().parents[1] / "deployments" / "jobs.yaml"
    out = subprocess.run(
        [sys.executable, "-c", code, str(jobs)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().endswith("[]"), out.stdout[-300:]


# -- drawn files -------------------------------------------------------------------------------

STEPS_S = [3600, 1800, 300]
TIME_FORMATS = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]
SUFFIXES = ["", "", "Z", "+00:00", "+01:00", "-05:30", " ", "z"]
ODD_TIMES = ["2023-02-30 00:00:00", "1650-01-01 00:00", "2300-01-01T00:00", "", "NA", "yesterday"]
ODD_VALUES = ["", "", "NA", "nan", " 1.5", "1e3", "1_000", "abc", "1.2345678", "12345678901", "+4"]
ZONES = ["DE", "US-CAL-CISO", "NA", "", "true", "1e3", " DE", "de", "DE-", "INF"]


def _time(t0: int, k: int, step: int, fmt: str, suffix: str) -> str:
    import datetime as dt

    when = dt.datetime.fromtimestamp(t0 + k * step, dt.UTC)
    return when.strftime(fmt) + suffix


def _value(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 19))
    if kind == 0:
        return str(draw(st.sampled_from([-5, 10**9 - 1, 2001])))  # refused by the series
    if kind < 5:
        return str(draw(st.integers(0, 1999)))
    number = draw(st.floats(0, 2000, allow_nan=False))
    return f"{number:.{draw(st.integers(0, 6))}f}"


@st.composite
def trace_files(draw: st.DrawFn) -> tuple[str, str]:
    """A trace file's name and text: mostly plain, sometimes odd in one place."""
    em = draw(st.booleans())
    n = draw(st.integers(1, 12)) if draw(st.integers(0, 9)) == 0 else draw(st.integers(2, 12))
    step = draw(st.sampled_from(STEPS_S))
    t0 = 1_685_577_600 + draw(st.integers(0, 3)) * 900  # 2023-06-01, on and off the hour
    fmt = draw(st.sampled_from(TIME_FORMATS))
    suffix = draw(st.sampled_from(SUFFIXES)) if draw(st.integers(0, 3)) == 0 else ""
    order = list(range(n))
    if n > 2 and draw(st.integers(0, 5)) == 0:
        order[1], order[2] = order[2], order[1]  # out of order
    if n > 3 and draw(st.integers(0, 5)) == 0:
        del order[2]  # a gap (filled up to two points)
    times = [_time(t0, k, step, fmt, suffix) for k in order]
    if draw(st.integers(0, 6)) == 0:
        times[draw(st.integers(0, len(times) - 1))] = draw(st.sampled_from(ODD_TIMES))
    zone_column = draw(st.booleans())
    if em:
        header = ["Datetime (UTC)", "Country", EM_DIRECT, EM_LCA]
        if zone_column:
            header.insert(2, "Zone Id")
    else:
        header = ["timestamp", draw(st.sampled_from(["g_per_kwh", "value", "Zone Id"]))]
    rows = []
    for i, when in enumerate(times):
        row = [when]
        for name in header[1:]:
            if name == "Zone Id" and em:
                row.append(draw(st.sampled_from(ZONES)) if i == 0 else "DE")
            elif name == "Country":
                row.append("Germany")
            else:
                row.append(_value(draw))
        rows.append(row)
    if len(header) > 1 and draw(st.integers(0, 3)) == 0:
        rows[draw(st.integers(0, n - 1)) % len(rows)][-1] = draw(st.sampled_from(ODD_VALUES))
    lines = [",".join(header)] + [",".join(r) for r in rows]
    odd = draw(st.integers(0, 23))
    if odd == 1:
        lines[-1] += ","  # one field too many
    elif odd == 2 and len(lines) > 2:
        lines.insert(2, "")  # a blank line
    elif odd == 3:
        lines[1] = lines[1].replace(",", ',"', 1) + '"'  # a quoted field
    elif odd == 4:
        lines[0] = "\ufeff" + lines[0]
    text = ("\r\n" if odd == 5 else "\n").join(lines) + ("" if odd == 6 else "\n")
    name = draw(st.sampled_from(["GB_2023.csv", "US-CAL-CISO_x.csv", "trace.csv"]))
    return name, text


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(drawn=trace_files(), signal=st.sampled_from([Signal.LCA, Signal.DIRECT]))
def test_a_drawn_file_reads_as_pandas_reads_it(
    drawn: tuple[str, str], signal: Signal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, text = drawn
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    fast, reference = both(path, monkeypatch, signal=signal)
    assert fast == reference


def test_a_plain_decimal_is_the_float_pandas_parses() -> None:
    import pandas as pd

    rng = np.random.default_rng(5)
    numbers, places = rng.uniform(0, 1e9, 20_000), rng.integers(0, 7, 20_000)
    texts = [f"{x:.{d}f}" for x, d in zip(numbers, places, strict=True)]
    texts = [t for t in texts if len(t.split(".")[0]) <= 9]

    parsed = pd.read_csv(StringIO("v\n" + "\n".join(texts) + "\n"), dtype={"v": float})["v"]
    assert [float(t) for t in texts] == parsed.tolist()
    assert not any(math.isnan(v) for v in parsed)
