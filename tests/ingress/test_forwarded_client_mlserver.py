"""MLServer (uvicorn) trusts `X-Forwarded-For` from 127.0.0.1 by default (`--forwarded-allow-ips`), and the proxy
connects to it from there: a caller's `X-Forwarded-For` was the client address in its access log. Now the proxy appends
the real peer's address, the rightmost entry uvicorn does not trust, so its log names the real client; that is, to an
upstream whose model is not handed the fields (`headers_to_model: false`). One whose model is (MLServer's is, the
default) is sent no `X-Forwarded-For` since 2026-12-04, the caller's neither, as the model would get the client's
address as data: its log names the proxy, never the address a caller wrote."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers.real import mlserver_serving

ECHO = """
from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput


class Echo(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        return InferenceResponse(model_name=self.name, outputs=[ResponseOutput(name="v", shape=[1], datatype="BYTES",
                                                                               data=["ok"])])
"""
CONFIG = """
listen:
  http: 127.0.0.1:0
upstreams:
  - name: oip
    url: ${OIP}
    protocol: oip
    headers_to_model: ${HANDED}
routes:
  - model: "*"
    upstream: oip
policy:
  anonymous: allow
  default_purpose: evaluation
telemetry:
  exporter: none
lineage:
  store: ${STORE}
"""
BODY = b'{"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": ["hello"]}]}'


@pytest.fixture(scope="module")
def mlserver_logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """MLServer serving `echo`, its access log on (`debug`); its URL and its log."""
    root = tmp_path_factory.mktemp("mlserver") / "models"
    (root / "echo").mkdir(parents=True)
    (root / "echo" / "echo.py").write_text(ECHO)
    (root / "echo" / "model-settings.json").write_text(json.dumps({"name": "echo", "implementation": "echo.Echo"}))
    with mlserver_serving(root, "/v2/models/echo/ready", debug=True) as (http, grpc_address):
        yield http, root.parent / "mlserver.log"


def infer_from(port: int, source: str, extra: bytes) -> bytes:
    """One inference call to the proxy from `source`; the reply's status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0)) as sock:
        sock.sendall(b"POST /v2/models/echo/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%s"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (extra, len(BODY), BODY))  # fmt: skip
        got = b""
        while piece := sock.recv(65536):
            got += piece
    return got.split(b"\r\n", 1)[0]


@pytest.mark.realserver
@pytest.mark.parametrize("handed", [False, True])
def test_mlservers_access_log_names_the_real_client(mlserver_logged: Any, make_proxy: Any, handed: bool) -> None:
    url, log_path = mlserver_logged
    proxy = make_proxy(CONFIG, OIP=url, HANDED=str(handed).lower())
    seen = len(log_path.read_text().splitlines())  # (the module's server: the other case's line may be there)
    status = infer_from(
        proxy.bound.http.port, "127.0.0.2", b"X-Forwarded-For: 203.0.113.9\r\nX-Real-IP: 203.0.113.9\r\n"
    )
    assert status.startswith(b"HTTP/1.1 200 "), status
    new = log_path.read_text().splitlines()[seen:]
    lines = [line for line in new if '"POST /v2/models/echo/infer' in line]
    assert len(lines) == 1, lines  # uvicorn writes the access line before the reply's last byte goes out
    client = "127.0.0.1:" if handed else "127.0.0.2:0 - "  # the proxy's own connection, or the client it told
    assert client in lines[0] and "203.0.113.9" not in lines[0] and (not handed or "127.0.0.2" not in lines[0]), lines[
        0
    ]
