"""A chat request's tool call whose `arguments` is a JSON object, not a string of it, is read whole, keys and numbers
included, as a tool call's `input` is. llama.cpp's server takes such arguments and writes them into the prompt as
JSON (`common_chat_msgs_parse_oaicompat`: `args.is_string() ? args : args.dump()`), where the proxy read them as a
message's own strings: a number (an account, a card) was not read, nor a string under a key a message uses for framing
(`url`, `type`, `format`, `status`), so an address or an account number there reached the model for any purpose."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import openai
import orjson
import pytest

from proxy.protocols.openai import read_request
from tests.harness import proxy_error
from tests.test_unsized_replies_output import CHAT, RawUpstream, Reply

ACCOUNT = 123456789012
CONFIG = r"""
listen: {http: 127.0.0.1:0}
upstreams:
  - name: engine
    url: ${UPSTREAM}
routes:
  - model: "*"
    upstream: engine
zones:
  - name: private
    labels: [pii:email, pii:account]
    allow_purposes: [billing]
policy: {anonymous: allow}
detectors: [email, {name: account, pattern: '(?<![0-9])[0-9]{12}(?![0-9])'}]
telemetry:
  exporter: none
lineage:
  store: ${STORE}
"""
ARGUMENTS = {
    "address": {"url": "bob@example.org", "type": "home"},
    "account": {"to": ACCOUNT, "memo": "rent"},
}


def messages(arguments: Any) -> list[dict[str, Any]]:
    call = {"id": "call_1", "type": "function", "function": {"name": "pay", "arguments": arguments}}
    return [
        {"role": "user", "content": "pay the rent"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "done"},
    ]


LABELS = {"address": "pii:email", "account": "pii:account"}
READ = {"address": ("url", "bob@example.org", "type", "home"), "account": ("to", str(ACCOUNT), "memo", "rent")}


@pytest.mark.parametrize("kind", list(ARGUMENTS))
def test_arguments_as_an_object_are_read_whole(kind: str) -> None:
    body = orjson.dumps({"model": "m", "messages": messages(ARGUMENTS[kind])})
    texts = read_request("chat", body).texts
    at = texts.index(READ[kind][0])
    assert texts[at : at + 4] == READ[kind], texts  # keys and values, numbers too, as llama.cpp writes them


def test_arguments_as_a_string_are_read_as_before() -> None:
    body = orjson.dumps({"model": "m", "messages": messages('{"url": "x"}')})
    assert read_request("chat", body).texts == ("pay the rent", "call_1", "pay", '{"url": "x"}', "call_1", "done")


@pytest.mark.parametrize("kind", list(ARGUMENTS))
def test_through_the_proxy_they_are_refused_for_a_purpose_the_zone_does_not_allow(
    make_proxy: Any, loop_thread: Any, kind: str
) -> None:
    upstream = RawUpstream()

    async def start() -> asyncio.Server:
        return await asyncio.start_server(upstream.serve, "127.0.0.1", 0)

    server = loop_thread.run(start())
    try:
        proxy = make_proxy(CONFIG, UPSTREAM=f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
        upstream.reply = Reply([orjson.dumps(CHAT)], framing="sized")
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0, timeout=30)
        try:
            with pytest.raises(openai.PermissionDeniedError) as refused:
                client.chat.completions.create(model="m", messages=messages(ARGUMENTS[kind]),  # type: ignore[arg-type]
                                               extra_headers={"x-purpose": "ads"})  # fmt: skip
        finally:
            client.close()
        assert refused.value.status_code == 403 and LABELS[kind] in proxy_error(refused.value.response)["message"]
        assert upstream.reply is not None  # never forwarded
        allowed = httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": "m", "messages": messages(ARGUMENTS[kind])},
                             headers={"x-purpose": "billing"}, timeout=30)  # fmt: skip
        assert allowed.status_code == 200 and upstream.reply is None
    finally:

        async def stop() -> None:
            server.close()

        loop_thread.run(stop())
