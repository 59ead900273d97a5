"""One scrubber per provider chain: every credential in play, in every form a server could echo.

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

E = TypeVar("E", bound=ProviderError)
T = TypeVar("T")


class Scrubber:
    """Replaces every known secret (and its URL-encoded, JSON-escaped, repr-escaped and base64
    forms, case-insensitively) with `***`. Thread-safe; secrets can be added at any time."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        """Learn a secret (a token, a password, a token obtained at login)."""
        if secret:
            self._learn(_forms(secret))

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
        pattern = self._pattern
        return pattern.sub(MASK, text) if pattern is not None else text

    def error(self, error: E) -> E:
        """The same error (same type, same provider) with its message scrubbed."""
        clean = self.scrub(error.detail)
        if clean == error.detail:
            return error
        return type(error)(error.provider, clean)

    def _learn(self, forms: Iterable[str]) -> None:
        with self._lock:
            self._forms |= {f for f in forms if f}
            ordered = sorted(self._forms, key=len, reverse=True)  # longest form first
            self._pattern = re.compile("|".join(map(re.escape, ordered)), re.IGNORECASE)

    def __repr__(self) -> str:
        return f"Scrubber({len(self._forms)} forms)"


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
