"""A URL whose password (or user) holds `/` written unescaped in more than the path's first segment
(`http://ops:12/34/56@vllm:8000`, `http://us/er:pw@vllm:8000`) loaded with the wrong host before 2026-12-05: `urlsplit`
ends the authority at the first `/` (host `ops`, port 12), and only an `@` in the path's first segment was taken for a
userinfo's end. An `@` in any segment of the path followed by a host[:port] is now refused, saying to write a
password's `/` as %2F and a path's `@` as %40: `http://h:8000/alice@example.com/v1` is a path by RFC 3986, and every
client the proxy uses reads host `h` (below), but it cannot be told from a password's (`ops:12/34@collector`). Written
`%40`, it loads and the call reaches the upstream under that path. The secret is never shown."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import urlsplit

import openai
import pytest
import yarl

from proxy.config import parse
from proxy.config.loader import shown_url
from proxy.errors import ConfigError
from tests.harness import LoopThread, ProxyHandle
from tests.servers.raw_origin import proxy_in_front, request_body

BASE = "listen: {http: '127.0.0.1:0'}\nroutes: [{model: '*', upstream: m}]\n"
UPSTREAM = "upstreams: [{name: m, url: 'http://127.0.0.1:9'}]\n"
HINT = "a password holding '/' must be percent-encoded as %2F (a user's too), and an '@' in a path as %40"
PLACES = [
    ("upstreams: [{name: m, url: '%s'}]\n", "upstreams[0].url"),
    (UPSTREAM + "telemetry: {exporter: otlp, protocol: http/protobuf, endpoint: '%s'}\n", "telemetry.endpoint"),
    (UPSTREAM + "lineage: {store: null, openlineage: {url: '%s'}}\n", "lineage.openlineage.url"),
]
IDS = ["upstream url", "otlp endpoint", "openlineage url"]


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("http://ops:12/34/56@vllm:8000", "12/34/56"),
        ("http://ops:12/34/56@vllm:8000/v1", "12/34/56"),
        ("http://ops:s3/cr/et@vllm", "s3/cr/et"),
        ("http://ops:1/2/3/4@[::1]:8000/base", "1/2/3/4"),
        ("http://us/er:pw1z@vllm:8000", "pw1z"),
        ("http://tok/en1z@vllm:8000", "tok/en1z"),
    ],
)
@pytest.mark.parametrize(("config", "path"), PLACES, ids=IDS)
def test_a_user_or_password_holding_slashes_is_refused_never_read_as_another_host(
    config: str, path: str, url: str, secret: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(BASE + config % url, env={})
    found = [problem for problem in caught.value.problems if problem.startswith(f"{path}:")]
    assert found and HINT in found[0], caught.value.problems
    assert not any(secret in problem for problem in caught.value.problems), caught.value.problems


@pytest.mark.parametrize(
    "url",
    [
        "http://h:8000/alice@example.com/v1",
        "http://h:8000/alice@example.com",
        "http://h:8000/v1/models/a@b",
        "http://h:8000/v1/a@b:9",
    ],
)
def test_an_at_in_a_path_is_refused_saying_to_write_it_escaped(url: str) -> None:
    """Every client reads host `h` (RFC 3986: the authority ends at the first `/`), yet a password's `/` gives the
    same text: refused, the hint naming both spellings; `%40` loads."""
    # aiohttp's (yarl) and the proxy's own upstream client's (`urlsplit`, the config's) host alike: `h`
    assert yarl.URL(url).host == urlsplit(url).hostname == "h"
    with pytest.raises(ConfigError) as caught:
        parse(BASE + f"upstreams: [{{name: m, url: '{url}'}}]\n", env={})
    assert any(p.startswith("upstreams[0].url:") and HINT in p for p in caught.value.problems), caught.value.problems
    escaped = url.replace("@", "%40")
    assert parse(BASE + f"upstreams: [{{name: m, url: '{escaped}'}}]\n", env={}).upstreams[0].url == escaped
    assert shown_url(escaped) == escaped


@pytest.mark.parametrize(
    "url",
    [
        "http://h:8000/v1@",
        "http://h/v1/traces?user=alice@example.com",  # (after a port, since 2026-12-05 refused: ambiguous)
        "http://h:8000/a%40b/c",
        "http://h:8000",
        "http://[::1]:8000/v1/models/a@b",
    ],
)
def test_an_at_before_no_host_in_a_query_of_pairs_or_after_an_ipv6_host_loads(url: str) -> None:
    """(`[::1]`: no userinfo begins with a `[`, so the `@` is the path's)"""
    assert parse(
        BASE + UPSTREAM + f"telemetry: {{exporter: otlp, protocol: http/protobuf, endpoint: '{url}'}}\n", env={}
    )


CONFIG = """listen: {http: "127.0.0.1:0"}
upstreams: [{name: m, url: "${UPSTREAM}/alice%40example.com"}]
routes: [{model: "*", upstream: m}]
policy: {anonymous: allow, default_purpose: assistant}
"""
REPLY = (
    b'{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}'
)


def chat_request_lines(make_proxy: Callable[..., ProxyHandle], loop_thread: LoopThread, config: str) -> list[bytes]:
    """The request lines an origin behind a proxy of `config` gets for one chat through the openai SDK, whose
    answer it checks."""
    lines: list[bytes] = []

    async def answer(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        lines.append(head.split(b"\r\n", 1)[0])
        await request_body(head, reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(REPLY), REPLY))  # fmt: skip
        await writer.drain()
        return True

    with proxy_in_front(loop_thread, make_proxy, config, answer) as proxy:
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="k", max_retries=0)
        got = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert got.choices[0].message.content == "ok"
    return lines


def test_a_path_with_its_at_escaped_reaches_the_upstream_under_it(
    make_proxy: Callable[..., ProxyHandle], loop_thread: LoopThread
) -> None:
    lines = chat_request_lines(make_proxy, loop_thread, CONFIG)
    assert lines == [b"POST /alice%40example.com/v1/chat/completions HTTP/1.1"], lines
