"""JSON tensor data holding NaN and infinities, as tritonclient writes it (`set_data_from_numpy(..., binary_data=False)`
of an FP32 array with missing values: `"data":[NaN,Infinity,1.0]`) and as Triton reads it (its JSON parser takes
`NaN` and `Infinity`: rapidjson's kParseNanAndInfFlag). orjson refuses them, so the proxy answered every such
call 400 `invalid_request` ("not valid JSON"): a tabular model's missing values never reached it."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as httpclient
from aiohttp import web

from proxy.errors import InvalidRequest
from proxy.protocols.oip import read_rest_request
from tests.harness import LoopThread, ProxyHandle, proxy_error, serving

CONFIG = """
listen:
  http: 127.0.0.1:0
upstreams:
  - name: triton
    url: ${UPSTREAM}
    protocol: oip
routes:
  - model: fil
    upstream: triton
zones:
  - name: pii
    labels: ["pii:email"]
    allow_purposes: [support]
policy:
  anonymous: allow
  default_purpose: evaluation
detectors: [email]
telemetry:
  exporter: none
lineage:
  store: ${STORE}
"""


def triton_like(seen: list[list[object]]) -> web.Application:
    """Model `fil` (version 1) of a Triton-like server: reads the request's JSON as Triton does, `NaN` and infinities
    taken (Python's `json` takes the ones tritonclient writes), and answers how many of the first input's values
    are missing."""

    async def infer(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        values = body["inputs"][0]["data"]
        seen.append(values)
        missing = sum(1 for value in values if value != value)
        output = {"name": "MISSING", "datatype": "INT32", "shape": [1], "data": [missing]}
        return web.json_response({"model_name": "fil", "model_version": "1", "outputs": [output]})

    async def metadata(request: web.Request) -> web.Response:
        return web.json_response({"name": "fil", "versions": ["1"], "platform": "fil", "inputs": [], "outputs": []})

    async def ready(request: web.Request) -> web.Response:
        return web.Response()

    app = web.Application()
    app.router.add_get("/v2/health/ready", ready)
    app.router.add_get("/v2/models/fil", metadata)
    app.router.add_post("/v2/models/fil/infer", infer)
    return app


def _features(values: list[float]) -> httpclient.InferInput:
    features = httpclient.InferInput("X", [len(values)], "FP32")
    features.set_data_from_numpy(np.array(values, dtype=np.float32), binary_data=False)
    return features


def test_missing_values_written_as_nan_reach_the_model(  # type: ignore[no-untyped-def]
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle]
) -> None:
    seen: list[list[object]] = []
    with serving(loop_thread, triton_like(seen)) as url:
        proxy = make_proxy(CONFIG, UPSTREAM=url)
        client = httpclient.InferenceServerClient(proxy.url.removeprefix("http://"))
        try:
            result = client.infer("fil", [_features([float("nan"), float("inf"), -float("inf"), 1.5])])
            assert result.as_numpy("MISSING").tolist() == [1]
            # read as a request, not passed unread: text beside the NaN is scanned, and the zone refuses it
            body = (b'{"inputs":[{"name":"X","shape":[1],"datatype":"FP32","data":[NaN]},'
                    b'{"name":"NOTE","shape":[1],"datatype":"BYTES","data":["call ana@example.org"]}]}')  # fmt: skip
            refused = httpx.post(f"{proxy.url}/v2/models/fil/infer", content=body, timeout=10)
            assert refused.status_code == 403 and proxy_error(refused)["code"] == "purpose_denied", refused.text
            assert "pii" in proxy_error(refused)["message"]
        finally:
            client.close()
    assert len(seen) == 1 and seen[0][0] != seen[0][0] and seen[0][1:] == [float("inf"), -float("inf"), 1.5]


def test_nan_is_read_as_the_number_it_is_and_json_stays_strict_otherwise() -> None:
    body = b'{"inputs":[{"name":"X","shape":[3],"datatype":"FP32","data":[NaN,Infinity,-Infinity]}]}'
    read = read_rest_request("fil", None, body, None)
    assert read.digest is not None and read.texts == ()
    as_null = read_rest_request("fil", None, body.replace(b"NaN", b"null"), None)
    assert as_null.digest != read.digest  # NaN is not a missing element
    for broken in (
        b'{"inputs":[{"name":"X","shape":[1],"datatype":"FP32","data":[NaN]}],"inputs":[]}',  # a key twice
        b'{"inputs":[{"name":"X","shape":[1],"datatype":"FP32","data":[NaN,]}]}',  # not JSON for all that
        b'{"inputs":[{"name":"X","shape":[1],"datatype":"FP32","data":[nan]}]}',
        b'{"inputs":[{"name":"NaN","shape":[1],"datatype":"BYTES","data":["\\ud800"]}]}',  # refused for the surrogate
        b'{"inputs":[{"name":"X","shape":[1],"datatype":"BYTES","data":["\xff"]}], "x": NaN}',  # not UTF-8
    ):
        with pytest.raises(InvalidRequest):
            read_rest_request("fil", None, broken, None)
    assert orjson.loads(body.replace(b"NaN", b"1").replace(b"-Infinity", b"2").replace(b"Infinity", b"3"))
