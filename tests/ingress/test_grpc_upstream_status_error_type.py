"""An upstream's gRPC status, passed on as it came, is the call's failure in the record only when OpenTelemetry's
RPC conventions count it one on a SERVER span: UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE,
DATA_LOSS. Every other (NOT_FOUND, INVALID_ARGUMENT, RESOURCE_EXHAUSTED, ...) says what the client asked for, as an
HTTP upstream's 4xx does: its span had `error.type` the status's name and an error status, and
`lineage_proxy_errors_total` counted it, so a client asking for a tensor a model does not have showed on dashboards
as a failing upstream. It is recorded now as an HTTP upstream's 4xx is: its status, no error. The proxy's own
refusals keep their type (`purpose_denied`, ...), whatever status they are answered with."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import grpc
import grpc.aio
import httpx
import pytest

from proxy.logs import ACCESS
from tests.harness import LoopThread
from tests.ingress.grpc_proxied import proxied, recorded, traced
from tests.ingress.test_grpc import _request
from tests.ingress.test_grpc_streams import CONFIG, SERVICE
from tests.servers.otlp_receiver import OtlpReceiver

INFER = SERVICE + "ModelInfer"
BASE = 0x57A7_0000
STATUS_ERROR = 2


class Failing(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Ends every ModelInfer with the status its `x-end-with` metadata names."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        return grpc.unary_unary_rpc_method_handler(self._infer) if details.method == INFER else None

    async def _infer(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        code = dict(context.invocation_metadata())["x-end-with"]
        await context.abort(grpc.StatusCode[code], f"the upstream says {code}")
        raise AssertionError("abort raises")


@pytest.fixture
def proxy(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[Any]:
    with proxied(loop_thread, otlp, make_proxy, CONFIG, Failing()) as handle:
        yield handle


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("NOT_FOUND", False),
        ("INVALID_ARGUMENT", False),
        ("RESOURCE_EXHAUSTED", False),
        ("FAILED_PRECONDITION", False),
        ("INTERNAL", True),
        ("UNKNOWN", True),
        ("UNIMPLEMENTED", True),
        ("DATA_LOSS", True),
    ],
)
def test_an_upstreams_status_is_an_error_as_a_server_span_counts_it(
    proxy: Any, otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture, code: str, error: bool
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    n = list(grpc.StatusCode.__members__).index(code)
    trace_id, traceparent = traced(n, BASE)
    with grpc.insecure_channel(proxy.grpc) as channel, pytest.raises(grpc.RpcError) as ended:
        channel.unary_unary(INFER)(
            _request(), timeout=10, metadata=[("traceparent", traceparent), ("x-end-with", code)]
        )
    assert ended.value.code() == grpc.StatusCode[code]  # passed on as it came, either way
    assert ended.value.details() == f"the upstream says {code}"
    span, line = recorded(otlp, caplog, trace_id)
    assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode[code].value[0] == line.status
    if error:
        assert span.attributes["error.type"] == code and span.status_code == STATUS_ERROR
        assert line.code == code
    else:
        assert "error.type" not in span.attributes and span.status_code != STATUS_ERROR, span.attributes
        assert line.code == ""
    errors = [
        row
        for row in httpx.get(f"{proxy.url}/metrics", timeout=10).text.splitlines()
        if row.startswith("lineage_proxy_errors_total{") and f'type="{code}"' in row
    ]
    assert bool(errors) == error, errors
