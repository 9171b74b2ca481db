"""Ollama's tags of one digest (`GET /api/tags`) are one set of weights, held to a route's purposes of either
(tests/test_route_purposes_aliases.py drives it through the proxy). Here the checkpoint book's rounds, one at a time:
a tag made after the full round that read the route's model (`ollama cp`) is its twin from the round that reads it,
and `/api/tags` failing keeps the twins read before (the upstream ready, its metadata incomplete), never dropping
them for a round."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from proxy import checkpoints
from proxy.config import parse
from proxy.protocols import Fetch

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: up, url: "http://127.0.0.1:1", protocol: openai}]
routes:
  - {model: "llama3.2:3b", upstream: up, purposes: [care]}
  - {model: "*", upstream: up}
"""
DIGEST = "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72"


class Tags:
    """An Ollama's metadata: `/v1/models` and `/api/tags` of `names` (name -> digest); `failing`: what `/api/tags`
    raises instead of answering."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        self.failing: BaseException | None = None

    async def get_json(self, _: Any, path: str) -> Any:
        if path == "/v1/models":
            data = [{"id": name, "object": "model", "created": 1, "owned_by": "library"} for name in self.names]
            return {"object": "list", "data": data}
        if path == "/api/tags":
            if self.failing is not None:
                raise self.failing
            return {"models": [{"name": name, "model": name, "digest": digest} for name, digest in self.names.items()]}
        raise checkpoints.MetadataStatus(404, path)


def _book(tags: Tags) -> tuple[checkpoints.CheckpointBook, Any]:
    config = parse(CONFIG, source="t.yaml")
    upstream = config.upstreams[0]
    book = checkpoints.CheckpointBook(
        config.upstreams,
        Fetch(tags.get_json),
        {"up": {"llama3.2:3b"}},
        limits=[("up", "llama3.2:3b", frozenset({"care"}))],
    )
    asyncio.run(book.refresh(upstream))  # the first round: full
    return book, upstream


def _held(book: checkpoints.CheckpointBook, upstream: Any, name: str) -> bool:
    found = book.resolve(upstream, name, learn=False)
    return found is not None and bool(book.held.get("up", {}).get(found.name))


def test_a_tag_made_after_the_full_round_is_held_from_the_round_that_reads_it() -> None:
    """`ollama cp llama3.2:3b mine:x` after the full round: a call for `mine:x` asks about it (a round of that name
    alone), which lists it with the route's digest. It was not held until the next full round (a discovery interval
    later): `_hold` read the twins of the route's model's catalog (the full round's), and `mine:x` resolved through
    the newer one, its own checkpoint held by nothing: forwarded for any purpose meanwhile."""
    tags = Tags({"llama3.2:3b": DIGEST, "llama3.2:latest": DIGEST, "mistral:latest": "b" * 64})
    book, upstream = _book(tags)
    assert _held(book, upstream, "llama3.2:3b") and _held(book, upstream, "llama3.2:latest")
    assert not _held(book, upstream, "mistral:latest")

    tags.names["mine:x"] = DIGEST  # (ollama cp)
    tags.names["other:x"] = "c" * 64
    assert book.want(upstream, "mine:x", "app") and book.want(upstream, "other:x", "app")
    asyncio.run(book.refresh(upstream))  # a round of the names waiting only
    assert book.resolve(upstream, "mine:x", learn=False) is not None
    assert _held(book, upstream, "mine:x")  # was: not held (a different catalog's twin)
    assert not _held(book, upstream, "other:x") and not _held(book, upstream, "mistral:latest")


@pytest.mark.parametrize(
    "failing",
    [checkpoints.MetadataStatus(500, "/api/tags"), TimeoutError(), ConnectionResetError("reset by peer")],
    ids=["500", "timeout", "reset"],
)
def test_api_tags_failing_keeps_the_twins_read_before(failing: BaseException, caplog: pytest.LogCaptureFixture) -> None:
    """`/api/tags` failing in a later round (a 5xx, a timeout, a reset) said the names were each their own weights:
    the round's catalog had no twins, so `llama3.2:latest` was forwarded for any purpose until a round read them
    again (a discovery interval later: the upstream was whole). Now the round is incomplete, as llama-server's
    `/lora-adapters` failing is: what was read before stays (its twins held), the upstream ready, asked again soon."""
    tags = Tags({"llama3.2:3b": DIGEST, "llama3.2:latest": DIGEST})
    book, upstream = _book(tags)
    assert _held(book, upstream, "llama3.2:latest") and not book.incomplete["up"]

    tags.failing = failing
    asyncio.run(book.refresh(upstream))
    assert book.reachable["up"] and book.incomplete["up"]
    assert _held(book, upstream, "llama3.2:latest")  # was: not held (no twins in the round's catalog)
    assert any("/api/tags" in r.getMessage() and "could not be read" in r.getMessage() for r in caplog.records)

    tags.failing = None  # read whole again
    asyncio.run(book.refresh(upstream))
    assert book.reachable["up"] and not book.incomplete["up"] and _held(book, upstream, "llama3.2:latest")


@pytest.mark.parametrize("status", [404, 401, 403])
def test_api_tags_absent_or_gated_is_not_incomplete(status: int) -> None:
    """A server whose listing looks like Ollama's and that has no `/api/tags` (404), or a gateway letting `/v1/`
    through only (401/403): every name its own weights, as its model list says; the upstream whole (not asked
    again and again)."""
    tags = Tags({"llama3.2:3b": DIGEST, "llama3.2:latest": DIGEST})
    tags.failing = checkpoints.MetadataStatus(status, "/api/tags")
    book, upstream = _book(tags)
    assert book.reachable["up"] and not book.incomplete["up"]
    assert _held(book, upstream, "llama3.2:3b") and not _held(book, upstream, "llama3.2:latest")


def test_api_tags_failing_in_the_first_round_says_what_was_not_read() -> None:
    """Nothing read before: every name's checkpoint is not known (never each name its own weights, which would let a
    twin through for any purpose until the next full round), and a call refused for it is told what was not read."""
    tags = Tags({"llama3.2:3b": DIGEST, "llama3.2:latest": DIGEST})
    tags.failing = checkpoints.MetadataStatus(502, "/api/tags")
    book, upstream = _book(tags)
    assert book.reachable["up"] and book.incomplete["up"]
    assert book.resolve(upstream, "llama3.2:latest", learn=False) is None
    assert "not its tags (/api/tags)" in book.why_unknown(upstream, "llama3.2:latest", "app")
