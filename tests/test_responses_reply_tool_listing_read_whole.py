"""A Responses reply's own `mcp_list_tools` item (the tools an MCP server listed when OpenAI called it for the model:
each `name`, `description`, `input_schema`, `annotations`) is read whole, keys and numbers too, as the same item in a
request's input is, in a whole reply and a streamed one's `response.output_item.done` alike: a schema's property named
ana@example.org labels the reply. Pinned (helper fields16, 2026-12-07): it held on main already, the reply's item
reaching `user_strings` through `OutputText.aside_strings`, where an object of a `_TOOL_LISTINGS` type has its `tools`
read by `rendered_strings`; with that test removed (`"role" in item` alone), 4 of 5 here fail (the control, an address
in a tool's description, a string, passes so too)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from aiohttp import web

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.flow import Outcome
from proxy.protocols.openai import ResponsesObserver
from tests.harness import serving
from tests.ingress.test_model_output_labels import CONFIG, stored_output_labels

OUT = "ana@example.org"


def _listing(schema_key: str, description: str = "Look a name up") -> dict[str, Any]:
    tool = {"name": "lookup", "description": description, "annotations": {"read_only": True},
            "input_schema": {"type": "object", "properties": {schema_key: {"type": "string"}}}}  # fmt: skip
    return {"type": "mcp_list_tools", "id": "mcpl_1", "server_label": "crm", "tools": [tool]}


MESSAGE = {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
           "content": [{"type": "output_text", "text": "ok", "annotations": []}]}  # fmt: skip


def _reply(listing: dict[str, Any]) -> dict[str, Any]:
    return {"id": "resp_1", "object": "response", "created_at": 1, "model": "m", "status": "completed",
            "output": [listing, MESSAGE], "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2}}  # fmt: skip


def _events(listing: dict[str, Any]) -> list[dict[str, Any]]:
    reply = _reply(listing)
    started = {**reply, "status": "in_progress", "output": [], "usage": None}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": started},
        {"type": "response.output_item.added", "output_index": 0, "item": {**listing, "tools": []}},
        {"type": "response.mcp_list_tools.in_progress", "output_index": 0, "item_id": "mcpl_1"},
        {"type": "response.mcp_list_tools.completed", "output_index": 0, "item_id": "mcpl_1"},
        {"type": "response.output_item.done", "output_index": 0, "item": listing},
        {"type": "response.output_item.added", "output_index": 1, "item": {**MESSAGE, "content": []}},
        {"type": "response.output_text.delta", "output_index": 1, "content_index": 0, "item_id": "msg_1",
         "delta": "ok", "logprobs": []},
        {"type": "response.output_item.done", "output_index": 1, "item": MESSAGE},
        {"type": "response.completed", "response": reply},
    ]  # fmt: skip
    return [{**event, "sequence_number": number} for number, event in enumerate(events)]


class Engine:
    """An upstream whose Responses reply lists an MCP server's tools, whole or streamed as OpenAI streams it."""

    def __init__(self, listing: dict[str, Any]) -> None:
        self.listing = listing

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/responses", self.respond)
        return app

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "vllm"}]})

    async def respond(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if not body.get("stream"):
            return web.json_response(_reply(self.listing))
        reply = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await reply.prepare(request)
        for event in _events(self.listing):
            await reply.write(f"event: {event['type']}\ndata: ".encode() + orjson.dumps(event) + b"\n\n")
        await reply.write_eof()
        return reply


LISTINGS = {"a property named so": _listing(OUT), "a description (control)": _listing("name", f"Mail {OUT}")}


@pytest.fixture(params=list(LISTINGS), ids=list(LISTINGS))
def proxied(request, loop_thread, make_proxy) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    with serving(loop_thread, Engine(LISTINGS[request.param]).app()) as upstream:
        yield make_proxy(CONFIG, UPSTREAM=upstream)


def test_the_listing_labels_the_reply_whole_and_streamed(proxied, loop_thread, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client = openai.OpenAI(base_url=f"{proxied.url}/v1", api_key="unused", max_retries=0, timeout=10)
    whole = client.responses.with_raw_response.create(model="m", input="hello")
    assert whole.parse().output[0].type == "mcp_list_tools"
    assert whole.http_response.headers["x-data-labels"] == "pii:email"  # (before, for the property: "")
    with client.responses.create(model="m", input="hello", stream=True,
                                 extra_headers={"x-data-labels": "flow-streamed"}) as stream:  # fmt: skip
        kinds = [event.type for event in stream]
    assert "response.output_item.done" in kinds and kinds[-1] == "response.completed"
    loop_thread.run(proxied.process.runtime.sinks.flush())
    assert stored_output_labels(tmp_path / "lineage.db")["flow-streamed"] == ["flow-streamed", "pii:email"]


@pytest.mark.parametrize("size", [1, 7, 4096])
def test_the_observer_reads_it_in_any_pieces(size: int) -> None:
    """The stream fed to the observer in pieces of `size` bytes: labelled the same."""
    raw = b"".join(b"data: " + orjson.dumps(event) + b"\n\n" for event in _events(_listing(OUT)))
    outcome = Outcome(started_ns=1)
    observer = ResponsesObserver(outcome, Detectors((DetectorSpec("email"),), 100_000), False)
    observer.head(200, lambda name: "text/event-stream" if name == "content-type" else None)
    for at in range(0, len(raw), size):
        observer.chunk(raw[at : at + size])
    observer.finish()
    assert outcome.output_detected == {"pii:email"}
