"""A gRPC client gone without a word (its host down, a NAT's mapping dropped, its process hung) sends no FIN: grpc's
own keepalive, two hours, let it hold its connection that long, and a call in flight on it its upstream's call too.
The gRPC listener pings a connection silent for `limits.idle_timeout_s` and closes it when the ping is not answered
within `limits.header_timeout_s`: the call ends as one whose client left (recorded `client_disconnected`, the
upstream's call cancelled). A connection with no call for `limits.idle_timeout_s` is closed, as an idle HTTP/1.1
connection is."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from proxy.logs import ACCESS
from tests.harness import LoopThread
from tests.ingress.grpc_proxied import proxied, recorded, traced
from tests.ingress.test_grpc import CONFIG, Holding
from tests.ingress.test_grpc_handshake_bounded import PREFACE, closed_within
from tests.servers.h2_wire import frame
from tests.servers.otlp_receiver import OtlpReceiver

SILENT = CONFIG.replace(
    "limits: {drain_timeout_s: 0.2}", "limits: {drain_timeout_s: 0.2, idle_timeout_s: 0.5, header_timeout_s: 0.5}"
)
SETTINGS = 4

# a client of its own process, stopped (SIGSTOP) once its call is in flight: its kernel still acknowledges the
# proxy's bytes, and nothing answers a ping, as with a hung process or a peer behind a NAT that dropped the mapping
CLIENT = textwrap.dedent(
    """
    import sys
    import grpc
    from tritonclient.grpc import service_pb2
    request = service_pb2.ModelInferRequest(model_name="held")
    request.inputs.add(name="A", datatype="INT32", shape=[1]).contents.int_contents.append(1)
    with grpc.insecure_channel(sys.argv[1]) as channel:
        channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")(
            request.SerializeToString(), metadata=(("traceparent", sys.argv[2]),))
    """
)


def test_a_call_whose_client_stops_answering_ends_as_its_clients_leaving(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    upstream = Holding()
    trace_id, traceparent = traced(1, 0x511E0000)
    with proxied(loop_thread, otlp, make_proxy, SILENT, upstream) as proxy:
        client = subprocess.Popen([sys.executable, "-c", CLIENT, proxy.grpc, traceparent], stderr=subprocess.DEVNULL)
        try:
            upstream.wait_arrived(1)
            os.kill(client.pid, signal.SIGSTOP)  # the call in flight, its client silent from now on
            span, line = recorded(otlp, caplog, trace_id)  # (waits for the span: the call ended)
            assert span.attributes["error.type"] == "client_disconnected"
            assert line.status == 1  # CANCELLED
        finally:
            client.kill()
            client.wait()


def test_a_connection_with_no_call_is_closed_after_idle_timeout(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any
) -> None:
    """A client that finished its handshake and sends nothing more (nor answers anything) is not kept."""
    with proxied(loop_thread, otlp, make_proxy, SILENT, Holding()) as proxy:
        port = int(proxy.grpc.rsplit(":", 1)[1])
        assert closed_within(port, PREFACE + frame(SETTINGS, 0, 0, b""), 10.0) < 5.0
