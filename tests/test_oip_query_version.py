"""A version named in the query string: MLServer reads `?model_version=N` on `/v2/models/{name}/infer` as the
version to run (FastAPI takes a handler's argument the path does not hold from the query), so the version the
proxy checked (the path's, or the latest) has to be the one served."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from tests.harness import proxy_error, serving
from tests.servers.real import mlserver_serving

# Answers with the version that ran
ECHO = """
from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput


class Echo(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        return InferenceResponse(model_name=self.name, model_version=self.version,
                                 outputs=[ResponseOutput(name="v", shape=[1], datatype="BYTES", data=[self.version])])
"""


@pytest.fixture(scope="module")
def versioned_mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """MLServer serving versions 1 and 2 of `echo`."""
    root = tmp_path_factory.mktemp("mlserver") / "models"
    for version in ("1", "2"):
        (root / f"echo-{version}").mkdir(parents=True)
        (root / f"echo-{version}" / "echo.py").write_text(ECHO)
        settings = {"name": "echo", "implementation": "echo.Echo", "parameters": {"version": version}}
        (root / f"echo-{version}" / "model-settings.json").write_text(json.dumps(settings))
    with mlserver_serving(root, "/v2/models/echo/versions/1/ready", "/v2/models/echo/versions/2/ready") as (
        http,
        grpc_address,
    ):
        yield http


PURE_CONFIG = """
listen:
  http: 127.0.0.1:0
upstreams:
  - name: oip
    url: ${OIP}
    protocol: oip
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
# the same, with a baseline that blocks the flows it does not approve
CONFIG = PURE_CONFIG + "  baseline: ${BASELINE}\n  on_unapproved: block\n"

BODY = {"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": ["hello"]}]}


@pytest.mark.realserver
def test_a_version_mlserver_reads_from_the_query_is_not_served_unchecked_there(  # type: ignore[no-untyped-def]
    versioned_mlserver, make_proxy, tmp_path: Path
) -> None:
    """The baseline approves `echo`, what MLServer serves for a path of no version (its default, version 2, listed
    as `"versions": []`), and not version 1. `?model_version=1` on that path ran version 1 at MLServer, checked
    and recorded as `echo`."""
    direct = httpx.post(f"{versioned_mlserver}/v2/models/echo/infer?model_version=1", json=BODY, timeout=30)
    assert direct.status_code == 200 and direct.json()["model_version"] == "1", direct.text  # what MLServer does
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text("version: 1\nflows:\n  - {caller: '*', purpose: '*', labels: ['*'], checkpoints: [echo]}\n")
    proxy = make_proxy(CONFIG, OIP=versioned_mlserver, BASELINE=str(baseline))
    deadline = time.monotonic() + 10
    while True:  # polling: the metadata is being asked about `echo`
        approved = httpx.post(f"{proxy.url}/v2/models/echo/infer", json=BODY, timeout=30)
        if approved.status_code != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert approved.status_code == 200 and approved.json()["model_version"] == "2", approved.text
    assert httpx.post(f"{proxy.url}/v2/models/echo/versions/1/infer", json=BODY, timeout=30).status_code == 403
    for target in ("/v2/models/echo/infer?model_version=1", "/v2/models/echo/infer?x=1&model%5Fversion=1",
                   "/v2/models/echo/infer?model_version=2&model_version=1"):  # fmt: skip
        reply = httpx.post(f"{proxy.url}{target}", json=BODY, timeout=30)
        served = reply.json().get("model_version") if reply.status_code == 200 else None
        assert reply.status_code in (400, 403), (target, served, reply.headers.get("x-lineage-checkpoint"))


@pytest.mark.parametrize(
    "query", ["model_version=1", "x=1&model%5Fversion=1", "model_version=", "a=b&model_version=2&model_version=1"]
)
def test_a_query_naming_model_version_is_refused_before_it_is_sent(  # type: ignore[no-untyped-def]
    loop_thread, make_proxy, query: str
) -> None:
    """MLServer (FastAPI) reads `model_version` from the query of `/v2/models/{name}/infer` (and its other
    model paths): the call would run a version the proxy never checked. Refused, 400; the upstream never sees
    it. A query naming anything else is passed on as it came."""
    reached: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        reached.append(request.raw_path)
        return web.json_response({"model_name": "m", "outputs": []})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    with serving(loop_thread, app) as url:
        proxy = make_proxy(PURE_CONFIG, wait="started", OIP=url)
        for path in ("/v2/models/m/infer", "/v2/models/m/versions/1/infer", "/v2/models/m/generate"):
            reply = httpx.post(f"{proxy.url}{path}?{query}", json=BODY, timeout=30)
            assert reply.status_code == 400 and proxy_error(reply)["code"] == "invalid_request", (path, reply.text)
        assert not [target for target in reached if "infer" in target or "generate" in target]
        passed = httpx.post(f"{proxy.url}/v2/models/m/infer?model_versions=1", json=BODY, timeout=30)
        assert passed.status_code == 200 and "/v2/models/m/infer?model_versions=1" in reached, passed.text
