"""The error shape of a refusal the connection makes itself, on Ollama's and TGI's native paths: the path that decides
is the one its request line names, also when no field of its head was read whole (its first field over the head's
limit: before 2026-12-04 answered in OpenAI's shape, the target whole all the same) and when it is written in
absolute form (`POST http://host/api/chat`, refused: before 2026-12-04 in OpenAI's shape, its path's API unread). At
`/`, TGI's compat route and other apps' root, TGI's shape only for a call that is TGI's (before 2026-12-04 always)."""

from __future__ import annotations

import select
import socket
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from huggingface_hub import InferenceClient
from huggingface_hub.errors import TextGenerationError

from proxy.protocols import tgi
from tests import test_ollama_native as native
from tests.harness import ProxyHandle
from tests.servers.ollama import MODEL, Ollama
from tests.servers.otlp_receiver import OtlpReceiver
from tests.test_refusals_recorded import ask

# the fixtures of test_ollama_native: the server, the proxy in front of it (limits.max_header_bytes: 32 KiB)
ollama = native.ollama
proxy = native.proxy

PIECE = 8 * 1024
# what a head whose first field never ends sends after its line at most: its reads are counted from the second one
# on (the first, which began it, may hold a few hundred KiB), and refused past max_header_bytes and MAX_TARGET together
FIELD_MOST = 4 * 1024 * 1024


def sent_in_pieces(port: int, line: bytes) -> tuple[int, bytes]:
    """The status and body of the answer to `line` then one field that never ends, sent a piece at a time (the head
    open across reads) until the answer is there to read."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(line + b"\r\nX-Big: ")
        try:
            for _ in range(FIELD_MOST // PIECE):
                if select.select([sock], [], [], 0)[0]:  # the answer (or the close) is in
                    break
                sock.sendall(b"a" * PIECE)
        except (BrokenPipeError, ConnectionResetError):  # refused: the answer is in
            pass
        reply = b""
        try:
            while piece := sock.recv(65536):
                reply += piece
        except ConnectionResetError:
            pass
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b"\r\n", 1)[0].split()[1]), body


@pytest.mark.parametrize("path", ["/api/chat", "/api/generate"])
def test_a_head_whose_first_field_is_over_the_limit_answers_in_its_paths_shape(
    ollama: Ollama, proxy: ProxyHandle, path: str
) -> None:
    status, body = sent_in_pieces(proxy.bound.http.port, f"POST {path} HTTP/1.1".encode())
    answer = orjson.loads(body)
    assert status == 431 and isinstance(answer["error"], str), answer  # Ollama's shape, what its client raises with
    assert "limits.max_header_bytes" in answer["error"] and answer["code"] == "invalid_request", answer
    assert ollama.received == []


def test_a_head_whose_first_field_is_over_the_limit_elsewhere_keeps_the_openai_shape(proxy: ProxyHandle) -> None:
    status, body = sent_in_pieces(proxy.bound.http.port, b"POST /v1/chat/completions HTTP/1.1")
    answer = orjson.loads(body)
    assert status == 431 and answer["error"]["code"] == "invalid_request", answer


@pytest.mark.parametrize(
    ("target", "ollamas"),
    [("/api/chat", True), ("/api/chat?x=1", True), ("/v1/chat/completions", False), ("", False), ("/", False)],
    ids=["ollama", "ollama-query", "openai", "no-path", "root-not-tgi"],
)
def test_an_absolute_target_is_refused_in_its_paths_shape(
    ollama: Ollama, proxy: ProxyHandle, target: str, ollamas: bool
) -> None:
    body = orjson.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": False})
    host = f"127.0.0.1:{proxy.bound.http.port}".encode()
    wire = b"POST http://%s%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (
        host, target.encode(), host, len(body), body
    )  # fmt: skip
    status, _, raw = ask(proxy.bound.http.port, wire)
    answer = orjson.loads(raw)
    assert status == 400, answer
    message = answer["error"] if ollamas else answer["error"]["message"]
    assert isinstance(message, str) and "not a forward proxy" in message, answer  # a string in Ollama's shape
    assert ollama.received == []


# `/`: TGI's compat route, and the root of other apps (a Ray Serve or BentoML app's); the upstream here is no TGI (it
# serves no `/info`)
HEAD_OVER = b"POST / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (40 * 1024) + b"\r\nContent-Length: 2\r\n\r\n{}"


def test_a_refusal_at_the_root_of_an_app_that_is_not_tgi_is_in_the_openai_shape(
    ollama: Ollama, proxy: ProxyHandle
) -> None:
    """A body that is not TGI's (no `inputs`), data the proxy does not read, refused while zones are configured; and a
    head over the limit, its body unread, in front of an upstream that is no TGI: OpenAI's shape (before 2026-12-04
    TGI's, whatever app served `/`)."""
    reply = httpx.post(f"{proxy.url}/", json={"text": "hi"}, timeout=30)
    assert reply.status_code == 403 and reply.json()["error"]["code"] == "endpoint_denied", reply.text
    status, _, raw = ask(proxy.bound.http.port, HEAD_OVER)
    assert status == 431 and orjson.loads(raw)["error"]["code"] == "invalid_request", raw
    assert ollama.received == []


def test_a_tgi_body_refused_at_the_root_is_in_tgis_shape(ollama: Ollama, proxy: ProxyHandle) -> None:
    """A body that is TGI's says the call is, whatever the upstream is: huggingface_hub's `text_generation` raises with
    the reason."""
    client = InferenceClient(base_url=proxy.url, headers={"x-purpose": "ads"})
    with pytest.raises(TextGenerationError, match="purpose 'ads' is not allowed"):
        client.text_generation(f"write to {native.ADDRESS}")
    assert ollama.received == []


def test_a_body_of_too_many_containers_refused_at_the_root_is_answered(ollama: Ollama, proxy: ProxyHandle) -> None:
    """A body at `/` the proxy refuses before it parses it (over 1,000,000 JSON objects and arrays, 413): answered
    (before 2026-12-04 `shape_root` parsed it again to tell whether it was TGI's, which raised the same refusal
    again: the connection closed with no answer, an internal error logged). Not read, it is shaped as the upstream
    says, no TGI here: OpenAI's."""
    body = b'{"inputs": "hi", "a": [' + b"[]," * 1_000_001 + b"[]]}"
    reply = httpx.post(f"{proxy.url}/", content=body, headers={"Content-Type": "application/json"}, timeout=60)
    assert reply.status_code == 413 and reply.json()["error"]["code"] == "request_too_large", reply.text
    assert ollama.received == []


@pytest.mark.interpreted  # counts calls a compiled module makes directly (tests/conftest.py)
def test_an_unidentified_callers_large_body_at_the_root_is_not_parsed_to_shape_its_refusal(
    ollama: Ollama, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caller the proxy does not know (anonymous calls denied) is refused before a body over 1 MiB is parsed
    (`READ_UNIDENTIFIED_MAX`: reading one costs the event loop up to seconds): its refusal at `/` is shaped without
    parsing it either (before 2026-12-04 `shape_root` parsed it, for TGI's `inputs`)."""
    parsed: list[int] = []
    load = tgi.load_request_json

    def counted(body: bytes, what: str = "request body") -> dict[str, Any]:
        parsed.append(len(body))
        return load(body, what)

    monkeypatch.setattr(tgi, "load_request_json", counted)
    denied = make_proxy(
        native.CONFIG.replace("anonymous: allow", "anonymous: deny"),
        UPSTREAM=ollama.url,
        OTLP=f"http://127.0.0.1:{otlp.port}",
    )
    body = orjson.dumps({"inputs": "a" * (2 << 20), "parameters": {"max_new_tokens": 8}, "stream": False})
    reply = httpx.post(f"{denied.url}/", content=body, headers={"Content-Type": "application/json"}, timeout=60)
    assert reply.status_code == 401 and parsed == [], (parsed, reply.text[:200])
    # its body unread, the upstream `/` goes to decides its shape: no TGI here, OpenAI's
    assert reply.json()["error"]["code"] == "invalid_api_key" and ollama.received == [], reply.text


@pytest.mark.interpreted  # counts calls a compiled module makes directly (tests/conftest.py)
def test_a_large_tgi_body_refused_at_the_root_is_in_tgis_shape_read_once(
    ollama: Ollama, proxy: ProxyHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TGI body over 1 MiB that TGI's adapter read, then refused (its purpose not allowed for what it holds): TGI's
    shape, which the adapter that read it says, the body not parsed again (before 2026-12-04 `shape_root` parsed it a
    second time)."""
    parsed: list[int] = []
    load = tgi.load_request_json

    def counted(body: bytes, what: str = "request body") -> dict[str, Any]:
        parsed.append(len(body))
        return load(body, what)

    monkeypatch.setattr(tgi, "load_request_json", counted)
    body = orjson.dumps({"inputs": f"write to {native.ADDRESS} " + "a" * (2 << 20), "parameters": {}, "stream": False})
    headers = {"Content-Type": "application/json", "x-purpose": "ads"}
    reply = httpx.post(f"{proxy.url}/", content=body, headers=headers, timeout=60)
    assert reply.status_code == 403 and isinstance(reply.json()["error"], str), reply.text[:300]
    assert parsed == [len(body)] and ollama.received == []
