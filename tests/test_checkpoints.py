"""The checkpoint book at the boundary. With `lineage.on_unapproved: block`, a call whose upstream's
metadata could name the checkpoint but has not yet (right after start, after a reload adding the upstream,
a model not asked about yet or loaded since) is refused as retryable `checkpoint_unknown`, never let
through to weights nobody checked (an unknown checkpoint fitted any approved one); `warn` lets it through
as before. And the proxy opens its listeners once every such upstream's metadata was asked once."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import openai
import pytest
from aiohttp import web

from proxy import checkpoints, server
from proxy.config import parse
from proxy.errors import DENIAL_ERRORS
from proxy.flow import Call, TraceContext
from proxy.policy import Policy, Unknown, decide
from proxy.protocols import Fetch
from proxy.server import ProxyProcess
from tests.conftest import sha
from tests.harness import LoopThread, proxy_error, serving
from tests.protocols.test_oip_grpc import simple_infer
from tests.servers.vllm_like import ROOT, SERVED, VllmLike

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: vllm
    url: ${UPSTREAM}
    protocol: PROTOCOL
    discovery_interval_s: 600
EXTRA_UPSTREAMS
routes:
EXTRA_ROUTES  - model: "*"
    upstream: vllm
callers:
  - name: app
    api_key_sha256: KEY
    default_purpose: assistant
lineage:
  store: ${STORE}
  baseline: ${BASELINE}
  on_unapproved: MODE
""".replace("KEY", sha("key-app"))

APPROVED = (
    'version: 1\nflows:\n  - {caller: app, purpose: assistant, checkpoints: ["meta-llama/*", "/adapters/*", "org/*"]}\n'
)


def config(mode: str = "block", protocol: str = "openai", upstreams: str = "", routes: str = "") -> str:
    return (CONFIG.replace("MODE", mode).replace("PROTOCOL", protocol).replace("EXTRA_UPSTREAMS\n", upstreams)
            .replace("EXTRA_ROUTES", routes))  # fmt: skip


@pytest.fixture
def baseline(tmp_path: Path) -> str:
    path = tmp_path / "baseline.yaml"
    path.write_text(APPROVED)
    return str(path)


class HeldMetadata(VllmLike):
    """A vLLM-like upstream whose /v1/models answers only once the test lets it (`let_go`); `asked` is
    set when the first metadata request has arrived."""

    def __init__(self, **fields: Any) -> None:
        super().__init__(**fields)
        self.let_go: asyncio.Event | None = None
        self.asked = threading.Event()

    def app(self) -> web.Application:
        self.let_go = asyncio.Event()
        return super().app()

    async def list_models(self, request: web.Request) -> web.Response:
        self.asked.set()
        assert self.let_go is not None
        await self.let_go.wait()
        return await super().list_models(request)


@pytest.fixture
def held(loop_thread: LoopThread) -> Iterator[tuple[HeldMetadata, str]]:
    upstream = HeldMetadata()
    with serving(loop_thread, upstream.app()) as url:
        try:
            yield upstream, url
        finally:
            release(loop_thread, upstream)


def release(loop_thread: LoopThread, upstream: HeldMetadata) -> None:
    assert upstream.let_go is not None
    loop_thread.loop.call_soon_threadsafe(upstream.let_go.set)


@pytest.fixture
def quick_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Starting gives up on a metadata request after 0.2 s, not 10 s (the request itself stays held)."""
    monkeypatch.setattr(checkpoints, "METADATA_TIMEOUT_S", 0.2)
    monkeypatch.setattr(server, "LONG_WAIT_S", 0.05)


def chat(url: str, model: str = SERVED) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", headers={"authorization": "Bearer key-app"}, timeout=10,
                      json={"model": model, "messages": [{"role": "user", "content": "hello"}]})  # fmt: skip


def until(loop_thread: LoopThread, predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 5
    while not predicate():
        assert time.monotonic() < deadline, f"not within 5 s (discovery_interval_s is 600): {what}"
        loop_thread.run(asyncio.sleep(0.01))


def refused_as_unknown(reply: httpx.Response) -> str:
    """The refusal's message, once it is checked to be a retryable checkpoint_unknown denial."""
    assert reply.status_code == 503, reply.text
    error = proxy_error(reply)
    assert error["code"] == "checkpoint_unknown" and error["type"] == "server_error", error
    assert reply.headers["x-lineage-decision"] == "deny" and reply.headers["retry-after"] == "1"
    assert "is not known yet, so the flow cannot be checked against the approved baseline" in error["message"]
    return str(error["message"])


# -- the boundary


def test_block_refuses_a_call_before_the_metadata_answers_then_admits_it(  # type: ignore[no-untyped-def]
    held, make_proxy, loop_thread, baseline, quick_start, caplog
) -> None:
    """The first call after start, before vLLM's /v1/models answered: it went through unchecked (an unknown
    checkpoint fitted any approved one). Now it is refused, retryably, and never reaches the model; once
    the metadata answers, the same call is checked and admitted."""
    upstream, url = held
    caplog.set_level(logging.INFO, logger="lineage_proxy")
    proxy = make_proxy(config(), wait="none", UPSTREAM=url, BASELINE=baseline)
    assert "waiting up to 0.15s more for the metadata of upstream vllm before serving" in caplog.text
    assert ("serving before upstream vllm answered its metadata (0.2s): its calls' checkpoints are not known until "
            "it does (lineage.on_unapproved: block refuses them meanwhile, 503 checkpoint_unknown)") in caplog.text  # fmt: skip

    message = refused_as_unknown(chat(proxy.url))
    assert "upstream 'vllm' has not answered its metadata yet; retry shortly" in message
    assert refused_as_unknown(chat(proxy.url))
    assert not upstream.data_requests()  # neither call reached the model
    metrics = httpx.get(f"{proxy.url}/metrics").text
    assert 'lineage_proxy_errors_total{type="checkpoint_unknown"} 2' in metrics
    assert 'lineage_proxy_decisions_total{decision="deny"} 2' in metrics
    assert "lineage_proxy_unapproved_flows_total 0" in metrics  # not judged unapproved: not judged at all

    release(loop_thread, upstream)
    until(loop_thread, lambda: proxy.process.book.reachable["vllm"], "the metadata answered")
    admitted = chat(proxy.url)
    assert admitted.status_code == 200, admitted.text
    assert admitted.headers["x-lineage-checkpoint"] == ROOT
    assert len(upstream.data_requests()) == 1


def test_warn_lets_a_call_through_before_the_metadata_answers(  # type: ignore[no-untyped-def]
    held, make_proxy, baseline, quick_start, caplog
) -> None:
    upstream, url = held
    caplog.set_level(logging.WARNING, logger="lineage_proxy")
    proxy = make_proxy(config(mode="warn"), wait="none", UPSTREAM=url, BASELINE=baseline)
    assert "serving before upstream vllm answered its metadata (0.2s): its calls' checkpoints are not known until " \
           "it does\n" in caplog.text  # fmt: skip
    reply = chat(proxy.url)
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-lineage-checkpoint"] == SERVED  # from the reply: the metadata has not said
    assert len(upstream.data_requests()) == 1
    assert "lineage_proxy_unapproved_flows_total 0" in httpx.get(f"{proxy.url}/metrics").text


def test_a_reload_adding_an_upstream_refuses_its_calls_until_its_metadata_answers(  # type: ignore[no-untyped-def]
    vllm, held, make_proxy, loop_thread, baseline, tmp_path
) -> None:
    """A reload starts the added upstream's discovery in the background: its calls went through unchecked
    meanwhile. The upstream that was there keeps what its metadata said (CheckpointBook.inherit)."""
    first, first_url = vllm
    added, added_url = held
    added.models = [{"id": "other", "object": "model", "owned_by": "vllm", "root": "org/other@1", "parent": None}]
    proxy = make_proxy(config(), UPSTREAM=first_url, BASELINE=baseline)
    more = config(upstreams=f"  - {{name: added, url: '{added_url}', discovery_interval_s: 600}}\n",
                  routes="  - {model: other, upstream: added}\n")  # fmt: skip
    path = tmp_path / "more.yaml"
    path.write_text(more.replace("${UPSTREAM}", first_url).replace("${STORE}", str(tmp_path / "lineage.db"))
                    .replace("${BASELINE}", baseline))  # fmt: skip
    assert loop_thread.run(_reload(proxy.process, str(path)))

    message = refused_as_unknown(chat(proxy.url, "other"))
    assert "upstream 'added' has not answered its metadata yet" in message
    assert not added.data_requests()
    assert chat(proxy.url).status_code == 200  # the other upstream's checkpoint is still known
    assert len(first.data_requests()) == 1

    release(loop_thread, added)
    until(loop_thread, lambda: proxy.process.book.reachable["added"], "the added upstream's metadata answered")
    admitted = chat(proxy.url, "other")
    assert admitted.status_code == 200 and admitted.headers["x-lineage-checkpoint"] == "org/other@1", admitted.text
    assert len(added.data_requests()) == 1


async def _reload(process: ProxyProcess, path: str) -> bool:
    return process.reload(path)


def test_a_model_the_metadata_does_not_list_is_refused_until_it_does(vllm, make_proxy, loop_thread, baseline) -> None:  # type: ignore[no-untyped-def]
    """A model the upstream's metadata did not list when it was read (a LoRA adapter loaded since; vLLM
    answers no other name) has no known checkpoint: refused, and the metadata asked again, so one loaded
    since is admitted within a second, not a `discovery_interval_s`."""
    upstream, url = vllm
    proxy = make_proxy(config(), UPSTREAM=url, BASELINE=baseline)
    refused_as_unknown(chat(proxy.url, "late-lora"))
    upstream.models.append({"id": "late-lora", "object": "model", "owned_by": "vllm", "root": "/adapters/late-lora",
                            "parent": SERVED})  # fmt: skip
    until(loop_thread, lambda: chat(proxy.url, "late-lora").status_code == 200, "the adapter admitted")
    assert [r.path for r in upstream.data_requests()] == ["/v1/chat/completions"]  # the admitted call alone


def test_a_name_asked_about_and_not_listed_is_not_found(vllm, make_proxy, loop_thread, baseline) -> None:  # type: ignore[no-untyped-def]
    """A name the upstream's model list did not hold when asked about it since (a typo) is refused 404
    `model_not_found`, as vLLM answers a name it does not serve, never forwarded: until 2026-12-05 it was 503
    `checkpoint_unknown`, "retry shortly", for ever, which the openai SDK retries. It is asked about again at most
    once a second, so a name loaded on the server since (a LoRA adapter) is admitted."""
    upstream, url = vllm
    proxy = make_proxy(config(), UPSTREAM=url, BASELINE=baseline)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="key-app", max_retries=0)
    assert "metadata is being asked about model 'lama-3.1-8b'" in refused_as_unknown(chat(proxy.url, "lama-3.1-8b"))
    until(loop_thread, lambda: chat(proxy.url, "lama-3.1-8b").status_code != 503, "the metadata asked about it")
    for _ in range(2):  # (a retry gets the same answer)
        with pytest.raises(openai.NotFoundError) as missing:
            client.chat.completions.create(model="lama-3.1-8b", messages=[{"role": "user", "content": "hello"}])
        error = missing.value.body
        assert isinstance(error, dict) and error["code"] == "model_not_found", error
        assert error["message"] == (
            "model 'lama-3.1-8b' is not in upstream 'vllm''s model list (it was asked about, and is asked again at "
            "most once a second), so the checkpoint serving it cannot be checked against the approved baseline: call "
            "the model by a name the metadata lists; or approve the flow for any checkpoint (a baseline entry without "
            "checkpoints:); or, for an upstream serving one model under any name, pin upstreams[].checkpoint"
        )
        assert missing.value.response.headers["x-lineage-decision"] == "deny"
        assert "retry-after" not in missing.value.response.headers
    assert upstream.data_requests() == []  # never forwarded
    upstream.models.append({"id": "lama-3.1-8b", "object": "model", "owned_by": "vllm", "root": "/adapters/lama",
                            "parent": SERVED})  # fmt: skip
    until(loop_thread, lambda: chat(proxy.url, "lama-3.1-8b").status_code == 200, "the name admitted once listed")


def test_an_upstream_that_names_no_checkpoint_keeps_the_rule_unknown_fits_any(vllm, make_proxy, baseline) -> None:  # type: ignore[no-untyped-def]
    """A passthrough upstream reads no metadata: nothing before the reply can name its checkpoint, so
    `block` lets the call through as before (a pin names it)."""
    upstream, url = vllm
    proxy = make_proxy(config(protocol="passthrough"), UPSTREAM=url, BASELINE=baseline)
    reply = chat(proxy.url)
    assert reply.status_code == 200 and reply.headers["x-lineage-checkpoint"] == SERVED, reply.text
    assert len(upstream.data_requests()) == 1


OIP_CONFIG = """
listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}
upstreams: [{name: triton, grpc: "${OIP_GRPC}", protocol: oip, discovery_interval_s: 600}]
routes: [{model: "*", upstream: triton}]
policy: {anonymous: allow, default_purpose: evaluation}
telemetry: {exporter: none}
lineage: {store: "${STORE}", baseline: "${BASELINE}", on_unapproved: block}
"""


def test_an_oip_model_not_asked_about_yet_is_refused_until_it_is(  # type: ignore[no-untyped-def]
    faithful, make_proxy, loop_thread, tmp_path
) -> None:
    """OIP metadata is read per model (those routes name, then those calls ask for): behind the '*' route,
    `simple` was not asked about before its first call, which then ran whatever `latest` was, unchecked.
    A version the call names is checked as `model:version` whatever the metadata says, as before."""
    address, log = faithful
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text(
        "version: 1\nflows:\n  - {caller: '*', purpose: '*', labels: ['*'], checkpoints: ['simple:2']}\n"
    )
    proxy = make_proxy(OIP_CONFIG, OIP_GRPC=address, BASELINE=str(baseline))

    def infer(version: str = "") -> tuple[object, str]:
        return simple_infer(proxy.grpc, version)

    code, details = infer()
    assert code == grpc.StatusCode.UNAVAILABLE and "metadata is being asked about model 'simple'" in details
    assert log.read_text() == ""  # it never reached the model
    assert infer("2")[0] == grpc.StatusCode.OK  # simple:2, named by the call: checked without the metadata
    assert infer("1")[0] == grpc.StatusCode.PERMISSION_DENIED  # simple:1 is not approved
    upstream = proxy.process.config.upstreams[0]
    until(loop_thread, lambda: proxy.process.book.resolve(upstream, "simple", learn=False) is not None,
          "simple asked about")  # fmt: skip
    assert infer() == (grpc.StatusCode.OK, "")  # latest: simple:2
    assert [json.loads(line)["version"] for line in log.read_text().splitlines()] == ["2", ""]


def test_an_oip_grpc_name_asked_about_and_not_listed_on_a_limited_server_is_not_found(  # type: ignore[no-untyped-def]
    faithful, make_proxy, loop_thread, tmp_path
) -> None:
    """The gRPC form of `test_a_name_asked_about_and_not_listed_is_not_found`, on a server where a route limits its
    model's purposes (`simple`, for care): a typo of it (`simpel`) for a purpose that route forbids is 503
    `checkpoint_unknown` (UNAVAILABLE) until the metadata was asked about it, then NOT_FOUND (404
    `model_not_found`, rule `lineage.baseline`) on every retry, never forwarded; for the route's own name the call
    goes on."""
    address, log = faithful
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text(
        "version: 1\nflows:\n  - {caller: '*', purpose: '*', labels: ['*'], checkpoints: ['simple:*']}\n"
    )
    limited = OIP_CONFIG.replace('routes: [{model: "*", upstream: triton}]',
                                 'routes: [{model: simple, upstream: triton, purposes: [care]}, '
                                 '{model: "*", upstream: triton}]')  # fmt: skip
    proxy = make_proxy(limited, OIP_GRPC=address, BASELINE=str(baseline))
    ads = (("x-purpose", "ads"),)
    code, details = simple_infer(proxy.grpc, model="simpel", metadata=ads)
    assert code == grpc.StatusCode.UNAVAILABLE and "checkpoint" in details, (code, details)
    loop_thread.run(proxy.process.book.refresh(proxy.process.config.upstreams[0]))  # the round that asks about it
    for _ in range(2):  # (a retry gets the same answer)
        code, details = simple_infer(proxy.grpc, model="simpel", metadata=ads)
        assert code == grpc.StatusCode.NOT_FOUND, (code, details)
        assert details.startswith("model 'simpel' is not in upstream 'triton''s model list"), details
    assert log.read_text() == ""  # never forwarded
    assert simple_infer(proxy.grpc, metadata=(("x-purpose", "care"),)) == (grpc.StatusCode.OK, "")


# -- start


def test_the_listeners_open_once_the_metadata_was_asked(held, loop_thread, baseline, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`serve` said ready, and took calls, before any upstream's metadata was asked: every call of the
    first round trip went through with no checkpoint known. Now the listeners open after the first probe."""
    upstream, url = held
    text = config().replace("${UPSTREAM}", url).replace("${BASELINE}", baseline)
    process = ProxyProcess(parse(text.replace("${STORE}", str(tmp_path / "lineage.db")), source="t.yaml",
                                 env=dict(os.environ)))  # fmt: skip
    opened: list[dict[str, bool]] = []
    serve = process._serve

    async def recorded(*args: Any, **kwargs: Any) -> Any:
        opened.append(dict(process.book.probed))
        return await serve(*args, **kwargs)

    process._serve = recorded  # type: ignore[method-assign]
    started = asyncio.run_coroutine_threadsafe(process.start(), loop_thread.loop)
    try:
        assert upstream.asked.wait(10), "the metadata was never asked"
        loop_thread.run(asyncio.sleep(0))  # the proxy's loop turns: a listener opening now would show
        assert not started.done() and not opened and process.bound is None
        release(loop_thread, upstream)
        bound = started.result(10)
        assert opened == [{"vllm": True}]
        reply = chat(f"http://{bound.http}")
        assert reply.status_code == 200 and reply.headers["x-lineage-checkpoint"] == ROOT, reply.text
    finally:
        release(loop_thread, upstream)
        started.result(10)
        loop_thread.run(process.stop())


async def _never_fetched(upstream: object, path: str) -> object:
    raise AssertionError(f"fetched {path}")


def test_upstreams_whose_metadata_names_nothing_are_not_waited_for() -> None:
    book = checkpoints.CheckpointBook(parse("""
listen: {http: 127.0.0.1:0}
upstreams:
  - {name: pinned, url: "http://127.0.0.1:1", checkpoint: org/m@1}
  - {name: raw, url: "http://127.0.0.1:1", protocol: passthrough}
routes: [{model: "*", upstream: pinned}]
""", source="t.yaml").upstreams, fetch=Fetch(_never_fetched))  # fmt: skip
    assert book.first_probe_timeout() == 0.0
    pinned, raw = book._upstreams["pinned"], book._upstreams["raw"]
    assert book.resolve(pinned, "m", learn=False) is not None and not book.could_name(raw, "m")


# -- the pure boundary verifier


POLICY = f"""
listen: {{http: 127.0.0.1:0}}
upstreams: [{{name: u, url: "http://127.0.0.1:1"}}]
routes: [{{model: "*", upstream: u}}]
callers: [{{name: app, api_key_sha256: {sha("key-app")}, default_purpose: assistant}}]
policy: {{mode: MODE}}
lineage: {{baseline: BASELINE, on_unapproved: ON}}
"""


@pytest.mark.parametrize(
    ("mode", "on", "key", "expected"),
    [
        ("enforce", "block", "key-app", ("deny", "checkpoint_unknown", None)),
        ("audit", "block", "key-app", ("audit-deny", "checkpoint_unknown", None)),  # audit: it goes on
        ("enforce", "warn", "key-app", ("allow", None, True)),  # warn: unknown fits any approved, as before
        ("enforce", "block", "key-other", ("deny", "invalid_api_key", True)),  # denied anyway: nothing to wait for
    ],
)
def test_a_checkpoint_not_named_yet_is_refused_in_block_mode_only(tmp_path, mode, on, key, expected) -> None:  # type: ignore[no-untyped-def]
    baseline = tmp_path / "b.yaml"
    baseline.write_text("flows:\n  - {caller: app, purpose: assistant, checkpoints: ['org/*']}\n"
                        "  - {caller: '(unknown key)', purpose: '', decisions: [deny]}\n")  # fmt: skip
    policy = Policy.compile(parse(POLICY.replace("MODE", mode).replace("ON", on).replace("BASELINE", str(baseline))))

    def waiting(upstream, model, version):  # type: ignore[no-untyped-def]
        return Unknown(
            lambda upstream, model, caller: "upstream 'u' has not answered its metadata yet", upstream, model
        )

    decision = decide(Call("openai", "chat", "m", TraceContext(1, 2), sha(key)), policy, waiting)
    assert (decision.action, decision.code, decision.approved) == expected
    if decision.code == "checkpoint_unknown":
        assert decision.rule == "lineage.baseline" and "upstream 'u' has not answered" in (decision.reason or "")
        assert (decision.upstream is None) == (mode == "enforce")
    # a checkpoint the call itself names (an OIP version) is checked as such, waiting or not
    versioned = decide(Call("oip", "infer", "m", TraceContext(1, 2), sha(key), model_version="3"), policy, waiting)
    assert versioned.code != "checkpoint_unknown"


def test_a_flow_unapproved_whatever_its_checkpoint_is_refused_as_such(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Not worth a retry: the caller is not approved for any checkpoint."""
    baseline = tmp_path / "b.yaml"
    baseline.write_text("flows:\n  - {caller: someone-else, purpose: assistant}\n")
    policy = Policy.compile(parse(POLICY.replace("MODE", "enforce").replace("ON", "block")
                                  .replace("BASELINE", str(baseline))))  # fmt: skip
    decision = decide(Call("openai", "chat", "m", TraceContext(1, 2), sha("key-app")), policy,
                      lambda upstream, model, version: Unknown(lambda *_: "not yet", upstream, model))  # fmt: skip
    assert (decision.code, decision.approved) == ("flow_not_approved", False)


def test_the_error_is_retryable_in_http_and_grpc() -> None:
    error = DENIAL_ERRORS["checkpoint_unknown"]("why")
    assert (error.status, error.grpc_code, error.error_type, error.retry_after_s) == (
        503, "UNAVAILABLE", "server_error", 1)  # fmt: skip


# -- names calls make up


class CountedOip:
    """An OIP REST upstream serving `good` (version 1) and nothing else, counting the metadata requests
    it is sent, by path."""

    def __init__(self) -> None:
        self.asked: collections.Counter[str] = collections.Counter()
        self.inferred: collections.Counter[str] = collections.Counter()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v2/health/ready", self.ready)
        app.router.add_get("/v2/models/{name}", self.metadata)
        app.router.add_post("/v2/models/{name}/infer", self.infer)
        return app

    async def ready(self, request: web.Request) -> web.Response:
        self.asked[request.path] += 1
        return web.json_response({})

    async def metadata(self, request: web.Request) -> web.Response:
        self.asked[request.path] += 1
        if request.match_info["name"] == "good":
            return web.json_response({"name": "good", "versions": ["1"], "platform": "x"})
        return web.json_response({"error": "model not found"}, status=404)

    async def infer(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.inferred[name] += 1
        return web.json_response({"model_name": name, "model_version": "1",
                                  "outputs": [{"name": "o", "shape": [1], "datatype": "INT64", "data": [0]}]})  # fmt: skip


JUNK_CONFIG = f"""
listen: {{http: 127.0.0.1:0}}
upstreams: [{{name: oip, url: "${{UPSTREAM}}", protocol: oip, discovery_interval_s: 600}}]
routes: [{{model: "*", upstream: oip}}EXTRA]
callers:
  - {{name: app, api_key_sha256: {sha("key-app")}, default_purpose: assistant}}
  - {{name: other, api_key_sha256: {sha("key-other")}, default_purpose: assistant}}
telemetry: {{exporter: none}}
lineage: {{store: "${{STORE}}", baseline: "${{BASELINE}}", on_unapproved: block}}
"""
TENSOR = {"inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [1]}]}


def test_names_a_caller_makes_up_cost_a_request_each_and_keep_no_model_out(  # type: ignore[no-untyped-def]
    make_proxy, loop_thread, tmp_path
) -> None:
    """1,100 calls naming made-up models filled the list of names an upstream is asked about (1,024, never
    trimmed, kept over reloads): `good` was refused from then on, and every refused call made the proxy
    read all 1,024 names again. Now a name the metadata does not list costs one request, is not read
    again, and leaves room: `good` is admitted within a second of asking, by its caller and another, and
    after a reload. A call refused anyway (an unknown key) makes the metadata be asked nothing."""
    upstream = CountedOip()
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text("version: 1\nflows:\n  - {caller: '*', purpose: assistant, checkpoints: ['good:*']}\n")
    with serving(loop_thread, upstream.app()) as url:
        proxy = make_proxy(JUNK_CONFIG.replace("EXTRA", ""), UPSTREAM=url, BASELINE=str(baseline))
        with httpx.Client(base_url=proxy.url, timeout=10) as client:

            def infer(model: str, key: str = "key-app") -> httpx.Response:
                return client.post(f"/v2/models/{model}/infer", json=TENSOR, headers={"authorization": f"Bearer {key}"})

            codes = collections.Counter(infer(f"junk{i}").status_code for i in range(1100))
            assert codes == {503: 1100}
            assert {infer(f"stranger{i}", "key-nobody").status_code for i in range(20)} == {401}

            def admitted(key: str, within: float) -> None:
                start = time.monotonic()
                while (reply := infer("good", key)).status_code != 200:
                    refused_as_unknown(reply)
                    assert time.monotonic() - start < within, f"good still refused after {within}s: {reply.text}"
                    time.sleep(0.05)
                assert reply.headers["x-lineage-checkpoint"] == "good:1"

            admitted("key-other", 2.0)
            admitted("key-app", 2.0)
            asked = dict(upstream.asked)
            junk = [path for path in asked if path.startswith("/v2/models/junk")]
            assert junk and max(asked[path] for path in junk) == 1  # each made-up name read once, if at all
            assert not [path for path in asked if "stranger" in path]
            assert asked["/v2/models/good"] <= 2
            # a round asks its names and the readiness once; a round may be the start's, a made-up name's
            # (when no other was waiting with it) or good's, and never more than one a name
            assert sum(asked[path] for path in junk) <= 1100
            assert asked["/v2/health/ready"] <= 1 + sum(asked[path] for path in junk) + asked["/v2/models/good"]

            more = tmp_path / "more.yaml"  # a reload with a route more: a new book, inheriting the old one
            more.write_text(JUNK_CONFIG.replace("EXTRA", ", {model: extra, upstream: oip}")
                            .replace("${UPSTREAM}", url).replace("${STORE}", str(tmp_path / "lineage.db"))
                            .replace("${BASELINE}", str(baseline)))  # fmt: skip
            assert loop_thread.run(_reload(proxy.process, str(more)))
            assert [infer(f"late{i}").status_code for i in range(50)] == [503] * 50
            admitted("key-app", 2.0)
            assert upstream.inferred == {"good": 3}


class Fetched:
    """A stand-in for the transports: an OIP REST upstream serving `good`, counting requests by path."""

    def __init__(self) -> None:
        self.asked: collections.Counter[str] = collections.Counter()

    async def get_json(self, upstream: Any, path: str) -> Any:
        self.asked[path] += 1
        if path == "/v2/health/ready":
            return {}
        if path == "/v2/models/good":
            return {"name": "good", "versions": []}
        raise checkpoints.MetadataStatus(404, path)


def test_one_callers_names_wait_their_turn_and_are_asked_once() -> None:
    """Names calls ask for wait to be asked, `WAITING_PER_CALLER` of one caller's at most, so another
    caller's are never kept out; a round asks `NEW_PER_ROUND` of them at most, and only them; a name
    the metadata does not list is asked again only when a call asks for it `NUDGE_GAP_S` later."""
    fetched = Fetched()
    config = parse("""
listen: {http: 127.0.0.1:0}
upstreams: [{name: oip, url: "http://127.0.0.1:1", protocol: oip}]
routes: [{model: routed, upstream: oip}, {model: "*", upstream: oip}]
""", source="t.yaml")  # fmt: skip
    upstream = config.upstreams[0]
    book = checkpoints.CheckpointBook(config.upstreams, Fetch(fetched.get_json), {"oip": {"routed"}})

    async def scenario() -> None:
        await book.refresh(upstream)  # the first round: the routes' names
        assert fetched.asked == {"/v2/health/ready": 1, "/v2/models/routed": 1}
        # `routed` answered 404 (as newer Triton answers a model not loaded yet): a route names it, so it is kept, to
        # be asked again in full rounds that come sooner (`_keep_fresh`), not filed as a name not listed
        known = book._known["oip"]
        assert "routed" in known.unready and "routed" not in known.absent
        assert "does not serve model 'routed'" in book.why_unknown(upstream, "routed", "app")
        many = checkpoints.WAITING_PER_CALLER
        assert [book.want(upstream, f"junk{i}", "app") for i in range(many + 5)] == [True] * many + [False] * 5
        assert book.why_unknown(upstream, "junk99", "app") == ("caller 'app' is waiting for upstream 'oip''s metadata "
                                                               "to be asked about 16 other model names already, not "
                                                               "about 'junk99' yet")  # fmt: skip
        assert book.want(upstream, "good", "other")
        assert (
            book.why_unknown(upstream, "good", "other") == "upstream 'oip''s metadata is being asked about model 'good'"
        )
        fetched.asked.clear()
        await book.refresh(upstream)  # only the names waiting
        assert fetched.asked == {"/v2/health/ready": 1, "/v2/models/good": 1,
                                 **{f"/v2/models/junk{i}": 1 for i in range(many)}}  # fmt: skip
        found = book.resolve(upstream, "good", learn=False)
        assert found is not None and found.name == "good"  # listed with no version: its name, as replies say
        assert "does not list model 'junk0'" in book.why_unknown(upstream, "junk0", "app")  # not queued again
        assert "junk0" not in known.unready  # a name only calls asked for, answered 404: not asked again unasked
        assert book.want(upstream, "junk0", "app", gap=0.0)  # asked for again later: it is
        for caller in range(5):  # more waiting than a round asks about: the next round asks the rest
            for i in range(many):
                book.want(upstream, f"more{caller}-{i}", str(caller))
        fetched.asked.clear()
        await book.refresh(upstream)
        assert fetched.asked["/v2/models/junk0"] == 1 and len(fetched.asked) == 1 + checkpoints.NEW_PER_ROUND
        await book.refresh(upstream)
        assert len(fetched.asked) == 1 + 1 + 5 * many
        fetched.asked.clear()
        book._known["oip"].due = True  # every discovery_interval_s: the names kept, not those not listed
        await book.refresh(upstream)
        assert fetched.asked == {"/v2/health/ready": 1, "/v2/models/routed": 1, "/v2/models/good": 1}
        assert book.resolve(upstream, "good", learn=False) is not None

    asyncio.run(scenario())


def test_one_constant_says_each_bound() -> None:
    from proxy.errors import CheckpointUnknown
    from proxy.transport import grpc_channels, pool

    assert pool.METADATA_TIMEOUT_S is grpc_channels.METADATA_TIMEOUT_S is checkpoints.METADATA_TIMEOUT_S
    assert CheckpointUnknown.retry_after_s == checkpoints.NUDGE_GAP_S


# -- an unknown checkpoint that cannot change the verdict


ORG_ONLY = "  - {caller: app, purpose: assistant, checkpoints: ['org/*']}\n"


@pytest.mark.parametrize(
    ("flows", "refused"),
    [
        ("  - {caller: app, purpose: assistant}\n", False),  # no checkpoint restriction
        ("  - {caller: app, purpose: assistant, checkpoints: ['*']}\n", False),
        (ORG_ONLY + "  - {caller: app, purpose: '*'}\n", False),
        (ORG_ONLY + "  - {caller: app, purpose: other}\n", True),
        (ORG_ONLY + "  - {caller: app, purpose: assistant, decisions: [reroute]}\n", True),
    ],
    ids=["no-restriction", "star", "another-entry-approves-any", "only-another-purpose-does", "only-reroutes-do"],
)
def test_block_refuses_an_unknown_checkpoint_only_when_the_verdict_depends_on_it(tmp_path, flows, refused) -> None:  # type: ignore[no-untyped-def]
    """A flow some entry approves for any checkpoint is approved whichever checkpoint it reaches: it was
    refused as checkpoint_unknown all the same, for ever where the metadata never names the model
    (Ollama's `llama3`, listed as `llama3:latest`). Only a refused call asks the metadata again."""
    baseline = tmp_path / "b.yaml"
    baseline.write_text("flows:\n" + flows)
    policy = Policy.compile(parse(POLICY.replace("MODE", "enforce").replace("ON", "block")
                                  .replace("BASELINE", str(baseline))))  # fmt: skip
    asked: list[tuple[str, str]] = []

    def explain(upstream, model, caller):  # type: ignore[no-untyped-def]
        asked.append((model, caller))
        return "not yet"

    decision = decide(Call("openai", "chat", "m", TraceContext(1, 2), sha("key-app")), policy,
                      lambda upstream, model, version: Unknown(explain, upstream, model))  # fmt: skip
    if refused:
        assert (decision.action, decision.code, decision.approved, asked) == ("deny", "checkpoint_unknown", None,
                                                                              [("m", "app")])  # fmt: skip
    else:
        assert (decision.action, decision.code, decision.approved, asked) == ("allow", None, True, [])


OLLAMA = [{"id": "llama3:latest", "object": "model", "created": 1, "owned_by": "library"}]


@pytest.mark.parametrize(
    ("approved", "status"), [(", checkpoints: ['llama3:*']", 200), (", checkpoints: ['org/*']", 403), ("", 200)]
)
@pytest.mark.interpreted  # patches what a compiled module calls directly (tests/conftest.py)
def test_ollama_serves_a_name_without_a_tag_as_its_latest(  # type: ignore[no-untyped-def]
    vllm, make_proxy, tmp_path, approved, status
) -> None:
    """Ollama serves `llama3` as the `llama3:latest` its /v1/models lists (its `owned_by` is the
    namespace Ollama gives `llama3`): that is the checkpoint recorded and decided on. A baseline naming
    checkpoints refused it as `checkpoint_unknown` for ever, and without one it was recorded as `llama3`."""
    upstream, url = vllm
    upstream.models = OLLAMA
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text("version: 1\nflows:\n  - {caller: app, purpose: assistant" + approved + "}\n")
    proxy = make_proxy(config(), UPSTREAM=url, BASELINE=str(baseline))
    reply = chat(proxy.url, "llama3")
    assert reply.status_code == status, reply.text
    if status == 200:
        assert reply.headers["x-lineage-checkpoint"] == "llama3:latest"
    else:
        assert proxy_error(reply)["code"] == "flow_not_approved"
    assert len(upstream.data_requests()) == (status == 200)
