"""The caller's metadata is walked once a call (`_Received`), where it was walked four times: what each step reads of
it is what the separate walks gave. Compared here with those walks as they were, on every mix of the keys that decide
something: repeated keys, binary labels, transport keys, the caller's claims and key, tracestate, unsendable values."""

from __future__ import annotations

import itertools

import grpc.aio

from proxy.ingress.grpc import _CLIENT_CLAIMS, _DROPPED, _KEY_FIELDS, _NOT_FORWARDED, _READ_BINARY, _Received
from proxy.transport.grpc_channels import SentMetadata

Pair = tuple[str, str | bytes]
ENTRIES: list[Pair] = [
    ("x-purpose", "assistant"), ("authorization", "Bearer k"), ("x-data-labels", "pii"), ("x-data-labels", "phi"),
    ("x-data-labels-bin", b"secret"), ("blob-bin", b"\x00\xff"), ("user-agent", "grpc-python"),
    ("x-forwarded-for", "198.51.100.7"), ("x-forwarded-for", ""), ("x-real-ip", "caf\xe9"), ("tracestate", "a=b"),
    ("authorization-bin", b"k"), ("x-note", "a\tb"), ("x-other", "caf\xe9"), ("traceparent", "00-x"),
]  # fmt: skip


def _walks(received: list[Pair], strips: bool, joined: bool) -> tuple[object, ...]:
    """The four walks as they were (before 2026-12-03); and since 2026-12-04 `authorization-bin` found too, by its own
    name, to be read where it is passed on."""
    found: dict[str, str] = {}
    for key, value in received:
        if not isinstance(value, str):
            if key == "authorization-bin":
                value = value.decode("utf-8", "replace")
            elif key not in _READ_BINARY:
                continue
            else:
                key, value = key[:-4], value.decode("utf-8", "surrogateescape")
        found[key] = f"{found[key]},{value}" if key in found else value
    size, unsendable = 0, None
    for key, value in received:
        if key not in _NOT_FORWARDED:
            size += len(key) + len(value) + 32
            if isinstance(value, str) and not (value.isascii() and value.isprintable()) and key not in _DROPPED:
                unsendable = key
                break
    out = [
        (key, value)
        for key, value in received
        if key not in _NOT_FORWARDED
        and not key.startswith(":")
        and not (strips and key in _KEY_FIELDS)
        and (joined or key != "tracestate")
        and key not in _CLIENT_CLAIMS
    ]
    callers = [value for key, value in received if key == "x-forwarded-for" and isinstance(value, str) and value]
    return found, unsendable, size if unsendable is None else None, out, callers


def _one_walk(received: list[Pair], strips: bool, joined: bool) -> tuple[object, ...]:
    """What `_Received` gives, as `GrpcIngress._forward_metadata` and `_metadata_over` read it."""
    read = _Received(received)
    out = read.forwarded.copy()
    if read.keys and not strips:
        for at, pair in read.keys:
            out.insert(at, pair)
    if read.traced and not joined:
        out = [(key, value) for key, value in out if key != "tracestate"]
    assert read.entries == len(received)
    return read.found, read.unsendable, read.size if read.unsendable is None else None, out, read.callers


def test_one_walk_gives_what_the_four_gave() -> None:
    compared = 0
    for n in (1, 2, 3):
        for received in itertools.permutations(ENTRIES, n):
            for strips, joined in itertools.product((False, True), repeat=2):
                assert _one_walk(list(received), strips, joined) == _walks(list(received), strips, joined), received
                compared += 1
    assert compared == 4 * (15 + 15 * 14 + 15 * 14 * 13)
    everything = ENTRIES + ENTRIES[::-1]
    for strips, joined in itertools.product((False, True), repeat=2):
        assert _one_walk(everything, strips, joined) == _walks(everything, strips, joined)


def test_metadata_said_distinct_is_sent_as_grpc_would_send_it() -> None:
    """`_Received.repeats` is False only when no key repeats in what goes upstream: `SentMetadata` then hands grpc.aio
    the pairs as they are, without checking; what grpc.aio sends (its iteration) is what its own Metadata would give,
    on every mix of the entries, binary keys repeated too, with the keys the proxy adds."""
    entries = [*ENTRIES, ("blob-bin", b"\x01"), ("authorization-bin", b"k2"), ("x-purpose-bin", b"assistant")]
    said_distinct = 0
    for n in (1, 2, 3):
        for received in itertools.permutations(entries, n):
            for strips, joined in itertools.product((False, True), repeat=2):
                read = _Received(list(received))
                out: list[Pair] = _one_walk(list(received), strips, joined)[3]  # type: ignore[assignment]
                out += [("x-forwarded-for", "127.0.0.1"), ("x-forwarded-proto", "http"), ("traceparent", "00-x")]
                if strips:  # an upstream's own key, sent in place of the caller's
                    out.append(("authorization", "Bearer upstream"))
                sent = SentMetadata(list(out), distinct=not read.repeats)
                assert list(sent) == list(grpc.aio.Metadata(*out)), received
                if not read.repeats:
                    said_distinct += 1
                    assert len({key for key, _ in out}) == len(out), received
    assert said_distinct > 1000
