"""Ollama's native API (`/api/chat`, which the `ollama` Python client and LangChain's ChatOllama call, `/api/generate`,
`/api/embed`, `/api/embeddings`) is read as the OpenAI one is: labels from every string but the parameters (images
skipped, a generate's `context` token ids `scan:truncated`), purpose checks, the checkpoint the upstream's
`/v1/models` names, output labels from the reply or each JSON line as it passes (never held back). Before 2026-12-04
no adapter read them: with zones configured they were refused, 403 `endpoint_denied` (`policy.passthrough: auto`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.flow import Outcome
from proxy.protocols import HTTP_ADAPTERS
from proxy.protocols.ollama import ADAPTER, OllamaObserver
from tests.harness import LoopThread, ProxyHandle, proxy_error, serving
from tests.servers.ollama import MODEL, TAGGED, Ollama
from tests.servers.otlp_receiver import OtlpReceiver
from tests.test_oip_generate_endpoints import edges
from tests.test_refusals_recorded import AccessLines, access_lines

CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: ollama, url: "${UPSTREAM}", protocol: openai}
routes:
  - {model: "*", upstream: ollama}
policy: {anonymous: allow, default_purpose: care}
zones:
  - {name: personal, labels: ["pii:email"], allow_purposes: [care]}
detectors: [email]
telemetry: {exporter: otlp, endpoint: "${OTLP}", protocol: grpc}
logging: {access: true}
lineage: {store: "${STORE}"}
"""
ADDRESS = "alice@example.com"
EMAIL = Detectors([DetectorSpec("email")])


@pytest.fixture
def ollama(loop_thread: LoopThread) -> Iterator[Ollama]:
    server = Ollama()
    with serving(loop_thread, server.app()) as url:
        server.url = url
        yield server


@pytest.fixture
def access() -> Iterator[AccessLines]:
    yield from access_lines()


@pytest.fixture
def proxy(ollama: Ollama, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]) -> ProxyHandle:
    return make_proxy(CONFIG, wait="probed", UPSTREAM=ollama.url, OTLP=f"http://127.0.0.1:{otlp.port}")


def chat(content: str, **more: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], **more}


# a forbidden address wherever Ollama hands one to the model
FORBIDDEN = {
    "chat content": ("/api/chat", chat(f"write to {ADDRESS}")),
    "chat system": (
        "/api/chat",
        {"model": MODEL, "messages": [{"role": "system", "content": ADDRESS}, {"role": "user", "content": "hi"}]},
    ),
    "tool": (
        "/api/chat",
        chat("hi", tools=[{"type": "function", "function": {"name": "mail", "description": f"mails {ADDRESS}"}}]),
    ),
    "format schema": ("/api/chat", chat("hi", format={"type": "string", "enum": [ADDRESS]})),
    "stop option": ("/api/chat", chat("hi", options={"stop": [ADDRESS], "temperature": 0})),
    "tool call arguments": (
        "/api/chat",
        {
            "model": MODEL,
            "messages": [
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"function": {"name": "mail", "arguments": {"to": ADDRESS}}}],
                },
                {"role": "tool", "content": "sent", "tool_name": "mail"},
            ],
        },
    ),
    "generate prompt": ("/api/generate", {"model": MODEL, "prompt": f"to {ADDRESS}"}),
    "generate system": ("/api/generate", {"model": MODEL, "prompt": "hi", "system": ADDRESS}),
    "generate suffix": ("/api/generate", {"model": MODEL, "prompt": "hi", "suffix": ADDRESS}),
    "generate template": (
        "/api/generate",
        {"model": MODEL, "prompt": "hi", "template": f"{ADDRESS} {{{{ .Prompt }}}}"},
    ),
    "embed": ("/api/embed", {"model": MODEL, "input": ["hi", ADDRESS]}),
    "embeddings": ("/api/embeddings", {"model": MODEL, "prompt": ADDRESS}),
}


@pytest.mark.parametrize("call", list(FORBIDDEN.values()), ids=list(FORBIDDEN))
def test_a_forbidden_call_is_refused_and_never_forwarded(
    ollama: Ollama, proxy: ProxyHandle, otlp: OtlpReceiver, call: tuple[str, dict[str, Any]]
) -> None:
    path, body = call
    reply = httpx.post(f"{proxy.url}{path}", json=body, headers={"x-purpose": "ads"}, timeout=30)
    assert reply.status_code == 403, reply.text
    assert proxy_error(reply)["code"] == "purpose_denied", reply.text
    assert ollama.received == []  # nothing reached the model
    span = otlp.by_trace(reply.headers["x-trace-id"]).attributes
    # (what a template of the call's own prints is unread: test_ollama_generate_template)
    labels = ["pii:email", "scan:truncated"] if "template" in body else ["pii:email"]
    assert span["lineage.decision"] == "deny" and span["lineage.input.labels"] == labels, span


@pytest.mark.parametrize("path", ["/api/chat", "/api/generate"])
def test_an_allowed_call_is_recorded_with_its_input_and_output_labels_and_checkpoint(
    ollama: Ollama, proxy: ProxyHandle, otlp: OtlpReceiver, access: AccessLines, tmp_path: Path, path: str
) -> None:
    """The reply holds an address the request does not (the model joins `alice` and `example.com`): its output
    labels are the reply's; the caller's `x-data-labels` its input's; the checkpoint `/v1/models` names."""
    body = (chat("alice example.com", stream=False, options={"num_predict": 8}) if path == "/api/chat" else
            {"model": MODEL, "prompt": "alice example.com", "stream": False, "options": {"num_predict": 8}})  # fmt: skip
    reply = httpx.post(f"{proxy.url}{path}", json=body, headers={"x-data-labels": "campaign-7"}, timeout=30)
    assert reply.status_code == 200, reply.text
    written = reply.json()["message"]["content"] if path == "/api/chat" else reply.json()["response"]
    assert written == ADDRESS
    assert [(at, orjson.loads(sent)) for at, sent in ollama.received] == [(path, body)]  # forwarded as it came
    assert reply.headers["x-data-labels"].split(",") == ["campaign-7", "pii:email"]
    span = otlp.by_trace(reply.headers["x-trace-id"]).attributes
    assert span["lineage.input.labels"] == ["campaign-7"], span
    assert span["lineage.output.labels"] == ["campaign-7", "pii:email"], span
    assert span["lineage.checkpoint"] == TAGGED and span["gen_ai.provider.name"] == "ollama", span
    assert span["gen_ai.request.max_tokens"] == 8 and span["gen_ai.response.finish_reasons"] == ["stop"], span
    line = access.of(reply.headers["x-trace-id"])
    assert (line.decision, line.checkpoint, line.status) == ("allow", TAGGED, 200)  # type: ignore[attr-defined]
    assert edges(tmp_path / "lineage.db") == [("campaign-7", TAGGED, "campaign-7,pii:email", "allow")]


@pytest.mark.parametrize("path", ["/api/chat", "/api/generate"])
def test_a_stream_passes_each_line_on_as_it_comes_and_reads_them_as_one_text(
    ollama: Ollama, proxy: ProxyHandle, otlp: OtlpReceiver, loop_thread: LoopThread, tmp_path: Path, path: str
) -> None:
    """Each JSON line reaches the client while the upstream holds the next one (`__gated__`; Ollama streams unless
    told not to), and the address the model streams over three lines (`alice`, `@`, `example.com`) labels the output."""
    text = "__gated__ alice example.com"
    body = chat(text) if path == "/api/chat" else {"model": MODEL, "prompt": text}
    got: list[dict[str, Any]] = []
    with httpx.stream("POST", f"{proxy.url}{path}", json=body, timeout=30) as reply:
        assert reply.status_code == 200 and reply.headers["content-type"] == "application/x-ndjson"
        trace_id = reply.headers["x-trace-id"]
        for line in reply.iter_lines():
            got.append(orjson.loads(line))
            if len(got) < 3:
                ollama.release(loop_thread.loop)  # the next line is sent only once this one reached the client
    pieces = [item["message"]["content"] if path == "/api/chat" else item["response"] for item in got]
    assert pieces == ["alice", "@", "example.com", ""] and got[-1]["done"] is True
    span = otlp.by_trace(trace_id).attributes
    assert span["lineage.output.labels"] == ["pii:email"] and "error.type" not in span, span
    assert span["lineage.checkpoint"] == TAGGED and span["gen_ai.response.finish_reasons"] == ["stop"], span
    assert edges(tmp_path / "lineage.db") == [("", TAGGED, "pii:email", "allow")]


def test_a_generate_context_is_unread_and_images_are_not_text(proxy: ProxyHandle, otlp: OtlpReceiver) -> None:
    """`context` holds the token ids of an earlier exchange, which the model reads and the proxy cannot:
    `scan:truncated`. An image is base64, skipped as a chat's `image_url` is (its bytes here spell an address)."""
    body = {"model": MODEL, "prompt": "hi", "context": [128006, 882], "stream": False}
    reply = httpx.post(f"{proxy.url}/api/generate", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    span = otlp.by_trace(reply.headers["x-trace-id"]).attributes
    assert span["lineage.input.labels"] == ["scan:truncated"], span
    pictured = chat("hi", stream=False)
    pictured["messages"][0]["images"] = [ADDRESS]
    reply = httpx.post(f"{proxy.url}/api/chat", json=pictured, headers={"x-purpose": "ads"}, timeout=30)
    assert reply.status_code == 200, reply.text


@pytest.mark.parametrize(("path", "prompt"), [("/api/chat", "messages"), ("/api/generate", "prompt")])
def test_a_format_schema_holding_a_pattern_is_unread(
    proxy: ProxyHandle, otlp: OtlpReceiver, path: str, prompt: str
) -> None:
    """Ollama turns a `format` schema into a grammar (llama.cpp's json-schema-to-grammar), which holds the output to a
    `pattern` as a regular expression: `"^alice\\x40example\\.com$"` writes an address no string of it is,
    `scan:truncated`. A schema without one (and `"json"`) is read as the text it is."""
    held = {"type": "object", "properties": {"to": {"type": "string", "pattern": "^alice\\x40example\\.com$"}}}
    plain = {"type": "object", "properties": {"to": {"type": "string", "format": "email"}}}
    asked = chat("Write it.") if prompt == "messages" else {"model": MODEL, "prompt": "Write it."}
    for output, labels in ((held, ["scan:truncated"]), (plain, []), ("json", [])):
        body = {**asked, "format": output, "stream": False}
        reply = httpx.post(f"{proxy.url}{path}", json=body, timeout=30)
        assert reply.status_code == 200, reply.text
        span = otlp.by_trace(reply.headers["x-trace-id"]).attributes
        assert span.get("lineage.input.labels", []) == labels, (output, span)


def test_an_error_line_in_a_stream_is_recorded_as_the_upstreams_error(proxy: ProxyHandle, otlp: OtlpReceiver) -> None:
    with httpx.stream("POST", f"{proxy.url}/api/chat", json=chat("__error__ alice example.com"), timeout=30) as reply:
        text = reply.read().decode()
    assert reply.status_code == 200 and '"error"' in text, text
    span = otlp.by_trace(reply.headers["x-trace-id"]).attributes
    assert span["error.type"] == "upstream_error", span


def test_a_call_naming_no_model_is_refused_400_and_never_forwarded(ollama: Ollama, proxy: ProxyHandle) -> None:
    for path, body in (("/api/chat", {"messages": []}), ("/api/generate", {"prompt": "hi", "model": 1})):
        reply = httpx.post(f"{proxy.url}{path}", json=body, timeout=30)
        assert reply.status_code == 400 and proxy_error(reply)["code"] == "invalid_request", reply.text
    assert ollama.received == []


def test_a_chat_without_messages_loads_the_model(ollama: Ollama, proxy: ProxyHandle) -> None:
    """`{"model"}` alone, or `"messages": null`, is how Ollama is told to load a model (as `[]`: `docs/api.md`); it
    answers `done_reason: "load"`, nothing generated. It was refused 400 ('messages' is required)."""
    for body in ({"model": MODEL}, {"model": MODEL, "messages": None}, {"model": MODEL, "messages": []}):
        reply = httpx.post(f"{proxy.url}/api/chat", json=body, timeout=30)
        assert reply.status_code == 200 and reply.json()["done_reason"] == "load", reply.text
    assert len(ollama.received) == 3
    reply = httpx.post(f"{proxy.url}/api/chat", json={"model": MODEL, "messages": "hi"}, timeout=30)
    assert reply.status_code == 400 and proxy_error(reply)["param"] == "messages", reply.text


def test_the_ingress_picks_the_ollama_adapter() -> None:
    for path in ("/api/chat", "/api/generate", "/api/embed", "/api/embeddings"):
        assert next(a for a in HTTP_ADAPTERS if a.match("POST", path)) is ADAPTER, path


def observed(pieces: list[bytes], content_type: str = "application/x-ndjson") -> Outcome:
    outcome = Outcome(started_ns=1)
    observer = OllamaObserver(outcome, EMAIL, True)
    observer.head(200, {"content-type": content_type}.get)
    for piece in pieces:
        observer.chunk(piece)
    observer.finish()
    return outcome


LINES = b"".join(orjson.dumps({"model": MODEL, "message": {"role": "assistant", "content": t}, "done": False}) + b"\n"
                 for t in ("alice", "@", "example.com")) + b'{"model":"llama3.2","done":true,"done_reason":"stop"}'  # fmt: skip


def test_json_lines_are_read_however_their_bytes_are_split() -> None:
    """Split anywhere, the last line without its line end too: the same text, labels and digest."""
    whole = observed([LINES])
    for at in range(1, len(LINES)):
        split = observed([LINES[:at], LINES[at:]])
        assert split.output_detected == whole.output_detected == {"pii:email"}, at
        assert split.output_digest == whole.output_digest and split.content == whole.content == ("[pii:email]",)
        assert split.finish_reasons == ("stop",), at
    assert whole.first_token_ns and whole.response_model == MODEL


def test_a_streamed_tool_call_and_thinking_label_the_output() -> None:
    call = {"function": {"name": "mail", "arguments": {"to": ADDRESS}}}
    tool = orjson.dumps({"model": MODEL, "message": {"role": "assistant", "content": "", "tool_calls": [call]}})
    assert observed([tool + b"\n"]).output_detected == {"pii:email"}
    thought = orjson.dumps({"model": MODEL, "message": {"role": "assistant", "content": "", "thinking": ADDRESS}})
    assert observed([thought + b"\n"]).output_detected == {"pii:email"}


def test_the_alternatives_a_reply_weighed_label_its_output() -> None:
    """`logprobs` and `top_logprobs` (Ollama 0.12.11 on, `api/types.go`'s `Logprob`): each line's, or a whole reply's,
    `logprobs` give the tokens the model weighed beside the one it wrote, text the client has that the content does
    not hold, read as an OpenAI reply's are (`SseObserver.alternatives`)."""
    weighed = [{"token": "hello", "logprob": -0.1, "bytes": [104, 101, 108, 108, 111],
                "top_logprobs": [{"token": "hello", "logprob": -0.1}, {"token": ADDRESS, "logprob": -2.5}]}]  # fmt: skip
    line = {"model": MODEL, "message": {"role": "assistant", "content": "hello"}, "done": False, "logprobs": weighed}
    assert observed([orjson.dumps(line) + b"\n"]).output_detected == {"pii:email"}
    generated = {"model": MODEL, "response": "hello", "done": True, "done_reason": "stop", "logprobs": weighed}
    assert observed([orjson.dumps(generated) + b"\n"]).output_detected == {"pii:email"}
    outcome = Outcome(started_ns=1)
    whole = OllamaObserver(outcome, EMAIL, True)  # a reply not streamed (`"stream": false`)
    whole.head(200, {"content-type": "application/json; charset=utf-8"}.get)
    whole.body(orjson.dumps({**line, "done": True}))
    whole.finish()
    assert outcome.output_detected == {"pii:email"} and outcome.content == ("hello",)
    alone = {**line, "logprobs": [{"token": "hello", "logprob": -0.1, "top_logprobs": [{"token": "hi"}]}]}
    assert observed([orjson.dumps(alone) + b"\n"]).output_detected == frozenset()


def test_a_line_that_is_no_json_is_unread() -> None:
    assert observed([b"<html>\n"]).output_detected == {"scan:truncated"}


def test_messages_and_parts_past_the_limit_leave_the_request_unread() -> None:
    """As an OpenAI chat's (`join_text_parts`): past `MAX_STRINGS` messages and parts nothing is joined, and what was
    not joined is content not read, `scan:truncated` (merged beside the limit, the adapter first took the runs and
    the flag for one value)."""
    from proxy.protocols import MAX_STRINGS

    target = ADAPTER.match("POST", "/api/chat")
    assert target is not None
    many: list[dict[str, Any]] = [{}] * MAX_STRINGS  # (no string in them: only the count of messages is past)
    many.append({"role": "user", "content": "ab"})
    assert ADAPTER.read(target, orjson.dumps({"model": MODEL, "messages": many}), {}.get).unscanned
    assert not ADAPTER.read(target, orjson.dumps({"model": MODEL, "messages": many[-3:]}), {}.get).unscanned
