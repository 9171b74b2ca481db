"""A call's record names its client: the access line's `client` and the span's `client.address`/`client.port` are
the TCP peer of the connection the call came on, over HTTP (the openai SDK) and gRPC (tritonclient), on IPv4 and IPv6
loopback; `logging.client_address: false` leaves them out. Before, neither named the client at all: to an upstream
whose model is handed the header fields (MLServer) no `X-Forwarded-For` is sent, so no log anywhere behind the
proxy named it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import numpy as np
import openai
import pytest
import tritonclient.grpc as grpcclient

from proxy.logs import ACCESS
from tests.harness import ProxyHandle
from tests.servers.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.servers.vllm_like import SERVED

HTTP_CONFIG = """
listen: {http: "HOST:0"}
upstreams: [{name: vllm, url: "${UPSTREAM}"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: otlp, endpoint: "${OTLP}", protocol: grpc}
lineage: {store: "${STORE}"}
logging: {access: true, client_address: SHOWN}
"""

GRPC_CONFIG = """
listen: {http: "127.0.0.1:0", grpc: "HOST:0"}
upstreams: [{name: mlserver, url: "${REST}", grpc: "${GRPC}", protocol: oip}]
routes: [{model: "*", upstream: mlserver}]
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: otlp, endpoint: "${OTLP}", protocol: grpc}
lineage: {store: "${STORE}"}
logging: {access: true, client_address: SHOWN}
"""


class Lines(logging.Handler):
    """The access lines' records, as the access logger emits them (their fields: `extra=`)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def of(self, trace_id: str) -> logging.LogRecord:
        found = [record for record in self.records if getattr(record, "trace_id", None) == trace_id]
        assert len(found) == 1, [vars(record) for record in self.records]
        return found[0]


@pytest.fixture
def access() -> Iterator[Lines]:
    logger = logging.getLogger(ACCESS)
    lines, level = Lines(), logger.level
    logger.setLevel(logging.INFO)  # `logging.access: true`, as `proxy.logs.configure` sets it for `serve`
    logger.addHandler(lines)
    yield lines
    logger.removeHandler(lines)
    logger.setLevel(level)


def config(text: str, host: str, shown: bool) -> str:
    return text.replace("HOST", host).replace("SHOWN", "true" if shown else "false")


def assert_client(line: logging.LogRecord, span: ReceivedSpan, address: str, port: int) -> None:
    client = span.attributes.get("client.address"), span.attributes.get("client.port")
    assert (line.client, client) == (address, (address, port)), (vars(line), span.attributes)  # type: ignore[attr-defined]


def chat(proxy: ProxyHandle) -> str:
    """A chat call by the openai SDK; its trace id."""
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-unused", max_retries=0)
    reply = client.chat.completions.with_raw_response.create(model=SERVED, messages=[{"role": "user", "content": "hi"}])
    assert reply.http_response.status_code == 200
    return reply.headers["x-trace-id"]


@pytest.mark.parametrize(("host", "address"), [("127.0.0.1", "127.0.0.1"), ("[::1]", "::1")])
def test_http_call_names_its_peer(
    vllm: tuple[object, str], otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle], access: Lines,
    host: str, address: str,
) -> None:  # fmt: skip
    _, upstream = vllm
    proxy = make_proxy(config(HTTP_CONFIG, host, True), UPSTREAM=upstream, OTLP=f"http://127.0.0.1:{otlp.port}")
    trace_id = chat(proxy)
    span = otlp.by_trace(trace_id)
    port = span.attributes.get("client.port")
    # the SDK's own socket's port, which it does not say: an ephemeral one, not the proxy's
    assert isinstance(port, int) and 0 < port < 65536 and port != int(proxy.url.rsplit(":", 1)[1]), span.attributes
    assert_client(access.of(trace_id), span, address, port)


def test_http_client_address_off(
    vllm: tuple[object, str], otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle], access: Lines
) -> None:
    _, upstream = vllm
    proxy = make_proxy(config(HTTP_CONFIG, "127.0.0.1", False), UPSTREAM=upstream, OTLP=f"http://127.0.0.1:{otlp.port}")
    trace_id = chat(proxy)
    span = otlp.by_trace(trace_id)
    assert access.of(trace_id).client == ""  # type: ignore[attr-defined]
    assert not {"client.address", "client.port"} & set(span.attributes), span.attributes


def infer(proxy: ProxyHandle) -> None:
    client = grpcclient.InferenceServerClient(proxy.grpc)
    features = grpcclient.InferInput("predict", [1, 4], "FP64")
    features.set_data_from_numpy(np.array([[5.1, 3.5, 1.4, 0.2]]))
    assert client.infer("iris", [features]).as_numpy("predict").tolist() == [[0]]
    client.close()


@pytest.mark.realserver
@pytest.mark.parametrize(("host", "address"), [("127.0.0.1", "127.0.0.1"), ("[::1]", "::1")])
def test_grpc_call_names_its_peer(
    iris_mlserver: tuple[str, str], otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle], access: Lines,
    host: str, address: str,
) -> None:  # fmt: skip
    rest, grpc_address = iris_mlserver
    env = {"REST": rest, "GRPC": grpc_address, "OTLP": f"http://127.0.0.1:{otlp.port}"}
    proxy = make_proxy(config(GRPC_CONFIG, host, True), **env)
    infer(proxy)
    span = next(
        s for s in otlp.wait_for(lambda spans: any(s.name == "infer iris" for s in spans)) if s.name == "infer iris"
    )
    port = span.attributes.get("client.port")
    assert isinstance(port, int) and 0 < port < 65536 and port != int(proxy.grpc.rsplit(":", 1)[1]), span.attributes
    assert_client(access.of(span.trace_id), span, address, port)


@pytest.mark.realserver
def test_grpc_client_address_off(
    iris_mlserver: tuple[str, str], otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle], access: Lines
) -> None:
    rest, grpc_address = iris_mlserver
    env = {"REST": rest, "GRPC": grpc_address, "OTLP": f"http://127.0.0.1:{otlp.port}"}
    proxy = make_proxy(config(GRPC_CONFIG, "127.0.0.1", False), **env)
    infer(proxy)
    span = next(
        s for s in otlp.wait_for(lambda spans: any(s.name == "infer iris" for s in spans)) if s.name == "infer iris"
    )
    assert access.of(span.trace_id).client == ""  # type: ignore[attr-defined]
    assert not {"client.address", "client.port"} & set(span.attributes), span.attributes
