"""An Ollama generate's own prompt template (`/api/generate`'s `template`) is a program Ollama runs to write the prompt:
it parses it with Go's text/template and runs it over the call's system prompt and prompt (`GenerateHandler`:
`template.Parse(req.Template)`, then `tmpl.Execute`), so it prints text that stands nowhere in the request.
`{{ range .Messages }}{{ .Content }}{{ end }}` runs a `system` of `alice@` and a `prompt` of `example.com` together,
the address the model reads; `{{ printf "%s%s" "alice@" "example.com" }}` joins its own strings. Its literal text is
read as any string is, but what it prints cannot be read without running it: a call carrying one is labelled
`scan:truncated`, as vLLM's `chat_template` is, so a zone naming that label decides it. Before, the template was read as
text alone, and through the `ollama` client such a call was forwarded for a purpose the zone of addresses refuses."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest
from ollama import Client, ResponseError

from proxy.protocols.ollama import ADAPTER, read_request
from tests import test_ollama_native as native
from tests.harness import ProxyHandle, traced
from tests.servers.ollama import MODEL, Ollama
from tests.servers.otlp_receiver import OtlpReceiver
from tests.test_ollama_native import CONFIG

ollama = native.ollama  # (the Ollama-like server, its calls kept in `received`)

# the zone of addresses holds unread content too, as README's "Put `scan:truncated` in a zone" says
ZONED = CONFIG.replace('labels: ["pii:email"]', 'labels: ["pii:email", "scan:truncated"]')
JOINED = "{{ range .Messages }}{{ .Content }}{{ end }}"  # the system prompt and the prompt, nothing between
PRINTED = '{{ printf "%s%s" "alice@" "example.com" }}{{ .Prompt }}'  # strings of its own, joined
GENERATE = ADAPTER.match("POST", "/api/generate")
CHAT = ADAPTER.match("POST", "/api/chat")


@pytest.fixture
def proxy(ollama: Ollama, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]) -> ProxyHandle:
    return make_proxy(ZONED, wait="probed", UPSTREAM=ollama.url, OTLP=f"http://127.0.0.1:{otlp.port}")


@pytest.mark.parametrize("template", [JOINED, PRINTED], ids=["joined", "printed"])
def test_a_generate_with_its_own_template_is_refused_where_the_zone_refuses_unread_content(
    ollama: Ollama, proxy: ProxyHandle, template: str
) -> None:
    """For `ads`, which the zone does not allow, the call with its template is refused before anything reaches
    Ollama, in Ollama's error shape, the label named; the same texts without one go through (nothing in them is an
    address on its own)."""
    client = Client(host=proxy.url, headers={"x-purpose": "ads"})
    with pytest.raises(ResponseError) as refused:
        client.generate(MODEL, "example.com", system="alice@", template=template)
    assert refused.value.status_code == 403 and "scan:truncated" in refused.value.error, refused.value.error
    assert ollama.received == []  # nothing reached the model
    answer = client.generate(MODEL, "example.com", system="alice@")
    assert answer.done and [path for path, _ in ollama.received] == ["/api/generate"]


def test_an_allowed_call_with_its_own_template_is_forwarded_as_it_came_and_recorded_unread(
    ollama: Ollama, proxy: ProxyHandle, otlp: OtlpReceiver
) -> None:
    trace_id, headers = traced(**{"x-purpose": "care"})
    answer = Client(host=proxy.url, headers=headers).generate(MODEL, "example.com", system="alice@", template=JOINED)
    assert answer.done
    [(path, body)] = ollama.received
    assert path == "/api/generate" and orjson.loads(body)["template"] == JOINED
    span = otlp.by_trace(trace_id).attributes
    assert span["lineage.decision"] == "allow" and span["lineage.input.labels"] == ["scan:truncated"], span


@pytest.mark.parametrize(
    "body",
    [
        {"model": MODEL, "prompt": "hi", "template": JOINED},
        {"model": MODEL, "prompt": "hi", "suffix": "end", "template": "{{ .Prompt }}{{ .Suffix }}"},
        {"model": MODEL, "prompt": "hi", "raw": True, "template": JOINED},  # (Ollama refuses it, 400)
    ],
    ids=["template", "with-suffix", "raw"],
)
def test_a_generate_s_own_template_is_content_the_proxy_cannot_read(body: dict[str, object]) -> None:
    assert GENERATE is not None and read_request(GENERATE, orjson.dumps(body)).unscanned


@pytest.mark.parametrize(
    "body",
    [
        {"model": MODEL, "prompt": "hi"},
        {"model": MODEL, "prompt": "hi", "template": ""},  # (Ollama then runs the model's own)
        {"model": MODEL, "prompt": "hi", "template": None},
    ],
    ids=["none", "empty", "null"],
)
def test_without_a_template_of_its_own_a_generate_is_read_as_before(body: dict[str, object]) -> None:
    assert GENERATE is not None and not read_request(GENERATE, orjson.dumps(body)).unscanned


def test_a_chat_s_template_key_is_no_template() -> None:
    """Ollama's chat request has no `template` (Go ignores the key there): read as the caller's text, no more."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "template": JOINED}
    assert CHAT is not None
    request = read_request(CHAT, orjson.dumps(body))
    assert not request.unscanned and JOINED in request.texts


def test_its_literal_text_is_read_still() -> None:
    assert GENERATE is not None
    request = read_request(GENERATE, orjson.dumps({"model": MODEL, "prompt": "hi", "template": "to bob@example.org"}))
    assert "to bob@example.org" in request.texts
