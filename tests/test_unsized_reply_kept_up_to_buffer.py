"""What is kept of a reply passed on as it arrives (no Content-Length), to be read whole for the record, was
16 MiB whatever `limits.buffer_max_bytes` said: with the buffer raised to read large OIP replies, a chunked
one over 16 MiB with binary outputs was recorded `scan:truncated`, with no output digest, where the same
reply with a Content-Length was read whole. The bound is now `buffer_max_bytes` when that is larger (what a
process already holds of a reply it buffers); a lower buffer still keeps 16 MiB."""

from __future__ import annotations

import struct
from typing import Any

from tests.test_unsized_replies_output import EMAIL, OUT, TRUNCATED, Reply, pieces, setup_for  # noqa: F401

BIG = 20 << 20  # over 16 MiB


def _binary_reply() -> tuple[bytes, bytes]:
    """An OIP reply with its outputs in binary (the binary-tensor extension): a short BYTES one (an address)
    and a large FP32 one. Its JSON head and body."""
    element = f"write to {OUT}".encode()
    text = struct.pack("<I", len(element)) + element
    numbers = bytes(BIG)  # FP32 zeros: data, not text
    head = (b'{"model_name":"iris","model_version":"1","outputs":['
            b'{"name":"TEXT","datatype":"BYTES","shape":[1],"parameters":{"binary_data_size":%d}},'
            b'{"name":"X","datatype":"FP32","shape":[%d],"parameters":{"binary_data_size":%d}}]}'
            % (len(text), BIG // 4, BIG))  # fmt: skip
    return head, head + text + numbers


def _call(setup: Any, flow: str) -> tuple[list[str], list[str], str | None]:
    head, body = _binary_reply()
    reply = Reply(pieces(body, 1 << 20), content_type="application/octet-stream",
                  fields={"Inference-Header-Content-Length": str(len(head))})  # fmt: skip
    response, got = setup.call("/v2/models/iris/infer", flow, reply)
    assert response.status_code == 200 and got == body and "content-length" not in response.headers
    span, edge = setup.recorded(response, flow)
    digest = setup.otlp.by_trace(response.headers["x-trace-id"]).attributes.get("lineage.output.digest")
    return span, edge, digest


def test_a_chunked_oip_reply_within_a_raised_buffer_is_read_whole(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for(buffer_max_bytes=BIG + (1 << 20))
    span, edge, digest = _call(setup, "flow-raised")
    assert (span, edge) == (["flow-raised", EMAIL], ["flow-raised", EMAIL])  # was: scan:truncated, unread
    assert digest is not None and digest.startswith("sha256:")  # was: none


def test_a_lower_buffer_still_keeps_16_mib_and_past_it_the_reply_is_unread(setup_for: Any) -> None:  # noqa: F811
    setup = setup_for()  # the default, 16 MiB
    span, edge, digest = _call(setup, "flow-default")
    assert (span, edge) == (["flow-default", TRUNCATED], ["flow-default", TRUNCATED]) and digest is None
    small = setup_for(buffer_max_bytes=1024)
    head = b'{"model_name":"iris","outputs":[{"name":"T","datatype":"BYTES","shape":[1],"data":["to %s"]}]}' % (
        OUT.encode()
    )
    response, _ = small.call("/v2/models/iris/infer", "flow-small", Reply(pieces(head + b" " * 4096, 512)))
    assert small.recorded(response, "flow-small") == (["flow-small", EMAIL], ["flow-small", EMAIL])
