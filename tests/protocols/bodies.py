"""Request bodies written by hand for the tests of reading a body's JSON."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import strategies as st


def key_twice(data: dict[str, Any], draw: st.DataObject, space: bytes) -> bytes:
    """`data` written compactly, one of its objects holding one of its keys a second time (its value
    written as the first's, or as a later value), `space` after that key's colon."""
    objects: list[dict[str, Any]] = []

    def collect(value: object) -> None:
        if isinstance(value, dict):
            if value:
                objects.append(value)
            for child in value.values():
                collect(child)
        elif isinstance(value, list):
            for child in value:
                collect(child)

    collect(data)
    twice = draw.draw(st.sampled_from(objects))
    key = draw.draw(st.sampled_from(sorted(twice)))
    again = draw.draw(st.sampled_from([twice[key], None, "x"]))

    def write(value: object) -> bytes:
        if isinstance(value, dict):
            pairs = [orjson.dumps(k) + b":" + write(v) for k, v in value.items()]
            if value is twice:
                pairs.append(orjson.dumps(key) + b":" + space + write(again))
            return b"{" + b",".join(pairs) + b"}"
        if isinstance(value, list):
            return b"[" + b",".join(write(v) for v in value) + b"]"
        return orjson.dumps(value)

    return write(data)
