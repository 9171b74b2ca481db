"""A route's purposes bind its model's weights from the moment a reload adds (or changes) it: what the book the reload
replaced read of the server may not name the route's model (pulled since, and no route named it then), so until the
server's metadata answers a round of the new book, a call for another name there is refused as one whose checkpoint is
not known (503 `checkpoint_unknown`, retryable), as at start (tests/test_route_purposes_unread.py). Before 2026-12-05
such a call was forwarded for any purpose until a round answered: `llama3.2:latest` for ads after a reload added
`{model: llama3.2:3b, purposes: [care]}`, the same digest."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.harness import LoopThread, ProxyHandle, proxy_error, serving
from tests.servers.ollama import DIGEST, MODEL, TAGGED, Ollama
from tests.servers.otlp_receiver import OtlpReceiver

COPY = f"{MODEL}:3b"  # pulled after the proxy started: the same weights as `llama3.2:latest` (one digest)
HI = [{"role": "user", "content": "hi"}]

BEFORE = """
listen: {{http: "127.0.0.1:0"}}
upstreams:
  - {{name: up, url: "{url}", protocol: openai, discovery_interval_s: 3600}}
routes:
{routes}  - {{model: "*", upstream: up}}
policy: {{anonymous: allow}}
telemetry: {{exporter: otlp, endpoint: "http://127.0.0.1:{otlp}", protocol: grpc}}
"""
LIMITED = f'  - {{{{model: "{COPY}", upstream: up, purposes: [care]}}}}\n'


def _chat(proxy: ProxyHandle, model: str, purpose: str) -> httpx.Response:
    body = {"model": model, "messages": HI, "stream": False}
    return httpx.post(f"{proxy.url}/api/chat", json=body, headers={"x-purpose": purpose}, timeout=30)


def test_a_route_a_reload_adds_holds_its_weights_before_the_server_answers(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle], tmp_path: Path
) -> None:
    server = Ollama()
    with serving(loop_thread, server.app()) as url:
        proxy = make_proxy(BEFORE.format(url=url, otlp=otlp.port, routes=""))
        assert _chat(proxy, TAGGED, "ads").status_code == 200  # no route limits it yet
        server.tags[COPY] = DIGEST  # `ollama pull llama3.2:3b`: the same weights
        server.down.add("/v1/models")  # and the server's metadata does not answer the new book's round
        reloaded = tmp_path / "reloaded.yaml"
        reloaded.write_text(BEFORE.format(url=url, otlp=otlp.port, routes=LIMITED.format()))
        assert loop_thread.run(_reload(proxy, reloaded))
        book = proxy.process.book
        reply = _chat(proxy, TAGGED, "ads")
        assert reply.status_code == 503, reply.text  # was: 200, forwarded for ads to the route's weights
        error = proxy_error(reply)
        assert error["code"] == "checkpoint_unknown" and "route allows: care" in error["message"], error
        assert reply.headers["retry-after"] == "1"
        span = otlp.by_trace(reply.headers["x-trace-id"]).attributes
        assert span["lineage.decision"] == "deny" and span["lineage.rule"] == f"route:{COPY}", span
        assert len(server.received) == 1  # the call before the reload alone
        assert _chat(proxy, COPY, "care").status_code == 200  # the route's own name, for its purpose
        assert _chat(proxy, TAGGED, "care").status_code == 200
        server.down.clear()
        loop_thread.run(book.refresh(proxy.process.config.upstreams[0]))  # a round that answers whole
        assert not book.unheld
        reply = _chat(proxy, TAGGED, "ads")
        assert reply.status_code == 403 and proxy_error(reply)["code"] == "purpose_denied", reply.text
        assert len(server.received) == 3


def test_a_reload_that_keeps_the_route_keeps_what_was_read(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle], tmp_path: Path
) -> None:
    """A reload that leaves the limited route as it was (another route added) keeps what the book it replaced read:
    the alias is held to the route's purposes (403) at once, not waited for, its metadata down or not."""
    server = Ollama(tags={COPY: DIGEST})
    with serving(loop_thread, server.app()) as url:
        proxy = make_proxy(BEFORE.format(url=url, otlp=otlp.port, routes=LIMITED.format()))
        server.down.add("/v1/models")
        reloaded = tmp_path / "reloaded.yaml"
        other = '  - {model: "mistral", upstream: up}\n'
        reloaded.write_text(BEFORE.format(url=url, otlp=otlp.port, routes=LIMITED.format() + other))
        assert loop_thread.run(_reload(proxy, reloaded))
        assert not proxy.process.book.unheld
        reply = _chat(proxy, TAGGED, "ads")
        assert reply.status_code == 403 and proxy_error(reply)["code"] == "purpose_denied", reply.text
        assert server.received == []


async def _reload(proxy: ProxyHandle, path: Path) -> bool:
    """Reload `path`, and wait for the new book's first round to have been tried (answered or not)."""
    done = bool(proxy.process.reload(str(path)))
    await proxy.process.book.wait_probed()
    return done


TWO_ROUTES = """
listen: {{http: "127.0.0.1:0"}}
upstreams:
  - {{name: up, url: "{url}", protocol: openai}}
routes:
  - {{model: "{COPY}", upstream: up, purposes: [care]}}
  - {{model: "{TAGGED}", upstream: up, purposes: [care, research]}}
  - {{model: "{MISTRAL}", upstream: up, purposes: [care, research]}}
  - {{model: "*", upstream: up}}
policy: {{anonymous: allow}}
"""
MISTRAL = "mistral:latest"


def test_two_limited_routes_hold_a_route_s_own_name_to_the_others_until_known(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """Two purpose-limited routes naming two tags of one model's weights (one digest): once the metadata says so, a
    call for either name is held to both routes' purposes (the stricter, their intersection). Before it answers,
    which names are the same weights is not known: a route's own name is held to its route's purposes (`decide`) and
    refused, retryable, for a purpose another such route there forbids, as any other name is (before 2026-12-05 it
    went on for its own route's purposes, `llama3.2:latest` for research on weights whose `llama3.2:3b` route allows
    care alone)."""
    server = Ollama(tags={COPY: DIGEST, MISTRAL: "b" * 64}, down={"/v1/models"})
    with serving(loop_thread, server.app()) as url:
        config = TWO_ROUTES.format(url=url, COPY=COPY, TAGGED=TAGGED, MISTRAL=MISTRAL)
        proxy = make_proxy(config, wait="probed")
        book = proxy.process.book
        reply = _chat(proxy, TAGGED, "research")
        assert reply.status_code == 503, reply.text  # was: 200, forwarded (its own route allows research)
        error = proxy_error(reply)
        assert error["code"] == "checkpoint_unknown" and "route allows: care" in error["message"], error
        reply = _chat(proxy, MISTRAL, "research")  # may be the weights of the care route too, not known yet
        assert reply.status_code == 503 and proxy_error(reply)["code"] == "checkpoint_unknown", reply.text
        assert server.received == []
        assert _chat(proxy, TAGGED, "care").status_code == 200  # a purpose every route there allows
        server.down.clear()
        loop_thread.run(book.refresh(proxy.process.config.upstreams[0]))  # the metadata answers
        assert not book.unheld
        for name in (TAGGED, COPY):  # one weights: held to both routes, care alone
            reply = _chat(proxy, name, "research")
            assert reply.status_code == 403 and proxy_error(reply)["code"] == "purpose_denied", (name, reply.text)
            assert _chat(proxy, name, "care").status_code == 200
        assert _chat(proxy, MISTRAL, "research").status_code == 200  # other weights: its own route's purposes
        assert len(server.received) == 4


def test_a_second_reload_before_the_server_answers_keeps_the_route_unheld(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle], tmp_path: Path
) -> None:
    """A reload that keeps a route the reload before it added, before the server answered a round since, keeps it
    waiting for one: what the book read was read before the route was added either way (before 2026-12-05 the second
    book took the route as one read before, and `llama3.2:latest` was forwarded for ads for good while the metadata
    failed)."""
    server = Ollama()
    with serving(loop_thread, server.app()) as url:
        proxy = make_proxy(BEFORE.format(url=url, otlp=otlp.port, routes=""))
        server.tags[COPY] = DIGEST  # `ollama pull llama3.2:3b` after the proxy read its metadata
        server.down.add("/v1/models")
        reloaded = tmp_path / "reloaded.yaml"
        reloaded.write_text(BEFORE.format(url=url, otlp=otlp.port, routes=LIMITED.format()))
        assert loop_thread.run(_reload(proxy, reloaded))
        assert proxy.process.book.unheld
        other = '  - {model: "mistral", upstream: up}\n'  # a second reload, the limited route as it was
        reloaded.write_text(BEFORE.format(url=url, otlp=otlp.port, routes=LIMITED.format() + other))
        assert loop_thread.run(_reload(proxy, reloaded))
        reply = _chat(proxy, TAGGED, "ads")
        assert reply.status_code == 503, reply.text  # was: 200, forwarded for ads to the route's weights
        assert proxy_error(reply)["code"] == "checkpoint_unknown", reply.text
        assert server.received == []
        server.down.clear()
        loop_thread.run(proxy.process.book.refresh(proxy.process.config.upstreams[0]))
        assert not proxy.process.book.unheld
        reply = _chat(proxy, TAGGED, "ads")
        assert reply.status_code == 403 and proxy_error(reply)["code"] == "purpose_denied", reply.text
        assert server.received == []


def test_a_round_asked_for_while_discovery_s_round_is_out_begins_after_it(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle], tmp_path: Path
) -> None:
    """A round asked for (`CheckpointBook.refresh`) while the book's discovery is asking the same upstream begins once
    that round has ended, and what it reads is applied last. Before 2026-12-05 the two ran at once, each asking about
    the names waiting, and the second to answer raised KeyError on a name the first had answered (the reload test
    above failed so, now and then, when its `refresh` met a retry of the discovery's)."""
    server = Ollama()
    with serving(loop_thread, server.app()) as url:
        proxy = make_proxy(BEFORE.format(url=url, otlp=otlp.port, routes=""))
        server.tags[COPY] = DIGEST
        server.down.add("/v1/models")
        reloaded = tmp_path / "reloaded.yaml"
        reloaded.write_text(BEFORE.format(url=url, otlp=otlp.port, routes=LIMITED.format()))
        assert loop_thread.run(_reload(proxy, reloaded))
        book, upstream = proxy.process.book, proxy.process.config.upstreams[0]
        reply = _chat(proxy, TAGGED, "ads")  # refused: `llama3.2:latest` waits to be asked about
        assert reply.status_code == 503 and proxy_error(reply)["code"] == "checkpoint_unknown", reply.text
        assert not book.reachable[upstream.name]
        server.slow = True
        server.down.clear()
        loop_thread.run(server.asked.wait())  # the discovery's retry is out, held by the server

        async def ask() -> asyncio.Task[bool]:
            asked = asyncio.ensure_future(book.refresh(upstream))
            await asyncio.sleep(0)  # it has begun: has taken the names waiting (or waits for its turn)
            await server.let_through()  # the discovery's round answers first
            await book.wait_reachable()  # and is applied
            await server.let_through()  # then the round asked for
            return asked

        asked = loop_thread.run(ask())
        loop_thread.run(asyncio.wait_for(asked, 30))  # was: KeyError 'llama3.2:latest'
        server.slow = False
        assert book.reachable[upstream.name] and not book.unheld
        assert not any(task.done() for task in book._tasks)  # its discovery goes on
        reply = _chat(proxy, TAGGED, "ads")
        assert reply.status_code == 403 and proxy_error(reply)["code"] == "purpose_denied", reply.text
