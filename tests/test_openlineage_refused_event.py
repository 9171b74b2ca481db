"""One count event the OpenLineage backend refuses for what it is, not for being down, held back every other
flow's counts for as long as the process ran: refused counts are sent again first, and while the first of them
fails nothing later is sent. A caller chooses such an event: it asks a model the upstream's metadata does not
list by a name of a megabyte and more, an upstream that names its reply's model as asked (vLLM, llama.cpp) makes
that the checkpoint, so the job's name, and a backend behind the usual 1 MiB request bound (nginx's
client_max_body_size, aiohttp's client_max_size: the stand-in here) answers 413 to that event every time."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from tests.harness import LoopThread
from tests.record.test_openlineage import Marquez, config, marquez, metric, sink  # noqa: F401  # (a fixture)
from tests.servers.vllm_like import SERVED

LONG = "m" * (3 << 19)  # 1.5 MiB: the event naming it is over the backend's 1 MiB


def raw_chat(url: str, model: str) -> bytes:
    """One chat call, its reply's head as it came (a client such as httpx refuses a head this long)."""
    address = urlsplit(url)
    body = orjson.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()  # fmt: skip
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(head + body)
        reply = b"".join(iter(lambda: sock.recv(1 << 16), b""))
    return reply.split(b"\r\n\r\n", 1)[0]


def test_an_event_the_backend_refuses_holds_back_no_other_flows_counts(
    vllm: Any,
    marquez: tuple[Marquez, str],  # noqa: F811
    make_proxy: Any,
    loop_thread: LoopThread,
) -> None:
    _, upstream = vllm
    backend, url = marquez
    proxy = make_proxy(config(f'{{url: "{url}", snapshot_interval_s: 600}}').replace(
        "callers:", "policy: {anonymous: allow, default_purpose: assistant}\ncallers:"), UPSTREAM=upstream)  # fmt: skip
    huge = raw_chat(proxy.url, LONG)
    assert huge.startswith(b"HTTP/1.1 200") and f"\r\nx-lineage-checkpoint: {LONG}\r\n".encode() in huge
    loop_thread.run(sink(proxy).flush())  # its count event: refused (413), kept to be sent again
    plain = httpx.post(f"{proxy.url}/v1/chat/completions", timeout=30,
                       json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert plain.status_code == 200
    assert backend.wait_for(1)[0]["job"]["name"] != LONG  # the new flow's event
    loop_thread.run(sink(proxy).flush())
    counted = backend.wait_for(2)[1]
    assert counted["run"]["facets"]["lineageProxy_count"]["count"] == 1
    assert counted["job"]["name"] == plain.headers["x-lineage-checkpoint"]
    # the long flow's two events (its first, its count), each refused once
    assert metric(proxy, 'lineage_proxy_openlineage_events_total{result="dropped"}') == 2
