"""Traces read without pandas, when the file is plain enough that the result is certain: the
same times and values pandas gives (see traces.py), or None, and pandas reads the file.

`carbonshift plan` reads a handful of hourly traces per run: importing pandas and parsing them
with it cost a fifth of `plan --json` on 10,000 jobs. Plain means: UTF-8 without a byte-order
mark, no quotes, no carriage returns or blank lines, a header of distinct names without
surrounding spaces, every row as wide as the header; times `YYYY-MM-DD[T ]HH:MM[:SS]` in UTC
(no suffix, `Z` or `+00:00`), years 1700 to 2199; values empty or decimals of at most 9 + 6
digits (which every float parser rounds alike). Anything else goes to pandas, which also names
what is wrong with the file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

_DAY_TIME = r"(?:1[7-9]|2[01])\d\d-\d\d-\d\d[T ](?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d)?"
_TIMES = re.compile(rf"(?:{_DAY_TIME}(?:Z|\+00:00)?\n)+")
_UTC_SUFFIX = re.compile(r"(?:Z|\+00:00)(?=\n)")
_VALUES = re.compile(r"(?:(?:-?\d{1,9}(?:\.\d{1,6})?)?\n)+")
_ZONE = re.compile(r"[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*")
# Words pandas reads as missing, true, false or infinite, in any case.
_NOT_PLAIN_WORDS = frozenset({"na", "nan", "null", "none", "true", "false", "inf", "infinity"})


@dataclass(frozen=True)
class PlainCsv:
    header: list[str]
    columns: dict[str, list[str]]

    def times(self, name: str) -> npt.NDArray[np.datetime64] | None:
        """Column `name` as UTC times (naive, to the second), or None if it is not plain."""
        text = "\n".join(self.columns[name]) + "\n"
        if not _TIMES.fullmatch(text):
            return None
        texts = _UTC_SUFFIX.sub("", text).split("\n")[:-1]
        try:
            return np.array(texts, dtype="datetime64[s]")
        except ValueError:  # a day the month lacks
            return None

    def values(self, name: str) -> list[float | None] | None:
        """Column `name` as g/kWh, None where empty; None if it is not plain."""
        texts = self.columns[name]
        if not _VALUES.fullmatch("\n".join(texts) + "\n"):
            return None
        return [float(t) if t else None for t in texts]

    def first_text(self, name: str) -> str | None:
        """The first text in column `name` that pandas would not read as missing ("" if none), as
        pandas gives it; None if that is unsure: a missing-value text first, or one pandas might
        read as a number or a truth value. Zone ids (`DE`, `US-CAL-CISO`) are sure."""
        for text in self.columns[name]:
            if not text:
                continue
            if not _ZONE.fullmatch(text) or text.casefold() in _NOT_PLAIN_WORDS:
                return None
            return text
        return ""


def read_plain_csv(path: Path) -> PlainCsv | None:
    """The file's header and columns of texts, or None unless it is plain (module docstring)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if '"' in text or "\r" in text or text.startswith("\ufeff"):
        return None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    if len(lines) < 2:
        return None
    header = lines[0].split(",")
    width = len(header)
    if width < 2 or len(set(header)) < width or any(not h or h != h.strip() for h in header):
        return None
    rows = [line.split(",") for line in lines[1:]]
    if any(len(row) != width for row in rows):
        return None
    columns = zip(*rows, strict=True)  # every row is as wide as the header
    return PlainCsv(header, {h: list(texts) for h, texts in zip(header, columns, strict=True)})
