"""The demo model echoes what it was sent, for text completions (`prompt`) as for chat (`messages`)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from proxy.demo_model import MODEL, make_app


def post(path: str, body: dict[str, Any]) -> tuple[int, bytes]:
    async def go() -> tuple[int, bytes]:
        async with TestClient(TestServer(make_app())) as client:
            response = await client.post(path, json=body)
            return response.status, await response.read()

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("prompt", "said"),
    [("Say hello", "Say hello"), (["Say", "hello"], "Say hello"), ([1, 2, 3], ""), (None, "")],
    ids=["string", "list of strings", "token ids", "none"],
)
def test_a_text_completion_echoes_its_prompt(prompt: object, said: str) -> None:
    status, body = post("/v1/completions", {"model": MODEL, "prompt": prompt})
    assert status == 200
    assert orjson.loads(body)["choices"][0]["text"] == f"You said: {said}"


def test_a_streamed_text_completion_echoes_its_prompt() -> None:
    status, body = post("/v1/completions", {"model": MODEL, "prompt": "Say hello", "stream": True})
    assert status == 200
    events = [orjson.loads(line[6:]) for line in body.split(b"\n") if line.startswith(b"data: {")]
    assert "".join(event["choices"][0]["text"] for event in events) == "You said: Say hello"


@pytest.mark.parametrize(
    "content", ["hi there", [{"type": "text", "text": "hi"}, {"type": "text", "text": "there"}]], ids=["text", "parts"]
)
def test_a_chat_echoes_the_last_user_message(content: object) -> None:
    messages = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"},
                {"role": "user", "content": content}]  # fmt: skip
    status, body = post("/v1/chat/completions", {"model": MODEL, "messages": messages})
    assert status == 200
    assert orjson.loads(body)["choices"][0]["message"]["content"] == "You said: hi there"
