"""TGI's native API driven by the client its users call it with, huggingface_hub's `InferenceClient` (its
`text_generation` posts to `/`, TGI's compat route, `"stream"` in the body; `chat_completion` to
`/v1/chat/completions`), in front of the TGI-like server (`tests/servers/tgi.py`). The proxy's own refusals on TGI's
native paths are in TGI's error shape, `{"error": "<message>", "error_type"}` with the code beside it, so the client
raises with the reason as its message: before 2026-12-04 they were in OpenAI's (`{"error": {"message": ...}}`), and
huggingface_hub raised `HfHubHTTPError("403 Forbidden: None. ... Make sure your token has the correct permissions.")`,
the reason a dict's repr on its last line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from huggingface_hub import InferenceClient
from huggingface_hub.errors import GenerationError, HfHubHTTPError, TextGenerationError

from tests import test_tgi_native as native
from tests.harness import LoopThread, ProxyHandle, dead_port, traced
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.tgi import CHECKPOINT, MODEL_ID, Tgi
from tests.test_oip_generate_endpoints import edges
from tests.test_refusals_recorded import AccessLines
from tests.test_tgi_native import ADDRESS, CONFIG

# the fixtures of test_tgi_native: the server, the proxy in front of it, the access lines
tgi = native.tgi
proxy = native.proxy
access = native.access

DENIED = "purpose 'ads' is not allowed for data labelled 'pii:email' (zone personal allows: care)"
HEAD_OVER = 40 * 1024  # a header field's bytes: over limits.max_header_bytes (32 KiB by default)


def test_a_call_is_answered_as_tgi_answers_and_recorded(
    tgi: Tgi, proxy: ProxyHandle, otlp: OtlpReceiver, access: AccessLines, tmp_path: Path
) -> None:
    trace_id, headers = traced(**{"x-data-labels": "campaign-7"})
    client = InferenceClient(base_url=proxy.url, headers=headers)
    output = client.text_generation("alice example.com", details=True, max_new_tokens=8, stop=["\n"])
    assert output.generated_text == ADDRESS and output.details is not None
    assert [token.text for token in output.details.tokens] == ["alice", "@", "example.com"]
    assert [path for path, _ in tgi.received] == ["/"]
    span = otlp.by_trace(trace_id).attributes
    assert span["lineage.input.labels"] == ["campaign-7"], span
    assert span["lineage.output.labels"] == ["campaign-7", "pii:email"], span
    assert span["lineage.checkpoint"] == CHECKPOINT and span["gen_ai.request.max_tokens"] == 8, span
    line = access.of(trace_id)
    assert (line.decision, line.checkpoint, line.status) == ("allow", CHECKPOINT, 200)  # type: ignore[attr-defined]
    assert edges(tmp_path / "lineage.db") == [("campaign-7", CHECKPOINT, "campaign-7,pii:email", "allow")]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_forbidden_call_raises_with_the_proxys_reason(
    tgi: Tgi, proxy: ProxyHandle, otlp: OtlpReceiver, stream: bool
) -> None:
    trace_id, headers = traced(**{"x-purpose": "ads"})
    client = InferenceClient(base_url=proxy.url, headers=headers)
    with pytest.raises(TextGenerationError) as raised:
        client.text_generation(f"write to {ADDRESS}", stream=stream)
    assert str(raised.value) == DENIED
    assert raised.value.__cause__.response.status_code == 403  # type: ignore[union-attr]
    assert tgi.received == []
    assert otlp.by_trace(trace_id).attributes["lineage.decision"] == "deny"


def test_a_head_over_the_limit_raises_with_the_proxys_reason(tgi: Tgi, proxy: ProxyHandle) -> None:
    """A head the connection refuses itself (431, before it is parsed whole) answers in TGI's shape too: its target,
    read whole before the field that is over the limit, says whose API it is (before: OpenAI's shape, a dict's repr
    in huggingface_hub's HfHubHTTPError)."""
    client = InferenceClient(base_url=proxy.url, headers={"x-big": "a" * HEAD_OVER})
    with pytest.raises(TextGenerationError, match=r"limits\.max_header_bytes") as raised:
        client.text_generation("hi")
    assert raised.value.__cause__.response.status_code == 431  # type: ignore[union-attr]
    assert tgi.received == []


def test_a_stream_reaches_the_client_token_by_token(
    tgi: Tgi, proxy: ProxyHandle, otlp: OtlpReceiver, loop_thread: LoopThread, tmp_path: Path
) -> None:
    """The upstream sends its next event only once the client has the last (`__gated__`)."""
    trace_id, headers = traced()
    client = InferenceClient(base_url=proxy.url, headers=headers)
    got = []
    for output in client.text_generation("__gated__ alice example.com", stream=True, details=True):
        got.append(output)
        if len(got) < 3:
            tgi.release(loop_thread.loop)
    assert [output.token.text for output in got] == ["alice", "@", "example.com"]
    assert got[-1].generated_text == ADDRESS and got[-1].details.finish_reason == "eos_token"  # type: ignore[union-attr]
    span = otlp.by_trace(trace_id).attributes
    assert span["lineage.output.labels"] == ["pii:email"] and "error.type" not in span, span
    assert edges(tmp_path / "lineage.db") == [("", CHECKPOINT, "pii:email", "allow")]


def test_an_error_in_a_stream_raises_and_is_recorded(proxy: ProxyHandle, otlp: OtlpReceiver) -> None:
    trace_id, headers = traced()
    client = InferenceClient(base_url=proxy.url, headers=headers)
    got = []
    with pytest.raises(GenerationError, match="CUDA out of memory"):
        for token in client.text_generation("__error__ alice example.com", stream=True):
            got.append(token)
    assert got == ["alice"]
    assert otlp.by_trace(trace_id).attributes["error.type"] == "upstream_error"


def test_a_chat_completion_is_read_as_an_openai_chat(tgi: Tgi, proxy: ProxyHandle, otlp: OtlpReceiver) -> None:
    """`chat_completion` posts to TGI's `/v1/chat/completions`, OpenAI's chat, whole and streamed."""
    trace_id, headers = traced()
    client = InferenceClient(base_url=proxy.url, headers=headers)
    reply = client.chat_completion([{"role": "user", "content": "alice example.com"}], max_tokens=8)
    assert reply.choices[0].message.content == ADDRESS and reply.model == MODEL_ID
    assert otlp.by_trace(trace_id).attributes["lineage.output.labels"] == ["pii:email"]
    chunks = list(client.chat_completion([{"role": "user", "content": "alice example.com"}], stream=True))
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == ADDRESS
    denied = InferenceClient(base_url=proxy.url, headers={"x-purpose": "ads"})
    with pytest.raises(HfHubHTTPError, match=DENIED.replace("(", r"\(").replace(")", r"\)")) as raised:
        denied.chat_completion([{"role": "user", "content": f"to {ADDRESS}"}])
    # OpenAI's path keeps OpenAI's error shape, TGI's own paths aside
    assert raised.value.response is not None and raised.value.response.json()["error"]["message"] == DENIED
    assert [path for path, _ in tgi.received] == ["/v1/chat/completions"] * 2


def test_a_dead_upstream_raises_with_the_proxys_reason(
    otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]
) -> None:
    dead = f"http://127.0.0.1:{dead_port()}"
    proxy = make_proxy(CONFIG, wait="probed", UPSTREAM=dead, OTLP=f"http://127.0.0.1:{otlp.port}")
    trace_id, headers = traced()
    with pytest.raises(TextGenerationError) as raised:
        InferenceClient(base_url=proxy.url, headers=headers).text_generation("hi")
    assert raised.value.__cause__.response.status_code == 502  # type: ignore[union-attr]
    assert "upstream" in str(raised.value), raised.value
    assert otlp.by_trace(trace_id).attributes["error.type"] == "upstream_unavailable"
