"""A request sent with `Expect: 100-continue` is refused at its head (before its body is asked for) with the code its
headers alone give. An OIP infer call whose route's purposes refused it was answered 403 `purpose_denied` at its head,
where the same request sent whole got 403 `endpoint_denied` (its tensors in shared memory, data the proxy does not
read, refused first while zones are configured): a client's retry logic keys off the code. Now the head refuses only
where no body can be refused first; otherwise the body is asked for (`100 Continue`) and the call decided with it, as
one sent whole is. The OpenAI case (a body naming a model no route serves, with no `"*"` route: 404 `model_not_found`
either way) already agreed; it is kept here, with the openai SDK, so that it stays so."""

from __future__ import annotations

import socket

import openai
import orjson
import pytest

from proxy.config import parse
from proxy.flow import Call, TraceContext
from proxy.policy import Policy, refused_by_head
from tests.conftest import KEYS, sha
from tests.servers.vllm_like import SERVED

CONFIG = f"""
listen: {{http: 127.0.0.1:0}}
upstreams:
  - name: vllm
    url: ${{UPSTREAM}}
routes:
  - model: {SERVED}
    upstream: vllm
  - model: iris
    upstream: vllm
    purposes: [clinical]
callers:
  - name: app
    api_key_sha256: {sha(KEYS["glasses"])}
    purposes: [assistant, ads]
zones:
  - name: health
    labels: [phi]
    allow_purposes: [clinical]
policy:
  anonymous: deny
lineage:
  store: ${{STORE}}
"""
CHAT = orjson.dumps({"model": "no-such-model", "messages": [{"role": "user", "content": "hello"}]})
SHARED = orjson.dumps({"inputs": [{"name": "T", "datatype": "BYTES", "shape": [1],
                                   "parameters": {"shared_memory_region": "r0", "shared_memory_byte_size": 64}}]})  # fmt: skip


def send(port: int, path: str, purpose: str, body: bytes, *, expect: bool) -> tuple[int, str]:
    """One request of the glasses caller for `purpose` on a raw socket (`raw_send`)."""
    return raw_send(port, path, body, f"Authorization: Bearer {KEYS['glasses']}\r\nx-purpose: {purpose}\r\n",
                    expect=expect)  # fmt: skip


def raw_send(port: int, path: str, body: bytes, headers: str, *, expect: bool) -> tuple[int, str]:
    """`POST path` with `headers` (lines, each ending CRLF) on a raw socket (with `Expect: 100-continue`: its body only
    once `100 Continue` came); the final answer's status and error code (OpenAI's shape, or OIP v2 REST's)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        waits = "Expect: 100-continue\r\n" if expect else ""
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\n{headers}Content-Type: application/json\r\n{waits}"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + (b"" if expect else body))  # fmt: skip
        got = b""
        if expect:
            while b"\r\n\r\n" not in got:
                piece = sock.recv(65536)
                assert piece, got
                got += piece
            if got.startswith(b"HTTP/1.1 100 "):
                got = got.partition(b"\r\n\r\n")[2]
                sock.sendall(body)
        while piece := sock.recv(65536):
            got += piece
    head, _, rest = got.partition(b"\r\n\r\n")
    answer = orjson.loads(rest)
    error = answer["error"]  # OpenAI's shape: an object; OIP v2 REST's: the message, its code beside it
    return int(head.split()[1]), str(error["code"] if isinstance(error, dict) else answer["code"])


@pytest.mark.parametrize(
    "path, purpose, body, answer",
    [
        ("/v1/chat/completions", "clinical", CHAT, (404, "model_not_found")),  # the caller's purposes: not clinical
        ("/v2/models/iris/infer", "ads", SHARED, (403, "endpoint_denied")),  # the route's: not ads
    ],
    ids=["caller-purposes-unrouted-model", "route-purposes-shared-memory"],
)
def test_a_request_waiting_for_100_gets_the_code_it_gets_sent_whole(  # type: ignore[no-untyped-def]
    vllm, make_proxy, path: str, purpose: str, body: bytes, answer: tuple[int, str]
) -> None:
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    port = proxy.bound.http.port
    assert send(port, path, purpose, body, expect=False) == answer
    assert send(port, path, purpose, body, expect=True) == answer  # OIP: was 403 purpose_denied, at the head
    assert server.data_requests() == []


def test_the_openai_sdk_and_a_request_waiting_for_100_agree(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=KEYS["glasses"], max_retries=0)
    with pytest.raises(openai.NotFoundError) as refused:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hello"}],
                                       extra_headers={"x-purpose": "clinical"})  # fmt: skip
    assert refused.value.code == "model_not_found", refused.value
    assert send(proxy.bound.http.port, "/v1/chat/completions", "clinical", CHAT, expect=True) == (
        404,
        "model_not_found",
    )
    assert server.data_requests() == []


def test_the_head_refuses_an_oip_call_only_where_its_body_cannot_be_refused_first() -> None:
    """A route's purposes on the model an OIP path names: refused at the head while a body in shared memory would be
    forwarded too (no zones, or `policy.passthrough: forward`); left to the body while it would be refused first."""
    policy = Policy.compile(parse(CONFIG, env={"UPSTREAM": "http://127.0.0.1:9", "STORE": "/nonexistent/lineage.db"}))
    head = Call("oip", "infer", "iris", TraceContext(1, 1), key_sha256=sha(KEYS["glasses"]), purpose="ads")
    assert refused_by_head(head, policy, model_named=True) is None  # zones: the body may be endpoint_denied
    forward = CONFIG.replace("anonymous: deny", "anonymous: deny\n  passthrough: forward")
    policy = Policy.compile(parse(forward, env={"UPSTREAM": "http://127.0.0.1:9", "STORE": "/nonexistent/lineage.db"}))
    found = refused_by_head(head, policy, model_named=True)
    assert found is not None and (found.code, found.rule) == ("purpose_denied", "route:iris")
    chat = Call("openai", "chat", "", TraceContext(1, 1), key_sha256=sha(KEYS["glasses"]), purpose="clinical")
    assert refused_by_head(chat, policy, model_named=False) is None  # no "*" route: the body's model may have none
