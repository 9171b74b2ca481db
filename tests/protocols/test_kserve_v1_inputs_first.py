"""KServe's predictors read a V1 body's `inputs` when it has one, else its `instances` (`kserve.utils.utils.
get_predict_input`: `payload["inputs"] if "inputs" in payload else payload["instances"]`). The adapter read `instances`
first: in a body with both, `instances` (a decoy, `[[0]]`) was read as the data and digested, and `inputs`, which the
model runs on, as a parameter is (no base64 read decoded). So an address sent base64-encoded in `inputs`, as
TensorFlow-style `b64` inputs are, reached a model that decodes its inputs for a purpose its zone forbids, and the
record's input digest was not that of the data the model ran on. Both keys are now read as data, the digest that of
the one the predictors read. The real KServe model server, a custom model that decodes what `get_predict_input` hands
it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from proxy.protocols import bytes_digest
from proxy.protocols.kserve import read_request
from tests.harness import ProxyHandle, proxy_error
from tests.servers.real import kserve_model_server

ADDRESS = "alice@example.com"
ENCODED = "YWxpY2VAZXhhbXBsZS5jb20="  # base64 of ADDRESS
# a model that decodes its base64 inputs (as one taking TensorFlow's `{"b64": ...}` does), writing down what it got
DECODING = """
import base64, json, sys
import kserve
from kserve.utils.utils import get_predict_input


class Decoding(kserve.Model):
    def __init__(self, name):
        super().__init__(name)
        self.ready = True

    async def predict(self, payload, headers=None, response_headers=None):
        got = [base64.b64decode(each).decode() for each in get_predict_input(payload)]
        with open("seen.jsonl", "a") as log:
            log.write(json.dumps(got) + "\\n")
        return {"predictions": [len(each) for each in got]}


if __name__ == "__main__":
    kserve.ModelServer(http_port=int(sys.argv[1]), enable_grpc=False, workers=1).start([Decoding("decoding")])
"""
CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: kserve, url: "${KSERVE}", protocol: kserve}
routes:
  - {model: decoding, upstream: kserve}
policy: {anonymous: allow, default_purpose: care}
zones:
  - {name: personal, labels: ["pii:email"], allow_purposes: [care]}
detectors: [email]
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""


def test_both_data_keys_are_read_as_data_the_digest_the_predictors_one() -> None:
    body = {"instances": [[0]], "inputs": [ENCODED]}
    request = read_request("m", "predict", orjson.dumps(body), "application/json")
    assert ADDRESS in request.texts, request  # `inputs`' base64 read decoded, as `instances`' is
    assert request.digest == bytes_digest(orjson.dumps(body["inputs"]))  # what the model runs on
    alone = read_request("m", "predict", orjson.dumps({"instances": [ENCODED]}), None)
    assert ADDRESS in alone.texts and alone.digest == bytes_digest(orjson.dumps([ENCODED]))


@pytest.fixture(scope="module")
def kserve_decoding(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    workdir = tmp_path_factory.mktemp("kserve-decoding")
    with kserve_model_server(workdir, DECODING, "decoding") as url:
        yield url, workdir / "seen.jsonl"


@pytest.mark.realserver
def test_inputs_beside_a_decoy_instances_are_decided_on(
    kserve_decoding: tuple[str, Path], make_proxy: Callable[..., ProxyHandle]
) -> None:
    url, log = kserve_decoding
    body = {"instances": [[0]], "inputs": [ENCODED]}
    direct = httpx.post(f"{url}/v1/models/decoding:predict", json=body, timeout=60)
    assert direct.status_code == 200, direct.text
    assert json.loads(log.read_text().splitlines()[-1]) == [ADDRESS]  # the model ran on `inputs`, decoded
    before = len(log.read_text().splitlines())
    proxy = make_proxy(CONFIG, wait="probed", KSERVE=url)
    for sent in ({"inputs": [ENCODED]}, body):  # alone, and beside a decoy `instances`
        refused = httpx.post(f"{proxy.url}/v1/models/decoding:predict", json=sent, headers={"x-purpose": "ads"},
                             timeout=60)  # fmt: skip
        assert refused.status_code == 403, (sent, refused.text)
        assert proxy_error(refused)["code"] == "purpose_denied", refused.text
    assert len(log.read_text().splitlines()) == before  # the address never reached the model for `ads`


# a structured CloudEvent (KServe's `is_structured_cloudevent`: these keys all there): KServe hands the model its `data`
EVENT = {"specversion": "1.0", "id": "1", "source": "s", "type": "t", "time": "2026-12-03T00:00:00Z"}


def test_a_structured_cloudevents_data_is_read_as_the_body() -> None:
    event = {**EVENT, "data": {"inputs": [ENCODED]}}
    request = read_request("m", "predict", orjson.dumps(event), "application/cloudevents+json")
    assert ADDRESS in request.texts, request
    assert request.digest == bytes_digest(orjson.dumps([ENCODED]))
    listed = read_request("m", "predict", orjson.dumps({**EVENT, "data": [ENCODED]}), None)
    assert ADDRESS in listed.texts and listed.digest == bytes_digest(orjson.dumps([ENCODED]))


@pytest.mark.realserver
def test_a_structured_cloudevents_data_is_decided_on(
    kserve_decoding: tuple[str, Path], make_proxy: Callable[..., ProxyHandle]
) -> None:
    url, log = kserve_decoding
    event = {**EVENT, "data": {"inputs": [ENCODED]}}
    direct = httpx.post(f"{url}/v1/models/decoding:predict", json=event, timeout=60)
    assert direct.status_code == 200, direct.text
    assert json.loads(log.read_text().splitlines()[-1]) == [ADDRESS]  # the model ran on the event's data, decoded
    before = len(log.read_text().splitlines())
    proxy = make_proxy(CONFIG, wait="probed", KSERVE=url)
    refused = httpx.post(f"{proxy.url}/v1/models/decoding:predict", json=event, headers={"x-purpose": "ads"},
                         timeout=60)  # fmt: skip
    assert refused.status_code == 403 and proxy_error(refused)["code"] == "purpose_denied", refused.text
    assert len(log.read_text().splitlines()) == before
