"""A gRPC method the proxy forwards unread (`policy.passthrough: forward`) is a call with a lineage edge like any
other, so its reply waits, as every other call's does, until a new flow's first edge is durable: `kill -9` right
after the client has its answer loses no flow. Its handler used to answer as soon as the call was recorded,
without waiting for that write."""

from __future__ import annotations

import concurrent.futures
import threading

import grpc

from proxy.flow import Call, Decision, Outcome

CONFIG = """
listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}
upstreams:
  - name: oip
    grpc: ${OIP_GRPC}
    protocol: oip
    checkpoint: held@1
routes:
  - model: "*"
    upstream: oip
policy: {anonymous: allow, default_purpose: assistant, passthrough: forward}
lineage:
  store: ${STORE}
"""


class Holding:
    """A durable record sink that holds the first call's reply (its "first write") until released."""

    name = "holding"
    durable = True

    def __init__(self) -> None:
        self.held: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.holding = threading.Event()
        self.operations: list[str] = []

    def start(self) -> None:
        pass

    def on_end(
        self, call: Call, decision: Decision, outcome: Outcome, output_labels: frozenset[str]
    ) -> concurrent.futures.Future[None] | None:
        self.operations.append(call.operation)
        if not call.carries_data or self.holding.is_set():
            return None
        self.holding.set()
        return self.held

    async def flush(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def metrics(self) -> tuple[str, ...]:
        return ()


def test_a_forwarded_unread_method_answers_once_its_new_flow_is_durable(faithful, make_proxy) -> None:  # type: ignore[no-untyped-def]
    address, _ = faithful
    proxy = make_proxy(CONFIG, wait="probed", OIP_GRPC=address)
    holding = Holding()
    proxy.process.runtime.sinks.swap(holding.name, holding)
    with grpc.insecure_channel(proxy.grpc) as channel:
        reverse = channel.unary_unary("/test.Extra/Reverse")
        answered = reverse.future(b"lineage", metadata=(("x-data-labels", "campaign-7"),), timeout=30)
        try:
            assert holding.holding.wait(30)  # recorded: its reply waits for the record to be durable
            live = channel.unary_unary("/inference.GRPCInferenceService/ServerLive")
            for _ in range(3):  # calls that wait for no write are answered meanwhile
                live(b"", timeout=10)
            assert not answered.done(), "answered before its new flow's record was durable"
        finally:
            holding.held.set_result(None)
        assert answered.result(timeout=30) == b"egaenil"
    assert holding.operations[0] == "passthrough"
