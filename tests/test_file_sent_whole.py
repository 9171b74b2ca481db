"""A file sent whole in a call (a chat `file` part's `file.file_data`, a Responses `input_file`'s `file_data`: a data
URL, `data:text/plain;base64,...`, or bare base64) was never read: the chat part was skipped as a binary payload, the
`input_file`'s base64 read as it stands, where no detector finds anything. A server that takes such a file reads its
text to the model (OpenAI reads a PDF's text; KServe hands a custom model the part as sent), so a text file holding
`alice@example.com` reached the model for a purpose its zone forbids. The file is read now, decoded, as text when it is
text; a PDF, whose text only a parser finds, or binary data, is unread: `scan:truncated`. vLLM and llama-cpp-python
refuse such a part (a 400; a 500 holding its validation errors, shown here on the real server)."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import openai
import pytest

from tests.configs import ONE_UPSTREAM
from tests.servers.vllm_like import SERVED

CONFIG = (
    ONE_UPSTREAM
    + """
zones:
  - name: personal
    labels: ["pii:email"]
    allow_purposes: [assistant]
  - name: unread
    labels: [scan:truncated]
    allow_purposes: [assistant]
detectors: [email]
"""
)
ADDRESS = "alice@example.com"
TEXT = base64.b64encode(f"Minutes: write to {ADDRESS} by Friday.\n".encode()).decode()
PDF = base64.b64encode(b"%PDF-1.4\n1 0 obj <</Length 44>> stream\nBT <616c696365> Tj ET\nendstream\n").decode()
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR").decode()


def _chat(client: openai.OpenAI, data: str, purpose: str) -> Any:
    part = {"type": "file", "file": {"filename": "minutes.txt", "file_data": data}}
    messages: Any = [{"role": "user", "content": [{"type": "text", "text": "Summarise it"}, part]}]
    return client.chat.completions.with_raw_response.create(
        model=SERVED, messages=messages, extra_headers={"x-purpose": purpose}
    )


def _responses(client: openai.OpenAI, data: str, purpose: str) -> Any:
    part = {"type": "input_file", "filename": "minutes.txt", "file_data": data}
    given: Any = [{"role": "user", "content": [{"type": "input_text", "text": "Summarise it"}, part]}]
    return client.responses.with_raw_response.create(model=SERVED, input=given, extra_headers={"x-purpose": purpose})


CALLS = {"chat file part": _chat, "responses input_file": _responses}
# each file as sent, and what it is read as
FILES = {
    "text as a data URL": (f"data:text/plain;base64,{TEXT}", "pii:email"),
    "text as bare base64": (TEXT, "pii:email"),
    "text percent-encoded": (f"data:text/plain,write%20to%20{ADDRESS.replace('@', '%40')}", "pii:email"),
    "a PDF": (f"data:application/pdf;base64,{PDF}", "scan:truncated"),
    "an image": (f"data:image/png;base64,{PNG}", "scan:truncated"),
    "not base64": ("data:text/plain;base64,YWxpY2U", "scan:truncated"),
    # a data URL's `base64` in any case, or with a parameter after it, says base64 as `;base64` does (WHATWG's reading,
    # a custom model's `b64decode`): before 2026-12-04 its base64 was read as the text it stands as, unlabelled
    "text as a data URL saying BASE64": (f"data:text/plain;BASE64,{TEXT}", "pii:email"),
    "text as a data URL with base64 then a name": (f"data:text/plain;base64;name=minutes.txt,{TEXT}", "pii:email"),
    # a byte that is not UTF-8 read as U+FFFD broke the address, which a server dropping that byte reads whole: some
    # of the file unread, `scan:truncated` (before: read broken, found nothing, unlabelled)
    "text with a byte not UTF-8": (
        base64.b64encode(b"write to alice\xff@example.com").decode(),
        "scan:truncated",
    ),
}


@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("file", list(FILES))
def test_a_file_sent_whole_is_read(vllm, make_proxy, call: str, file: str) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=10)
    data, label = FILES[file]
    # before: forwarded unlabelled for `ads`
    with pytest.raises(openai.PermissionDeniedError) as caught:
        CALLS[call](client, data, "ads")
    assert label in caught.value.message
    assert server.data_requests() == []
    reply = CALLS[call](client, data, "assistant")
    assert reply.http_response.headers["x-data-labels"] == label
    assert len(server.data_requests()) == 1


def test_a_text_file_with_nothing_found_is_read_and_passes(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """A text file holding nothing the detectors find is read, found clean: no `scan:truncated` for it."""
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=10)
    clean = base64.b64encode(b"Minutes: nothing to report.\n").decode()
    for call in CALLS.values():
        assert call(client, f"data:text/plain;base64,{clean}", "ads").http_response.headers["x-data-labels"] == ""
    assert len(server.data_requests()) == 2


@pytest.mark.realserver
def test_llama_cpp_python_refuses_a_file_part(llama: str) -> None:
    """The evidence that llama-cpp-python reads no file part: its request model has none (a part is text or an
    image), so it refuses the call (a 500 holding the validation errors) rather than reading the file, as vLLM does
    (`Unsupported chat content part type: 'file'`, 400)."""
    part = {"type": "file", "file": {"filename": "minutes.txt", "file_data": f"data:text/plain;base64,{TEXT}"}}
    body = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "Summarise it"}, part]}]}
    refused = httpx.post(f"{llama}/v1/chat/completions", json=body, timeout=120)
    assert refused.status_code == 500 and "Input should be 'text'" in refused.text, refused.text
