"""A gRPC call's request message still arriving is grpc's alone: no handler runs (a unary call's) or the handler waits
in `context.read` (a stream's first message), and grpc holds the message as it comes, its whole announced size. A
client that announced a large message and never sent its last byte held it, and its call's place among
limits.grpc_max_calls, for good: 8 calls of 60 MiB but a byte held 547 MiB in a `serve` process for as long as the
client liked, three such rounds 1.5 GiB, and grpc_max_calls such calls refused every other caller. Now a call's
request (a unary call's, a stream's first message) has limits.grpc_request_timeout_s from the call's start to arrive
whole; past it the call ends DEADLINE_EXCEEDED, recorded (`invalid_request`, as HTTP's body that stopped coming), and
grpc lets go of what it held."""

from __future__ import annotations

import logging
import socket
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from tritonclient.grpc import service_pb2

from proxy.config import Limits, parse
from proxy.errors import ConfigError
from proxy.logs import ACCESS
from tests.harness import LoopThread, ServeProcess
from tests.ingress.grpc_proxied import proxied, recorded, traced
from tests.ingress.test_grpc_too_large import CONFIG as TOO_LARGE_CONFIG
from tests.ingress.test_grpc_too_large import SERVICE, Upstream
from tests.servers.h2_hostile import HostileClient
from tests.servers.otlp_receiver import OtlpReceiver

INFER, STREAM_INFER = SERVICE + "ModelInfer", SERVICE + "ModelStreamInfer"
CONFIG = TOO_LARGE_CONFIG.replace(
    "limits: {max_body_bytes: 4096}", "limits: {grpc_max_calls: 4, grpc_request_timeout_s: 0.5}"
)
MIB = 1 << 20


def _request() -> bytes:
    request = service_pb2.ModelInferRequest(model_name="simple")
    request.inputs.add(name="A", datatype="INT32", shape=[1]).contents.int_contents.append(1)
    data: bytes = request.SerializeToString()
    return data


def test_calls_whose_request_never_arrives_whole_are_ended_recorded_and_free_their_places(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    upstream = Upstream()
    with proxied(loop_thread, otlp, make_proxy, CONFIG, upstream) as proxy:
        hostile = HostileClient(int(proxy.grpc.rsplit(":", 1)[1]))
        try:
            traces = [traced(n, 0xA221_0000) for n in range(4)]
            streams = [
                hostile.start(INFER if n < 3 else STREAM_INFER, MIB, ("traceparent", parent.encode()))
                for n, (_, parent) in enumerate(traces)
            ]
            # every place of grpc_max_calls held by a call that will never have its request: each is ended all the same
            assert hostile.wait_ended(streams, 10.0), f"ended: {hostile.ended} of {streams}"
            assert not hostile.closed  # the calls ended, not the connection
            for trace_id, _ in traces:
                span, line = recorded(otlp, caplog, trace_id)
                assert span.attributes["error.type"] == "invalid_request"
                assert line.status == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
            assert upstream.messages == 0  # nothing of them went on
            # their places are free: another caller is served
            with grpc.insecure_channel(proxy.grpc) as channel:
                assert channel.unary_unary(INFER)(_request(), timeout=10) == b""
        finally:
            hostile.close()


def test_a_request_that_arrives_in_time_is_served(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> None:
    """A call whose request comes whole within the bound is served as ever, unary and streaming."""
    upstream = Upstream()
    with (
        proxied(loop_thread, otlp, make_proxy, CONFIG, upstream) as proxy,
        grpc.insecure_channel(proxy.grpc) as channel,
    ):
        assert channel.unary_unary(INFER)(_request(), timeout=10) == b""
        replies = channel.stream_stream(STREAM_INFER)(iter([_request(), _request()]), timeout=10)
        assert list(replies) == [b"", b""]


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_what_such_calls_hold_is_let_go(tmp_path: Path) -> None:
    """A `serve` process, three rounds of 8 calls of 16 MiB but a byte each, every client's connection kept open: each
    round's calls are ended, and what grpc held for one round is what it holds for the next (before, every round
    stayed: three held about 3 x 128 MiB)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "c.yaml"
    config.write_text(
        f"listen: {{http: 127.0.0.1:0, grpc: 127.0.0.1:{port}}}\n"
        'upstreams: [{name: t, grpc: "127.0.0.1:1", protocol: oip, checkpoint: ck}]\n'
        'routes: [{model: "*", upstream: t}]\n'
        "policy: {anonymous: allow, default_purpose: assistant}\n"
        "lineage: {store: null}\n"
        "limits: {grpc_request_timeout_s: 0.5}\n"
    )
    root = str(Path(__file__).resolve().parents[2])
    # glibc's mmap threshold pinned at 1 MiB, as in test_grpc_stream_messages_bounded.py: freed messages go back to the
    # system at once, so RSS counts what the process holds, not what the dynamic threshold kept in its arenas.
    serve = ServeProcess(str(config), env={"PYTHONPATH": root, "MALLOC_MMAP_THRESHOLD_": str(MIB)})
    clients: list[HostileClient] = []
    try:
        before = _rss_mib(serve.proc.pid)
        after: list[float] = []
        for _ in range(3):
            client = HostileClient(port)
            clients.append(client)
            streams = [client.start(INFER, 16 * MIB) for _ in range(8)]
            assert client.wait_ended(streams, 10.0), f"ended: {client.ended} of {streams}"
            after.append(_rss_mib(serve.proc.pid))
        # one round's 128 MiB, let go and taken again: the process grows by about one round, never by three
        assert after[-1] - before < 2 * 128, (before, after)
    finally:
        for client in clients:
            client.close()
        serve.stop()


def test_grpc_request_timeout_s_is_a_positive_number() -> None:
    text = (
        "listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}\nupstreams: [{name: t, grpc: 127.0.0.1:1, protocol: oip}]\n"
        "routes: [{model: m, upstream: t}]\n"
    )
    assert Limits().grpc_request_timeout_s == 60.0
    assert parse(text + "limits: {grpc_request_timeout_s: 2.5}\n", source="t.yaml").limits.grpc_request_timeout_s == 2.5
    with pytest.raises(ConfigError, match="grpc_request_timeout_s"):
        parse(text + "limits: {grpc_request_timeout_s: 0}\n", source="t.yaml")
