"""A chat `file` content part's `filename` (`{"type": "file", "file": {"filename": ..., "file_data": ...}}`) is text a
server may show the model, and the Responses API's `input_file` carries the same name beside its data, where it was
read. The chat part's name was skipped with its data (`file` is a binary payload), so `alice@example.com.pdf` went
through for a purpose its zone forbids, while the same file sent as an `input_file` was refused."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from proxy.protocols.openai import read_request
from tests.harness import EMAIL_ZONE, proxy_error
from tests.servers.vllm_like import SERVED

CONFIG = (
    """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: vllm
    url: ${UPSTREAM}
routes:
  - model: "*"
    upstream: vllm
policy:
  anonymous: allow
  default_purpose: assistant
"""
    + EMAIL_ZONE
)

FILE = {"filename": "alice@example.com.pdf", "file_data": "data:application/pdf;base64,JVBERi0xLjQK"}


def test_a_chat_file_parts_name_is_read_as_an_input_files_is() -> None:
    chat = {"model": "m", "messages": [{"role": "user", "content": [{"type": "file", "file": FILE}]}]}
    responses = {"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", **FILE}]}]}
    assert "alice@example.com.pdf" in read_request("chat", orjson.dumps(chat)).texts
    assert "alice@example.com.pdf" in read_request("responses", orjson.dumps(responses)).texts


def test_a_chat_file_parts_id_is_not_read_as_text_and_its_data_is_read_decoded() -> None:
    """The id names a stored file (unread: tests/test_stored_content_by_id.py), not text; the data sent whole is read
    as the text it decodes to (tests/test_file_sent_whole.py: before 2026-12-04 it was not read at all)."""
    file = {"file_id": "file-bob@example.com", "file_data": "data:text/plain;base64,YWxpY2VAZXhhbXBsZS5jb20="}
    chat = {"model": "m", "messages": [{"role": "user", "content": [{"type": "file", "file": file}]}]}
    assert read_request("chat", orjson.dumps(chat)).texts == ("alice@example.com",)


def test_a_file_named_by_an_address_is_refused_where_its_zone_forbids_the_purpose(vllm: Any, make_proxy: Any) -> None:
    server, url = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=url)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-unused", max_retries=0)
    messages: Any = [
        {"role": "user", "content": [{"type": "text", "text": "Summarise this"}, {"type": "file", "file": FILE}]}
    ]
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.chat.completions.create(model=SERVED, messages=messages, extra_headers={"x-purpose": "marketing"})
    assert proxy_error(refused.value.response)["code"] == "purpose_denied"
    assert not server.data_requests()  # nothing reached the model
    allowed = client.chat.completions.with_raw_response.create(model=SERVED, messages=messages)
    assert "pii:email" in allowed.http_response.headers["x-data-labels"].split(",")
