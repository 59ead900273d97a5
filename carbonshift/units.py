"""Unit conversions and duration parsing. Units live in names: `g_per_kwh`, `duration_s`."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

LBS_PER_MWH_TO_G_PER_KWH = 0.45359237  # 1 lb = 453.59237 g; 1 MWh = 1000 kWh
SECONDS_PER_HOUR = 3600

_DURATION = re.compile(r"(?P<value>\d+(?:\.\d+)?)\s*(?P<unit>d|h|m|min|s)")
_UNIT_S = {"d": 86400.0, "h": 3600.0, "m": 60.0, "min": 60.0, "s": 1.0}


def g_per_kwh_from_lbs_per_mwh(lbs_per_mwh: float) -> float:
    return lbs_per_mwh * LBS_PER_MWH_TO_G_PER_KWH


def kg_from_energy_and_intensity(energy_kwh: float, g_per_kwh: float) -> float:
    return energy_kwh * g_per_kwh / 1000.0


def parse_duration_s(text: str | float | int | timedelta) -> float:
    """Parse `4h`, `90m`, `1h30m`, `2d`, `45s`, a number of seconds, or a timedelta."""
    if isinstance(text, timedelta):
        return text.total_seconds()
    if isinstance(text, int | float):
        return float(text)
    cleaned = text.strip().lower().replace(" ", "")
    pos = 0
    total = 0.0
    for match in _DURATION.finditer(cleaned):
        if match.start() != pos:
            break
        total += float(match["value"]) * _UNIT_S[match["unit"]]
        pos = match.end()
    if pos != len(cleaned) or pos == 0:
        raise ValueError(
            f"cannot read duration {text!r}: write it like '4h', '90m', '1h30m', '2d' or '3600s'"
        )
    return total


def format_duration(duration_s: float) -> str:
    minutes = round(duration_s / 60)
    hours, minutes = divmod(minutes, 60)
    if hours and minutes:
        return f"{hours}h{minutes:02d}m"
    return f"{hours}h" if hours else f"{minutes}m"


def to_epoch_s(moment: datetime) -> int:
    """Seconds since the epoch of an aware datetime; a naive one is rejected, never guessed."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment.isoformat()} has no time zone: give it in UTC, e.g. '...Z'")
    return int(moment.timestamp())


def from_epoch_s(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, tz=UTC)


def parse_instant(text: str | datetime) -> datetime:
    """An ISO 8601 instant; `Z` and offsets accepted, naive text rejected."""
    if isinstance(text, datetime):
        moment = text
    else:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    to_epoch_s(moment)
    return moment.astimezone(UTC)
