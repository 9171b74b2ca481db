"""A gRPC BYTES element that is not UTF-8 is read replaced (U+FFFD) up to `BYTES_SCANNED` bytes, as its other readings
(Latin-1, UTF-16/32) are and as a REST tensor is; the rest unread and said to be (`scan:truncated`). Its reading replaced
was made whole, and the element sliced twice: a 64 MB `bytes_contents` element of Latin-1 bytes was read as 64 M
characters of two bytes each (U+FFFD is no Latin-1 character), its copies and its reading ~300 MB at once."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from proxy.detectors import TRUNCATED
from proxy.flow import Outcome
from proxy.logs import ACCESS
from proxy.protocols import oip_grpc
from proxy.protocols.oip import BYTES_SCANNED
from proxy.protocols.oip_grpc import read_infer_request
from tests.harness import LoopThread
from tests.ingress.grpc_proxied import Answering, recorded, traced, triton_client
from tests.protocols.test_oip_grpc import EMAIL, PB, infer_request
from tests.servers.otlp_receiver import OtlpReceiver
from tests.test_oip_many_tensors_bounded import MANY_CONFIG

# an element of Latin-1 bytes (not UTF-8) twice the bytes read of it, an address first
LONG = b"alice@example.com " + b"\xe9" * (2 * BYTES_SCANNED)


def test_a_long_element_not_utf8_is_read_up_to_the_bound_and_said_unread() -> None:
    request = infer_request(model_name="m")
    request.inputs.add(name="i", datatype="BYTES", shape=[1]).contents.bytes_contents.append(LONG)
    read = read_infer_request(request.SerializeToString())
    assert len(read.texts) == 1 and len(read.texts[0]) <= BYTES_SCANNED  # (2,097,168 characters before)
    assert read.unscanned  # scan:truncated (not said before: the whole of it was read)
    assert read.texts[0].startswith("alice@example.com \ufffd") and read.decoded[0].startswith("alice@example.com é")
    short = infer_request(model_name="m")
    short.inputs.add(name="i", datatype="BYTES", shape=[1]).contents.bytes_contents.append(LONG[:BYTES_SCANNED])
    assert not read_infer_request(short.SerializeToString()).unscanned  # at the bound: whole


def test_a_long_utf8_element_is_read_up_to_the_bound_a_character_cut_there_unread() -> None:
    """As a REST tensor's (`bytes_tensor_strings`); whole, a 64 MB element was 64 M characters at once."""
    request = infer_request(model_name="m")
    element = ("alice@example.com " + "x" * (BYTES_SCANNED - 19) + "é" * 1000).encode()  # `é` across the bound
    request.inputs.add(name="i", datatype="BYTES", shape=[1]).contents.bytes_contents.append(element)
    read = read_infer_request(request.SerializeToString())
    assert read.texts == (element[: BYTES_SCANNED - 1].decode(),) and read.decoded == ()  # no other reading
    assert read.unscanned


def test_a_replys_long_element_not_utf8_is_read_up_to_the_bound() -> None:
    reply = PB["ModelInferResponse"](model_name="m")
    reply.outputs.add(name="o", datatype="BYTES", shape=[1]).contents.bytes_contents.append(LONG)
    outcome = Outcome(started_ns=0)
    observer = oip_grpc.ReplyObserver(outcome, EMAIL, False)
    observer.body(reply.SerializeToString())
    observer.finish()
    assert TRUNCATED in outcome.output_detected and outcome.response_model == "m"


@pytest.fixture
def long_output(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[tuple[Any, Answering]]:
    """A model answering one BYTES element of `LONG`."""
    reply = PB["ModelInferResponse"](model_name="m")
    reply.outputs.add(name="o", datatype="BYTES", shape=[1]).contents.bytes_contents.append(LONG)
    upstream = Answering(bytes(reply.SerializeToString()))
    with triton_client(loop_thread, otlp, make_proxy, MANY_CONFIG, upstream) as client:
        yield client, upstream


def test_through_a_proxy_the_request_and_the_reply_are_said_read_in_part(
    long_output: tuple[Any, Answering], otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    client, upstream = long_output
    tensor = grpcclient.InferInput("i", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([LONG], dtype=np.object_))
    tensor._get_tensor().contents.bytes_contents.append(LONG)  # (in `contents`: where `_contents` reads it)
    tensor._raw_content = None
    trace_id, parent = traced(0, 0x0B2E_0000)
    answer = client.infer("m", [tensor], headers={"traceparent": parent})
    assert answer.get_response().outputs[0].contents.bytes_contents[0] == LONG  # passed on whole
    assert upstream.reached == 1
    span, line = recorded(otlp, caplog, trace_id)
    assert line.status == 0
    assert "scan:truncated" in span.attributes["lineage.input.labels"]
    assert "pii:email" in span.attributes["lineage.input.labels"]  # (what was read of it)
    assert "scan:truncated" in span.attributes["lineage.output.labels"]
