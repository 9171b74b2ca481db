"""A route's purposes bind the weights its model names: a call for another name its upstream serves with the same
weights (an alias its metadata lists: Ollama's `NAME:latest` for `NAME`, vLLM's several `--served-model-name`s, any
name a one-model llama-server answers) is held to them, whichever route it matches (the `"*"` one, or another route's
without purposes). Before 2026-12-05 such a call matched the `"*"` route and reached the same weights for a purpose
the model's route forbids."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest
from ollama import Client, ResponseError

from tests.harness import LoopThread, ProxyHandle, proxy_error, serving
from tests.servers.ollama import DIGEST, MODEL, TAGGED, Ollama
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.vllm_like import ROOT, SERVED, VllmLike
from tests.test_llama_lora import LLAMA_SERVER
from tests.test_ollama_native import ollama

__all__ = ["ollama"]  # the fixture, imported

CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: up, url: "${UPSTREAM}", protocol: openai}
routes:
  - {model: "${MODEL}", upstream: up, purposes: [care]}
  - {model: "*", upstream: up}
policy: {anonymous: allow}
telemetry: {exporter: otlp, endpoint: "${OTLP}", protocol: grpc}
"""


def _served(loop_thread: LoopThread, models: list[dict[str, object]]) -> Iterator[tuple[VllmLike, str]]:
    server = VllmLike(models=models)
    with serving(loop_thread, server.app()) as url:
        yield server, url


def _calls(server: VllmLike) -> list[str]:
    """The calls that reached the model (its metadata's GETs aside)."""
    return [received.path for received in server.requests if received.method == "POST"]


def _proxy(make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver, url: str, model: str) -> ProxyHandle:
    return make_proxy(CONFIG, UPSTREAM=url, MODEL=model, OTLP=f"http://127.0.0.1:{otlp.port}")


def test_ollama_latest_tag_held_to_the_route_of_the_name_without_it(
    ollama: Ollama, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]
) -> None:
    proxy = _proxy(make_proxy, otlp, ollama.url, MODEL)
    for name in (MODEL, TAGGED):
        client = Client(host=proxy.url, headers={"x-purpose": "ads"})
        with pytest.raises(ResponseError) as raised:
            client.chat(model=name, messages=[{"role": "user", "content": "hi"}])
        assert raised.value.status_code == 403, name
        assert "route allows: care" in raised.value.error and MODEL in raised.value.error, raised.value.error
    assert ollama.received == []  # nothing reached the weights
    allowed = Client(host=proxy.url, headers={"x-purpose": "care"}).chat(
        model=TAGGED, messages=[{"role": "user", "content": "hi"}]
    )
    assert allowed.message.content
    assert len(ollama.received) == 1


def test_denial_recorded_with_the_route_that_holds_the_weights(
    ollama: Ollama, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]
) -> None:
    proxy = _proxy(make_proxy, otlp, ollama.url, MODEL)
    body = {"model": TAGGED, "messages": [{"role": "user", "content": "hi"}], "stream": False}
    reply = httpx.post(f"{proxy.url}/api/chat", json=body, headers={"x-purpose": "ads"}, timeout=30)
    assert reply.status_code == 403 and proxy_error(reply)["code"] == "purpose_denied", reply.text
    span = otlp.by_trace(reply.headers["x-trace-id"]).attributes
    assert span["lineage.decision"] == "deny" and span["lineage.rule"] == f"route:{MODEL}", span


COPY = f"{MODEL}:3b"  # another tag of the same weights (one digest in `/api/tags`), as `ollama cp` also makes
OTHER = "mistral:latest"  # other weights on the same server


@pytest.mark.parametrize(("routed", "called"), [(COPY, TAGGED), (COPY, MODEL), (MODEL, COPY), (TAGGED, COPY)])
def test_ollama_tags_of_one_digest_are_held_to_the_route_of_either(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle], routed: str, called: str
) -> None:
    """Ollama's `/api/tags` lists each name with its digest: `llama3.2:3b` and `llama3.2:latest` of one digest are the
    same weights, so a call for either is held to a route's purposes of the other (before 2026-12-05 it matched the
    `"*"` route and was forwarded for any purpose). A name of another digest on the server is the `"*"` route's."""
    server = Ollama(tags={COPY: DIGEST, OTHER: "b" * 64})
    with serving(loop_thread, server.app()) as url:
        proxy = _proxy(make_proxy, otlp, url, routed)
        ads = Client(host=proxy.url, headers={"x-purpose": "ads"})
        with pytest.raises(ResponseError) as raised:
            ads.chat(model=called, messages=[{"role": "user", "content": "hi"}])
        assert raised.value.status_code == 403 and "route allows: care" in raised.value.error, raised.value.error
        assert server.received == []  # nothing reached the weights
        assert ads.chat(model=OTHER, messages=[{"role": "user", "content": "hi"}]).message.content
        care = Client(host=proxy.url, headers={"x-purpose": "care"})
        assert care.chat(model=called, messages=[{"role": "user", "content": "hi"}]).message.content
        assert [path for path, _ in server.received] == ["/api/chat", "/api/chat"]


def test_vllm_served_model_names_share_the_route_purposes(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """vLLM's `--served-model-name a b` lists both names with the same `root`: either reaches the same weights."""
    entry = {"object": "model", "created": 1, "owned_by": "vllm", "root": ROOT, "parent": None}
    other = {"id": "mistral", "object": "model", "created": 1, "owned_by": "vllm", "root": "mistralai/Mistral-7B"}
    for server, url in _served(loop_thread, [{"id": SERVED, **entry}, {"id": "assistant", **entry}, other]):
        proxy = _proxy(make_proxy, otlp, url, SERVED)
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", default_headers={"x-purpose": "ads"})
        with pytest.raises(openai.PermissionDeniedError) as raised:
            client.chat.completions.create(model="assistant", messages=[{"role": "user", "content": "hi"}])
        assert raised.value.code == "purpose_denied" and f"'{SERVED}'" in raised.value.message
        assert _calls(server) == []
        # other weights on the same upstream are the "*" route's alone
        reply = client.chat.completions.create(model="mistral", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content
        assert _calls(server) == ["/v1/chat/completions"]


def test_one_model_llama_server_answers_every_name_with_the_routed_weights(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]
) -> None:
    for server, url in _served(loop_thread, [LLAMA_SERVER]):
        proxy = _proxy(make_proxy, otlp, url, str(LLAMA_SERVER["id"]))
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", default_headers={"x-purpose": "ads"})
        with pytest.raises(openai.PermissionDeniedError):
            client.chat.completions.create(model="anything", messages=[{"role": "user", "content": "hi"}])
        assert _calls(server) == []
        care = client.with_options(default_headers={"x-purpose": "care"})
        assert care.chat.completions.create(model="anything", messages=[{"role": "user", "content": "hi"}]).choices


def test_a_route_of_its_own_without_purposes_is_held_too_and_audit_lets_it_through_said(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """Another route naming the same weights (here without purposes) does not free them; audit mode forwards the call
    as `audit-deny`, saying the route that would have refused it."""
    entry = {"object": "model", "created": 1, "owned_by": "vllm", "root": ROOT, "parent": None}
    for mode in ("enforce", "audit"):
        config = CONFIG.replace('{model: "*", upstream: up}', "{model: assistant, upstream: up}").replace(
            "policy: {anonymous: allow}", f"policy: {{anonymous: allow, mode: {mode}}}"
        )
        for server, url in _served(loop_thread, [{"id": SERVED, **entry}, {"id": "assistant", **entry}]):
            proxy = make_proxy(config, UPSTREAM=url, MODEL=SERVED, OTLP=f"http://127.0.0.1:{otlp.port}")
            body = {"model": "assistant", "messages": [{"role": "user", "content": "hi"}]}
            reply = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers={"x-purpose": "ads"}, timeout=30)
            if mode == "enforce":
                assert reply.status_code == 403 and proxy_error(reply)["code"] == "purpose_denied", reply.text
                assert _calls(server) == []
            else:
                assert reply.status_code == 200 and reply.headers["x-lineage-decision"] == "audit-deny", reply.text
                assert _calls(server) == ["/v1/chat/completions"]
                span = otlp.by_trace(reply.headers["x-trace-id"]).attributes
                assert span["lineage.rule"] == f"route:{SERVED}", span


TWO_SERVERS = """
listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: a, url: "${A}", protocol: openai}
  - {name: b, url: "${B}", protocol: openai}
routes:
  - {model: medical, upstream: a, purposes: [care]}
  - {model: "*", upstream: b}
policy: {anonymous: allow}
"""
# KServe mounts every InferenceService's weights at /mnt/models, which vLLM there lists as each model's `root`
KSERVE_ROOT = {"object": "model", "created": 1, "owned_by": "vllm", "root": "/mnt/models", "parent": None}
# llama-server lists the model by the path it was started with: every container started as `-m /models/model.gguf`
LLAMA_PATH = {**LLAMA_SERVER, "id": "/models/model.gguf"}


@pytest.mark.parametrize(
    ("on_a", "on_b", "call"),
    [
        pytest.param({"id": "medical", **KSERVE_ROOT}, {"id": "chat", **KSERVE_ROOT}, "chat", id="kserve-vllm-root"),
        pytest.param(LLAMA_PATH, LLAMA_PATH, "chat", id="llama-server-path"),
    ],
)
def test_a_checkpoint_name_another_server_also_lists_is_not_the_routes_weights(
    loop_thread: LoopThread,
    make_proxy: Callable[..., ProxyHandle],
    on_a: dict[str, object],
    on_b: dict[str, object],
    call: str,
) -> None:
    """A checkpoint's name is the weights only on the server that lists it: another server listing the same name (a
    path every container mounts its own weights at) serves other weights, which the route's purposes do not bind."""
    for held, held_url in _served(loop_thread, [on_a]):
        for other, url in _served(loop_thread, [on_b]):
            proxy = make_proxy(TWO_SERVERS, A=held_url, B=url)
            client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", default_headers={"x-purpose": "ads"})
            reply = client.chat.completions.create(model=call, messages=[{"role": "user", "content": "hi"}])
            assert reply.choices[0].message.content
            assert _calls(other) == ["/v1/chat/completions"] and _calls(held) == []
            with pytest.raises(openai.PermissionDeniedError):  # the route's own weights are still held
                client.chat.completions.create(model="medical", messages=[{"role": "user", "content": "hi"}])


def test_another_upstream_name_of_the_same_server_is_held(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """Two upstream names reaching one server (`localhost` and `127.0.0.1`) reach the same weights: a name the `"*"`
    route sends through the other is held to the route's purposes all the same."""
    entry = {"object": "model", "created": 1, "owned_by": "vllm", "root": ROOT, "parent": None}
    for server, url in _served(loop_thread, [{"id": SERVED, **entry}, {"id": "assistant", **entry}]):
        config = TWO_SERVERS.replace("model: medical", f"model: {SERVED}")
        proxy = make_proxy(config, A=url, B=url.replace("127.0.0.1", "localhost"))
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", default_headers={"x-purpose": "ads"})
        with pytest.raises(openai.PermissionDeniedError):
            client.chat.completions.create(model="assistant", messages=[{"role": "user", "content": "hi"}])
        assert _calls(server) == []


BASELINE = """version: 1
flows:
  - caller: anonymous
    purpose: ads
"""


def test_a_held_refusal_is_judged_as_the_denial_it_is(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle], tmp_path: Path
) -> None:
    """The baseline's verdict on a call the weights' route refuses is that of the denial recorded (no entry approves
    it: `verify` lists its edge), not of the allowed flow the call was first decided as (approved here): the span said
    `lineage.approved=true` and `lineage_proxy_unapproved_flows_total` did not count it."""
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text(BASELINE)
    config = CONFIG + f'lineage: {{store: "${{STORE}}", baseline: "{baseline}"}}\n'
    entry = {"object": "model", "created": 1, "owned_by": "vllm", "root": ROOT, "parent": None}
    for _, url in _served(loop_thread, [{"id": SERVED, **entry}, {"id": "assistant", **entry}]):
        proxy = make_proxy(config, UPSTREAM=url, MODEL=SERVED, OTLP=f"http://127.0.0.1:{otlp.port}")
        body = {"model": "assistant", "messages": [{"role": "user", "content": "hi"}]}
        reply = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers={"x-purpose": "ads"}, timeout=30)
        assert reply.status_code == 403 and proxy_error(reply)["code"] == "purpose_denied", reply.text
        span = otlp.by_trace(reply.headers["x-trace-id"]).attributes
        assert span["lineage.rule"] == f"route:{SERVED}" and span["lineage.approved"] is False, span  # was: True
        metrics = httpx.get(f"{proxy.url}/metrics", timeout=10).text
        counted = [line for line in metrics.splitlines() if line.startswith("lineage_proxy_unapproved_flows_total")]
        assert counted and float(counted[0].split()[-1]) == 1.0, counted
