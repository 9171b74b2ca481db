"""A route's purposes bind its model's weights before the server's metadata has said which names run on them: while a
route limits its model's purposes on a server whose metadata has not answered whole (down at start, up later, or
Ollama's `/api/tags` failing on the first round), a call for a name no such route names is refused as one whose
checkpoint is not known (503 `checkpoint_unknown`, retryable), not forwarded: it may be the route's weights by another
name (`llama3.2:latest` for a route's `llama3.2:3b`). Before 2026-12-05 it was forwarded for any purpose in that
window. Once the metadata answers, the call is held to the route's purposes (tests/test_route_purposes_aliases.py)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from ollama import Client, ResponseError

from tests.harness import LoopThread, ProxyHandle, proxy_error, serving
from tests.servers.ollama import DIGEST, MODEL, TAGGED, Ollama
from tests.servers.otlp_receiver import OtlpReceiver
from tests.test_route_purposes_aliases import CONFIG

COPY = f"{MODEL}:3b"  # the route's name for the weights `llama3.2:latest` also runs on (one digest in `/api/tags`)
OTHER = "mistral:latest"  # other weights on the same server
HI = [{"role": "user", "content": "hi"}]


def _chat(proxy: ProxyHandle, model: str, purpose: str) -> httpx.Response:
    body = {"model": model, "messages": HI, "stream": False}
    return httpx.post(f"{proxy.url}/api/chat", json=body, headers={"x-purpose": purpose}, timeout=30)


@pytest.mark.parametrize("down", ["/v1/models", "/api/tags"])
def test_a_name_no_limited_route_names_waits_for_the_metadata(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle], down: str
) -> None:
    server = Ollama(tags={COPY: DIGEST, OTHER: "b" * 64}, down={down})
    with serving(loop_thread, server.app()) as url:
        proxy = make_proxy(CONFIG, wait="probed", UPSTREAM=url, MODEL=COPY, OTLP=f"http://127.0.0.1:{otlp.port}")
        book = proxy.process.book
        for name in (TAGGED, OTHER):  # either may be the route's weights: not known yet
            reply = _chat(proxy, name, "ads")
            assert reply.status_code == 503, (name, reply.text)  # was: 200, forwarded for ads
            error = proxy_error(reply)
            assert error["code"] == "checkpoint_unknown" and "route allows: care" in error["message"], error
            assert reply.headers["retry-after"] == "1"
            span = otlp.by_trace(reply.headers["x-trace-id"]).attributes
            assert span["lineage.decision"] == "deny" and span["lineage.rule"] == f"route:{COPY}", span
        with pytest.raises(ResponseError) as raised:
            Client(host=proxy.url, headers={"x-purpose": "ads"}).chat(model=TAGGED, messages=HI)
        assert raised.value.status_code == 503
        assert server.received == []  # nothing reached the weights
        # the route's own name is held to its purposes already, and a purpose the route allows goes on
        assert _chat(proxy, COPY, "care").status_code == 200
        assert _chat(proxy, TAGGED, "care").status_code == 200
        assert [path for path, _ in server.received] == ["/api/chat", "/api/chat"]
        server.down.clear()
        loop_thread.run(book.refresh(proxy.config.upstreams[0]))  # the next round, which answers whole
        assert not book.unheld
        reply = _chat(proxy, TAGGED, "ads")
        assert reply.status_code == 403 and proxy_error(reply)["code"] == "purpose_denied", reply.text
        assert _chat(proxy, OTHER, "ads").status_code == 200  # other weights: the "*" route's alone
        assert len(server.received) == 3


def test_audit_mode_forwards_it_said(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]
) -> None:
    server = Ollama(tags={COPY: DIGEST}, down={"/v1/models"})
    config = CONFIG.replace("policy: {anonymous: allow}", "policy: {anonymous: allow, mode: audit}")
    with serving(loop_thread, server.app()) as url:
        proxy = make_proxy(config, wait="probed", UPSTREAM=url, MODEL=COPY, OTLP=f"http://127.0.0.1:{otlp.port}")
        reply = _chat(proxy, TAGGED, "ads")
        assert reply.status_code == 200 and reply.headers["x-lineage-decision"] == "audit-deny", reply.text
        span = otlp.by_trace(reply.headers["x-trace-id"]).attributes
        assert span["lineage.rule"] == f"route:{COPY}", span
        assert len(server.received) == 1


PINNED_AND_PASSTHROUGH = """
listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: pinned, url: "${UPSTREAM}", protocol: openai, checkpoint: "llama3.2-3b"}
  - {name: raw, url: "${UPSTREAM}/raw", protocol: passthrough}
routes:
  - {model: "${MODEL}", upstream: pinned, purposes: [care]}
  - {model: secret, upstream: raw, purposes: [care]}
  - {model: "*", upstream: pinned}
policy: {anonymous: allow}
"""


def test_no_metadata_to_wait_for_forwards_as_before(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """An upstream with a pin names no aliases (`upstreams[].checkpoint` names what serves every name), nor does a
    passthrough one (no metadata): its metadata down, nothing is waited for; a call is held to its own route's
    purposes alone, as before, and an ordinary call pays one truth test (`held` empty)."""
    server = Ollama(tags={COPY: DIGEST}, down={"/v1/models"})
    with serving(loop_thread, server.app()) as url:
        proxy = make_proxy(PINNED_AND_PASSTHROUGH, wait="probed", UPSTREAM=url, MODEL=COPY)
        assert not proxy.process.book.held
        assert _chat(proxy, TAGGED, "ads").status_code == 200
