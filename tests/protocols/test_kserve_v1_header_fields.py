"""KServe's model server hands its model the request's header fields with the body (`kserve.Model.predict(payload,
headers)`: every field as the client sent it), as MLServer does an OIP request's (`parameters.headers`). They were read
for OIP calls only, so `x-note: alice@example.com` on a V1 `:predict` reached the real KServe model for a purpose the
zone of that address forbids. They are now read for KServe V1 calls too, as for OIP's (the proxy's own fields, the
credentials and trace ids aside)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.harness import ProxyHandle, proxy_error
from tests.servers.real import kserve_model_server

ADDRESS = "alice@example.com"
# a custom KServe model that answers with the header field `x-note` KServe's model server handed it
ECHO = """
import sys
import kserve


class Echo(kserve.Model):
    def __init__(self, name):
        super().__init__(name)
        self.ready = True

    async def predict(self, payload, headers=None, response_headers=None):
        return {"predictions": [(headers or {}).get("x-note")]}


if __name__ == "__main__":
    kserve.ModelServer(http_port=int(sys.argv[1]), enable_grpc=False, workers=1).start([Echo("echo")])
"""
CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: kserve, url: "${KSERVE}", protocol: kserve}
routes:
  - {model: echo, upstream: kserve}
policy: {anonymous: allow, default_purpose: care}
zones:
  - {name: personal, labels: ["pii:email"], allow_purposes: [care]}
detectors: [email]
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""


@pytest.fixture(scope="module")
def kserve_echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with kserve_model_server(tmp_path_factory.mktemp("kserve-headers"), ECHO, "echo") as url:
        yield url


@pytest.mark.realserver
def test_a_header_field_holding_an_address_is_read_before_the_real_kserve_model(
    kserve_echo: str, make_proxy: Callable[..., ProxyHandle]
) -> None:
    body = json.dumps({"instances": [[1.0]]})
    headers = {"content-type": "application/json", "x-note": ADDRESS}
    direct = httpx.post(f"{kserve_echo}/v1/models/echo:predict", content=body, headers=headers, timeout=60)
    assert direct.json() == {"predictions": [ADDRESS]}  # the real model server hands the model the field
    proxy = make_proxy(CONFIG, wait="probed", KSERVE=kserve_echo)
    url = f"{proxy.url}/v1/models/echo:predict"
    refused = httpx.post(url, content=body, headers={**headers, "x-purpose": "ads"}, timeout=60)
    assert refused.status_code == 403 and proxy_error(refused)["code"] == "purpose_denied", refused.text
    allowed = httpx.post(url, content=body, headers=headers, timeout=60)
    assert allowed.status_code == 200 and allowed.json() == {"predictions": [ADDRESS]}, allowed.text
    assert "pii:email" in allowed.headers["x-data-labels"].split(",")
    plain = httpx.post(url, content=body, headers={**headers, "x-note": "hello", "x-purpose": "ads"}, timeout=60)
    assert plain.status_code == 200 and plain.json() == {"predictions": ["hello"]}, plain.text
