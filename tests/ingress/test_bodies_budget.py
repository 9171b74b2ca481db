"""Request bodies held in memory are bounded per process (`limits.bodies_max_bytes`): clients that send large bodies
and hold back their last bytes, on many connections, cannot take the proxy's memory (4,096 connections of 64 MiB
each were 256 GiB). A body that would take the bodies held past the bound gets 503 `overloaded` and its connection
closes; what a request held is given back once it is answered, or its connection is gone."""

from __future__ import annotations

import http.client
import socket
from collections.abc import Iterator

import httpx
import orjson
import pytest

from proxy.config import parse
from proxy.errors import ConfigError
from tests.configs import ONE_UPSTREAM, ONE_UPSTREAM_STORED
from tests.harness import ProxyHandle
from tests.record.test_store_waits import until
from tests.servers.vllm_like import SERVED

CONFIG = ONE_UPSTREAM_STORED + "limits: {max_body_bytes: 1048576, bodies_max_bytes: 1572864}\n"
BODY = orjson.dumps({"model": SERVED, "messages": [{"role": "user", "content": "a" * 999_900}]})
HEAD = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\n\r\n" % len(BODY)
)
HELD = "lineage_proxy_request_bodies_held_bytes"


def held(proxy: ProxyHandle) -> int:
    for line in proxy.process.metrics_text().splitlines():
        if line.startswith(HELD + " "):
            return int(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {HELD} in /metrics")


@pytest.fixture
def proxy(vllm, make_proxy) -> Iterator[ProxyHandle]:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    yield make_proxy(CONFIG, UPSTREAM=upstream)


def started(proxy: ProxyHandle, sent: int) -> socket.socket:
    """A connection that sent a request's head and the first `sent` bytes of its body, once the proxy holds them."""
    port = int(proxy.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    before = held(proxy)
    sock.sendall(HEAD + BODY[:sent])
    until(lambda: held(proxy) >= before + sent)
    return sock


def test_a_body_past_the_bound_gets_503_and_the_others_go_on(proxy: ProxyHandle) -> None:
    assert len(BODY) < 1048576 < 1572864 < 2 * len(BODY)
    first = started(proxy, 900_000)
    refused = httpx.post(proxy.url + "/v1/chat/completions", content=BODY, headers={"content-type": "application/json"})
    assert refused.status_code == 503, refused.text
    assert refused.json()["error"]["code"] == "overloaded"
    assert "limits.bodies_max_bytes" in refused.json()["error"]["message"]
    assert refused.headers["connection"] == "close"
    assert held(proxy) == 900_000  # what the refused body held is given back at once
    assert refused.headers["x-trace-id"]  # recorded, as a 413 is: a span saying deny, overloaded (no edge: unread)

    with first:
        first.sendall(BODY[900_000:])
        reply = http.client.HTTPResponse(first)
        reply.begin()
        assert reply.status == 200, reply.read()
        reply.read()
    until(lambda: held(proxy) == 0)
    again = httpx.post(proxy.url + "/v1/chat/completions", content=BODY, headers={"content-type": "application/json"})
    assert again.status_code == 200, again.text
    assert held(proxy) == 0


def test_a_client_gone_mid_body_gives_back_what_its_body_held(proxy: ProxyHandle) -> None:
    for _ in range(3):  # each time the bound would be passed if it were not given back
        sock = started(proxy, 900_000)
        sock.close()
        until(lambda: held(proxy) == 0)
    whole = httpx.post(proxy.url + "/v1/chat/completions", content=BODY, headers={"content-type": "application/json"})
    assert whole.status_code == 200, whole.text
    assert held(proxy) == 0


def test_a_bound_below_the_body_limit_is_refused_by_check() -> None:
    text = ONE_UPSTREAM.replace("${UPSTREAM}", "http://127.0.0.1:9") + (
        "limits: {max_body_bytes: 2048, bodies_max_bytes: 1024}\n"
    )
    with pytest.raises(ConfigError) as refused:
        parse(text, env={})
    assert any(p.startswith("limits.bodies_max_bytes: 1024 is less than") for p in refused.value.problems)


def test_a_body_after_an_upgrade_request_s_head_is_held_to_the_bound_too(proxy: ProxyHandle) -> None:
    """A request asking to switch protocols (`Upgrade: h2c`) has its Content-Length body taken apart from the
    parser (llhttp stops at its head): the bound holds there too, and what it kept is given back."""
    first = started(proxy, 900_000)
    port = int(proxy.url.rsplit(":", 1)[1])
    upgrade = HEAD.replace(b"Host: x\r\n", b"Host: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n")
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(upgrade + BODY)
        reply = http.client.HTTPResponse(sock)
        reply.begin()
        assert reply.status == 503, reply.read()
        assert b"limits.bodies_max_bytes" in reply.read()
    until(lambda: held(proxy) == 900_000)
    with first:
        first.sendall(BODY[900_000:])
        reply = http.client.HTTPResponse(first)
        reply.begin()
        assert reply.status == 200
        reply.read()
    until(lambda: held(proxy) == 0)


def test_pipelined_and_oversized_bodies_give_back_what_they_held(proxy: ProxyHandle) -> None:
    """Requests queued behind another when their client leaves, and a body over `limits.max_body_bytes` (413),
    hold nothing once they are gone."""
    port = int(proxy.url.rsplit(":", 1)[1])
    small = orjson.dumps({"model": SERVED, "messages": [{"role": "user", "content": "b" * 300_000}]})
    one = HEAD.replace(b"%d" % len(BODY), b"%d" % len(small)) + small
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(one * 3)  # pipelined: the first served, the others queued with their bodies
    until(lambda: held(proxy) == 0)
    over = orjson.dumps({"model": SERVED, "messages": [{"role": "user", "content": "c" * 1_100_000}]})
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(HEAD.replace(b"%d" % len(BODY), b"%d" % len(over)) + over[:900_000])
        reply = http.client.HTTPResponse(sock)
        reply.begin()
        assert reply.status == 413
    until(lambda: held(proxy) == 0)
    assert httpx.post(proxy.url + "/v1/chat/completions", content=BODY).status_code == 200
