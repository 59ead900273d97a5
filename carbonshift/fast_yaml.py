"""`yaml.safe_load`, fast on the plain YAML that job files are, the same values always.

PyYAML's pure-Python loader spends ~7 s of CPU on a 10,000-job file (2.5 MB), and even its libyaml
loader ~2 s, most of it composing a node per scalar and resolving each one's tag in Python. Here
libyaml's events are built into values directly, each distinct plain scalar resolved once. Only
what `safe_load` would build the same way is taken: a document with anchors, aliases, explicit
tags, merge keys, collection keys, deep nesting or more than one document, and any error, goes to
`yaml.safe_load` itself, so that such files and every error message stay exactly as they were.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.events import (
    DocumentEndEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
    StreamStartEvent,
)

# Tags whose values `SafeConstructor` builds from the scalar's text alone (immutable values, so
# one value serves every equal scalar); any other resolved tag (merge `<<`, value `=`, `!`) falls
# back.
_SCALAR_TAGS = frozenset(
    f"tag:yaml.org,2002:{t}" for t in ("null", "bool", "int", "float", "timestamp")
)
_STR = "tag:yaml.org,2002:str"
# Far below Python's recursion limit, which the pure-Python composer would otherwise hit first.
MAX_DEPTH = 100


class _Fallback(Exception):
    """This document is not plain enough for the fast path."""


def safe_load(text: str) -> Any:
    """What `yaml.safe_load(text)` returns (or raises)."""
    if not yaml.__with_libyaml__:
        return yaml.safe_load(text)
    try:
        return _load(text)
    except Exception:  # not plain enough, or any error: the reference loads it or says why
        return yaml.safe_load(text)


def _load(text: str) -> Any:
    loader = yaml.CSafeLoader(text)
    try:
        return _build(loader)
    finally:
        loader.dispose()


def _build(loader: yaml.CSafeLoader) -> Any:
    get_event: Any = loader.get_event  # events typed as Any: each kind has its own fields
    resolve = loader.resolve
    construct = yaml.constructor.SafeConstructor()
    scalars: dict[tuple[str, tuple[bool, bool]], Any] = {}
    # The open collections, innermost last: a list, or a _Mapping with its pending key.
    stack: list[list[Any] | _Mapping] = []
    documents = 0
    result: Any = None
    if type(get_event()) is not StreamStartEvent:
        raise _Fallback
    while True:
        event = get_event()
        kind = type(event)
        if kind is ScalarEvent:
            if event.anchor is not None or event.tag is not None:
                raise _Fallback
            key = (event.value, event.implicit)
            try:
                value = scalars[key]
            except KeyError:
                value = scalars[key] = _scalar(resolve, construct, event.value, event.implicit)
        elif kind is MappingStartEvent or kind is SequenceStartEvent:
            if event.anchor is not None or event.tag is not None or len(stack) >= MAX_DEPTH:
                raise _Fallback
            if stack and type(stack[-1]) is _Mapping and stack[-1].key is _NO_KEY:
                raise _Fallback  # a collection as a mapping key
            stack.append(_Mapping() if kind is MappingStartEvent else [])
            continue
        elif kind is MappingEndEvent or kind is SequenceEndEvent:
            done = stack.pop()
            value = done.items if type(done) is _Mapping else done
        elif kind is DocumentStartEvent:
            documents += 1
            if documents > 1:
                raise _Fallback
            continue
        elif kind is DocumentEndEvent:
            continue
        elif kind is StreamEndEvent:
            return result
        else:  # an alias
            raise _Fallback
        if not stack:
            result = value
            continue
        parent = stack[-1]
        if isinstance(parent, _Mapping):
            if parent.key is _NO_KEY:
                parent.key = value
            else:
                # As SafeConstructor: a repeated key keeps its place and takes the last value.
                parent.items[parent.key] = value
                parent.key = _NO_KEY
        else:
            parent.append(value)


_NO_KEY = object()


class _Mapping:
    """A mapping being built, and the key whose value comes next."""

    __slots__ = ("items", "key")

    def __init__(self) -> None:
        self.items: dict[Any, Any] = {}
        self.key: Any = _NO_KEY


def _scalar(
    resolve: Any,
    construct: yaml.constructor.SafeConstructor,
    value: str,
    implicit: tuple[bool, bool],
) -> Any:
    tag = resolve(yaml.ScalarNode, value, implicit)
    if tag == _STR:
        return value
    if tag not in _SCALAR_TAGS:
        raise _Fallback
    node = yaml.ScalarNode(tag, value)
    return construct.yaml_constructors[tag](construct, node)
