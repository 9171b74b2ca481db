"""A ModelStreamInfer reply after the first whose write its client holds back (it grants no HTTP/2 window): the relay is
in that write, the reply taken from the upstream but not yet read (`Exchange.stream_message` reads a later reply once
its write returns). Driven on raw HTTP/2 (`tests/servers/h2_hostile.py`, which grants windows only when told) in front
of a grpc.aio upstream that answers each message, so each step is ordered by what the client sends and grants; watched
through what the client receives, the call's record, and the call's outcome found among the proxy's live objects
while the write waits. Nothing of the proxy is patched: these hold compiled, where the tests that patch its functions
(`test_grpc_stream_reply_before_read.py`) see nothing.

- The write outlasts the upstream's end of its replies: the client has part of the reply before it is read, then all
  of it and the status; the record is the replies read.
- Its client resets the stream (RST_STREAM) while the write waits: grpc fails the write outright; the reply is read
  all the same and on the record, which says the client left.
- A later message of the client's is denied while the write waits: the denied message's own record (`Exchange.refused`)
  names the model version the reply being written names, as the stream's does (until 2026-12-06 it was the stream's
  attributes as they stood at the denial, the reply unread: no version).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from tritonclient.grpc import service_pb2

from proxy.exchange import Exchange
from proxy.protocols.oip_grpc import MODEL_STREAM_INFER
from tests.harness import LoopThread, ProxyHandle
from tests.ingress.grpc_proxied import proxied_recording
from tests.ingress.test_grpc_stream_forwarded import CONFIG, _request
from tests.ingress.test_grpc_stream_last_bytes_ended import _framed
from tests.record.test_sinks import Sink
from tests.record.test_store_waits import until
from tests.servers.h2_hostile import RST_STREAM, HostileClient
from tests.servers.h2_wire import frame
from tests.servers.otlp_receiver import OtlpReceiver

WINDOW = 65_535  # HTTP/2's initial windows, the connection's and a stream's: the client grants no more unless told
# a message labelled `health` is denied: its zone allows only `research`, and the stream's purpose is `assistant`
ZONED = CONFIG + "zones:\n  - {name: health, labels: [health], allow_purposes: [research]}\n"
CANCEL = 8  # RST_STREAM's error code a client's cancel sends


def _reply(text: str, version: str = "", padding: int = 0) -> bytes:
    """A ModelStreamInferResponse with `text` as its output; naming the model `streams` at `version`, if given; with
    `padding` bytes of raw contents beside it (a reply past the client's windows)."""
    reply = service_pb2.ModelStreamInferResponse()
    response = reply.infer_response
    if version:
        response.model_name, response.model_version = "streams", version
    # as Triton sends them: each output's raw contents (a BYTES element is its 4-byte length, then its bytes)
    response.outputs.add(name="TEXT", datatype="BYTES", shape=[1])
    response.raw_output_contents.append(len(text).to_bytes(4, "little") + text.encode())
    if padding:
        response.outputs.add(name="PAD", datatype="UINT8", shape=[padding])
        response.raw_output_contents.append(bytes(padding))
    data: bytes = reply.SerializeToString()
    return data


def _labelled(text: str, labels: str) -> bytes:
    """`_request(text)` carrying `labels` (its `data_labels` parameter)."""
    message = service_pb2.ModelInferRequest.FromString(_request(text))
    message.parameters["data_labels"].string_param = labels
    data: bytes = message.SerializeToString()
    return data


# the first reply names no model; the second, past the client's windows, names version 2 and a mail address
REPLIES = [_reply("all clear"), _reply("write to bob@example.com", "2", 4 * WINDOW)]


class Upstream(grpc.GenericRpcHandler):  # type: ignore[misc]
    """ModelStreamInfer answering its n-th message with `REPLIES[n]`; `ended` set once its call ended (the proxy's
    cancel of it, too)."""

    def __init__(self) -> None:
        self.ended = threading.Event()

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return grpc.stream_stream_rpc_method_handler(self._infer) if details.method == MODEL_STREAM_INFER else None

    async def _infer(self, requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        context.add_done_callback(lambda _: self.ended.set())
        n = 0
        async for _ in requests:
            yield REPLIES[n]
            n += 1


@pytest.fixture
def upstream() -> Upstream:
    return Upstream()


@pytest.fixture
def proxy(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any, upstream: Upstream
) -> Iterator[tuple[ProxyHandle, Sink]]:
    with proxied_recording(loop_thread, otlp, make_proxy, ZONED, upstream) as recording:
        yield recording


@pytest.fixture
def client(proxy: tuple[ProxyHandle, Sink]) -> Iterator[HostileClient]:
    hostile = HostileClient(int(proxy[0].grpc.rsplit(":", 1)[1]))
    yield hostile
    hostile.close()


def _held(client: HostileClient, *messages: bytes, end: bool = False) -> int:
    """A stream sending `messages` (the last with END_STREAM, if `end`), once the relay is in the second reply's write,
    which the client's windows hold (the first reply's bytes and all of the second's they let through received)."""
    stream = client.open(MODEL_STREAM_INFER)
    for n, message in enumerate(messages):
        client.data(stream, _framed(message), end=end and n == len(messages) - 1)
    assert client.wait(lambda: client.replied.get(stream, 0) >= WINDOW, 20), client.replied
    return stream


def _unread(loop_thread: LoopThread, client: HostileClient) -> bool:
    """Whether the stream's call (the proxy's Exchange of `client`'s connection, under way, a reply observed) has not
    read its second reply yet: the model's version that reply names is not on its outcome. Looked for on the proxy's
    loop, among the live objects: nothing of the proxy is patched, so this holds compiled."""
    port = client.sock.getsockname()[1]

    async def look() -> bool:
        (ex,) = [one for one in gc.get_objects() if isinstance(one, Exchange) and one.outcome.client == ("127.0.0.1", port)
                 and one.outcome.first_token_ns and not one.outcome.ended_ns]  # fmt: skip
        return "lineage.model.version" not in ex.outcome.extra

    return loop_thread.run(look())


def test_a_later_reply_is_written_before_it_is_read_and_recorded_once_written(
    proxy: tuple[ProxyHandle, Sink], client: HostileClient, loop_thread: LoopThread
) -> None:
    """The client has the second reply's first 64 KiB while it is unread (read first, as until 2026-12-06, its
    version was on the outcome before any of it went out); given the rest, it has the whole reply and the status, and
    the record is the replies read in order."""
    _, records = proxy
    stream = _held(client, _request("ask 0"), _request("ask 1"), end=True)
    assert _unread(loop_thread, client)
    client.grant(stream, 8 * WINDOW)
    assert client.wait(lambda: client.ended.get(stream) == "status", 20), client.ended
    assert client.replied[stream] == sum(len(_framed(reply)) for reply in REPLIES)
    ((call, decision, outcome),) = records.ended
    assert decision.action == "allow" and outcome.status == 0 and outcome.error_type is None
    assert outcome.response_model == "streams:2" and outcome.extra["lineage.model.version"] == "2"
    assert outcome.output_detected == {"pii:email"}


def test_a_later_reply_whose_write_its_client_resets_is_read_and_on_the_record(
    proxy: tuple[ProxyHandle, Sink], client: HostileClient, loop_thread: LoopThread
) -> None:
    """The client resets the stream while the second reply's write waits for its window: grpc fails the write outright
    (its core fails the send before it tells the handler of the cancel: the write raised ExecuteBatchError in each of
    12 runs, watched in the proxy on 2026-12-06; nothing outside the proxy tells it from a cancel, which reads the
    reply in the same `finally`); the reply is read all the same, its address and version on the record, the call
    recorded as its client's leaving (CANCELLED)."""
    _, records = proxy
    stream = _held(client, _request("ask 0"), _request("ask 1"))
    assert _unread(loop_thread, client)
    with client._send:
        client.sock.sendall(frame(RST_STREAM, 0, stream, CANCEL.to_bytes(4, "big")))
    until(lambda: bool(records.ended), 20)
    ((call, decision, outcome),) = records.ended
    assert outcome.error_type == "client_disconnected" and outcome.status == grpc.StatusCode.CANCELLED.value[0]
    assert outcome.output_detected == {"pii:email"} and outcome.extra["lineage.model.version"] == "2"


def test_a_later_message_denied_while_a_reply_is_written_is_recorded_with_that_replys_model_version(
    proxy: tuple[ProxyHandle, Sink], client: HostileClient, upstream: Upstream
) -> None:
    """The third message, labelled `health`, is denied while the second reply's write waits (the upstream's call is
    cancelled: the denial is known); the client then takes the reply and gets PERMISSION_DENIED. The denied message's
    record and the stream's both name version 2, which only the reply being written at the denial says."""
    _, records = proxy
    stream = _held(client, _request("ask 0"), _request("ask 1"))
    client.data(stream, _framed(_labelled("ask 2", "health")))
    assert upstream.ended.wait(20)  # the proxy denied the message and cancelled the upstream's call
    client.grant(stream, 8 * WINDOW)
    assert client.wait(lambda: client.ended.get(stream) == "status", 20), client.ended
    assert client.replied[stream] == sum(len(_framed(reply)) for reply in REPLIES)
    by_action = {decision.action: outcome for _, decision, outcome in records.ended}
    assert sorted(by_action) == ["allow", "deny"]
    denied = grpc.StatusCode.PERMISSION_DENIED.value[0]
    assert by_action["allow"].status == by_action["deny"].status == denied
    assert by_action["allow"].extra["lineage.model.version"] == "2"
    assert by_action["deny"].extra.get("lineage.model.version") == "2"
