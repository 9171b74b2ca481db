"""The proxy's own errors on OIP v2 REST paths (`/v2`, `/v2/...`) use OIP's error shape, `{"error": "<message>"}`,
the code and type beside it. In the OpenAI shape (`{"error": {"message": ...}}`) tritonclient raised
InferenceServerException holding a dict as its message, and `str()` of it raised TypeError (`"[403] " + dict`):
every refusal reached a Triton client as a crash in its error handling, the reason unreadable. OpenAI paths keep
the OpenAI shape."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import numpy as np
import openai
import pytest
import tritonclient.http as httpclient
from aiohttp import web
from tritonclient.utils import InferenceServerException

from tests.harness import LoopThread, ProxyHandle, serving

CONFIG = """
listen:
  http: 127.0.0.1:0
upstreams:
  - name: triton
    url: ${UPSTREAM}
    protocol: oip
    discovery_interval_s: 3600
routes:
  - model: m
    upstream: triton
    purposes: [assistant]
policy:
  anonymous: allow
limits:
  max_body_bytes: 4096
telemetry:
  exporter: none
lineage:
  store: ${STORE}
"""


def oip_server(reached: list[str]) -> web.Application:
    """An OIP REST server serving model `m` (the paths of requests that reach it go to `reached`)."""

    async def ready(request: web.Request) -> web.Response:
        return web.Response()

    async def metadata(request: web.Request) -> web.Response:
        if request.match_info["model"] != "m":
            return web.json_response({"error": "unknown model"}, status=400)
        return web.json_response({"name": "m", "versions": ["1"], "platform": "python", "inputs": [], "outputs": []})

    async def infer(request: web.Request) -> web.Response:
        reached.append(request.path)
        return web.json_response({"model_name": "m", "model_version": "1",
                                  "outputs": [{"name": "o", "shape": [1], "datatype": "INT64", "data": [0]}]})  # fmt: skip

    app = web.Application()
    app.router.add_get("/v2/health/ready", ready)
    app.router.add_get("/v2/models/{model}", metadata)
    app.router.add_post("/v2/models/{model}/infer", infer)
    return app


def _inputs(size: int = 1) -> list[httpclient.InferInput]:
    tensor = httpclient.InferInput("t", [size], "INT64")
    tensor.set_data_from_numpy(np.zeros(size, dtype=np.int64), binary_data=False)
    return [tensor]


def test_tritonclient_reads_the_proxys_refusals(  # type: ignore[no-untyped-def]
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle]
) -> None:
    reached: list[str] = []
    with serving(loop_thread, oip_server(reached)) as url:
        proxy = make_proxy(CONFIG, UPSTREAM=url)
        client = httpclient.InferenceServerClient(proxy.url.removeprefix("http://"))
        try:
            assert client.infer("m", _inputs(), headers={"x-purpose": "assistant"}).as_numpy("o").tolist() == [0]
            with pytest.raises(InferenceServerException) as denied:
                client.infer("m", _inputs(), headers={"x-purpose": "ads"})
            # str() raised TypeError before: the message was the OpenAI shape's object
            assert str(denied.value).startswith("[403] ") and "purpose 'ads'" in str(denied.value)
            assert denied.value.status() == "403" and isinstance(denied.value.message(), str)
            with pytest.raises(InferenceServerException) as missing:
                client.get_model_metadata("unrouted")
            assert str(missing.value).startswith("[404] ") and "no route" in str(missing.value)
            with pytest.raises(InferenceServerException) as large:  # refused by the listener, before any handler
                client.infer("m", _inputs(2048), headers={"x-purpose": "assistant"})
            assert str(large.value).startswith("[413] ")
        finally:
            client.close()
        assert reached == ["/v2/models/m/infer"]  # nothing refused reached the model

        # the code and type are beside the message, machine-readable
        body = {"inputs": [{"name": "t", "shape": [1], "datatype": "INT64", "data": [0]}]}
        refused = httpx.post(f"{proxy.url}/v2/models/m/infer", json=body, headers={"x-purpose": "ads"}, timeout=10)
        assert refused.status_code == 403
        answer = refused.json()
        assert isinstance(answer["error"], str) and "purpose 'ads'" in answer["error"]
        assert answer["code"] == "purpose_denied" and answer["type"] == "permission_error"

        # an OpenAI path keeps the OpenAI shape, which the openai SDK reads
        sdk = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="none", max_retries=0,
                            default_headers={"x-purpose": "ads"})  # fmt: skip
        with pytest.raises(openai.PermissionDeniedError) as typed:
            sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert typed.value.code == "purpose_denied" and "purpose 'ads'" in typed.value.message
        assert reached == ["/v2/models/m/infer"]
