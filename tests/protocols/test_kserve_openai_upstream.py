"""An upstream of `protocol: kserve` whose url is KServe's model server's root serves KServe V1 at `/v1/models/...` and
OpenAI's API under `/openai/v1` (KServe's Hugging Face runtime; `KSERVE_OPENAI_ROUTE_PREFIX`). An OpenAI call routed to
it, made on the proxy's `/v1` or on `/openai/v1` (read as the same call), reached it at `/v1/chat/completions`: KServe
answers 404 there. It now reaches `/openai/v1/...`, and `GET /openai/v1/models` is KServe's OpenAI model list (the
openai SDK's `client.models.list()`), not V1's `{"models": [...]}`; the calls are read, routed and decided as before.
(KServe's OpenAI data plane needs vLLM: the project's vLLM-like server, mounted at `/openai`, stands in for it.)"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from proxy.record.store import SqliteStore
from tests.harness import LoopThread, ProxyHandle, serving
from tests.protocols.test_kserve_openai_prefix import ADDRESS, kserve_openai
from tests.servers.real import kserve_model_server
from tests.servers.vllm_like import ROOT, SERVED, VllmLike

CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams: [{name: kserve, url: "${KSERVE}", protocol: kserve}]
routes: [{model: "*", upstream: kserve}]
policy: {anonymous: allow, default_purpose: care}
zones: [{name: personal, labels: ["pii:email"], allow_purposes: [care]}]
detectors: [email]
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""


@pytest.mark.parametrize("base", ["/v1", "/openai/v1"])
def test_openai_calls_reach_a_kserve_upstream_under_its_openai_prefix(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle], tmp_path: Path, base: str
) -> None:
    server = VllmLike()
    with serving(loop_thread, kserve_openai(server)) as kserve:
        proxy = make_proxy(CONFIG, wait="probed", KSERVE=kserve)
        client = openai.OpenAI(base_url=f"{proxy.url}{base}", api_key="x", max_retries=0)
        messages: Any = [{"role": "user", "content": f"mail {ADDRESS}"}]
        with pytest.raises(openai.PermissionDeniedError, match="pii:email"):
            client.chat.completions.create(model=SERVED, messages=messages, extra_headers={"x-purpose": "ads"})
        assert server.data_requests() == []  # decided as before: nothing reached the model
        # before: 404 from KServe (`/v1/chat/completions` is no route of its), `openai.NotFoundError`
        reply = client.chat.completions.with_raw_response.create(model=SERVED, messages=messages)
        assert "pii:email" in reply.headers["x-data-labels"].split(","), reply.headers
        assert reply.parse().choices[0].message.content is not None
        words = [chunk.choices[0].delta.content for chunk in client.chat.completions.create(
            model=SERVED, messages=[{"role": "user", "content": "hi"}], stream=True) if chunk.choices]  # fmt: skip
        assert "echo:" in "".join(word or "" for word in words)
        assert client.completions.create(model=SERVED, prompt="hi").choices[0].text
        assert len(client.embeddings.create(model=SERVED, input="hi").data) == 1
    paths = [(each.method, each.path) for each in server.requests if each.path != "/openai/v1/models"]
    assert paths == [("POST", "/openai/v1/chat/completions"), ("POST", "/openai/v1/chat/completions"),
                     ("POST", "/openai/v1/completions"), ("POST", "/openai/v1/embeddings")], paths  # fmt: skip
    kept = SqliteStore(tmp_path / "lineage.db", readonly=True)
    try:
        rows = {(row.key.purpose, row.key.input_labels, row.key.decision) for row in kept.rows()}
    finally:
        kept.close()
    assert ("ads", "pii:email", "deny") in rows and ("care", "pii:email", "allow") in rows, rows


def test_kserves_openai_model_list_and_health_answer_on_its_openai_prefix(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """`GET /openai/v1/models` with KServe upstreams only was forwarded as `/v1/models`, KServe V1's list
    (`{"models": [...]}`): the openai SDK's `client.models.list()` found no model in it. It is KServe's OpenAI list now,
    each entry as it came; `/v1/models` carries V1's names too (KServe's clients read them so), and `GET
    /openai/v1/models/{name}` is the OpenAI model's health, not V1's readiness at `/v1/models/{name}`."""
    server = VllmLike()
    with serving(loop_thread, kserve_openai(server)) as kserve:
        proxy = make_proxy(CONFIG, wait="probed", KSERVE=kserve)
        client = openai.OpenAI(base_url=f"{proxy.url}/openai/v1", api_key="x", max_retries=0)
        assert [model.id for model in client.models.list()] == [SERVED, "sql-lora"]  # before: []
        assert client.models.list().data[0].model_extra["root"] == ROOT  # the upstream's own answer, passed through
        assert httpx.get(f"{proxy.url}/v1/models", timeout=30).json()["models"] == [SERVED]  # V1's names beside
        health = httpx.get(f"{proxy.url}/openai/v1/models/{SERVED}", timeout=30)
        assert health.status_code == 200, health.text
    paths = [(each.method, each.path) for each in server.requests]
    assert ("GET", f"/openai/v1/models/{SERVED}") in paths, paths


def test_several_kserve_upstreams_merge_their_openai_lists_on_the_openai_prefix(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """With several KServe upstreams, `GET /openai/v1/models` asks each at `/openai/v1/models` and merges OpenAI's lists
    (each model once, described by the upstream its route sends it to), as several OpenAI-compatible upstreams' are."""
    first = VllmLike()
    second = VllmLike(models=[{"id": "other", "object": "model", "created": 1, "owned_by": "kserve"}])
    with serving(loop_thread, kserve_openai(first)) as one, serving(loop_thread, kserve_openai(second)) as two:
        proxy = make_proxy("""
listen: {http: "127.0.0.1:0"}
upstreams: [{name: one, url: "${ONE}", protocol: kserve}, {name: two, url: "${TWO}", protocol: kserve}]
routes: [{model: "${SERVED}", upstream: one}, {model: sql-lora, upstream: one}, {model: other, upstream: two}]
policy: {anonymous: allow, default_purpose: care}
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
""", wait="probed", ONE=one, TWO=two, SERVED=SERVED)  # fmt: skip
        client = openai.OpenAI(base_url=f"{proxy.url}/openai/v1", api_key="x", max_retries=0)
        assert [model.id for model in client.models.list()] == [SERVED, "sql-lora", "other"]  # before: []
    for server in (first, second):
        assert ("GET", "/openai/v1/models") in [(each.method, each.path) for each in server.requests]


def test_an_openai_calls_fields_are_read_for_its_kserve_upstream_alone(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """In a config with an OpenAI-compatible upstream and a KServe one, an OpenAI call's header fields are read where
    its route sends it to KServe, whose OpenAI data plane hands them to the model, and not where it goes to a vLLM,
    which hands its model none: `X-Note: alice@example.com` there is no refusal."""
    vllm, kserve = VllmLike(), VllmLike(models=[{"id": "other", "object": "model", "created": 1, "owned_by": "kserve"}])
    with serving(loop_thread, vllm.app()) as plain, serving(loop_thread, kserve_openai(kserve)) as kserving:
        proxy = make_proxy("""
listen: {http: "127.0.0.1:0"}
upstreams: [{name: vllm, url: "${VLLM}", protocol: openai}, {name: kserve, url: "${KSERVE}", protocol: kserve}]
routes: [{model: "${SERVED}", upstream: vllm}, {model: other, upstream: kserve}]
policy: {anonymous: allow, default_purpose: care}
zones: [{name: personal, labels: ["pii:email"], allow_purposes: [care]}]
detectors: [email]
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
""", wait="probed", VLLM=plain, KSERVE=kserving, SERVED=SERVED)  # fmt: skip
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0)
        note = {"x-note": f"for {ADDRESS}", "x-purpose": "ads"}
        messages: Any = [{"role": "user", "content": "hi"}]
        assert client.chat.completions.create(model=SERVED, messages=messages, extra_headers=note).choices
        with pytest.raises(openai.PermissionDeniedError, match="pii:email"):
            client.chat.completions.create(model="other", messages=messages, extra_headers=note)
    assert kserve.data_requests() == [] and len(vllm.data_requests()) == 1


def test_an_openai_calls_fields_are_read_where_a_zone_may_reroute_it_to_kserve(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """A zone may reroute a call routed to a vLLM to a KServe upstream, after the decision the fields are read for:
    they are read for every OpenAI call then. A call labelled for the EU zone, carrying `X-Note: alice@example.com`
    for a purpose the personal zone forbids, is refused, not rerouted to KServe's model with the note."""
    vllm, kserve = VllmLike(), VllmLike()
    with serving(loop_thread, vllm.app()) as plain, serving(loop_thread, kserve_openai(kserve)) as kserving:
        proxy = make_proxy("""
listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: vllm, url: "${VLLM}", protocol: openai, region: us}
  - {name: kserve, url: "${KSERVE}", protocol: kserve, region: eu}
routes: [{model: "${SERVED}", upstream: vllm}]
policy: {anonymous: allow, default_purpose: care}
zones:
  - {name: personal, labels: ["pii:email"], allow_purposes: [care]}
  - {name: eu-only, labels: [eu-data], allow_purposes: [care, ads], regions: [eu], on_deny: "reroute:kserve"}
detectors: [email]
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
""", wait="probed", VLLM=plain, KSERVE=kserving, SERVED=SERVED)  # fmt: skip
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0)
        messages: Any = [{"role": "user", "content": "hi"}]
        eu = {"x-data-labels": "eu-data", "x-purpose": "ads"}
        assert client.chat.completions.create(model=SERVED, messages=messages, extra_headers=eu).choices  # rerouted
        with pytest.raises(openai.PermissionDeniedError, match="pii:email"):
            client.chat.completions.create(model=SERVED, messages=messages,
                                           extra_headers={**eu, "x-note": f"for {ADDRESS}"})  # fmt: skip
    assert len(kserve.data_requests()) == 1 and vllm.data_requests() == []


# KServe's own model server with a V1 model (`echo`) and an OpenAI model (`llm`: in its model repository, so V1's
# readiness names it, as the Hugging Face runtime's is). KServe's OpenAI data plane imports vLLM, so the script adds
# the routes it would register (`register_openai_endpoints`: chat completions and the model list, under `/openai`) to
# KServe's own app: everything else, and every 404, is the real server's
KSERVE_OPENAI = """
import json, sys, time
import kserve
from fastapi import Request
from kserve.model_server import app


class Echo(kserve.Model):
    def __init__(self, name):
        super().__init__(name)
        self.ready = True

    async def predict(self, payload, headers=None, response_headers=None):
        return {"predictions": [payload]}


async def chat(body: dict, request: Request):
    with open("seen.jsonl", "a") as log:
        log.write(json.dumps(body) + "\\n")
    # what KServe's OpenAI data plane hands the model beside the body (`OpenAIDataPlane.create_chat_completion`:
    # `context = {"headers": dict(headers)}`)
    with open("handed.jsonl", "a") as log:
        log.write(json.dumps(dict(request.headers)) + "\\n")
    said = body["messages"][-1]["content"]
    return {"id": "c", "object": "chat.completion", "created": int(time.time()), "model": body["model"], "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "echo: " + said}}]}


async def models():
    return {"object": "list", "data": [{"id": "llm", "object": "model", "created": 1, "owned_by": ""}]}


if __name__ == "__main__":
    app.add_api_route("/openai/v1/chat/completions", chat, methods=["POST"])
    app.add_api_route("/openai/v1/models", models, methods=["GET"])
    kserve.ModelServer(http_port=int(sys.argv[1]), enable_grpc=False, workers=1).start([Echo("echo"), Echo("llm")])
"""
REAL_CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams: [{name: kserve, url: "${KSERVE}", protocol: kserve}]
routes: [{model: llm, upstream: kserve}, {model: echo, upstream: kserve}]
policy: {anonymous: allow, default_purpose: care}
zones: [{name: personal, labels: ["pii:email"], allow_purposes: [care]}]
detectors: [email]
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""


@pytest.fixture(scope="module")
def kserve_llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    workdir = tmp_path_factory.mktemp("kserve-openai")
    with kserve_model_server(workdir, KSERVE_OPENAI, "llm") as url:
        yield url, workdir / "seen.jsonl"


@pytest.mark.realserver
@pytest.mark.parametrize("base", ["/v1", "/openai/v1"])
def test_openai_calls_reach_the_real_kserve_server_at_its_openai_prefix(
    kserve_llm: tuple[str, Path], make_proxy: Callable[..., ProxyHandle], base: str
) -> None:
    url, log = kserve_llm
    messages: Any = [{"role": "user", "content": f"mail {ADDRESS}"}]
    assert httpx.post(f"{url}/v1/chat/completions", json={"model": "llm", "messages": messages},
                      timeout=60).status_code == 404  # KServe serves OpenAI's API under `/openai` alone  # fmt: skip
    proxy = make_proxy(REAL_CONFIG, wait="probed", KSERVE=url)
    client = openai.OpenAI(base_url=f"{proxy.url}{base}", api_key="x", max_retries=0)
    before = log.read_text().count("\n") if log.exists() else 0
    with pytest.raises(openai.PermissionDeniedError, match="pii:email"):
        client.chat.completions.create(model="llm", messages=messages, extra_headers={"x-purpose": "ads"})
    # before: `openai.NotFoundError`, KServe's 404 for `/v1/chat/completions`
    reply = client.chat.completions.with_raw_response.create(model="llm", messages=messages)
    assert reply.parse().choices[0].message.content == f"echo: mail {ADDRESS}"
    assert reply.headers["x-lineage-checkpoint"] == "llm" and "pii:email" in reply.headers["x-data-labels"].split(",")
    lines = log.read_text().splitlines()
    assert len(lines) == before + 1 and json.loads(lines[-1])["messages"] == messages  # the denied one never came
    if base == "/openai/v1":  # the openai SDK's model list: OpenAI's (before: V1's `{"models": [...]}`, no model)
        assert [model.id for model in client.models.list()] == ["llm"]
    predicted = httpx.post(f"{proxy.url}/v1/models/echo:predict", json={"instances": [[1]]}, timeout=60)
    assert predicted.json() == {"predictions": [{"instances": [[1]]}]}, predicted.text  # V1 on the same upstream


@pytest.mark.realserver
def test_an_openai_calls_header_fields_are_read_where_kserve_hands_them_to_its_model(
    kserve_llm: tuple[str, Path], make_proxy: Callable[..., ProxyHandle]
) -> None:
    """KServe's OpenAI data plane hands its model the call's header fields (`context["headers"]`, as V1 hands them to
    `predict`): an OpenAI call to a `protocol: kserve` upstream has them read as a V1 call's are. Before, they were not
    read: `X-Note: alice@example.com` reached the model for a purpose the zone forbids, where a V1 call with it was
    refused."""
    url, log = kserve_llm
    handed = log.with_name("handed.jsonl")
    proxy = make_proxy(REAL_CONFIG, wait="probed", KSERVE=url)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0)
    note = {"x-note": f"for {ADDRESS}", "x-purpose": "ads"}
    predicted = httpx.post(f"{proxy.url}/v1/models/echo:predict", json={"instances": [[1]]}, headers=note, timeout=60)
    assert predicted.status_code == 403, predicted.text  # a V1 call's fields: read
    before = handed.read_text().count("\n") if handed.exists() else 0
    messages: Any = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.PermissionDeniedError, match="pii:email"):
        client.chat.completions.create(model="llm", messages=messages, extra_headers=note)
    reply = client.chat.completions.with_raw_response.create(
        model="llm", messages=messages, extra_headers={"x-note": f"for {ADDRESS}"}
    )
    assert "pii:email" in reply.headers["x-data-labels"].split(","), reply.headers
    lines = handed.read_text().splitlines()
    assert len(lines) == before + 1 and json.loads(lines[-1])["x-note"] == f"for {ADDRESS}"  # the model is handed it
