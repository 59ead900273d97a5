"""Unit conversions and parsing of user-written durations and instants.

Units live in names: `g_per_kwh`, `duration_s`. Every time in this product is UTC: a time written
without an offset (`2023-06-01T00:00`) is read as UTC.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta

LBS_PER_MWH_TO_G_PER_KWH = 0.45359237  # 1 lb = 453.59237 g; 1 MWh = 1000 kWh
SECONDS_PER_HOUR = 3600
# Longer than any training job, window or slack; keeps every instant inside datetime's range.
MAX_DURATION_S = 3650 * 86400

# One grammar for durations, shared by the parser and the JSON schema of every duration field
# (Prefect forms and parameter checks): a bare number of seconds, or number+unit parts summed
# (`1h30m`). Written in the common subset of Python and ECMA-262 regexes (`[0-9]`, `[ \t]`: their
# `\d` and `\s` differ on non-ASCII text); units are case-insensitive; `m` is minutes.
_NUMBER = r"[0-9]+(?:\.[0-9]+)?"
_UNIT = r"(?:[dD]|[hH]|[mM](?:[iI][nN])?|[sS])"
_GRAMMAR = rf"[ \t]*(?:{_NUMBER}|(?:{_NUMBER}[ \t]*{_UNIT}[ \t]*)+)"
# `(?![\s\S])` ends the text in both dialects; a Python `$` (jsonschema) also matches before a final
# newline, which the parser refuses.
DURATION_PATTERN = rf"^{_GRAMMAR}(?![\s\S])"
DURATION_EXAMPLES = ("4h", "90min", "90m", "1h30m", "2d", "45s", "3600", "0")
DURATION_HELP = (
    "seconds as a number, or text like '4h', '90min', '90m', '1h30m', '2d', '3600s' "
    "(units d, h, m or min, s; at most 3650d)"
)
_PART = re.compile(rf"({_NUMBER})[ \t]*({_UNIT})")
_UNIT_S = {"d": 86400.0, "h": 3600.0, "m": 60.0, "min": 60.0, "s": 1.0}
_HINT = "write e.g. '4h', '90min', '1h30m', '2d' or seconds ('3600')"


class InputError(ValueError):
    """A value a user wrote cannot be used; the message is one line that says how to fix it."""


class DurationError(InputError):
    """A duration that is not a finite, non-negative length of time within MAX_DURATION_S."""


class InstantError(InputError):
    """A time that is not an ISO 8601 instant."""


def g_per_kwh_from_lbs_per_mwh(lbs_per_mwh: float) -> float:
    return lbs_per_mwh * LBS_PER_MWH_TO_G_PER_KWH


def parse_duration_s(text: object) -> float:
    """Seconds in a duration: a number of seconds, a timedelta, or text (see DURATION_PATTERN).

    Raises DurationError (a ValueError) for anything that is not a finite duration from 0 to
    MAX_DURATION_S; the caller adds the field's name.
    """
    if isinstance(text, timedelta):
        return _bounded(text.total_seconds(), text)
    if isinstance(text, bool):
        raise DurationError(f"{text!r} is not a duration: {_HINT}")
    if isinstance(text, int):
        if text > MAX_DURATION_S:  # before float(): a huge int overflows it
            return _bounded(math.inf, text)
        return _bounded(float(text), text)
    if isinstance(text, float):
        return _bounded(text, text)
    if not isinstance(text, str):
        raise DurationError(f"expected a duration, got {type(text).__name__}: {_HINT}")
    if re.fullmatch(_GRAMMAR, text) is None:
        stripped = text.strip().lower()
        if stripped.startswith("-"):
            raise DurationError(f"{_shown(text)} is negative: a duration is 0 or more; {_HINT}")
        if stripped.lstrip("+") in ("nan", "inf", "infinity", ".nan", ".inf"):
            raise DurationError(f"{_shown(text)} is not a finite duration: {_HINT}")
        raise DurationError(f"cannot read duration {_shown(text)}: {_HINT}")
    stripped = text.strip(" \t")
    parts = _PART.findall(stripped)
    if not parts:  # a bare number: seconds
        return _bounded(float(stripped), text)
    total = math.fsum(float(value) * _UNIT_S[unit.lower()] for value, unit in parts)
    return _bounded(total, text)


def _bounded(duration_s: float, original: object) -> float:
    shown = _shown(original)
    if math.isnan(duration_s) or (math.isinf(duration_s) and isinstance(original, float)):
        raise DurationError(f"{shown} is not a finite duration: {_HINT}")
    if duration_s < 0:
        raise DurationError(f"{shown} is negative: a duration is 0 or more; {_HINT}")
    if duration_s > MAX_DURATION_S:
        raise DurationError(
            f"{shown} is longer than {MAX_DURATION_S // 86400}d, the longest duration accepted"
        )
    return float(duration_s)


def _shown(value: object, limit: int = 40) -> str:
    """`repr` cut to one short line, for echoing user input in a message."""
    text = (
        repr(value) if not isinstance(value, int) or value.bit_length() < 128 else "a huge number"
    )
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_duration(duration_s: float) -> str:
    if not math.isfinite(duration_s):
        return str(duration_s)
    if duration_s >= 1000 * 86400:  # readable for absurd values in error messages
        return f"{duration_s / 86400:.4g}d"
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
    """An ISO 8601 instant from a machine (a provider); `Z` and offsets accepted, naive rejected."""
    if isinstance(text, datetime):
        moment = text
    else:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    to_epoch_s(moment)
    return moment.astimezone(UTC)


MIN_YEAR, MAX_YEAR = 1970, 8999  # room for MAX_DURATION_S either side, inside datetime's range
INSTANT_HELP = "ISO 8601 in UTC, e.g. 2023-06-01T00:00Z; without an offset it is read as UTC"


def parse_utc_instant(value: object) -> datetime:
    """An instant a user wrote (CLI, job file, flow parameter): naive text or datetimes are UTC.

    A date without a time of day is refused (is a deadline of 2023-06-02 its start or its end?).
    Raises InstantError (a ValueError) with a one-line message; the caller adds the field's name.
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        raise InstantError(f"{value.isoformat()} has no time of day: write e.g. {value}T00:00Z")
    elif isinstance(value, str):
        text = value.strip()
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise InstantError(f"cannot read time {_shown(value)}: write {INSTANT_HELP}") from None
        if "T" not in text.upper() and " " not in text:
            raise InstantError(f"{value!r} has no time of day: write e.g. {text}T00:00Z")
    else:
        raise InstantError(f"expected a time, got {type(value).__name__}: write {INSTANT_HELP}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        moment = datetime.min.replace(tzinfo=UTC)
    if not MIN_YEAR <= moment.year <= MAX_YEAR:
        raise InstantError(f"{_shown(value)} is not between {MIN_YEAR} and {MAX_YEAR}")
    return moment


# Figures under 1 in markdown show this many significant digits (CSV and JSON are exact).
SIGNIFICANT = 3
MAX_DECIMALS = 6  # 1 mg CO2, 1 mWh: the finest figure markdown shows
_NOISE = 0.5 * 10.0**-MAX_DECIMALS


def figure_decimals(value: float, decimals: int) -> int:
    """At least `decimals` places, and for a value under 1 as many more as show SIGNIFICANT
    digits of it: a 14 s run's 0.00027 kg reads 0.000270, not 0.000. At most MAX_DECIMALS: a
    value below that is float noise (a difference of two equal figures), read as 0."""
    if not math.isfinite(value) or abs(value) >= 1 or abs(value) < _NOISE:
        return decimals
    return min(MAX_DECIMALS, max(decimals, SIGNIFICANT - 1 - math.floor(math.log10(abs(value)))))


def figure(value: float, decimals: int) -> str:
    """A figure for people to read (markdown, tables): see `figure_decimals`."""
    if abs(value) < _NOISE:
        value = 0.0  # not "-0.000" for a saving of -1e-20
    return f"{value:.{figure_decimals(value, decimals)}f}"
