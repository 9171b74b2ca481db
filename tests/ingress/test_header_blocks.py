"""The header blocks the HTTP ingress writes, with the Connection field's tokens kept by value and the reply's
skip set left as it is when they name nothing more: the same bytes as when both were made afresh for every
message (kept here as the reference), for any fields."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.ingress.http import _NOT_RETURNED, _not_forwarded, _on_proxy, forward_fields, reply_fields
from proxy.ingress.wire import Request, encode_fields, forwarded_pieces
from proxy.pipeline import Pipeline
from tests.test_forwarded_first import exchange, pipeline


@pytest.fixture(scope="module")
def pipe(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    return pipeline(tmp_path_factory.mktemp("lineage"))


NAMES = st.sampled_from([b"Host", b"Connection", b"connection", b"Keep-Alive", b"X-A", b"x-a", b"Location",
                         b"Authorization", b"Authorization-Bin", b"x-api-key", b"Accept-Encoding", b"X-Lineage-Decision", b"X-Trace-Id",
                         b"Content-Type", b"TE", b"traceparent", b"Server", b"X-B", b"X-Forwarded-For",
                         b"x-forwarded-for", b"X-Real-IP", b"Forwarded", b"X-Forwarded-Proto"])  # fmt: skip
VALUES = st.sampled_from([b"", b"1", b"keep-alive", b"close", b"x-a, X-B", b"keep-alive, x-a", b"http://10.0.0.5:8000/x",
                          b"https://docs.example/y", b"caf\xc3\xa9", b"\xff", b"keep-alive, X-Forwarded-For",
                          b"203.0.113.9"])  # fmt: skip
FIELDS = st.lists(st.tuples(NAMES, VALUES), max_size=12)


def tokens(value: str | None) -> frozenset[bytes]:
    if not value:
        return frozenset()
    return frozenset(t.strip().lower().encode("latin-1", "replace") for t in value.split(","))


def reference_forward(request: Request, skip: frozenset[bytes], traceparent: bytes, api_key: str | None,
                      observe: bool, told: bool = True) -> bytes:  # fmt: skip
    listed = tokens(request.header("connection"))
    if listed and not listed <= skip:
        skip = skip | listed
    out = [name + b": " + value for name, value in request.headers if name.lower() not in skip]
    chain = [value for name, value in request.headers if name.lower() == b"x-forwarded-for" and value]
    if told and chain and b"x-forwarded-for" not in listed:
        out.append(b"X-Forwarded-For: " + b", ".join(chain) + b", 127.0.0.9")
    elif told:  # (not told: an upstream whose model is handed the fields, sent no address of the client at all)
        out.append(b"X-Forwarded-For: 127.0.0.9")
    out.append(b"X-Forwarded-Proto: http")
    out.append(b"traceparent: " + traceparent)
    if api_key:
        out.append(f"Authorization: Bearer {api_key}".encode())
    if observe:
        out.append(b"Accept-Encoding: identity")
    out.append(b"")
    return b"\r\n".join(out)


def reference_reply(raw: list[tuple[bytes, bytes]], lineage: list[tuple[str, str]], base: str | None,
                    connection: list[str], location: bool) -> bytes:  # fmt: skip
    skip = _NOT_RETURNED | tokens(",".join(connection)) if connection else _NOT_RETURNED
    out = []
    for name, value in raw:
        lower = name.lower()
        if lower in skip or lower.startswith(b"x-lineage-"):
            continue
        if location and base and lower == b"location":
            value = _on_proxy(value, base)
        out.append(name + b": " + value + b"\r\n")
    return b"".join(out) + encode_fields(lineage)


@settings(max_examples=300, deadline=None)
@given(fields=FIELDS, api_key=st.sampled_from([None, "", "k-1"]), observe=st.booleans(), told=st.booleans())
def test_the_forwarded_block_is_the_same(pipe: Pipeline, fields: list[tuple[bytes, bytes]], api_key: str | None,
                                         observe: bool, told: bool) -> None:  # fmt: skip
    ex = exchange(pipe)
    request = Request()
    request.headers = fields
    joined: dict[str, str] = {}
    for name, value in fields:
        key, text = name.lower().decode(), value.decode("utf-8", "surrogateescape")
        joined[key] = f"{joined[key]},{text}" if key in joined else text
    request.header = joined.get
    skip = _not_forwarded(bool(ex.pipeline.strips_auth or api_key), ex.x_api_key, observe)
    expected = reference_forward(request, skip, ex.trace.traceparent().encode(), api_key, observe, told)
    pieces = forward_fields(request, ex, api_key, observe, forwarded_pieces(("127.0.0.9", 5000), False), told)
    assert b"".join(pieces) == expected


def reply_block(raw: list[tuple[bytes, bytes]], lineage: list[tuple[str, str]], base: str | None) -> bytes:
    """`reply_fields`' block for `raw`, its names lower-cased as the reply parser gives them."""
    out: list[bytes] = []
    reply_fields(out, raw, [name.lower() for name, _ in raw], encode_fields(lineage), base)
    return b"".join(out)


@settings(max_examples=300, deadline=None)
@given(raw=FIELDS, base=st.sampled_from([None, "", "http://10.0.0.5:8000"]))
def test_the_reply_block_is_the_same(raw: list[tuple[bytes, bytes]], base: str | None) -> None:
    connection = [v.decode("latin-1") for n, v in raw if n.lower() == b"connection"]
    location = any(n.lower() == b"location" for n, _ in raw)
    lineage = [("x-trace-id", "ab"), ("x-lineage-decision", "allow")]
    assert reply_block(raw, lineage, base) == reference_reply(raw, lineage, base, connection, location)
