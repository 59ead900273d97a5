"""One scrubber per provider chain: every credential in play, in every form a server could echo.

Besides whole forms (raw, URL-encoded, JSON- and repr-escaped, base64), any run of
`PIECE` or more characters of a form (a server that cuts or splits what it echoes), of the base64
of the secret at any byte offset and with or without padding (`Basic` strings, header dumps), or
of its hex is masked too.

A hostile or careless server can echo what it was sent (a header, the basic-auth string, the
query) inside any field of its answer, and that field can end up in an error message, a log line,
CLI output or an artifact. The providers of a chain share one `Scrubber`; it learns the configured
credentials when the chain is built and the tokens obtained at login as they arrive, and every
error that leaves a provider or the chain passes through it (`scrub_errors`, `Scrubber.error`).
"""

from __future__ import annotations

import base64
import functools
import json
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Concatenate, ParamSpec, Protocol, TypeVar
from urllib.parse import quote, quote_plus

from carbonshift.providers.errors import ProviderBadResponse, ProviderError
from carbonshift.series import SeriesError

MASK = "***"
PIECE = 8  # a run this long of any form of a secret is masked: no piece of one is shown

E = TypeVar("E", bound=ProviderError)
T = TypeVar("T")


class Scrubber:
    """Replaces every known secret (and its URL-encoded, JSON-escaped, repr-escaped and base64
    forms, case-insensitively) with `***`. Thread-safe; secrets can be added at any time."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._forms: set[str] = set()
        self._pieces: frozenset[str] = frozenset()  # lower-cased PIECE-grams of every form
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        """Learn a secret (a token, a password, a token obtained at login)."""
        if secret:
            self._learn(_forms(secret), _encoded(secret))

    def add_basic_auth(self, username: str, password: str) -> None:
        """Learn the password and the `Authorization: Basic ...` string built from it."""
        self.add(password)
        pair = f"{username}:{password}"
        for encoding in ("utf-8", "latin-1"):
            try:
                self._learn({base64.b64encode(pair.encode(encoding)).decode("ascii")})
            except UnicodeEncodeError:
                continue

    def scrub(self, text: str) -> str:
        pattern, pieces = self._pattern, self._pieces
        if pattern is None:
            return text
        text = pattern.sub(MASK, text)
        return _mask_pieces(text, pieces) if pieces and len(text) >= PIECE else text

    def error(self, error: E) -> E:
        """The same error (same type, same provider) with its message scrubbed."""
        clean = self.scrub(error.detail)
        if clean == error.detail:
            return error
        return type(error)(error.provider, clean)

    def _learn(self, forms: Iterable[str], pieces: Iterable[str] = ()) -> None:
        forms = {f for f in forms if f}
        grams = {
            g.lower()
            for f in (*forms, *pieces)
            for g in (f[i : i + PIECE] for i in range(len(f) - PIECE + 1))
        }
        with self._lock:
            self._forms |= forms
            self._pieces = self._pieces | grams
            ordered = sorted(self._forms, key=len, reverse=True)  # longest form first
            self._pattern = re.compile("|".join(map(re.escape, ordered)), re.IGNORECASE)

    def __repr__(self) -> str:
        return f"Scrubber({len(self._forms)} forms)"


def _mask_pieces(text: str, pieces: frozenset[str]) -> str:
    """Every run of text covered by PIECE-grams of a secret's forms, replaced by one MASK."""
    low = text.lower()
    covered = bytearray(len(text))
    for i in range(len(text) - PIECE + 1):
        if low[i : i + PIECE] in pieces:
            covered[i : i + PIECE] = b"\x01" * PIECE
    if not any(covered):
        return text
    out: list[str] = []
    for i, ch in enumerate(text):
        if not covered[i]:
            out.append(ch)
        elif i == 0 or not covered[i - 1]:
            out.append(MASK)
    return "".join(out)


def _encoded(secret: str) -> set[str]:
    """The parts of the secret's base64 (standard and URL-safe, at each of the three byte
    offsets it can sit at inside a longer string, padding or not) and hex that depend on the
    secret alone: their pieces show up wherever an encoded echo holds the secret."""
    out: set[str] = set()
    for encoding in ("utf-8", "latin-1"):
        try:
            data = secret.encode(encoding)
        except UnicodeEncodeError:
            continue
        out.add(data.hex())
        for offset in range(3):
            text = base64.b64encode(bytes(offset) + data).decode("ascii")
            first = -(-8 * offset // 6)  # the first 6-bit group made of the secret's bits only
            last = 8 * (offset + len(data)) // 6
            inner = text[first:last]
            out |= {inner, inner.translate(_URLSAFE)}
    return out


_URLSAFE = str.maketrans("+/", "-_")


def _forms(secret: str) -> set[str]:
    forms = {
        secret,
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        quote(secret),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
        ascii(secret)[1:-1],
    }
    for encoding in ("utf-8", "latin-1"):
        try:
            forms.add(base64.b64encode(secret.encode(encoding)).decode("ascii"))
        except UnicodeEncodeError:
            continue
    return forms


# What a provider's parsing can raise on a hostile body besides its own typed errors.
PARSE_ERRORS: tuple[type[Exception], ...] = (
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    ValueError,
    OverflowError,
    SeriesError,
)


@contextmanager
def scrub_errors(provider: str, scrubber: Scrubber) -> Iterator[None]:
    """The boundary of a provider's public methods: its errors leave scrubbed, and anything a
    malformed body made the parsing raise becomes a (scrubbed) ProviderBadResponse."""
    try:
        yield
    except ProviderError as e:
        raise scrubber.error(e) from None
    except PARSE_ERRORS as e:
        raise ProviderBadResponse(
            provider, scrubber.scrub(f"unusable response ({type(e).__name__}: {e})")
        ) from None


class HasScrubber(Protocol):
    name: str
    scrubber: Scrubber


S = TypeVar("S", bound=HasScrubber)
P = ParamSpec("P")


def scrubbed(method: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], T]:
    """Decorate a provider's public method: it runs inside `scrub_errors` with its scrubber."""

    @functools.wraps(method)
    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        with scrub_errors(self.name, self.scrubber):
            return method(self, *args, **kwargs)

    return wrapper
