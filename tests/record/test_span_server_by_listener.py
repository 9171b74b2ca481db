"""An upstream with both `url` (OIP REST) and `grpc` (OIP gRPC), as one MLServer serves both: a call's span names
the address the call was forwarded to, `server.address`/`server.port` of the REST URL for a call over HTTP and of
the gRPC address for one over gRPC (before, every call's span named the gRPC port, a REST call's too)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from proxy.config import parse
from proxy.record.spans import _server
from tests.harness import ProxyHandle
from tests.servers.otlp_receiver import OtlpReceiver

CONFIG = """
listen: {http: "127.0.0.1:0", grpc: "127.0.0.1:0"}
upstreams:
  - {name: mlserver, url: "${REST}", grpc: "${GRPC}", protocol: oip}
routes:
  - {model: "*", upstream: mlserver}
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: otlp, endpoint: "${OTLP}", protocol: grpc}
lineage: {store: "${STORE}"}
"""

FEATURES = [[5.1, 3.5, 1.4, 0.2]]


@pytest.mark.realserver
def test_each_call_names_the_address_it_was_forwarded_to(
    iris_mlserver: tuple[str, str], otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]
) -> None:
    rest, grpc_address = iris_mlserver
    proxy = make_proxy(CONFIG, REST=rest, GRPC=grpc_address, OTLP=f"http://127.0.0.1:{otlp.port}")
    body = {"inputs": [{"name": "predict", "shape": [1, 4], "datatype": "FP64", "data": FEATURES}]}
    reply = httpx.post(f"{proxy.url}/v2/models/iris/infer", json=body, timeout=10)
    assert reply.status_code == 200, reply.text
    rest_trace = reply.headers["x-trace-id"]
    client = grpcclient.InferenceServerClient(proxy.grpc)
    features = grpcclient.InferInput("predict", [1, 4], "FP64")
    features.set_data_from_numpy(np.array(FEATURES))
    result = client.infer("iris", [features])
    assert result.as_numpy("predict").tolist() == [[0]]
    spans = otlp.wait_for(lambda spans: sum(s.name == "infer iris" for s in spans) == 2)
    by_protocol = {s.attributes["lineage.protocol"]: s for s in spans if s.name == "infer iris"}
    assert by_protocol["oip"].trace_id == rest_trace
    rest_port = int(rest.rsplit(":", 1)[1])
    grpc_port = int(grpc_address.rsplit(":", 1)[1])
    served = {
        protocol: (s.attributes["server.address"], s.attributes["server.port"]) for protocol, s in by_protocol.items()
    }
    assert served == {"oip": ("127.0.0.1", rest_port), "oip-grpc": ("127.0.0.1", grpc_port)}


@pytest.mark.parametrize(
    ("url", "served"),
    [("http://localhost/xyz/q9s3cr@gateway", ("***", 80)), ("http://gw/models/m@default", ("***", 80)),
     ("http://gw/models/m", ("gw", 80)), ("https://api.example.com/users/alice@example.com", ("api.example.com", 443))],
)  # fmt: skip
def test_a_one_label_host_before_what_may_be_a_token_is_not_named(url: str, served: tuple[str, int]) -> None:
    # a token before a path's `@` after a host of one label loads (it cannot be told from `gw/models/m@default`): its
    # first piece is what every client reads as the host, hidden as the config's words hide it (before 2026-12-06 a
    # span named it, `localhost`)
    config = parse(
        f"listen: {{http: 127.0.0.1:0}}\nupstreams: [{{name: m, url: '{url}'}}]\nroutes: [{{model: '*', upstream: m}}]\n"
    )
    assert _server(config.upstreams[0], over_grpc=False) == served
