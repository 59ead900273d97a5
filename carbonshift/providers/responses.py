"""The boundary rule for provider responses: each provider declares the JSON it expects as small
pydantic models next to its client, and `parse` turns a body into one of them or into a
one-line ProviderBadResponse naming the provider, the zone and the field's path.

A message never quotes the value the server sent: pydantic's own error text would (its `input`),
and a hostile server can echo credentials into any field. The messages name where and what was
wrong; the provider's scrubber sees them on the way out anyway (`secrets.scrubbed`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, TypeVar

from pydantic import BaseModel, ConfigDict, PlainValidator, StrictFloat, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from carbonshift.providers.base import ProviderBadResponse
from carbonshift.units import parse_instant

# Discriminator tags (a tagged union in a response model) start with this; they name which shape
# was assumed, not a field, and are left out of the path a message shows.
TAG = "~"


class Response(BaseModel):
    """A provider's JSON object: the fields we read, by their JSON names; the rest is ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")


def _instant(value: object) -> datetime:
    if not isinstance(value, str):
        raise PydanticCustomError("instant_type", "Input should be an ISO 8601 time (a string)")
    try:
        return parse_instant(value)
    except (ValueError, OverflowError):
        raise PydanticCustomError(
            "instant_parsing", "Input should be an ISO 8601 instant with a UTC offset"
        ) from None


# An instant as a provider writes it: ISO 8601 text with `Z` or an offset (a naive time, a number
# or anything else is refused, never guessed), in UTC.
Instant = Annotated[datetime, PlainValidator(_instant)]

# A JSON number or null (a missing value); true/false and numbers written as text are refused.
Number = StrictFloat | None

M = TypeVar("M", bound=BaseModel)


def parse(provider: str, model: type[M], body: object, where: str) -> M:
    """`body` as `model`, or a ProviderBadResponse: `<provider>: <where>: <path>: <what>`."""
    try:
        return model.model_validate(body)
    except ValidationError as e:
        errors = e.errors(include_url=False, include_input=False, include_context=False)
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ProviderBadResponse(provider, f"{where}: {_describe(errors[0])}{more}") from None


def _describe(error: ErrorDetails) -> str:
    path = ""
    for part in error["loc"]:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not part.startswith(TAG):
            path += f".{part}" if path else part
    what = "Input should be an object" if error["type"] == "model_type" else error["msg"]
    return f"{path or 'response'}: {what}"
