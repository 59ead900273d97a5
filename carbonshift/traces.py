"""Readers for recorded carbon-intensity traces (Electricity Maps CSV exports, generic CSV)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from carbonshift.plain_csv import PlainCsv, read_plain_csv
from carbonshift.series import IntensitySeries, SeriesError, Signal

if TYPE_CHECKING:
    import pandas as pd

EM_TIME = "Datetime (UTC)"
EM_COLUMNS = {
    Signal.LCA: "Carbon Intensity gCO₂eq/kWh (LCA)",
    Signal.DIRECT: "Carbon Intensity gCO₂eq/kWh (direct)",
}
EM_ZONE = "Zone Id"
GENERIC_TIME = "timestamp"


class TraceError(SeriesError):
    pass


def bundled_traces_dir() -> Path:
    """Real 2023 hourly traces shipped with the package (see data/traces/SOURCES.md)."""
    return Path(str(resources.files("carbonshift") / "data" / "traces"))


def read_trace(
    path: Path | str, *, signal: Signal | str = Signal.LCA, fill_gaps_up_to: int = 0
) -> IntensitySeries:
    """Read an Electricity Maps export or a generic `timestamp,<value>` CSV, by its header.

    A file read before, unchanged since (same size and modification time), is not parsed again:
    the planning flow's forecast tasks each build a replay provider over the same folder, and
    a series cannot be changed once built, so one is shared."""
    path = Path(path)
    try:
        stat = path.stat()
        # The name as given too: the series' source and (generic CSVs) zone come from it.
        key = (str(path), str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    except (OSError, RuntimeError):
        return _read_trace(path, signal, fill_gaps_up_to)  # which says what is wrong
    # One reader at a time: the forecast tasks start together, and each parsing every file
    # at once (under one GIL) cost as much as parsing them all in turn, for every task.
    with _READING:
        return _read_unchanged(key, path, signal, fill_gaps_up_to)


_READING = threading.Lock()


@lru_cache(maxsize=64)
def _read_unchanged(
    key: tuple[str, str, int, int], path: Path, signal: Signal | str, fill_gaps_up_to: int
) -> IntensitySeries:
    return _read_trace(path, signal, fill_gaps_up_to)


def _read_trace(path: Path, signal: Signal | str, fill_gaps_up_to: int) -> IntensitySeries:
    plain = read_plain_csv(path)
    header = plain.header if plain is not None else list(_read_csv(path, nrows=0).columns)
    if EM_TIME in header:
        return _read_electricitymaps(path, signal, fill_gaps_up_to, plain)
    if GENERIC_TIME in header:
        return _read_generic(path, signal, fill_gaps_up_to, plain)
    raise TraceError(
        f"{path}: unknown trace format (columns {list(header)}): expected an Electricity Maps "
        f"export ({EM_TIME!r}, ...) or a generic CSV ({GENERIC_TIME!r} + one g/kWh column)"
    )


def read_electricitymaps_csv(
    path: Path | str, *, signal: Signal | str = Signal.LCA, fill_gaps_up_to: int = 0
) -> IntensitySeries:
    path = Path(path)
    return _read_electricitymaps(path, signal, fill_gaps_up_to, read_plain_csv(path))


def _read_electricitymaps(
    path: Path, signal: Signal | str, fill_gaps_up_to: int, plain: PlainCsv | None
) -> IntensitySeries:
    sig = Signal(signal)
    if sig not in EM_COLUMNS:
        raise TraceError(f"{path}: Electricity Maps exports hold lca or direct, not {sig.value}")
    column = EM_COLUMNS[sig]
    if plain is not None and EM_TIME in plain.columns and column in plain.columns:
        zone = plain.first_text(EM_ZONE) if EM_ZONE in plain.columns else ""
        series = _plain_series(
            path, plain, EM_TIME, column, sig, zone, "electricitymaps", fill_gaps_up_to
        )
        if series is not None:
            return series
    import pandas as pd

    frame = _read_csv(path)
    if column not in frame.columns:
        raise TraceError(f"{path}: no column {column!r}: is this an Electricity Maps export?")
    zones = frame[EM_ZONE].dropna() if EM_ZONE in frame.columns else pd.Series([], dtype=object)
    zone = str(zones.iloc[0]).strip() if len(zones) else ""
    return _build(
        path,
        frame[EM_TIME],
        frame[column],
        sig,
        zone or _zone_from_name(path),
        "electricitymaps",
        fill_gaps_up_to,
    )


def read_generic_csv(
    path: Path | str, *, signal: Signal | str = Signal.LCA, fill_gaps_up_to: int = 0
) -> IntensitySeries:
    """`timestamp` (ISO 8601, UTC when no offset) and exactly one value column in g/kWh."""
    path = Path(path)
    return _read_generic(path, signal, fill_gaps_up_to, read_plain_csv(path))


def _read_generic(
    path: Path, signal: Signal | str, fill_gaps_up_to: int, plain: PlainCsv | None
) -> IntensitySeries:
    if plain is not None and len(plain.header) == 2 and GENERIC_TIME in plain.columns:
        (column,) = (c for c in plain.header if c != GENERIC_TIME)
        series = _plain_series(
            path, plain, GENERIC_TIME, column, Signal(signal), "", "csv", fill_gaps_up_to
        )
        if series is not None:
            return series
    frame = _read_csv(path)
    values = [c for c in frame.columns if c != GENERIC_TIME]
    if len(values) != 1:
        raise TraceError(
            f"{path}: a generic trace has 'timestamp' and one g/kWh column, found {values}"
        )
    return _build(
        path,
        frame[GENERIC_TIME],
        frame[values[0]],
        Signal(signal),
        _zone_from_name(path),
        "csv",
        fill_gaps_up_to,
    )


def _plain_series(
    path: Path,
    plain: PlainCsv,
    time_column: str,
    value_column: str,
    signal: Signal,
    zone: str | None,
    kind: str,
    fill_gaps_up_to: int,
) -> IntensitySeries | None:
    """The series pandas would read, from a plain file; None where pandas must read it."""
    times = plain.times(time_column)
    values = plain.values(value_column)
    if times is None or values is None or zone is None:
        return None
    zone = zone or _zone_from_name(path)
    return _series(path, times, values, signal, zone, kind, fill_gaps_up_to)


def read_traces(
    paths: Iterable[Path | str], *, signal: Signal | str = Signal.LCA
) -> dict[str, IntensitySeries]:
    """Read many traces keyed by zone; files of one zone (several years) are joined in time."""
    by_zone: dict[str, list[IntensitySeries]] = {}
    for p in paths:
        s = read_trace(p, signal=signal)
        by_zone.setdefault(s.zone, []).append(s)
    return {zone: join(parts) for zone, parts in by_zone.items()}


def traces_in(directory: Path | str) -> list[Path]:
    found = sorted(Path(directory).glob("*.csv"))
    if not found:
        raise TraceError(f"{directory}: no .csv traces in it")
    return found


def join(parts: list[IntensitySeries]) -> IntensitySeries:
    """Concatenate consecutive pieces of one zone's series (e.g. yearly files)."""
    parts = sorted(parts, key=lambda s: s.start_s)
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    times = np.concatenate([p.times_s for p in parts])
    values = np.concatenate([p.g_per_kwh for p in parts])
    return IntensitySeries.from_points(
        times,
        values,
        signal=first.signal,
        source=first.source,
        zone=first.zone,
        step_s=min(p.step_s for p in parts),
    )


def _read_csv(path: Path, nrows: int | None = None) -> pd.DataFrame:
    """A CSV as a frame; anything unreadable is one line naming the file and the fix."""
    import pandas as pd

    try:
        return pd.read_csv(path, nrows=nrows)
    except pd.errors.EmptyDataError:
        raise TraceError(
            f"{path}: the file is empty: a trace has a header ({GENERIC_TIME!r} and one g/kWh "
            f"column, or an Electricity Maps export's {EM_TIME!r}, ...) and one row per time"
        ) from None
    except pd.errors.ParserError as e:
        detail = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise TraceError(
            f"{path}: not a well-formed CSV ({detail}): give every row as many fields as the header"
        ) from None
    except UnicodeDecodeError:
        raise TraceError(f"{path}: not UTF-8 text: save the CSV as UTF-8") from None
    except OSError as e:
        raise TraceError(f"{path}: cannot read it ({e.strerror or e})") from None


def _zone_from_name(path: Path) -> str:
    return path.stem.split("_")[0]


def _build(
    path: Path,
    times: pd.Series,
    values: pd.Series,
    signal: Signal,
    zone: str,
    kind: str,
    fill_gaps_up_to: int,
) -> IntensitySeries:
    import pandas as pd

    if len(times) == 0:
        raise TraceError(f"{path}: no data rows under the header: add one row per time")
    parsed = _timestamps(path, times)
    numeric = pd.to_numeric(values, errors="coerce")
    unreadable = numeric.isna() & values.notna()
    if unreadable.any():
        i = int(np.flatnonzero(unreadable.to_numpy())[0])
        raise TraceError(
            f"{path}: line {i + 2} ({times.iloc[i]}): value {_shown(values.iloc[i])} is not a "
            "number: give g/kWh as a number"
        )
    raw = [None if pd.isna(v) else float(v) for v in numeric]
    return _series(
        path, parsed.dt.tz_localize(None).to_numpy(), raw, signal, zone, kind, fill_gaps_up_to
    )


def _series(
    path: Path,
    times: npt.NDArray[np.datetime64],
    values: list[float | None],
    signal: Signal,
    zone: str,
    kind: str,
    fill_gaps_up_to: int,
) -> IntensitySeries:
    try:
        return IntensitySeries.from_points(
            times,
            values,
            signal=signal,
            source=f"replay:{kind}:{path.name}",
            zone=zone,
            fill_gaps_up_to=fill_gaps_up_to,
        )
    except SeriesError as e:
        raise TraceError(f"{path}: {e}") from e


def _timestamps(path: Path, times: pd.Series) -> pd.Series:
    """UTC timestamps; the first unreadable or missing one is named by its line in the file."""
    import pandas as pd

    texts = times.astype("string").str.strip()
    try:
        parsed = pd.to_datetime(texts, utc=True, format="ISO8601", errors="coerce")
    except (ValueError, TypeError, OverflowError):
        parsed = pd.Series(pd.NaT, index=times.index, dtype="datetime64[ns, UTC]")
    bad = parsed.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise TraceError(
            f"{path}: line {i + 2}: timestamp {_shown(times.iloc[i])} is not an ISO 8601 time "
            "between 1677 and 2262: write e.g. 2023-06-01T00:00Z (UTC when no offset)"
        )
    return parsed


def _shown(value: object) -> str:
    import pandas as pd

    text = "empty" if pd.isna(value) else repr(str(value))  # type: ignore[call-overload]
    return text if len(text) <= 40 else text[:37] + "..."
