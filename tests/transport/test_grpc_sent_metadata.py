"""`SentMetadata`, the metadata the gRPC ingress hands grpc.aio for a call upstream: made from its pairs in one step,
it answers as grpc.aio's own Metadata made from the same pairs, before and after it is changed, and a call made with
it sends those pairs."""

from __future__ import annotations

import grpc
import grpc.aio
import pytest

from proxy.transport.grpc_channels import SentMetadata
from tests.harness import LoopThread

PAIRS = [
    [],
    [("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")],
    [("authorization", "Bearer k"), ("x-purpose", "assistant"), ("traceparent", "t"), ("blob-bin", b"\x00\xff")],
    [("x-data-labels", "a"), ("x-purpose", "p"), ("x-data-labels", "b"), ("x-data-labels", "c")],
]


def _by_key(metadata: grpc.aio.Metadata) -> dict[str, list[str | bytes]]:
    found: dict[str, list[str | bytes]] = {}
    for key, value in metadata:
        found.setdefault(key, []).append(value)
    return found


@pytest.mark.parametrize("pairs", PAIRS)
def test_sent_metadata_answers_as_grpcs_metadata_of_the_same_pairs(pairs: list[tuple[str, str | bytes]]) -> None:
    sent, theirs = SentMetadata(list(pairs)), grpc.aio.Metadata(*pairs)
    assert isinstance(sent, grpc.aio.Metadata)
    # what grpc.aio reads when it makes the call: as its own Metadata gives it (a key's values together, keys in
    # the order they came), the pairs as made when no key repeats
    assert tuple(sent) == tuple(theirs)
    assert _by_key(sent) == _by_key(theirs)  # every key's values, in order, as grpc.aio's
    assert len(sent) == len(theirs) and bool(sent) == bool(theirs)
    for key in {key for key, _ in pairs} | {"absent"}:
        assert (key in sent) == (key in theirs)
        assert sent.get_all(key) == theirs.get_all(key)
        assert sent.get(key) == theirs.get(key)
    assert sent == theirs and theirs == sent
    # changed as grpc.aio's Metadata is changed (an interceptor may): answered from then on as grpc.aio's is
    for one in (sent, theirs):
        one.add("x-added", "1")
        one["x-purpose"] = "changed"
    assert _by_key(sent) == _by_key(theirs) and len(sent) == len(theirs) and sent == theirs
    assert tuple(sent) == tuple(theirs)
    del sent["x-added"], theirs["x-added"]
    assert tuple(sent) == tuple(theirs) and len(sent) == len(theirs) and bool(sent) == bool(theirs)
    for key in {key for key, _ in theirs}:  # emptied: false, as grpc.aio's (its `metadata or Metadata()`)
        sent.delete_all(key)
        theirs.delete_all(key)
    assert not sent and not theirs and len(sent) == len(theirs) == 0


class Keeping(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Answers every unary call at once, keeping the metadata it came with."""

    def __init__(self) -> None:
        self.received: list[tuple[tuple[str, str | bytes], ...]] = []

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return grpc.unary_unary_rpc_method_handler(self._echo)

    async def _echo(self, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        self.received.append(tuple((m.key, m.value) for m in context.invocation_metadata() or ()))
        return request


def test_a_call_made_with_sent_metadata_sends_its_pairs(loop_thread: LoopThread) -> None:
    pairs: list[tuple[str, str | bytes]] = [("x-data-labels", "a"), ("x-purpose", "assistant"),
                                            ("traceparent", "t"), ("x-data-labels", "b"), ("blob-bin", b"\x00\xff")]  # fmt: skip
    upstream = Keeping()

    async def call() -> bytes:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((upstream,))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                reply: bytes = await channel.unary_unary("/t.T/Echo")(b"hi", metadata=SentMetadata(pairs), timeout=5)
                return reply
        finally:
            await server.stop(None)

    assert loop_thread.run(call()) == b"hi"
    received = [(key, value) for key, value in upstream.received[0] if key in {key for key, _ in pairs}]
    # in the order grpc.aio's own Metadata sends them (grpc's core puts `traceparent`, a header it knows, first)
    assert [pair for pair in received if pair[0] != "traceparent"] == [
        pair for pair in grpc.aio.Metadata(*pairs) if pair[0] != "traceparent"
    ]
