"""A ModelStreamInfer reply after the first goes to its client before the reply's observer reads it
(`Exchange.stream_message`): a later reply cannot end the call (its upstream's status does) and reading it decides
nothing about what is written, so until 2026-12-06 every one waited for its reading before its client had it. The
first is still read first (its labels go with it, in the initial metadata), and the record is what reading each reply
first made it: each reply read once, in order, before the upstream's next is awaited.

The order is watched in the proxy's process (`interpreted`: the call patched is a direct call once compiled): the
observer's reading of the second reply waits until the client has it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from tritonclient.grpc import service_pb2

from proxy.exchange import Exchange
from proxy.flow import Outcome
from proxy.ingress.grpc import _Quiet
from proxy.protocols.oip_grpc import MODEL_STREAM_INFER, ReplyObserver
from tests.harness import LoopThread, ProxyHandle
from tests.ingress.grpc_proxied import proxied_recording
from tests.ingress.test_grpc_stream_forwarded import CONFIG, _reply, _request
from tests.record.test_sinks import Sink
from tests.servers.otlp_receiver import OtlpReceiver


def _error(text: str) -> bytes:
    """Triton's in-band answer to one request of a stream: its `error_message` (the stream goes on, OK)."""
    data: bytes = service_pb2.ModelStreamInferResponse(error_message=text).SerializeToString()
    return data


# a clean first reply, a second naming a mail address, a third Triton's error for its request
REPLIES = [_reply("all clear"), _reply("write to bob@example.com"), _error("request 3 failed")]


class Upstream(grpc.GenericRpcHandler):  # type: ignore[misc]
    """ModelStreamInfer answering its n-th message with `REPLIES[n]`."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return grpc.stream_stream_rpc_method_handler(self._infer) if details.method == MODEL_STREAM_INFER else None

    async def _infer(self, requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        n = 0
        async for _ in requests:
            yield REPLIES[n]
            n += 1


@pytest.fixture
def proxy(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[tuple[ProxyHandle, Sink]]:
    with proxied_recording(loop_thread, otlp, make_proxy, CONFIG, Upstream()) as recording:
        yield recording


@pytest.mark.interpreted
def test_a_later_reply_reaches_the_client_before_it_is_read_and_the_record_is_as_read_first(
    proxy: tuple[ProxyHandle, Sink], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The observer's reading of the second reply waits (at most 5 s) for the client to have it: read first, as
    before, the client had it only once the wait ran out. Its labels are in the trailing lineage and the record, which
    are those of the three replies read in order, as an observer given them alone reads them."""
    handle, records = proxy
    client_has = threading.Event()
    read: list[bytes] = []
    waited: list[bool] = []
    stream_message = Exchange.stream_message

    def read_once_the_client_has_it(self: Exchange, message: bytes) -> None:
        read.append(message)
        if len(read) == 2:
            waited.append(client_has.wait(5))
        stream_message(self, message)

    monkeypatch.setattr(Exchange, "stream_message", read_once_the_client_has_it)
    with grpc.insecure_channel(handle.grpc) as channel:
        call = channel.stream_stream(MODEL_STREAM_INFER)(iter([_request(f"ask {n}") for n in range(3)]), timeout=20)
        replies = [next(call), next(call)]
        client_has.set()
        replies += list(call)
        assert call.code() == grpc.StatusCode.OK
        initial, trailing = dict(call.initial_metadata()), dict(call.trailing_metadata())
    assert replies == REPLIES and read == REPLIES  # each read once, in order
    reference = Outcome(0)
    observer = ReplyObserver(reference, handle.process.ref.current.detectors, True)
    for reply in REPLIES:
        observer.stream_message(reply)
    observer.finish()
    ((recorded, decision, outcome),) = records.ended
    assert outcome.output_detected == reference.output_detected == {"pii:email"}
    assert outcome.output_digest == reference.output_digest and outcome.content == reference.content
    assert outcome.error_type == reference.error_type == "upstream_error" and outcome.status == 0
    assert outcome.response_model == reference.response_model == "streams"
    assert initial["x-data-labels"] == ""  # the first reply's: read before it was written
    assert "pii:email" in trailing["x-data-labels"].split(",") and trailing["x-trace-id"] == initial["x-trace-id"]
    assert trailing["x-lineage-decision"] == decision.action == "allow"
    assert waited == [True]  # the client had the second reply before it was read


@pytest.mark.interpreted
def test_a_later_reply_whose_write_is_cancelled_is_read_once_and_on_the_record(
    proxy: tuple[ProxyHandle, Sink], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The handler cancelled as the second reply is written (grpc cancels it so when its client leaves): the reply,
    which its client may have had, is read all the same, once (the `finally`), before the call's record is made: its
    email is among the record's output labels, the call recorded as its client's leaving. (The review's test of the
    failed later write the change left untested, helper revgrpcfirst.)"""
    handle, records = proxy
    read: list[bytes] = []
    handler: list[asyncio.Task[Any] | None] = []
    heard = 0
    stream_message, quiet_heard = Exchange.stream_message, _Quiet.heard

    def reading(self: Exchange, message: bytes) -> None:
        if not handler:
            handler.append(asyncio.current_task())  # the first reply's reading is the handler's
        read.append(message)
        stream_message(self, message)

    def hearing(self: _Quiet) -> None:
        nonlocal heard
        task = asyncio.current_task()
        # the handler's, once it read the first reply (the writer's are the client's messages sent)
        if handler and task is handler[0]:
            heard += 1
            if heard == 1 and task is not None:  # the second reply, about to be written: its client leaves
                task.cancel()
        quiet_heard(self)

    monkeypatch.setattr(Exchange, "stream_message", reading)
    monkeypatch.setattr(_Quiet, "heard", hearing)
    with grpc.insecure_channel(handle.grpc) as channel:
        call = channel.stream_stream(MODEL_STREAM_INFER)(iter([_request(f"ask {n}") for n in range(3)]), timeout=20)
        assert next(call) == REPLIES[0]
        with pytest.raises(grpc.RpcError):
            list(call)
    ((recorded, decision, outcome),) = records.ended
    assert read == REPLIES[:2]  # each read once: the first before its write, the second after its cancelled one
    assert outcome.output_detected == {"pii:email"} and decision.action == "allow"
    assert outcome.error_type == "client_disconnected"
