"""OIP REST discovery while a model is not ready. MLServer (and Triton, with its default strict readiness) answer
`/v2/health/ready` 400 while any model loads or failed to load, and Triton answers an unready model's metadata 400
(503 in newer versions). Discovery asked `/v2/health/ready` first and took the 400 as the upstream down: no model of
it was named, /readyz said 503, and with `lineage.on_unapproved: block` every call to every model of the server was
refused `checkpoint_unknown` for as long as one model loaded. Now the ready models are named and a model kept (a
route's, or one listed before) that is not ready is asked about again soon, backing off to `discovery_interval_s`.
Newer Triton answers a model not loaded yet 404 (`has no available versions`): a model a route names is asked about
again the same way (it was filed as not listed, asked again only at `discovery_interval_s`); a name only a `"*"`
route's calls asked for is not (`tests/test_checkpoints.py`)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from tests.harness import LoopThread, ProxyHandle, proxy_error, serving
from tests.servers.real import mlserver_serving

CONFIG = """
listen:
  http: 127.0.0.1:0
upstreams:
  - name: oip
    url: ${UPSTREAM}
    protocol: oip
    discovery_interval_s: 600  # (no round of its own meanwhile: only the retries of models not ready)
routes:
  - {model: good, upstream: oip}
  - {model: slow, upstream: oip}
policy:
  anonymous: allow
  default_purpose: evaluation
telemetry:
  exporter: none
lineage:
  store: ${STORE}
  baseline: ${BASELINE}
  on_unapproved: block
"""
BODY = {"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": ["hello"]}]}


class Triton:
    """Triton's answers while model `slow` loads: `/v2/health/ready` 400 (strict readiness), `slow`'s metadata 400
    with its error (`unready`: 404 as newer Triton answers), `good` ready. `slow_ready` ends the load."""

    def __init__(self, unready: int = 400) -> None:
        self.unready = unready
        self.slow_ready = False
        self.asked: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v2/health/ready", self.ready)
        app.router.add_get("/v2/models/{name}", self.metadata)
        app.router.add_post("/v2/models/{name}/infer", self.infer)
        return app

    async def ready(self, request: web.Request) -> web.Response:
        return web.Response(status=200 if self.slow_ready else 400)

    async def metadata(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.asked.append(name)
        if name == "good" or (name == "slow" and self.slow_ready):
            return web.json_response({"name": name, "versions": ["1"], "platform": "python"})
        if name == "slow":
            return web.json_response({"error": "Request for unknown model: 'slow' has no available versions"},
                                     status=self.unready)  # fmt: skip
        return web.json_response({"error": f"Request for unknown model: '{name}' is not found"}, status=404)

    async def infer(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        return web.json_response({"model_name": name, "model_version": "1",
                                  "outputs": [{"name": "o", "shape": [1], "datatype": "BYTES", "data": ["x"]}]})  # fmt: skip


def _approve(tmp_path: Path) -> str:
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text("version: 1\nflows:\n  - {caller: '*', purpose: '*', labels: ['*'], "
                        "checkpoints: ['good:1', 'slow:1', good, slow]}\n")  # fmt: skip
    return str(baseline)


def _named(loop_thread: LoopThread, proxy: ProxyHandle, model: str) -> bool:
    upstream = proxy.config.upstreams[0]

    async def resolve() -> bool:  # on the proxy's loop, where the book lives
        return proxy.process.book.resolve(upstream, model, learn=False) is not None

    return loop_thread.run(resolve())


@pytest.mark.parametrize(
    ("unready", "said"),
    [(400, "answered that model 'slow' is not ready"), (404, "answered that it does not serve model 'slow'")],
    ids=["400", "404-newer-triton"],
)
def test_ready_models_are_named_while_another_loads_and_it_is_asked_again(  # type: ignore[no-untyped-def]
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle], tmp_path: Path, unready: int, said: str
) -> None:
    triton = Triton(unready)
    with serving(loop_thread, triton.app()) as url:
        proxy = make_proxy(CONFIG, wait="probed", UPSTREAM=url, BASELINE=_approve(tmp_path))
        assert httpx.get(f"{proxy.url}/readyz", timeout=10).status_code == 200  # it answered: it is up
        good = httpx.post(f"{proxy.url}/v2/models/good/infer", json=BODY, timeout=10)
        assert good.status_code == 200 and good.headers["x-lineage-checkpoint"] == "good:1", good.text
        slow = httpx.post(f"{proxy.url}/v2/models/slow/infer", json=BODY, timeout=10)
        assert slow.status_code == 503 and proxy_error(slow)["code"] == "checkpoint_unknown", slow.text
        assert said in proxy_error(slow)["message"], slow.text

        triton.slow_ready = True  # loaded: the next retry names it, without a call asking (the interval is 600 s)
        deadline = time.monotonic() + 5
        while not _named(loop_thread, proxy, "slow"):
            assert time.monotonic() < deadline, f"slow not named within 5 s: asked {triton.asked}"
            loop_thread.run(asyncio.sleep(0.02))
        slow = httpx.post(f"{proxy.url}/v2/models/slow/infer", json=BODY, timeout=10)
        assert slow.status_code == 200 and slow.headers["x-lineage-checkpoint"] == "slow:1", slow.text
        asked = len(triton.asked)
        assert asked <= 2 * 8  # a round asks both routes' names; the retries back off (1, 2, 4 ... s)


# MLServer: `slow` loads until the file `gate` beside it exists (the test's signal that it may finish)
SLOW = """
import asyncio
from pathlib import Path

from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput


class Model(MLModel):
    async def load(self) -> bool:
        gate = Path(__file__).with_name("gate")
        while self.settings.parameters.extra.get("slow") and not gate.exists():
            await asyncio.sleep(0.05)  # MLServer's own load, not the test's synchronisation
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        return InferenceResponse(model_name=self.name, outputs=[ResponseOutput(name="o", shape=[1], datatype="BYTES",
                                                                               data=["x"])])
"""


@pytest.fixture
def loading_mlserver(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """MLServer serving `good`, and `slow` loading until `gate` exists: its URL, and the gate's path."""
    root = tmp_path / "models"
    for name, slow in (("good", False), ("slow", True)):
        (root / name).mkdir(parents=True)
        (root / name / "model.py").write_text(SLOW)
        settings = {"name": name, "implementation": "model.Model", "parameters": {"extra": {"slow": slow}}}
        (root / name / "model-settings.json").write_text(json.dumps(settings))
    with mlserver_serving(root, "/v2/models/good/ready") as (http, grpc_address):
        yield http, root / "slow" / "gate"


@pytest.mark.realserver
def test_mlserver_loading_a_model_keeps_the_others_named(  # type: ignore[no-untyped-def]
    loading_mlserver, loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle], tmp_path: Path
) -> None:
    url, gate = loading_mlserver
    assert httpx.get(f"{url}/v2/health/ready", timeout=10).status_code == 400  # what MLServer says while one loads
    proxy = make_proxy(CONFIG, wait="probed", UPSTREAM=url, BASELINE=_approve(tmp_path))
    assert httpx.get(f"{proxy.url}/readyz", timeout=10).status_code == 200
    good = httpx.post(f"{proxy.url}/v2/models/good/infer", json=BODY, timeout=30)
    assert good.status_code == 200 and good.headers["x-lineage-checkpoint"] == "good", good.text
    gate.touch()
    deadline = time.monotonic() + 60
    while httpx.get(f"{url}/v2/models/slow/ready", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "MLServer did not finish loading slow"
        time.sleep(0.05)  # MLServer offers no other signal
    slow = httpx.post(f"{proxy.url}/v2/models/slow/infer", json=BODY, timeout=30)
    assert slow.status_code == 200 and slow.headers["x-lineage-checkpoint"] == "slow", slow.text
