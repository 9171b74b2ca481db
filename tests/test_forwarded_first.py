"""The request goes upstream first; what only the record needs is done while the upstream computes.

`Exchange.admit(deferred=True)` (the HTTP ingress) decides the call and leaves the input's digest, its captured
content and the reply's observer to `Exchange.forwarded()`, which the pool calls once
the request is handed to the upstream's transport (`sent`). Whatever way the call ends, what is recorded is
what a call admitted without deferring records.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.config import Upstream, parse
from proxy.errors import Overloaded, ProxyError, UpstreamUnavailable
from proxy.exchange import CLIENT_GONE, Exchange
from proxy.flow import UPSTREAM, Call, Checkpoint
from proxy.pipeline import Pipeline
from proxy.protocols import text_digest
from proxy.protocols.openai import Adapter as OpenAI
from proxy.protocols.openai import ServedModels
from proxy.transport.pool import UpstreamPool
from tests.harness import offline_pipeline
from tests.record.test_sinks import Sink

CONFIG = """
listen: {{http: 127.0.0.1:8080}}
upstreams: [{{name: u, url: http://127.0.0.1:1, protocol: openai, checkpoint: org/weights-7b}}]
routes: [{{model: "*", upstream: u}}]
policy: {{anonymous: allow, default_purpose: assistant}}
zones: [{{name: no-ads, labels: [user-data], allow_purposes: [assistant]}}]
detectors: [email]
telemetry: {{exporter: otlp, endpoint: "http://127.0.0.1:1", capture_content: true}}
lineage: {{store: {store}}}
"""
BODY = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "mail ana@example.org"},
                                                {"role": "user", "content": "thanks"}]})  # fmt: skip


def pipeline(tmp_path: Path, pinned: bool = True) -> Pipeline:
    text = CONFIG if pinned else CONFIG.replace(", checkpoint: org/weights-7b", "")
    return offline_pipeline(parse(text.format(store=tmp_path / "lineage.db")))


def exchange(pipe: Pipeline) -> Exchange:
    adapter = OpenAI()
    target = adapter.match("POST", "/v1/chat/completions")
    assert target is not None
    sampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"  # content is captured for sampled calls
    return Exchange(pipe, adapter, target, pipe.trace({"traceparent": sampled}.get))


def admitted(pipe: Pipeline, deferred: bool, **headers: str) -> tuple[Exchange, Upstream]:
    ex = exchange(pipe)
    return ex, ex.admit(BODY, {k.replace("_", "-"): v for k, v in headers.items()}.get, (), deferred=deferred)


def recorded(ex: Exchange) -> tuple[Any, ...]:
    """What the records of a call hold of what `admit` and `forwarded` do: digest, content, checkpoint, whether
    observed."""
    call = ex.call
    assert call is not None
    outcome = ex.outcome
    return (call.input_digest, call.content, outcome.provider, outcome.checkpoint, outcome.checkpoint_source,
            outcome.checkpoint_parent, ex.observes, ex.wants_first_chunk, ex.lineage_headers()[1:])  # fmt: skip


def test_admit_deferred_leaves_the_records_fields_to_forwarded_which_makes_them_the_same(tmp_path: Path) -> None:
    pipe = pipeline(tmp_path)
    now, _ = admitted(pipe, deferred=False)
    later, upstream = admitted(pipe, deferred=True)
    assert upstream.name == "u" and later.observes  # known before the request goes: Accept-Encoding: identity
    call = later.call
    assert isinstance(call, Call) and call.input_digest is None and call.content == ()  # not yet: after the send
    assert later.decision is not None and later.decision.action == "allow"
    assert later.outcome.checkpoint == "org/weights-7b"  # the decision's: resolved with it, not after the send
    assert call.detected == {"pii:email"}  # what the decision needs is all there
    later.forwarded()
    assert call.input_digest == text_digest(("mail ana@example.org", "thanks"))
    assert call.content == ("mail [pii:email]", "thanks")
    assert recorded(later) == recorded(now)
    assert later.outcome.checkpoint == "org/weights-7b"
    before = recorded(later)
    later.forwarded()  # once: a retried request calls it again
    assert recorded(later) == before


def test_a_call_that_never_left_is_recorded_as_one_admitted_without_deferring(tmp_path: Path) -> None:
    pipe = pipeline(tmp_path)
    # the upstream refused the connection: the record has the digest, content and checkpoint, as before
    now, _ = admitted(pipe, deferred=False)
    later, _ = admitted(pipe, deferred=True)
    refused = ConnectionRefusedError(111, "refused")
    assert type(later.upstream_failed(refused)) is type(now.upstream_failed(refused)) is UpstreamUnavailable
    assert recorded(later) == recorded(now) and later.outcome.checkpoint == "org/weights-7b"
    # the upstream's max_queue: refused before forwarding, no checkpoint, no observer
    now, _ = admitted(pipe, deferred=False)
    later, _ = admitted(pipe, deferred=True)
    full = Overloaded("saturated")
    assert later.upstream_failed(full) is full and now.upstream_failed(full) is full
    assert recorded(later) == recorded(now) and later.outcome.checkpoint is None and not later.observes
    # the client left while the call waited for a connection
    now, _ = admitted(pipe, deferred=False)
    later, _ = admitted(pipe, deferred=True)
    now.finish(CLIENT_GONE)
    later.finish(CLIENT_GONE)
    assert recorded(later) == recorded(now) and later.call is not None and later.call.input_digest


def test_a_denied_call_records_its_digest_and_content(tmp_path: Path) -> None:
    pipe = pipeline(tmp_path)
    records = []
    for deferred in (False, True):
        ex = exchange(pipe)
        with pytest.raises(ProxyError) as denied:
            ex.admit(BODY, {"x-data-labels": "user-data", "x-purpose": "ads"}.get, (), deferred=deferred)
        assert denied.value.code == "purpose_denied"
        ex.finish(denied.value)
        records.append(recorded(ex))
    assert records[0] == records[1] and records[1][0] and records[1][1] == ("mail [pii:email]", "thanks")


def broken(ex: Exchange) -> None:
    """The deferred work of `ex` made to fail as a bug would: its request's texts no strings, so reading them for the
    record raises (a TypeError compiled, an AttributeError interpreted). Compiled, an adapter of another class cannot
    stand in for it: `Adapter` is a native base class (8b9db82)."""
    read = ex._unforwarded
    assert read is not None
    ex._unforwarded = dataclasses.replace(read, texts=(1,))  # type: ignore[arg-type]


def test_a_failure_in_the_deferred_work_is_the_proxys_not_the_upstreams(tmp_path: Path) -> None:
    """`forwarded` raising (a bug) is raised as it is (an internal error, logged), never a 502 'upstream
    unavailable' that would send someone to look at a healthy upstream."""
    pipe = pipeline(tmp_path)
    ex, _ = admitted(pipe, deferred=True)
    broken(ex)
    with pytest.raises((TypeError, AttributeError)) as raised:
        ex.forwarded()
    with pytest.raises((TypeError, AttributeError)) as passed_on:
        ex.upstream_failed(raised.value)
    assert passed_on.value is raised.value


def test_the_checkpoint_recorded_is_the_one_the_decision_saw(tmp_path: Path) -> None:
    """A discovery round that lands while the request waits for a connection (the pool's `_acquire`: a connect,
    a full `max_connections`) changes what the book says the upstream serves: the call is recorded with the
    checkpoint it was decided with (resolved after the send, it recorded one no baseline check had seen)."""
    pipe = pipeline(tmp_path, pinned=False)  # the upstream's metadata names what it serves
    book = pipe.runtime.book
    got = {}
    for deferred in (False, True):
        book._known["u"].base = ServedModels({"m": Checkpoint("org/A", UPSTREAM)})  # what the decision saw
        ex, _ = admitted(pipe, deferred=deferred)
        book._known["u"].base = ServedModels({"m": Checkpoint("org/B", UPSTREAM)})  # learnt meanwhile
        ex.forwarded()  # the pool's `sent`
        ex.finish()
        got[deferred] = ex.outcome.checkpoint
    assert got == {False: "org/A", True: "org/A"}


def test_a_failure_in_the_deferred_work_at_finish_still_records_the_call_once(tmp_path: Path) -> None:
    """The client left while its call waited for a connection, and the deferred work `finish` runs first
    fails (a bug): the call is recorded, once, with why it ended (it raised, and recorded nothing)."""
    pipe = pipeline(tmp_path)
    ends = Sink("ends", durable=True, holds=False)  # recorded as the call ends
    pipe.runtime.sinks.swap(ends.name, ends)  # type: ignore[arg-type]
    for left in (CLIENT_GONE, None):
        ex, _ = admitted(pipe, deferred=True)
        broken(ex)
        ex.finish(left)
        ex.finish()  # the ingress's `finally`: recorded already
    assert [outcome.error_type for _, _, outcome in ends.ended] == [CLIENT_GONE, "internal_error"]


def test_the_pool_calls_sent_once_the_request_is_with_the_upstream_before_its_reply() -> None:
    """`sent` runs when the request's bytes are in the upstream's socket, and before the reply is read."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    seen: list[bytes] = []
    accepted: list[socket.socket] = []
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    def sent() -> None:
        server, _ = listener.accept()  # the handshake is done: the connection waits in the backlog
        accepted.append(server)
        seen.append(server.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT))  # already there: no wait
        server.sendall(reply)

    async def main() -> tuple[int, bytes]:
        pool = UpstreamPool()
        upstream = Upstream(name="u", protocol="openai", url=f"http://127.0.0.1:{port}")
        try:
            resp = await pool.request(upstream, "POST", "/v1/x", [("Content-Type", "application/json")], b"{}", sent)
            try:
                return resp.status, await resp.read()
            finally:
                resp.release()
        finally:
            await pool.close()

    try:
        assert asyncio.run(main()) == (200, b"ok")
        assert len(seen) == 1 and seen[0].startswith(b"POST /v1/x HTTP/1.1\r\n") and seen[0].endswith(b"\r\n\r\n{}")
    finally:
        for sock in (*accepted, listener):
            sock.close()
