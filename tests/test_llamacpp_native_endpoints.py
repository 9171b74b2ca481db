"""llama.cpp's llama-server serves native endpoints beside its OpenAI ones (tools/server/README.md): `POST /completion`
(`prompt`), `/infill` (`input_prefix`, `input_suffix`, `input_extra` [{filename, text}], `prompt`), `/apply-template`
(`messages`), `/tokenize` (`content`), `/detokenize` (`tokens`), `/embedding` (`content`), `/rerank` and `/reranking`
(`query`, `documents`), their clients often naming no `model` (the server runs the one it loaded). No adapter read
them: while zones were configured they were refused as data the proxy does not read (403 `endpoint_denied`), and with
`policy.passthrough: forward` forwarded unread, so an address in an `input_prefix` went to the model for a purpose its
zone forbids. They are read as the OpenAI endpoints are: routed by the body's `model` when it names one, else by the
`"*"` route (as a call whose path names no model is: refused while a route limits its model's purposes, unless
`policy.passthrough: forward`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from proxy.record.store import SqliteStore
from tests.harness import proxy_error, serving
from tests.test_expect_refused_same_code import raw_send


def recorded(loop_thread, otlp, proxy, reply, store) -> tuple[Any, Any]:  # type: ignore[no-untyped-def]
    """The call's span, and its one lineage edge (once the span is exported the call has ended; the sinks flushed)."""
    span = otlp.by_trace(reply.headers["x-trace-id"])
    loop_thread.run(proxy.process.runtime.sinks.flush())
    kept = SqliteStore(store, readonly=True)
    try:
        (row,) = kept.rows()
    finally:
        kept.close()
    return span, row


CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: llama
    url: ${UPSTREAM}
routes:
  - model: "*"
    upstream: llama
zones:
  - name: contact
    labels: [pii:email]
    allow_purposes: [assistant]
detectors: [email]
policy:
  anonymous: allow
  passthrough: ${PASSTHROUGH:-auto}
telemetry:
  exporter: ${EXPORTER:-none}
  endpoint: ${OTLP:-http://127.0.0.1:9}
lineage:
  store: ${STORE}
"""
# a route that limits its model's purposes beside the "*" one (both the same llama-server)
LIMITED = CONFIG.replace("routes:\n", "routes:\n  - model: smollm\n    upstream: llama\n    purposes: [assistant]\n")

ADDRESS = "ana@example.org"
# each endpoint with a body as llama.cpp's server README writes it, an address where its text goes
BODIES: dict[str, tuple[str, dict[str, Any]]] = {
    "completion": ("/completion", {"prompt": f"Write to {ADDRESS} about", "n_predict": 8}),
    "completion-prompts": ("/completion", {"prompt": ["Hello", 12, f"to {ADDRESS}"], "n_predict": 8}),
    "completion-multimodal": ("/completion", {"prompt": {"prompt_string": f"<__media__> mail {ADDRESS}",
                                                         "multimodal_data": ["aGVsbG8="]}}),
    "infill-prefix": ("/infill", {"input_prefix": f"def mail():\n    to = '{ADDRESS}'\n", "input_suffix": "\n",
                                  "prompt": "", "n_predict": 8}),
    "infill-extra": ("/infill", {"input_prefix": "def f():\n", "input_suffix": "\n", "prompt": "    return",
                                 "input_extra": [{"filename": "contacts.py", "text": f"OWNER = '{ADDRESS}'\n"}]}),
    "apply-template": ("/apply-template", {"messages": [{"role": "user", "content": f"mail {ADDRESS}"}]}),
    "tokenize": ("/tokenize", {"content": f"mail {ADDRESS}", "with_pieces": True}),
    "embedding": ("/embedding", {"content": f"mail {ADDRESS}"}),
    "rerank": ("/rerank", {"query": "who owns it?", "documents": ["nobody", f"{ADDRESS} does"], "top_n": 1}),
    "reranking": ("/reranking", {"query": f"is {ADDRESS} the owner?", "documents": ["yes", "no"]}),
}  # fmt: skip


def _completion(text: str) -> dict[str, Any]:
    return {"index": 0, "content": text, "tokens": [], "id_slot": 0, "stop": True, "model": "smollm",
            "tokens_predicted": 3, "tokens_evaluated": 7, "stop_type": "limit", "stopping_word": "",
            "completion_probabilities": [{"id": 1, "token": " mail", "logprob": -0.1, "bytes": [32],
                                          "top_logprobs": [{"id": 2, "token": " bob@example.net", "logprob": -2.0,
                                                            "bytes": [32]}]}]}  # fmt: skip


@pytest.fixture
def llama(loop_thread) -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:  # type: ignore[no-untyped-def]
    """A llama-server's native endpoints, answering as its README shows (what each reply holds is fixed here)."""
    reached: list[tuple[str, dict[str, Any]]] = []

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "smollm", "object": "model", "created": 1,
                                                              "owned_by": "llamacpp", "meta": {"n_params": 1}}]})  # fmt: skip

    async def native(request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        reached.append((request.path, body))
        path = request.path
        if path in ("/completion", "/infill"):
            if body.get("stream"):
                reply = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
                await reply.prepare(request)
                for piece, stop in (("mail carol@exa", False), ("mple.net now", False), ("", True)):
                    await reply.write(b"data: " + json.dumps({"index": 0, "content": piece, "stop": stop}).encode()
                                      + b"\n\n")  # fmt: skip
                await reply.write_eof()
                return reply
            return web.json_response(_completion("mail carol@example.net now"))
        if path == "/apply-template":
            return web.json_response({"prompt": "<|im_start|>user\n" + body["messages"][0]["content"]})
        if path == "/tokenize":
            return web.json_response({"tokens": [{"id": 1, "piece": "mail"}, {"id": 2, "piece": " x"}]})
        if path == "/detokenize":
            return web.json_response({"content": "mail dora@example.com"})
        if path == "/embedding":
            return web.json_response([{"index": 0, "embedding": [[0.1, 0.2]]}])
        return web.json_response({"model": "smollm", "object": "list", "usage": {"prompt_tokens": 4, "total_tokens": 4},
                                  "results": [{"index": 1, "relevance_score": 0.9}]})  # fmt: skip

    app = web.Application()
    app.router.add_get("/v1/models", models)
    for path in ("/completion", "/infill", "/apply-template", "/tokenize", "/detokenize", "/embedding", "/rerank",
                 "/reranking"):  # fmt: skip
        app.router.add_post(path, native)
    with serving(loop_thread, app) as url:
        yield url, reached


@pytest.mark.parametrize("passthrough", ["auto", "forward"])
@pytest.mark.parametrize("case", BODIES.values(), ids=BODIES.keys())
def test_an_address_in_a_native_body_is_refused_for_a_purpose_its_zone_forbids(  # type: ignore[no-untyped-def]
    llama, make_proxy, case, passthrough
) -> None:
    url, reached = llama
    path, body = case
    proxy = make_proxy(CONFIG, UPSTREAM=url, PASSTHROUGH=passthrough)
    refused = httpx.post(f"{proxy.url}{path}", json=body, headers={"x-purpose": "ads"}, timeout=30)
    assert refused.status_code == 403, (refused.status_code, refused.text)
    error = proxy_error(refused)
    assert error["code"] == "purpose_denied" and "pii:email" in error["message"], error
    assert reached == []


@pytest.mark.parametrize("case", BODIES.values(), ids=BODIES.keys())
def test_an_allowed_native_call_is_forwarded_and_recorded_with_its_labels(  # type: ignore[no-untyped-def]
    llama, make_proxy, loop_thread, otlp, tmp_path, case
) -> None:
    url, reached = llama
    path, body = case
    proxy = make_proxy(CONFIG, UPSTREAM=url, OTLP=f"http://127.0.0.1:{otlp.port}", EXPORTER="otlp")
    answered = httpx.post(f"{proxy.url}{path}", json=body, headers={"x-purpose": "assistant"}, timeout=30)
    assert answered.status_code == 200, answered.text
    assert answered.headers["x-lineage-decision"] == "allow"
    assert "pii:email" in answered.headers["x-data-labels"].split(",")
    # token ids are unread; the multimodal data is media, skipped as a chat's image is
    assert ("scan:truncated" in answered.headers["x-data-labels"]) == (
        body.get("prompt") == ["Hello", 12, f"to {ADDRESS}"]
    )
    assert reached == [(path, body)]  # forwarded as it came
    span, row = recorded(loop_thread, otlp, proxy, answered, tmp_path / "lineage.db")
    labels = answered.headers["x-data-labels"]
    assert list(span.attributes["lineage.input.labels"]) == labels.split(",")
    assert (row.key.purpose, row.key.input_labels, row.key.decision) == ("assistant", labels, "allow")


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("path", ["/completion", "/infill"])
def test_a_native_completion_reply_is_read(  # type: ignore[no-untyped-def]
    llama, make_proxy, loop_thread, otlp, tmp_path, path: str, stream: bool
) -> None:
    """Its `content` (whole, or streamed event by event, an address split across two) is the output, scanned for its
    labels; its digest recorded."""
    url, _ = llama
    proxy = make_proxy(CONFIG, UPSTREAM=url, OTLP=f"http://127.0.0.1:{otlp.port}", EXPORTER="otlp")
    body = {"prompt": "say hi", "input_prefix": "", "input_suffix": "", "stream": stream, "n_predict": 8}
    answered = httpx.post(f"{proxy.url}{path}", json=body, headers={"x-purpose": "assistant"}, timeout=30)
    assert answered.status_code == 200, answered.text
    assert "carol@" in answered.text  # (passed on as it came)
    span, row = recorded(loop_thread, otlp, proxy, answered, tmp_path / "lineage.db")
    assert list(span.attributes["lineage.output.labels"]) == ["pii:email"]
    assert span.attributes["gen_ai.operation.name"] == "text_completion"
    assert "lineage.output.digest" in span.attributes
    assert (row.key.input_labels, row.key.output_labels) == ("", "pii:email")


def test_token_ids_are_unread(llama, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """`/detokenize`'s `tokens` (and a prompt of token ids) are text the proxy cannot read: `scan:truncated`, which
    a zone may refuse as it may any unread content; the text its reply holds is read."""
    url, reached = llama
    proxy = make_proxy(CONFIG, UPSTREAM=url)
    answered = httpx.post(f"{proxy.url}/detokenize", json={"tokens": [1, 2, 3]}, headers={"x-purpose": "assistant"})
    assert answered.status_code == 200, answered.text
    # its input unread; its reply's `content` read (an address: the reply is read before its head goes out)
    assert answered.headers["x-data-labels"] == "pii:email,scan:truncated"
    assert [path for path, _ in reached] == ["/detokenize"]


def test_a_native_call_is_routed_by_the_model_its_body_names(llama, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """A body naming a model goes by that model's route (its purposes); one naming none by the `"*"` route, as a
    call whose path names no model does: refused while a route limits its model's purposes (the model the server
    runs may be that one), unless `policy.passthrough: forward`, which sends it, held to the purposes of the route
    whose model the one-model server runs."""
    url, reached = llama
    proxy = make_proxy(LIMITED, UPSTREAM=url)
    named = {"model": "smollm", "prompt": "hello", "n_predict": 4}
    denied = httpx.post(f"{proxy.url}/completion", json=named, headers={"x-purpose": "ads"}, timeout=30)
    assert denied.status_code == 403 and proxy_error(denied)["code"] == "purpose_denied", denied.text
    assert "route allows: assistant" in proxy_error(denied)["message"]
    allowed = httpx.post(f"{proxy.url}/completion", json=named, headers={"x-purpose": "assistant"}, timeout=30)
    assert allowed.status_code == 200, allowed.text
    unnamed = {"prompt": "hello", "n_predict": 4}
    unrouted = httpx.post(f"{proxy.url}/completion", json=unnamed, headers={"x-purpose": "ads"}, timeout=30)
    assert unrouted.status_code == 403 and proxy_error(unrouted)["code"] == "endpoint_denied", unrouted.text
    assert "names no model" in proxy_error(unrouted)["message"]
    assert [body for _, body in reached] == [named]
    forward = make_proxy(LIMITED, UPSTREAM=url, PASSTHROUGH="forward")
    # sent by the "*" route, to a one-model server, whose model runs for a call naming none: held to that model's
    # route (its weights, 353cfef), so not for `ads`; for a purpose the route allows, forwarded
    held = httpx.post(f"{forward.url}/completion", json=unnamed, headers={"x-purpose": "ads"}, timeout=30)
    assert held.status_code == 403 and proxy_error(held)["code"] == "purpose_denied", held.text
    assert "weights of model 'smollm'" in proxy_error(held)["message"]
    sent = httpx.post(f"{forward.url}/completion", json=unnamed, headers={"x-purpose": "assistant"}, timeout=30)
    assert sent.status_code == 200 and sent.headers["x-lineage-decision"] == "allow", sent.text
    assert [body for _, body in reached] == [named, unnamed]


def test_a_model_that_is_not_a_string_is_a_clear_error(llama, make_proxy) -> None:  # type: ignore[no-untyped-def]
    url, reached = llama
    proxy = make_proxy(CONFIG, UPSTREAM=url)
    reply = httpx.post(f"{proxy.url}/completion", json={"model": 7, "prompt": "hi"}, headers={"x-purpose": "assistant"})
    assert reply.status_code == 400 and proxy_error(reply)["param"] == "model", reply.text
    assert reached == []


def _send(port: int, body: bytes, *, expect: bool) -> tuple[int, str]:
    """`POST /completion` with no `x-purpose` on a raw socket (`raw_send`)."""
    return raw_send(port, "/completion", body, "", expect=expect)


def test_a_request_waiting_for_100_gets_the_code_its_body_gets(llama, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """Its head names no model, and its body may name none: where such a call is refused (`endpoint_denied`, before
    any purpose) the body decides, as for a request sent whole; one naming its model is refused for its purpose."""
    url, reached = llama
    proxy = make_proxy(LIMITED, UPSTREAM=url)
    port = proxy.bound.http.port
    unnamed, named = b'{"prompt": "hi"}', b'{"model": "smollm", "prompt": "hi"}'
    assert _send(port, unnamed, expect=False) == (403, "endpoint_denied")
    assert _send(port, unnamed, expect=True) == (403, "endpoint_denied")  # was 403 purpose_required, at the head
    assert _send(port, named, expect=True) == (403, "purpose_required")
    assert reached == []
