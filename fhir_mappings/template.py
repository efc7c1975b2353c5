"""NDJSON lines from a byte template: the dict builder's own output with holes where the values go.

A template is made by calling the resource's dict builder with placeholder values and serializing the result
once; each line is then the template's fixed bytes joined with the row's serialized values. Filling a template
is several times cheaper than building a dict and serializing it, and the line is byte-for-byte what the dict
builder would have produced: `Template.check` proves it on a real row of every shape, and the gate validates
that row's dict with the full validator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

PLACEHOLDER = "\x00{}\x00"  # cannot occur in a serialized value: orjson escapes control characters


class Template:
    def __init__(self, build: Callable[..., dict[str, Any]], holes: int) -> None:
        self.build = build
        marks = [PLACEHOLDER.format(i) for i in range(holes)]
        text = orjson.dumps(build(*marks))
        parts: list[bytes] = []
        for mark in marks:
            quoted = orjson.dumps(mark)
            before, found, text = text.partition(quoted)
            if not found or quoted in text:
                raise ValueError(f"placeholder {mark!r} must occur exactly once in the template")
            parts.append(before)
        self.parts = [*parts, text]
        self._pieces: list[bytes] = [b""] * (2 * holes + 1)
        self._pieces[0::2] = self.parts

    def fill(self, values: list[bytes]) -> bytes:
        """The line for already-serialized values (orjson.dumps of each, in placeholder order)."""
        self._pieces[1::2] = values  # raises on a wrong number of values
        return b"".join(self._pieces)

    def check(self, *values: Any) -> dict[str, Any]:
        """The dict for one row, after proving the template renders it byte for byte."""
        resource = self.build(*values)
        if self.fill([orjson.dumps(v) for v in values]) != orjson.dumps(resource):
            raise AssertionError(f"template and dict builder disagree for {resource.get('resourceType')}")
        return resource
