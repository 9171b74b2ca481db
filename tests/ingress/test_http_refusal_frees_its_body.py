"""A refused call's handler frame (and the request body it holds) is freed when the call ends, not left to the
cyclic garbage collector: the failure kept in a local after its `except` block holds its traceback, which holds
the frame. (In the pure build, 300 refused 4 MiB bodies peaked at 224 MiB RSS, against 72 MiB before.) Nor may a
frame the failure passed through hold it: a body not JSON, refused again as it was after the adapter's reading as
UTF-8 found it in no such form, was raised from a parameter of `Exchange._read_as_utf8` (before 2026-12-05), a cycle
that held the handler's frame with it; nor one kept in a variable of the frame that raised it (the unknown key of a
body too large to read unidentified, an OIP request refused as orjson read it though it holds `NaN`, a compressed
body whose decoding passes `limits.bodies_max_bytes`, a call carrying no data to a model no route serves, before
2026-12-05)."""

from __future__ import annotations

import gc
import gzip
import secrets
import socket

import httpx
import pytest

from proxy.ingress.wire import Request
from tests.configs import ONE_UPSTREAM
from tests.conftest import KEYS, sha
from tests.held import until

_PAD = b" " * 4096


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"{not json" + _PAD, {}),  # refused by the adapter, and again as it was: in no UTF-8 form it reads
        (b'{"messages": []}' + _PAD, {}),  # JSON lacking its model
        (('{"messages": []}' + " " * 4096).encode("utf-16"), {}),  # the same read as UTF-8, refused with what it lacks
        (b'{"model": "m", "messages": []}' + _PAD, {"x-purpose": "no such purpose!"}),  # refused by its purpose
    ],
    ids=["not-json", "no-model", "utf16-no-model", "bad-purpose"],
)
def test_a_refused_calls_frame_is_not_left_in_a_reference_cycle(vllm, make_proxy, body, headers) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    proxy = make_proxy(ONE_UPSTREAM, UPSTREAM=upstream)
    assert _handle_frames_left(f"{proxy.url}/v1/chat/completions", body, headers, 400) == []


# a caller with a key, anonymous calls denied
_KEYED = f"""
listen: {{http: 127.0.0.1:0}}
upstreams:
  - name: vllm
    url: ${{UPSTREAM}}
routes:
  - model: "*"
    upstream: vllm
callers:
  - name: glasses
    api_key_sha256: {sha(KEYS["glasses"])}
    purposes: [assistant]
policy:
  default_purpose: assistant
"""
_KEY = {"Authorization": f"Bearer {KEYS['glasses']}"}
_NAN = b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [NaN]}]'


@pytest.mark.parametrize(
    ("path", "body", "headers", "status"),
    [
        # over 1 MiB: its key is checked before it is read (`Pipeline.identify_only`), a key no caller owns
        (
            "/v1/chat/completions",
            b'{"model": "m", "messages": []}' + b" " * (2 << 20),
            {"Authorization": "Bearer no"},
            401,
        ),
        # refused by orjson, read again by `json` for its NaN, which finds it no JSON: refused as orjson said
        ("/v2/models/m/infer", _NAN + b", oops" + _PAD, _KEY, 400),
        # JSON to `json`, holding no NaN but in a string: refused as orjson said (a lone surrogate)
        ("/v2/models/m/infer", _NAN[:-1] + b', "parameters": {"s": "NaN \\ud800"}}' + _PAD, _KEY, 400),
    ],
    ids=["unknown-key-large-body", "oip-nan-not-json", "oip-nan-in-a-string"],
)
def test_a_refusal_raised_from_a_variable_leaves_no_frame_in_a_reference_cycle(  # type: ignore[no-untyped-def]
    vllm, make_proxy, path, body, headers, status
) -> None:
    _, upstream = vllm
    proxy = make_proxy(_KEYED, UPSTREAM=upstream)
    assert _handle_frames_left(f"{proxy.url}{path}", body, headers, status) == []


def test_a_body_whose_decoding_passes_the_bodies_budget_leaves_no_frame_in_a_reference_cycle(  # type: ignore[no-untyped-def]
    vllm, make_proxy
) -> None:
    _, upstream = vllm
    proxy = make_proxy(ONE_UPSTREAM + "limits: {max_body_bytes: 65536, bodies_max_bytes: 65536}\n", UPSTREAM=upstream)
    decoded = b'{"model": "m", "messages": []}'
    body = gzip.compress(decoded.ljust(65530))  # held with its compressed bytes: over the budget, 503
    headers = {"Content-Encoding": "gzip"}
    assert _handle_frames_left(f"{proxy.url}/v1/chat/completions", body, headers, 503) == []


def test_a_data_free_call_to_a_model_no_route_serves_leaves_no_frame_in_a_reference_cycle(  # type: ignore[no-untyped-def]
    vllm, make_proxy
) -> None:
    _, upstream = vllm
    proxy = make_proxy(ONE_UPSTREAM.replace('model: "*"', 'model: "m"'), UPSTREAM=upstream)
    assert _handle_frames_left(f"{proxy.url}/v1/models/zzz", None, {}, 404, method="GET") == []


def _handle_frames_left(
    url: str, body: bytes | None, headers: dict[str, str], status: int, method: str = "POST"
) -> list[object]:
    """What of 3 calls refused with `status` was left in reference cycles: the requests (each carrying a token of
    this test's own, so that what another test's proxy leaves meanwhile on the shared loop is not counted: a call
    cancelled at its stop, say), and the request handler's frames holding them. Interpreted, a cycle through the
    handler's frame holds its request; compiled, the coroutine's environment does (its traceback's frames are
    placeholders that hold nothing), so the requests are looked for, whatever the build."""
    token = secrets.token_hex(8)
    with httpx.Client(timeout=30) as client:
        gc.collect()
        gc.disable()
        try:
            for _ in range(3):
                reply = client.request(
                    method,
                    url,
                    content=body,
                    headers={"Content-Type": "application/json", "X-Refusal-Test": token, **headers},
                )
                assert reply.status_code == status, reply.text
            gc.set_debug(gc.DEBUG_SAVEALL)
            gc.collect()
            return [o for o in gc.garbage if _holds(o, token)]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()


def _holds(thing: object, token: str) -> bool:
    """Whether `thing` is one of this test's requests, or a handler's frame holding one."""
    if type(thing).__name__ == "frame":
        if thing.f_code.co_name != "handle":  # type: ignore[attr-defined]
            return False
        thing = thing.f_locals.get("request")  # type: ignore[attr-defined]
    if type(thing) is not Request:
        return False
    return (b"x-refusal-test", token.encode()) in [(name.lower(), value) for name, value in thing.headers]


def test_a_connection_closed_on_a_body_over_the_limit_lets_its_request_go_once_its_client_leaves(  # type: ignore[no-untyped-def]
    vllm, make_proxy
) -> None:
    """A chunked body over `limits.max_body_bytes` is answered 413 and the connection closed, the proxy reading (and
    dropping) what still comes for up to LINGER_S. Its timer held the connection, and the request it was reading, that
    long past its client's leaving: until 2026-12-05 (helper records) a later test's proxy, counting the POST requests
    alive while its upstream held a call (tests/transport/test_request_head_in_pieces.py), could count this one's (left
    by tests/transport/test_http.py's test_too_large_body_is_413_and_never_forwarded)."""
    _, upstream = vllm
    proxy = make_proxy(ONE_UPSTREAM + "limits: {max_body_bytes: 2000}\n", UPSTREAM=upstream)
    token = secrets.token_hex(8)
    http = proxy.process._http
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Refusal-Test: %s\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (token.encode(), 4000, b"y" * 4000))  # fmt: skip
        got = b""
        while chunk := sock.recv(65536):  # the answer, then the proxy's end of writing
            got += chunk
        assert got.startswith(b"HTTP/1.1 413"), got
    assert until(lambda: not http.connections)  # the client's close is seen
    gc.collect()
    assert not [r for r in gc.get_objects() if _holds(r, token)]  # before: held by the linger timer
