"""A chunked JSON reply in UTF-16 (big-endian, its first byte a NUL: kept to be read whole at its end since 85976e1)
is kept by the observer alone: the client has its first chunk while the upstream still holds the second, as one in
UTF-8 (tests/test_unsized_replies_output.py), and the record has the address read whole."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest

from tests.test_unsized_replies_output import BODIES, CHAT, EMAIL, OUT, Reply, pieces, setup_for  # noqa: F401


@pytest.mark.parametrize("encoding", ["utf-16-be", "utf-32-be", "utf-16"])
def test_a_chunked_reply_in_utf16_goes_on_chunk_by_chunk(setup_for: Any, encoding: str) -> None:  # noqa: F811
    setup = setup_for()
    gate = asyncio.Event()
    body = orjson.dumps(CHAT).decode().encode(encoding)
    sent = pieces(body, len(body) // 2 - 40)  # the address in the second piece
    assert OUT.encode(encoding)[2:] not in sent[0]
    setup.upstream.reply = Reply(sent, gate=gate)
    path, flow = "/v1/chat/completions", f"flow-wide-{encoding}"
    got = b""
    with httpx.stream("POST", f"{setup.proxy.url}{path}", json=BODIES[path], timeout=30,
                      headers={"x-data-labels": flow}) as response:  # fmt: skip
        assert response.status_code == 200 and "content-length" not in response.headers
        chunks = response.iter_raw()
        while len(got) < len(sent[0]):
            got += next(chunks)
        assert got == sent[0] and setup.upstream.sent == 1  # the upstream waits: nothing held back
        setup.loop_thread.loop.call_soon_threadsafe(gate.set)
        got += b"".join(chunks)
    assert got == body
    assert setup.recorded(response, flow) == ([flow, EMAIL], [flow, EMAIL])
