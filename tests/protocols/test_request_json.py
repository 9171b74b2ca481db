"""Reading a request body's JSON: the check for keys written twice decides as it did when every body's keys
were counted, whether the body is written compactly (written again by orjson, byte for byte) or not."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.errors import InvalidRequest, RequestTooLarge
from proxy.protocols import MAX_JSON_CONTAINERS, load_request_json
from tests.protocols.bodies import key_twice

# The check as it was before compact bodies were written again instead of counted (commit 8b4fcc0): the
# reference every body is read against.
_KEY_TOKEN = re.compile(rb'"\s*:')


def _counted(body: bytes, what: str = "request body") -> dict[str, Any]:
    if len(body) > 1 << 20 and body.count(b"{") + body.count(b"[") > MAX_JSON_CONTAINERS:
        raise RequestTooLarge(f"{what} holds over {MAX_JSON_CONTAINERS:,} JSON objects and arrays")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest(f"{what} must be a JSON object")
    keys = len(_KEY_TOKEN.findall(body))
    if 92 in body and b'\\\\"' not in body:
        keys -= body.count(b'\\":')
    if keys != _keys(data):
        try:
            json.loads(body, object_pairs_hook=_no_duplicates)
        except KeyError as exc:
            raise InvalidRequest(f"{what}: key {exc.args[0]!r} appears twice in one object") from None
        except RecursionError:
            raise InvalidRequest(f"{what} is nested too deeply to be checked for duplicate keys") from None
    return data


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise KeyError(key)
        found[key] = value
    return found


def _keys(value: Any) -> int:
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            count += len(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def _outcome(read: Any, body: bytes) -> tuple[str, Any]:
    """What reading a body came to: its value, or the kind of refusal and its message's first words."""
    try:
        return "read", read(body)
    except InvalidRequest as exc:
        return "refused", str(exc).split(":")[0] + (": appears twice" if "appears twice" in str(exc) else "")


STRINGS = st.text(alphabet='ab":\\ {}[],é\u2028\x01', max_size=6)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | STRINGS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(STRINGS, inner, max_size=3),
    max_leaves=12,
)


def _writings(data: dict[str, Any]) -> list[bytes]:
    """One value as clients write it: orjson; httpx and the OpenAI SDK (compact, UTF-8 as it is); Python's
    `json.dumps` as it is (a space after each colon and comma); compact with non-ASCII escaped; pretty."""
    return [
        orjson.dumps(data),
        json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode(),
        json.dumps(data).encode(),
        json.dumps(data, separators=(",", ":")).encode(),
        json.dumps(data, indent=1).encode(),
    ]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(STRINGS, VALUES, max_size=4))
def test_every_writing_of_a_body_reads_as_when_its_keys_were_counted(data: dict[str, Any]) -> None:
    for body in _writings(data):
        assert _outcome(load_request_json, body) == _outcome(_counted, body)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(STRINGS, VALUES, min_size=1, max_size=4), st.data(), st.sampled_from([b"", b" "]))
def test_a_key_written_twice_in_a_compact_body_is_refused(data: dict[str, Any], draw: st.DataObject,
                                                         space: bytes) -> None:  # fmt: skip
    """A body written compactly throughout, the duplicate too: it cannot be the same bytes as its parsed
    value written again, so it is counted, and refused."""
    body = key_twice(data, draw, space)
    assert _outcome(load_request_json, body) == _outcome(_counted, body)
    with pytest.raises(InvalidRequest, match="appears twice"):
        load_request_json(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"model":"a","messages":[],"model":"b"}',
        b'{"model":"a","messages":[],"model":"a"}',  # the same value twice: written again, one key fewer
        b'{"model":"m","messages":[{"role":"user","content":"x","content":"x"}]}',
        b'{"a":{"b":1,"b":1}}',
        b'{"":1,"":1}',
    ],
)
def test_compact_duplicates_are_refused(body: bytes) -> None:
    with pytest.raises(InvalidRequest, match="appears twice"):
        load_request_json(body)


@pytest.mark.parametrize("depth", [253, 300, 1010])
@pytest.mark.parametrize("inner", [b'{"a":1,"a":2}', b'{"a":":)"}', b'{"a":1}'])
def test_deep_compact_bodies_read_as_when_their_keys_were_counted(depth: int, inner: bytes) -> None:
    """orjson writes 254 levels at most (it reads 1,024): a deeper compact body is counted, as before."""
    body = b'{"x":' + b"[" * depth + inner + b"]" * depth + b"}"
    (kind, got), (expected_kind, expected) = _outcome(load_request_json, body), _outcome(_counted, body)
    assert kind == expected_kind
    assert got == expected if kind == "refused" else list(got) == ["x"]  # (too deep to compare with ==)


def test_a_body_written_as_clients_write_it_is_written_again_not_counted() -> None:
    """The bodies the OpenAI SDK (httpx's compact UTF-8 JSON) and orjson write are the ones read by writing
    them again; Python's `json.dumps` as it is and pretty-printed JSON are counted."""
    from proxy.protocols import _compact

    data = {"model": "m", "messages": [{"role": "user", "content": "é: \u2028 \\u0041 \"q\":"}],
            "temperature": 0.2, "max_tokens": 128, "stop": None, "n": 18446744073709551615}  # fmt: skip
    orjson_, httpx, spaced, ascii_, pretty = _writings(data)
    for body in (orjson_, httpx):
        assert _compact(body, orjson.loads(body))
        assert load_request_json(body) == data
    for body in (spaced, ascii_, pretty):
        assert not _compact(body, orjson.loads(body))
        assert load_request_json(body) == data
