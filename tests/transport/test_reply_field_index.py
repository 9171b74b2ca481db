"""A reply's names looked up in a dict of each name's first place (`ReplyFields.index`), not searched for in the list
of its names: the same answers as the search gave, for any names, repeated or not, in any order; and the block the
client gets is the same with the index handed in (as `HttpIngress._head` does) as without it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.ingress import http
from proxy.transport.http11 import ReplyFields

NAMES = st.sampled_from([b"connection", b"content-length", b"date", b"location", b"x-a", b"x-lineage-decision",
                         b"x-lineage-", b"x-lineage", b"x-trace-id", b"set-cookie", b"keep-alive", b"xx-lineage-a"])  # fmt: skip
VALUES = st.sampled_from([b"keep-alive", b"close", b"x-a", b"keep-alive, x-a", b"", b"1", b"http://10.0.0.5:8000/y"])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(NAMES, VALUES), max_size=8))
def test_the_index_answers_as_a_search_of_the_names(raw: list[tuple[bytes, bytes]]) -> None:
    names = [name for name, _ in raw]
    fields = ReplyFields(raw, names)
    assert fields.index == {name: names.index(name) for name in names}
    for name in {n.decode() for n in names} | {"absent"}:
        expected = raw[names.index(name.encode())][1].decode() if name.encode() in names else None
        assert fields.get(name) == expected
    if b"connection" in names:
        # (a repeated name: the index has fewer entries than the names, and the field is counted)
        plain = raw[names.index(b"connection")][1] in (b"keep-alive", b"close") and names.count(b"connection") == 1
        assert http._plain_connection(raw, names, fields.index) == plain
    for base in (None, "http://10.0.0.5:8000"):
        given_index: list[bytes] = []
        http.reply_fields(given_index, raw, names, b"x-trace-id: t\r\n", base, fields.index)
        made_here: list[bytes] = []
        http.reply_fields(made_here, raw, names, b"x-trace-id: t\r\n", base)
        assert b"".join(given_index) == b"".join(made_here)
        # what only the proxy may say is never passed on, nor a field named `x-lineage-` and more
        kept = b"".join(given_index).split(b"\r\n")[:-2]
        assert not any(line.lower().startswith((b"x-lineage-", b"x-trace-id:")) for line in kept)
