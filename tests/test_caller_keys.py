"""A caller's key, wherever a client sends it: a key that is not UTF-8 is a key no caller owns (401),
never a fault of the proxy's; on the Anthropic route `x-api-key` (where the Anthropic SDK sends its key) is the
caller's key as `Authorization: Bearer` is, and is kept from the upstream as that is; over gRPC a binary
`authorization-bin` is kept from the upstream too."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import orjson
import pytest
from tritonclient.grpc import service_pb2

from tests.conftest import KEYS, sha
from tests.servers.vllm_like import SERVED
from tests.test_refusals_recorded import AccessLines, access_lines

UPSTREAM_KEY = "upstream-secret"
CALLERS = f"""
callers:
  - name: app
    api_key_sha256: {sha(KEYS["glasses"])}
    purposes: [assistant]
    default_purpose: assistant
  - name: accented
    api_key_sha256: {sha("clé-ü")}
    purposes: [assistant]
    default_purpose: assistant
"""


def config(*, callers: bool = True, upstream_key: bool = True) -> str:
    return f"""
listen: {{http: 127.0.0.1:0}}
upstreams:
  - name: vllm
    url: ${{UPSTREAM}}
{f"    api_key: {UPSTREAM_KEY}" if upstream_key else ""}
routes:
  - model: "*"
    upstream: vllm
{CALLERS if callers else ""}
policy: {{anonymous: allow, default_purpose: assistant}}
logging: {{access: true}}
lineage:
  store: ${{STORE}}
"""


# what the anthropic SDK sends (anthropic-python 0.x, `client.messages.create`), less its x-stainless-* fields
SDK_FIELDS = [b"accept: application/json", b"anthropic-version: 2023-06-01", b"content-type: application/json",
              b"user-agent: Anthropic/Python 0.40.0"]  # fmt: skip
MESSAGES = orjson.dumps({"model": SERVED, "max_tokens": 16, "messages": [{"role": "user", "content": "hello"}]})
CHAT = orjson.dumps({"model": SERVED, "messages": [{"role": "user", "content": "hello"}]})


@pytest.fixture
def access() -> Iterator[AccessLines]:
    yield from access_lines()


@pytest.fixture
def keyed(vllm: Any, make_proxy: Any) -> tuple[Any, Any]:
    server, upstream = vllm
    return server, make_proxy(config(), UPSTREAM=upstream)


def ask(
    port: int, method: bytes, path: bytes, fields: list[bytes], body: bytes | None
) -> tuple[int, dict[str, str], bytes]:
    head = [method + b" " + path + b" HTTP/1.1", b"Host: x", b"Connection: close", *fields]
    if body is not None:
        head.append(b"Content-Length: %d" % len(body))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"\r\n".join(head) + b"\r\n\r\n" + (body or b""))
        reply = b""
        while piece := sock.recv(65536):
            reply += piece
    top, _, content = reply.partition(b"\r\n\r\n")
    lines = top.split(b"\r\n")
    got = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        got[name.strip().lower().decode()] = value.strip().decode("latin-1")
    return int(lines[0].split()[1]), got, content


def caller_of(access: AccessLines, trace_id: str) -> tuple[str, str]:
    line = access.of(trace_id)
    return line.caller, line.code  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("path", "body"),
    [(b"/v1/chat/completions", CHAT), (b"/v1/models", None), (b"/v1/messages", MESSAGES)],
    ids=["chat", "listing", "messages"],
)
@pytest.mark.parametrize("key", [b"key\xff", "clé".encode("latin-1")], ids=["0xff", "latin-1"])
def test_a_key_that_is_not_utf8_is_an_unknown_key_not_a_fault(
    keyed: tuple[Any, Any],
    access: AccessLines,
    caplog: pytest.LogCaptureFixture,
    path: bytes,
    body: bytes | None,
    key: bytes,
) -> None:
    server, proxy = keyed
    port = proxy.bound.http.port
    method = b"GET" if body is None else b"POST"
    field = b"x-api-key: " if path == b"/v1/messages" else b"Authorization: Bearer "
    status, fields, content = ask(port, method, path, [field + key, *SDK_FIELDS], body)
    assert status == 401 and orjson.loads(content)["error"]["code"] == "invalid_api_key", content
    assert caller_of(access, fields["x-trace-id"]) == ("(unknown key)", "invalid_api_key")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert server.data_requests() == []  # refused at the proxy
    # a key in UTF-8 is read as it always was
    status, fields, _ = ask(port, method, path, [field + "clé-ü".encode(), *SDK_FIELDS], body)
    assert status == 200 and caller_of(access, fields["x-trace-id"])[0] == "accented"


def test_the_anthropic_sdks_x_api_key_is_the_callers_key_and_never_reaches_the_upstream(
    keyed: tuple[Any, Any], access: AccessLines
) -> None:
    server, proxy = keyed
    port = proxy.bound.http.port
    key = KEYS["glasses"].encode()
    status, fields, content = ask(port, b"POST", b"/v1/messages", [b"x-api-key: " + key, *SDK_FIELDS], MESSAGES)
    assert status == 200, content
    assert caller_of(access, fields["x-trace-id"])[0] == "app"  # was: anonymous
    seen = {name.lower(): value for name, value in server.requests[-1].headers.items()}
    assert "x-api-key" not in seen and seen["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert not [r for r in server.requests if KEYS["glasses"] in repr(r.headers)]
    # both fields with the one key: that caller
    status, fields, _ = ask(port, b"POST", b"/v1/messages",
                            [b"x-api-key: " + key, b"Authorization: Bearer " + key, *SDK_FIELDS], MESSAGES)  # fmt: skip
    assert status == 200 and caller_of(access, fields["x-trace-id"])[0] == "app"
    # a key no caller owns, in x-api-key: refused as an unknown key (it was forwarded, the call anonymous)
    before = len(server.requests)
    status, fields, content = ask(port, b"POST", b"/v1/messages", [b"x-api-key: guessed", *SDK_FIELDS], MESSAGES)
    assert status == 401 and orjson.loads(content)["error"]["code"] == "invalid_api_key"
    assert caller_of(access, fields["x-trace-id"]) == ("(unknown key)", "invalid_api_key")
    # two different keys: which one is the caller's is not guessed
    status, fields, content = ask(port, b"POST", b"/v1/messages",
                                  [b"x-api-key: guessed", b"Authorization: Bearer " + key, *SDK_FIELDS], MESSAGES)  # fmt: skip
    error = orjson.loads(content)["error"]
    assert status == 400 and (error["code"], error["param"]) == ("invalid_request", "x-api-key")
    assert fields["x-lineage-decision"] == "deny"
    assert len(server.requests) == before  # neither refusal reached the upstream


def test_x_api_key_is_read_on_the_anthropic_route_only(keyed: tuple[Any, Any], access: AccessLines) -> None:
    """Elsewhere it is no key of the proxy's (the OpenAI API's is Authorization): the upstream's business."""
    server, proxy = keyed
    status, fields, _ = ask(proxy.bound.http.port, b"POST", b"/v1/chat/completions",
                            [b"x-api-key: anything", b"content-type: application/json"], CHAT)  # fmt: skip
    assert status == 200 and caller_of(access, fields["x-trace-id"])[0] == "anonymous"
    assert server.requests[-1].headers.get("x-api-key") == "anything"


def test_without_caller_keys_x_api_key_is_the_upstreams_unless_the_proxy_sends_the_upstreams_own(
    vllm: Any, make_proxy: Any
) -> None:
    server, upstream = vllm
    fields = [b"x-api-key: the-callers-own", *SDK_FIELDS]
    plain = make_proxy(config(callers=False, upstream_key=False), UPSTREAM=upstream)
    assert ask(plain.bound.http.port, b"POST", b"/v1/messages", fields, MESSAGES)[0] == 200
    assert server.requests[-1].headers.get("x-api-key") == "the-callers-own"  # passed on, as Authorization is
    with_key = make_proxy(config(callers=False), UPSTREAM=upstream)
    assert ask(with_key.bound.http.port, b"POST", b"/v1/messages", fields, MESSAGES)[0] == 200
    seen = {name.lower(): value for name, value in server.requests[-1].headers.items()}
    assert "x-api-key" not in seen and seen["authorization"] == f"Bearer {UPSTREAM_KEY}"  # the proxy's key alone


GRPC_CONFIG = f"""
listen: {{http: 127.0.0.1:0, grpc: 127.0.0.1:0}}
upstreams:
  - name: triton
    grpc: ${{UPSTREAM}}
    protocol: oip
    checkpoint: held@1
  - name: rest
    url: http://127.0.0.1:1
    protocol: oip
routes:
  - model: "*"
    upstream: ${{ROUTE:-triton}}
callers:
  - name: lab
    api_key_sha256: {sha(KEYS["ops"])}
    purposes: [assistant]
    default_purpose: assistant
policy: {{anonymous: allow}}
logging: {{access: true}}
lineage:
  store: ${{STORE}}
"""
SERVICE = "/inference.GRPCInferenceService/"


class Recording(grpc.GenericRpcHandler):  # type: ignore[misc]
    """An upstream that answers every unary method with an empty message and keeps each call's metadata."""

    def __init__(self) -> None:
        self.metadata: list[dict[str, str | bytes]] = []
        self._lock = threading.Lock()

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        return grpc.unary_unary_rpc_method_handler(self._answer)

    def _answer(self, request: bytes, context: Any) -> bytes:
        with self._lock:
            self.metadata.append(dict(context.invocation_metadata()))
        return b""


@pytest.fixture
def recording() -> Iterator[tuple[Recording, int]]:
    upstream = Recording()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((upstream,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield upstream, port
    server.stop(0)


def _infer() -> bytes:
    request = service_pb2.ModelInferRequest(model_name="held")
    request.inputs.add(name="A", datatype="INT32", shape=[1]).contents.int_contents.append(1)
    data: bytes = request.SerializeToString()
    return data


def test_grpc_authorization_bin_never_reaches_the_upstream_once_callers_have_keys(
    recording: tuple[Recording, int], make_proxy: Any
) -> None:
    upstream, port = recording
    proxy = make_proxy(GRPC_CONFIG, wait="none", UPSTREAM=f"127.0.0.1:{port}")
    metadata = (("authorization", f"Bearer {KEYS['ops']}"), ("authorization-bin", KEYS["ops"].encode()))
    with grpc.insecure_channel(proxy.grpc) as channel:
        for method, request in (("ModelInfer", _infer()), ("ServerLive", b""), ("RepositoryIndex", b"")):
            _, call = channel.unary_unary(SERVICE + method).with_call(request, metadata=metadata, timeout=10)
            assert call.code() == grpc.StatusCode.OK, method
    forwarded = [seen for seen in upstream.metadata if "traceparent" in seen]  # not the proxy's own probes
    assert len(forwarded) == 3
    for seen in forwarded:  # inference, health, a method passed through: the caller's key in no form
        assert not {"authorization", "authorization-bin"} & set(seen), seen


def test_a_grpc_call_refused_before_it_is_read_is_its_callers_and_says_deny(
    recording: tuple[Recording, int], make_proxy: Any, access: AccessLines
) -> None:
    """A health RPC with no gRPC upstream to answer it: refused, recorded as the caller's whose key it is."""
    _, port = recording
    proxy = make_proxy(GRPC_CONFIG.replace("  - name: triton\n    grpc: ${UPSTREAM}\n    protocol: oip\n"
                                           "    checkpoint: held@1\n", ""), wait="none", ROUTE="rest")  # fmt: skip
    with grpc.insecure_channel(proxy.grpc) as channel, pytest.raises(grpc.RpcError) as refused:
        channel.unary_unary(SERVICE + "ServerLive")(b"", metadata=(("authorization", f"Bearer {KEYS['ops']}"),))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    trailers = dict(refused.value.trailing_metadata())
    assert trailers["x-lineage-decision"] == "deny"
    assert caller_of(access, trailers["x-trace-id"]) == ("lab", "upstream_unavailable")
