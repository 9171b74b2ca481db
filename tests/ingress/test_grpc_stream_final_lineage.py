"""A ModelStreamInfer stream that ends well tells its client the lineage as it stands at the end, in its trailing
metadata: the labels its later messages added (decided again, `Exchange.readmit`) and what the detectors found in
its replies, as its record says. The lineage went only with the first reply (initial metadata), so a stream whose
first message was clean told its client `x-data-labels: ""` while its record said its input and output carried
`pii:email`: a client passing the output on by its labels passed it on unlabelled. (A stream that ends in an error
had its final lineage in its trailers already.)"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from tests.harness import LoopThread, ProxyHandle
from tests.ingress.grpc_proxied import proxied_recording
from tests.ingress.test_grpc_stream_forwarded import CONFIG, MODEL_STREAM_INFER, Upstream, _reply, _request
from tests.record.test_sinks import Sink
from tests.servers.otlp_receiver import OtlpReceiver


@pytest.fixture
def proxy(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[tuple[ProxyHandle, Sink]]:
    """The proxy in front of an upstream whose every reply names a mail address; `Sink`: each call's record."""
    with proxied_recording(loop_thread, otlp, make_proxy, CONFIG, Upstream()) as recording:
        yield recording


def test_a_streams_trailers_carry_its_lineage_as_it_stands_at_its_end(proxy: tuple[ProxyHandle, Sink]) -> None:
    handle, records = proxy
    answered = threading.Event()

    def messages() -> Iterator[bytes]:
        """The first names no one; the second, sent once the first is answered, a mail address (as every reply)."""
        yield _request("hello")
        answered.wait(10)
        yield _request("mail ana@example.org")

    with grpc.insecure_channel(handle.grpc) as channel:
        call = channel.stream_stream(MODEL_STREAM_INFER)(messages(), timeout=10)
        replies = [next(call)]
        answered.set()
        replies += list(call)
        assert replies == [_reply("write to bob@example.com")] * 2
        assert call.code() == grpc.StatusCode.OK
        initial, trailing = dict(call.initial_metadata()), dict(call.trailing_metadata())
    ((recorded, decision, outcome),) = records.ended
    assert "pii:email" in recorded.detected and "pii:email" in outcome.output_detected  # the record's
    assert initial["x-data-labels"] == ""  # told with the first reply: what was known then
    assert "pii:email" in trailing.get("x-data-labels", "").split(","), trailing
    assert trailing["x-lineage-decision"] == decision.action == "allow"
    assert trailing["x-trace-id"] == initial["x-trace-id"] and trailing["x-lineage-checkpoint"] == "streams@1"
