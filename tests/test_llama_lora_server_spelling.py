"""What a `POST /lora-adapters` makes stale is keyed by the server's address (`checkpoints.server`), but that was
the URL as written: `http://127.0.0.1:8080` and `http://LOCALHOST:8080` (or `localhost`, a default port written
out, an upper-case host) were two servers to it, so a change relayed through one name left the other name's calls
recorded, and checked, with the scales read before until its next discovery round. The key is now the URL as the
connection reads it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from proxy import checkpoints
from proxy.config import Upstream
from tests.test_llama_lora import DEFAULT
from tests.test_llama_lora_same_server import CONFIG, NEW, chat
from tests.test_llama_lora_scales_set import llama_server as llama_server


def test_scales_set_through_one_spelling_of_the_server_are_read_again_by_the_other(
    llama_server: str, make_proxy: Any
) -> None:
    assert llama_server.startswith("http://127.0.0.1:"), llama_server
    other = llama_server.replace("http://127.0.0.1:", "HTTP://LOCALHOST:")  # the same server, spelt otherwise
    proxy = make_proxy(CONFIG.replace('"${UPSTREAM}/"', '"${OTHER}"'), UPSTREAM=llama_server, OTHER=other)
    assert chat(proxy, "gemma-chat") == DEFAULT and chat(proxy, "gemma") == DEFAULT
    set_ = httpx.post(f"{proxy.url}/lora-adapters", json=[{"id": 0, "scale": 0.25}], timeout=10)  # by "*": other
    assert set_.status_code == 200 and set_.json() == {"success": True}, set_.text
    assert chat(proxy, "gemma") == NEW  # the name that relayed it
    assert chat(proxy, "gemma-chat") == NEW  # was the old mix, DEFAULT, until its next round (ten minutes)


@pytest.mark.parametrize(
    ("one", "two"),
    [
        ("http://127.0.0.1:8080", "http://localhost:8080"),
        ("http://[::1]:8080", "http://localhost:8080"),
        ("http://Example.COM", "http://example.com:80"),
        ("https://example.com", "HTTPS://example.com:443"),
        ("http://[0:0:0:0:0:0:0:1]:1", "http://[::1]:1"),
        ("http://10.0.0.1:1/llama", "http://10.0.0.1:1/llama/"),
    ],
)
def test_one_server_spelt_two_ways_is_one_server(one: str, two: str) -> None:
    assert checkpoints.server(Upstream(name="a", url=one)) == checkpoints.server(Upstream(name="b", url=two))


@pytest.mark.parametrize(
    ("one", "two"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8081"),
        ("http://example.com", "https://example.com"),
        ("http://10.0.0.1:1/a", "http://10.0.0.1:1/b"),
        ("http://example.com", "http://example.org"),
    ],
)
def test_two_servers_stay_two(one: str, two: str) -> None:
    assert checkpoints.server(Upstream(name="a", url=one)) != checkpoints.server(Upstream(name="b", url=two))
