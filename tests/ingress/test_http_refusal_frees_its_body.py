"""A refused call's handler frame (and the request body it holds) is freed when the call ends, not left to the
cyclic garbage collector: the failure kept in a local after its `except` block holds its traceback, which holds
the frame. (In the pure build, 300 refused 4 MiB bodies peaked at 224 MiB RSS, against 72 MiB before.) Nor may a
frame the failure passed through hold it: a body not JSON, refused again as it was after the adapter's reading as
UTF-8 found it in no such form, was raised from a parameter of `Exchange._read_as_utf8` (before 2026-12-05), a cycle
that held the handler's frame with it."""

from __future__ import annotations

import gc

import httpx
import pytest

from tests.configs import ONE_UPSTREAM

_PAD = b" " * 4096


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"{not json" + _PAD, {}),  # refused by the adapter, and again as it was: in no UTF-8 form it reads
        (b'{"messages": []}' + _PAD, {}),  # JSON lacking its model
        (('{"messages": []}' + " " * 4096).encode("utf-16"), {}),  # the same read as UTF-8, refused with what it lacks
        (b'{"model": "m", "messages": []}' + _PAD, {"x-purpose": "no such purpose!"}),  # refused by its purpose
    ],
    ids=["not-json", "no-model", "utf16-no-model", "bad-purpose"],
)
def test_a_refused_calls_frame_is_not_left_in_a_reference_cycle(vllm, make_proxy, body, headers) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    proxy = make_proxy(ONE_UPSTREAM, UPSTREAM=upstream)
    with httpx.Client(timeout=30) as client:
        gc.collect()
        gc.disable()
        try:
            for _ in range(3):
                reply = client.post(f"{proxy.url}/v1/chat/completions", content=body,
                                    headers={"Content-Type": "application/json", **headers})  # fmt: skip
                assert reply.status_code == 400, reply.text
            gc.set_debug(gc.DEBUG_SAVEALL)
            gc.collect()
            cyclic = [o for o in gc.garbage if type(o).__name__ == "frame" and o.f_code.co_name == "handle"]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
    assert cyclic == []  # compiled, handle() has no frame object: it passes there as it should
