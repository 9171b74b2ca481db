"""The tables of Connection tokens kept by value (a request's, `_tokens`; a reply's, by its bytes,
`_connection_tokens`) hold short values only, as the tables of field names do: a peer sending long Connection
fields (a head's worth of tokens each, ever new) makes them hold no more than a few kilobytes."""

from __future__ import annotations

from proxy.ingress import http


def test_long_connection_values_are_not_kept() -> None:
    http._TOKENS.clear()
    http._RAW_TOKENS.clear()
    for k in range(64):
        value = ",".join(f"t{k}-{i}" for i in range(4000))  # ~40 KB, 4,000 tokens
        raw = [(b"Connection", value.encode())]
        tokens = http._connection_tokens(raw, [b"connection"])
        assert tokens == http._tokens(value) and len(tokens) == 4000  # read all the same
    kept = sum(map(len, http._TOKENS)) + sum(map(len, http._RAW_TOKENS))
    kept += sum(map(len, http._TOKENS.values())) + sum(map(len, http._RAW_TOKENS.values()))
    assert kept <= 64 * 1024, kept


def test_short_connection_values_are_kept() -> None:
    http._TOKENS.clear()
    http._RAW_TOKENS.clear()
    raw = [(b"Connection", b"keep-alive, X-Foo")]
    first = http._connection_tokens(raw, [b"connection"])
    assert first == {b"keep-alive", b"x-foo"}
    assert http._connection_tokens(raw, [b"connection"]) is first  # kept: the same set again
