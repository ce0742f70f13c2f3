"""A JSON body whose strings are templates: its string leaves, addressed by JSON Pointer
(RFC 6901), and the body put back together from their rendered values."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def leaves(value: Any, pointer: str = "") -> Iterator[tuple[str, str]]:
    """(pointer, template) for every string in ``value``, in document order."""
    if isinstance(value, str):
        yield pointer, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from leaves(item, f"{pointer}/{_escape(str(key))}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, f"{pointer}/{index}")


def assemble(value: Any, rendered: Mapping[str, str], pointer: str = "") -> Any:
    """``value`` with each string replaced by its rendered text; other values kept."""
    if isinstance(value, str):
        return rendered.get(pointer, value)
    if isinstance(value, Mapping):
        return {k: assemble(v, rendered, f"{pointer}/{_escape(str(k))}") for k, v in value.items()}
    if isinstance(value, list):
        return [assemble(v, rendered, f"{pointer}/{i}") for i, v in enumerate(value)]
    return value
