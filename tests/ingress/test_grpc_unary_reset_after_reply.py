"""A ModelInfer whose client cancels (RST_STREAM) once the proxy's handler has its reply: the proxy records the call as
answered (OK), though its client got CANCELLED and never the reply. grpc.aio gives a unary handler no word of it: the
reply, its status and the trailers go in one batch grpc.aio starts after the handler returned; a cancel that comes
before then no longer cancels the handler (grpc.aio cancels it only while no status is being sent), and a batch that
meets a reset stream fails inside grpc.aio, which drops the failure (`_handle_exceptions`: ExecuteBatchError, ignored
once its client closed). `context.cancelled()` says only whether the handler set CANCELLED itself, and a done callback
(`context.add_done_callback`) sees the call as it sees one whose reply went out: done, not cancelled. Sending the reply
from the handler instead (served as a response stream, `context.write`) would see a reset that came before the write
only, for a second batch through grpc's core on every call. README (gRPC) says so. A cancel before the reply (while
the upstream computes, while the record waits for its write) is recorded `client_disconnected` (tests/ingress/
test_grpc.py, tests/record/test_reply_waiting_for_record_unanswered.py)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import grpc
import pytest

import proxy.ingress.grpc as grpc_ingress
from proxy.logs import ACCESS
from tests.ingress.grpc_proxied import proxied, recorded
from tests.ingress.test_grpc import CONFIG, SERVICE, _request, _traceparent
from tests.ingress.test_grpc_left_before_request import CANCEL
from tests.record.test_reply_waiting_for_record_unanswered import Answering
from tests.record.test_store_waits import until
from tests.servers.h2_hostile import RST_STREAM, HostileClient
from tests.servers.h2_wire import frame
from tests.servers.otlp_receiver import OtlpReceiver

# it replaces `_reply_metadata`, which the compiled module calls directly (tests/conftest.py)
pytestmark = pytest.mark.interpreted


def test_a_unary_call_reset_after_its_handler_has_the_reply_is_recorded_as_answered(
    loop_thread: Any, make_proxy: Any, otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO, logger=ACCESS)
    reached, go = threading.Event(), threading.Event()
    seen: list[tuple[bool, bool]] = []  # what each call's done callback saw: (done, cancelled)
    metadata = grpc_ingress._reply_metadata

    def held(context: Any, trailing: Any) -> None:
        """The handler's last step, its call recorded: held (the proxy's loop with it) until the client has cancelled."""
        metadata(context, trailing)
        context.add_done_callback(lambda done: seen.append((done.done(), done.cancelled())))
        reached.set()
        assert go.wait(30)

    with proxied(loop_thread, otlp, make_proxy, CONFIG, Answering()) as proxy:
        monkeypatch.setattr(grpc_ingress, "_reply_metadata", held)
        answered_trace, answered_md = _traceparent(0x4E5E7)
        reset_trace, reset_md = _traceparent(0x4E5E8)
        with grpc.insecure_channel(proxy.grpc) as channel:
            infer = channel.unary_unary(SERVICE + "ModelInfer")
            go.set()
            assert infer(_request(), metadata=answered_md)  # one answered, for what its done callback sees
            until(lambda: len(seen) == 1)
            go.clear()
            reached.clear()
        # the reset call on raw HTTP/2, so its RST_STREAM is known read by the listener before the handler returns
        # (a PING acknowledged after it): with grpc's client, `future.cancel()` then releasing the handler, the reset
        # could reach the listener after the reply went, a call answered, and the test held whichever came first
        hostile = HostileClient(int(proxy.grpc.rsplit(":", 1)[1]))
        try:
            stream = hostile.open(SERVICE + "ModelInfer", *((k, v.encode()) for k, v in reset_md))
            message = _request()
            hostile.data(stream, b"\x00" + len(message).to_bytes(4, "big") + message, end=True)
            assert reached.wait(30)
            with hostile._send:
                hostile.sock.sendall(frame(RST_STREAM, 0, stream, CANCEL.to_bytes(4, "big")))
            hostile.ping()  # the listener has read the reset: grpc's core has the call cancelled
            go.set()
            until(lambda: proxy.process._grpc.calls == 0 and len(seen) == 2)
            hostile.ping()  # anything sent on the stream before this acknowledgement has been read
            assert stream not in hostile.replied  # the client never got the reply the call is recorded as answering
        finally:
            hostile.close()
        loop_thread.run(proxy.process.runtime.sinks.flush())
    answered_span, answered_line = recorded(otlp, caplog, answered_trace)
    span, line = recorded(otlp, caplog, reset_trace)
    # as the call answered is: OK, no error (the contract's `client_disconnected` is what the client's leaving should be)
    assert line.status == answered_line.status == grpc.StatusCode.OK.value[0]
    assert "error.type" not in span.attributes and "error.type" not in answered_span.attributes
    assert seen == [(True, False), (True, False)]  # grpc.aio's word of each: the same
