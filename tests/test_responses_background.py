"""A Responses call answered before its output was written (`background: true`: the reply says `queued`, the
server writes the output later, where the proxy never sees it) leaves a stored reply whose output is unread: a
call that builds on it carries `scan:truncated`, as one building on a reply whose stream was cut short does."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest
from aiohttp import web

from tests.harness import serving
from tests.test_responses_item_references import CONFIG  # a zone on scan:truncated: unread content refused


def background_server(received: list[dict[str, Any]]) -> web.Application:
    """The Responses API as vLLM serves `background: true`: `queued` at once, the output written later (never,
    here); any other call answered whole."""

    async def respond(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        received.append(body)
        reply: dict[str, Any] = {"id": f"resp_{len(received)}", "object": "response", "created_at": 1,
                                 "model": body["model"], "output": [], "usage": None}  # fmt: skip
        if body.get("background"):
            return web.json_response({**reply, "status": "queued"})
        item = {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": "done", "annotations": []}]}  # fmt: skip
        return web.json_response({**reply, "status": "completed", "output": [item]})

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": []})

    app = web.Application()
    app.router.add_post("/v1/responses", respond)
    app.router.add_get("/v1/models", models)
    return app


def test_a_call_building_on_a_background_reply_carries_its_unread_output(loop_thread, make_proxy) -> None:  # type: ignore[no-untyped-def]
    received: list[dict[str, Any]] = []
    with serving(loop_thread, background_server(received)) as upstream:
        proxy = make_proxy(CONFIG, UPSTREAM=upstream)
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=10)
        queued = client.responses.create(model="m", input="draft the customer letter", background=True)
        assert queued.status == "queued"
        with pytest.raises(openai.PermissionDeniedError) as caught:
            client.responses.create(model="m", previous_response_id=queued.id, input="now a promo for them",
                                    extra_headers={"x-purpose": "ads"})  # fmt: skip
        assert "scan:truncated" in caught.value.message
        assert len(received) == 1
        # a reply seen whole is read: building on it carries only what it held
        whole = client.responses.create(model="m", input="hello")
        reply = client.responses.with_raw_response.create(model="m", previous_response_id=whole.id, input="go on",
                                                          extra_headers={"x-purpose": "ads"})  # fmt: skip
        assert reply.http_response.headers["x-data-labels"] == ""
