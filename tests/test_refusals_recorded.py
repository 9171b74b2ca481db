"""Every answered request has its record, refusals included (README "The record"): a request the
connection refuses itself (malformed framing, a head over the limits, a request line it does not speak, the
connection cap) has its span, its access line, its error count and an `x-trace-id`, as the handler's refusals
do; every refusal says `x-lineage-decision: deny`; and a refused caller whose key is valid is named in the
record, whatever the refusal was for."""

from __future__ import annotations

import gzip
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from proxy.ingress.wire import PIPELINE_DEPTH
from proxy.logs import ACCESS
from tests.conftest import KEYS, sha
from tests.held import until
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.vllm_like import SERVED

CONFIG = f"""
listen: {{http: 127.0.0.1:0}}
upstreams:
  - name: vllm
    url: ${{UPSTREAM}}
routes:
  - model: "*"
    upstream: vllm
callers:
  - name: app
    api_key_sha256: {sha(KEYS["glasses"])}
    purposes: [assistant]
    default_purpose: assistant
policy: {{anonymous: deny}}
limits:
  max_header_bytes: 4096
  max_headers: 20
  max_body_bytes: 65536
  header_timeout_s: ${{HEADER_TIMEOUT:-10}}
  max_connections: ${{MAX_CONNECTIONS:-1000}}
telemetry:
  exporter: otlp
  endpoint: ${{OTLP}}
logging: {{access: true}}
lineage:
  store: ${{STORE}}
"""
AUTH = f"Authorization: Bearer {KEYS['glasses']}"
BODY = orjson.dumps({"model": SERVED, "messages": [{"role": "user", "content": "hello"}]})


class AccessLines(logging.Handler):
    """The access lines the proxy writes (on its event loop's thread, once a call's answer is sent)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self._cond = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self._cond:
            self.records.append(record)
            self._cond.notify_all()

    def of(self, trace_id: str) -> logging.LogRecord:
        """The one access line of a trace, waited for."""
        with self._cond:
            assert self._cond.wait_for(lambda: any(getattr(r, "trace_id", None) == trace_id for r in self.records), 10)
            lines = [r for r in self.records if getattr(r, "trace_id", None) == trace_id]
        assert len(lines) == 1, [r.__dict__ for r in lines]
        return lines[0]


@pytest.fixture
def access() -> Iterator[AccessLines]:
    yield from access_lines()


def access_lines() -> Iterator[AccessLines]:
    """The access lines written while it runs (the access logger is on meanwhile)."""
    logger = logging.getLogger(ACCESS)
    handler, level = AccessLines(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def proxy(vllm: Any, otlp: OtlpReceiver, make_proxy: Any) -> Any:
    _, upstream = vllm
    return make_proxy(CONFIG, UPSTREAM=upstream, OTLP=f"http://127.0.0.1:{otlp.port}", HEADER_TIMEOUT="1")


def ask(port: int, wire: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `wire` on a new connection and read the reply until the proxy closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(wire)
        reply = b""
        try:
            while piece := sock.recv(65536):
                reply += piece
        except ConnectionResetError:  # a refused body still coming: the answer came first
            pass
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower().decode()] = value.strip().decode("latin-1")
    return int(lines[0].split()[1]), fields, body


def assert_recorded(
    otlp: OtlpReceiver, access: AccessLines, fields: dict[str, str], status: int, code: str, caller: str
) -> None:
    """The refusal's reply names its trace and decision; its span and its access line say who and why."""
    assert fields.get("x-lineage-decision") == "deny", fields
    trace_id = fields.get("x-trace-id")
    assert trace_id is not None and len(trace_id) == 32, fields
    span = otlp.by_trace(trace_id)
    a = span.attributes
    assert (a["lineage.decision"], a["error.type"], a["lineage.caller"]) == ("deny", code, caller), a
    assert a["http.response.status_code"] == status
    line = access.of(trace_id)
    assert (line.decision, line.code, line.status, line.caller) == ("deny", code, status, caller)  # type: ignore[attr-defined]


def errors(proxy: Any, kind: str) -> int:
    needle = f'lineage_proxy_errors_total{{type="{kind}"}} '
    for line in httpx.get(f"{proxy.url}/metrics", timeout=5).text.splitlines():
        if line.startswith(needle):
            return int(float(line.split()[-1]))
    return 0


LONG_TARGET = b"GET /v1/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
BIG_HEAD = b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n"
MANY_FIELDS = b"GET /v1/models HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-F%d: 1\r\n" % i for i in range(30)) + b"\r\n"
BAD_METHOD = b"FOO /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"
TWO_LENGTHS = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + AUTH.encode() + b"\r\nContent-Length: %d\r\n"
               b"Content-Length: %d\r\n\r\n%s") % (len(BODY), len(BODY), BODY)  # fmt: skip


@pytest.mark.parametrize(
    ("wire", "status"),
    [(LONG_TARGET, 414), (BIG_HEAD, 431), (MANY_FIELDS, 431), (BAD_METHOD, 400), (TWO_LENGTHS, 400)],
    ids=["target-414", "head-bytes-431", "head-fields-431", "invalid-method-400", "duplicate-length-400"],
)
def test_a_head_refused_unread_is_recorded_as_an_anonymous_refusal(
    proxy: Any, otlp: OtlpReceiver, access: AccessLines, wire: bytes, status: int
) -> None:
    """Nothing of a head that did not parse is read (not even the key it may carry): the call is anonymous."""
    got, fields, body = ask(proxy.bound.http.port, wire)
    assert got == status and orjson.loads(body)["error"]["code"] == "invalid_request"
    assert_recorded(otlp, access, fields, status, "invalid_request", "anonymous")
    assert errors(proxy, "invalid_request") == 1


@pytest.mark.parametrize(
    "line",
    ["GET /v1/models HTTP/2.0", "CONNECT example.com:443 HTTP/1.1", "GET /v1/models HTTP/1.1\r\nHost: y"],
    ids=["http2-line", "connect", "two-hosts"],
)
def test_a_request_refused_on_its_parsed_head_is_recorded_as_its_callers(
    proxy: Any, otlp: OtlpReceiver, access: AccessLines, line: str
) -> None:
    """A head that parsed but is refused (a version or method the proxy does not speak, two Host fields): its
    key is read, as it is for every other refusal, and the trace it names is joined."""
    trace_id = "5eed0000000000000000000000000414"
    wire = f"{line}\r\nHost: x\r\n{AUTH}\r\ntraceparent: 00-{trace_id}-00000000000000a1-01\r\n\r\n".encode()
    got, fields, _ = ask(proxy.bound.http.port, wire)
    assert got == 400
    assert fields["x-trace-id"] == trace_id
    assert_recorded(otlp, access, fields, 400, "invalid_request", "app")
    assert errors(proxy, "invalid_request") == 1


def test_a_connection_past_the_cap_is_answered_and_recorded(
    vllm: Any, otlp: OtlpReceiver, make_proxy: Any, access: AccessLines
) -> None:
    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, OTLP=f"http://127.0.0.1:{otlp.port}", MAX_CONNECTIONS="1")
    port = proxy.bound.http.port
    with socket.create_connection(("127.0.0.1", port), timeout=10) as held:
        held.sendall(f"GET /v1/models HTTP/1.1\r\nHost: x\r\n{AUTH}\r\n\r\n".encode())
        assert held.recv(65536).startswith(b"HTTP/1.1 200 ")  # counted: the next connection is past the cap
        got, fields, _ = ask(port, f"GET /v1/models HTTP/1.1\r\nHost: x\r\n{AUTH}\r\n\r\n".encode())
    assert got == 503 and fields["retry-after"] == "1"
    assert_recorded(otlp, access, fields, 503, "overloaded", "app")


def _post(path: str, extra: str = "", body: bytes = BODY, method: str = "POST") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: x\r\n{AUTH}\r\nConnection: close\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body  # fmt: skip


CHAT = "/v1/chat/completions"
HANDLER_REFUSALS = {
    "bad-json": (_post(CHAT, body=b"{"), 400),
    "bad-label": (_post(CHAT, "x-data-labels: Not A Label!\r\n"), 400),
    "dot-segment": (_post("/v1/../v1/chat/completions"), 400),
    "fragment": (_post(CHAT + "#x"), 400),
    "get-with-body": (_post("/v1/models", body=b"{}", method="GET"), 400),
    "bad-gzip": (_post(CHAT, "Content-Encoding: gzip\r\n", body=b"not gzip"), 400),
    "brotli": (_post(CHAT, "Content-Encoding: br\r\n"), 400),
    "too-large": (_post(CHAT, body=b" " * 70_000), 413),
    "too-large-gzip": (_post(CHAT, "Content-Encoding: gzip\r\n", body=gzip.compress(b" " * 70_000)), 413),
    # the head says 100 bytes, 10 come, then nothing: 408 after limits.header_timeout_s (1 s here)
    "body-timeout": (_post(CHAT, body=b"x" * 100)[:-90], 408),
}


@pytest.mark.parametrize("case", HANDLER_REFUSALS, ids=list(HANDLER_REFUSALS))
def test_every_refusal_says_deny_and_names_a_caller_whose_key_is_valid(
    proxy: Any, otlp: OtlpReceiver, access: AccessLines, case: str
) -> None:
    wire, status = HANDLER_REFUSALS[case]
    got, fields, body = ask(proxy.bound.http.port, wire)
    assert got == status, body
    code = "request_too_large" if status == 413 else "invalid_request"
    assert orjson.loads(body)["error"]["code"] == code
    assert_recorded(otlp, access, fields, status, code, "app")


def _get_models(trace_id: str, extra: str = "") -> str:
    return f"GET /v1/models HTTP/1.1\r\n{extra}{AUTH}\r\ntraceparent: 00-{trace_id}-00000000000000a1-01\r\n\r\n"


def assert_unserved(otlp: OtlpReceiver, access: AccessLines, trace_id: str, code: str) -> None:
    """A request pipelined behind one whose answer closed the connection: never served nor answered, recorded refused
    as that one was, with no status."""
    a = otlp.by_trace(trace_id).attributes
    assert (a["lineage.decision"], a["error.type"], a["lineage.caller"]) == ("deny", code, "app"), a
    assert "http.response.status_code" not in a, a
    line = access.of(trace_id)
    assert (line.decision, line.code, line.status) == ("deny", code, 0)  # type: ignore[attr-defined]


@pytest.mark.parametrize("refused", ["two-hosts", "no-host", "cap"])
def test_a_request_pipelined_behind_one_the_connection_refuses_is_recorded_as_refused(
    vllm: Any, otlp: OtlpReceiver, make_proxy: Any, access: AccessLines, refused: str
) -> None:
    """The connection closes with its refusal (a head it does not take, the connection cap): what was pipelined behind
    it is never served, and recorded with the refusal's code, unanswered. It was dropped without a span or an access
    line (recorded `drain_timeout` when the drain had begun)."""
    _, upstream = vllm
    cap = "1" if refused == "cap" else "1000"
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, OTLP=f"http://127.0.0.1:{otlp.port}", MAX_CONNECTIONS=cap)
    port = proxy.bound.http.port
    first, second = "5eed00000000000000000000000005a1", "5eed00000000000000000000000005a2"
    host = {"two-hosts": "Host: x\r\nHost: y\r\n", "no-host": "", "cap": "Host: x\r\n"}[refused]
    wire = (_get_models(first, host) + _get_models(second, "Host: x\r\n")).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as held:
        held.sendall(f"GET /v1/models HTTP/1.1\r\nHost: x\r\n{AUTH}\r\n\r\n".encode())
        assert held.recv(65536).startswith(b"HTTP/1.1 200 ")  # with the cap at 1, the next connection is past it
        got, fields, _ = ask(port, wire)
    code = "overloaded" if refused == "cap" else "invalid_request"
    assert (got, fields["x-trace-id"]) == (503 if refused == "cap" else 400, first)
    assert_recorded(otlp, access, fields, got, code, "app")
    assert_unserved(otlp, access, second, code)


@pytest.mark.interpreted  # patches a method the compiled handler calls directly (tests/conftest.py)
def test_a_request_pipelined_behind_an_internal_error_is_recorded_as_one(
    proxy: Any, otlp: OtlpReceiver, access: AccessLines, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An internal error's answer closes the connection (its state is unknown): the request pipelined behind it is
    recorded `internal_error`, unanswered. It was dropped without a span or an access line."""
    from proxy.ingress.http import HttpIngress

    async def broken(*args: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(HttpIngress, "_data_free", broken)
    first, second = "5eed00000000000000000000000005b1", "5eed00000000000000000000000005b2"
    got, fields, _ = ask(
        proxy.bound.http.port, (_get_models(first, "Host: x\r\n") + _get_models(second, "Host: x\r\n")).encode()
    )
    assert (got, fields["x-trace-id"]) == (500, first)
    assert_unserved(otlp, access, second, "internal_error")


def _post_keep(path: str, trace_id: str, body: bytes, method: str = "POST") -> str:
    return (f"{method} {path} HTTP/1.1\r\nHost: x\r\n{AUTH}\r\ntraceparent: 00-{trace_id}-00000000000000a1-01\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body.decode()}")  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [("POST", CHAT, 413, "request_too_large"), ("GET", "/v1/models", 400, "invalid_request")],
    ids=["too-large-413", "get-with-too-large-body-400"],
)
def test_a_request_pipelined_behind_a_body_over_the_limit_is_recorded_as_refused(
    proxy: Any, otlp: OtlpReceiver, access: AccessLines, method: str, path: str, status: int, code: str
) -> None:
    """A body over limits.max_body_bytes is answered (413, or 400 when its target takes no body), and the connection
    closes: the request pipelined behind it is never served, and recorded refused as that one was, unanswered. Until
    2026-12-05 it was dropped without a span or an access line."""
    first, second = "5eed00000000000000000000000005c1", "5eed00000000000000000000000005c2"
    wire = _post_keep(path, first, b" " * 70_000, method) + _get_models(second, "Host: x\r\n")
    got, fields, _ = ask(proxy.bound.http.port, wire.encode())
    assert (got, fields["x-trace-id"]) == (status, first)
    assert_recorded(otlp, access, fields, status, code, "app")
    assert_unserved(otlp, access, second, code)


def _read_to_end(sock: socket.socket) -> bytes:
    got = b""
    while piece := sock.recv(65536):
        got += piece
    return got


def _chunked_head(trace_id: str) -> bytes:
    return (f"POST {CHAT} HTTP/1.1\r\nHost: x\r\n{AUTH}\r\ntraceparent: 00-{trace_id}-00000000000000a1-01\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()  # fmt: skip


def _sent_behind_the_answer(port: int, first: str, how: str, behind: bytes) -> bytes:
    """A body over limits.max_body_bytes sent in two parts: the first, then the answer read (the proxy closes its side
    and reads on), then the rest of the body and `behind` (`how`: in one send, or the rest and `behind` apart; a
    chunked body, its 413 once over the limit; a GET's body under it, its head alone first). The answer, as read."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        return _sent_behind_the_answer_on(sock, first, behind, how)


def _sent_behind_the_answer_on(sock: socket.socket, first: str, behind: bytes, how: str = "too-large-413") -> bytes:
    """`_sent_behind_the_answer` on a connection made (left open, for more to be sent on it)."""
    if how == "chunked":
        body = b" " * 70_000
        first_part = _chunked_head(first) + b"%x\r\n" % len(body) + body[:66_000]
        rest = [body[66_000:] + b"\r\n0\r\n\r\n"]
    elif how == "get-body-400":  # a body under the limit, on a GET: refused as its head is read, the body still to come
        wire = _post_keep("/v1/models", first, b" " * 300, "GET").encode()
        first_part, tail = wire[:-300], wire[-300:]
        rest = [tail]
    elif how == "two-hosts-400":  # a head refused as it was parsed (`failed`), its body under the limit still to come
        wire = _post_keep(CHAT, first, b" " * 300).replace("Host: x\r\n", "Host: x\r\nHost: y\r\n", 1).encode()
        first_part, tail = wire[:-300], wire[-300:]
        rest = [tail]
    elif how == "gzip-chunked-400":  # so too a coding llhttp leaves on the body: its chunked framing is read
        head = _chunked_head(first).replace(b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip, chunked")
        first_part = head + b"12c\r\n" + b" " * 100
        rest = [b" " * 200 + b"\r\n0\r\n\r\n"]
    else:
        method, path = ("GET", "/v1/models") if how == "get-400" else ("POST", CHAT)
        wire = _post_keep(path, first, b" " * 70_000, method).encode()
        first_part, tail = wire[:-69_000], wire[-69_000:]
        rest = [tail] if how != "body-then-head" else [tail[:-10], tail[-10:]]
    sock.sendall(first_part)
    answer = _read_to_end(sock)  # the answer, then the proxy's side closed
    if len(rest) == 1:
        sock.sendall(rest[0] + behind)
    else:
        sock.sendall(rest[0])
        sock.sendall(rest[1])
        sock.sendall(behind)
    return answer


TOO_LARGE = ("too-large-413", "body-then-head", "chunked")


@pytest.mark.parametrize(
    "how",
    ["too-large-413", "get-400", "body-then-head", "chunked", "get-body-400", "two-hosts-400", "gzip-chunked-400"],
)
def test_a_request_pipelined_behind_a_refused_body_is_recorded_however_its_bytes_fall(
    proxy: Any, otlp: OtlpReceiver, access: AccessLines, how: str
) -> None:
    """A body over limits.max_body_bytes is answered as its head says so (or, chunked, once over it), then the connection
    closes, reading on for LINGER_S: a request pipelined behind that body is recorded refused as it was, unanswered,
    whether its bytes come in the read that held the body's head or after the answer. Before 2026-12-07 only in the
    first case: as the client's send fell into reads (a CI run, under load, read the 70 KB send in two), it was dropped
    with no record. So too behind a body under the limit refused before it all came (a GET carrying one; a head refused
    as it was parsed, two Host fields, `Transfer-Encoding: gzip, chunked`): before 2026-12-07 nothing after its answer
    was read."""
    first, second = "5eed00000000000000000000000005d1", "5eed00000000000000000000000005d2"
    answer = _sent_behind_the_answer(proxy.bound.http.port, first, how, _get_models(second, "Host: x\r\n").encode())
    status, code = (413, "request_too_large") if how in TOO_LARGE else (400, "invalid_request")
    # one answer (each names its trace; its message may quote a version: "an HTTP/1.1 request must have one Host")
    assert answer.startswith(b"HTTP/1.1 %d " % status) and answer.count(b"\r\nx-trace-id: ") == 1, answer[:200]
    assert_unserved(otlp, access, second, code)


def test_at_most_eight_requests_behind_a_refused_body_answered_are_recorded(
    proxy: Any, otlp: OtlpReceiver, access: AccessLines
) -> None:
    """Once the refusal is answered, at most PIPELINE_DEPTH (8) requests pipelined behind its body are recorded as they
    come; what comes after them is dropped unread while the connection lingers (a client may not hold one open to
    make records)."""
    traces = [f"5eed000000000000000000000000{0x5E0 + n:04x}" for n in range(PIPELINE_DEPTH + 3)]
    behind = b"".join(_get_models(t, "Host: x\r\n").encode() for t in traces)
    answer = _sent_behind_the_answer(proxy.bound.http.port, "5eed00000000000000000000000005df", "too-large-413", behind)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    for trace_id in traces[:PIPELINE_DEPTH]:
        assert_unserved(otlp, access, trace_id, "request_too_large")
    assert until(lambda: not proxy.process._http.connections)  # cut at the linger's end: nothing more is read
    recorded = {getattr(r, "trace_id", None) for r in access.records}
    assert not recorded & set(traces[PIPELINE_DEPTH:]), recorded


def test_a_head_partly_come_behind_a_refused_body_answered_is_recorded_when_the_connection_ends(
    proxy: Any, otlp: OtlpReceiver, access: AccessLines
) -> None:
    """A request head only partly come behind a refused body, after its answer, when the connection's lingering ends:
    recorded refused as that one was, its path (its line whole), none of its fields read (a new trace). Before
    2026-12-07 dropped with no record."""
    answer = _sent_behind_the_answer(
        proxy.bound.http.port, "5eed00000000000000000000000005f1", "too-large-413",
        b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Ty",
    )  # fmt: skip
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]

    def cut(spans: list[Any]) -> list[Any]:
        return [s for s in spans if s.name == "embeddings"]

    spans = cut(otlp.wait_for(lambda spans: len(cut(spans)) == 1))
    a = spans[0].attributes
    assert (a["lineage.decision"], a["error.type"]) == ("deny", "request_too_large"), a
    assert "http.response.status_code" not in a and "after which the connection closes" in a["lineage.reason"], a


def _post_head(trace_id: str, length: int) -> bytes:
    return (f"POST {CHAT} HTTP/1.1\r\nHost: x\r\n{AUTH}\r\ntraceparent: 00-{trace_id}-00000000000000a1-01\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()  # fmt: skip


@pytest.mark.parametrize("how", ["too-large-413", "chunked"])
def test_a_body_pipelined_behind_a_refused_body_answered_holds_nothing(
    proxy: Any, otlp: OtlpReceiver, access: AccessLines, how: str
) -> None:
    """A POST pipelined behind a refused body, its body still coming after it was recorded unserved (a Content-Length
    body; a chunked one behind a chunked body refused mid-chunk, its chunk cut): none of that body is counted in the
    bodies held (limits.bodies_max_bytes), as nothing behind a refusal is served. Before 2026-12-07 the bytes that came
    after its record were counted and never given back: the budget every connection shares shrank by them for the
    process's life."""
    second, third = "5eed00000000000000000000000005e1", "5eed00000000000000000000000005e2"
    if how == "chunked":
        behind, rest = _chunked_head(second) + b"4e20\r\n" + b"x" * 10_000, b"x" * 10_000 + b"\r\n0\r\n\r\n"
    else:
        behind, rest = _post_head(second, 20_000) + b"x" * 10_000, b"x" * 10_000
    http = proxy.process._http
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        answer = _sent_behind_the_answer_on(sock, "5eed00000000000000000000000005e0", behind, how)
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
        assert_unserved(otlp, access, second, "request_too_large")  # its head read, its body partly
        sock.sendall(rest)
        sock.sendall(_get_models(third, "Host: x\r\n").encode())
        assert_unserved(otlp, access, third, "request_too_large")  # the rest read
        assert http.held == 0
    assert until(lambda: not http.connections)
    assert http.held == 0


def test_a_body_pipelined_behind_one_refused_past_the_bodies_budget_holds_nothing(
    vllm: Any, otlp: OtlpReceiver, make_proxy: Any, access: AccessLines
) -> None:
    """A body refused 503 as it would take the bodies held past limits.bodies_max_bytes (the budget another connection
    holds most of): the requests pipelined behind it are recorded `overloaded`, and their bodies hold nothing (before
    2026-12-07 what came of one after its record stayed counted for the process's life)."""
    _, upstream = vllm
    config = CONFIG.replace("max_body_bytes: 65536", "max_body_bytes: 65536\n  bodies_max_bytes: 65536")
    proxy = make_proxy(config, UPSTREAM=upstream, OTLP=f"http://127.0.0.1:{otlp.port}")
    http, port = proxy.process._http, proxy.bound.http.port
    second, third = "5eed00000000000000000000000005f3", "5eed00000000000000000000000005f4"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as holding:
        holding.sendall(_post_head("5eed00000000000000000000000005f1", 65_000) + b"h" * 60_000)
        assert until(lambda: http.held == 60_000)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(_post_head("5eed00000000000000000000000005f2", 20_000) + b"a" * 10_000)
            assert _read_to_end(sock).startswith(b"HTTP/1.1 503 ")
            sock.sendall(b"a" * 10_000 + _post_head(second, 3000) + b"b" * 1000)
            assert_unserved(otlp, access, second, "overloaded")
            sock.sendall(b"b" * 2000 + _get_models(third, "Host: x\r\n").encode())
            assert_unserved(otlp, access, third, "overloaded")
            assert http.held == 60_000
    assert until(lambda: not http.connections)
    assert http.held == 0


def test_a_request_behind_a_whole_body_refused_past_the_bodies_budget_is_recorded_after_the_answer(
    vllm: Any, otlp: OtlpReceiver, make_proxy: Any, access: AccessLines
) -> None:
    """A body refused 503 past limits.bodies_max_bytes that came whole before its answer: the connection lingers after
    the answer, reading on, and a request pipelined behind it whose bytes come after the answer is recorded `overloaded`.
    Before 2026-12-07 the connection was closed outright with the answer (a refusal answered whole set `_broken` back):
    that request was dropped with no record, and a client still sending could have lost the answer to a reset."""
    _, upstream = vllm
    config = CONFIG.replace("max_body_bytes: 65536", "max_body_bytes: 65536\n  bodies_max_bytes: 65536")
    proxy = make_proxy(config, UPSTREAM=upstream, OTLP=f"http://127.0.0.1:{otlp.port}")
    http, port = proxy.process._http, proxy.bound.http.port
    second = "5eed00000000000000000000000005f6"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as holding:
        holding.sendall(_post_head("5eed00000000000000000000000005f0", 65_000) + b"h" * 60_000)
        assert until(lambda: http.held == 60_000)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(_post_head("5eed00000000000000000000000005f5", 20_000) + b"a" * 20_000)
            assert _read_to_end(sock).startswith(b"HTTP/1.1 503 ")
            sock.sendall(_get_models(second, "Host: x\r\n").encode())
            assert_unserved(otlp, access, second, "overloaded")
    assert until(lambda: not http.connections)
    assert http.held == 0


UPGRADING = "Host: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
BEHIND_LAST = {
    "malformed": BAD_METHOD,
    "head-over-the-limit": BIG_HEAD,
    "target-over-the-limit": LONG_TARGET,
    "asking-to-upgrade": _get_models("5eed00000000000000000000000005e4", UPGRADING).encode(),
}


@pytest.mark.parametrize("last", BEHIND_LAST, ids=list(BEHIND_LAST))
def test_a_request_behind_a_refused_body_answered_is_recorded_whatever_follows_it(
    proxy: Any, otlp: OtlpReceiver, access: AccessLines, last: str
) -> None:
    """Requests pipelined behind a refused body, after its answer, in the read of a head the connection refuses itself
    (malformed, over the limits) or one asking to upgrade it: recorded refused as the refused body was, once each, as
    they are in the read of its head; that head made no call (nor is it answered: the answer has gone out), the one
    asking to upgrade is recorded as they are. Before 2026-12-07 (since they were read on behind the answer, earlier
    that day) dropped with no record."""
    second = "5eed00000000000000000000000005e3"
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        behind = _get_models(second, "Host: x\r\n").encode() + BEHIND_LAST[last]
        answer = _sent_behind_the_answer_on(sock, "5eed00000000000000000000000005e0", behind)
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
        assert_unserved(otlp, access, second, "request_too_large")
        recorded = ["5eed00000000000000000000000005e0", second]
        if last == "asking-to-upgrade":
            assert_unserved(otlp, access, "5eed00000000000000000000000005e4", "request_too_large")
            recorded.append("5eed00000000000000000000000005e4")
    assert until(lambda: not proxy.process._http.connections)
    assert [getattr(r, "trace_id", None) for r in access.records] == recorded


def _gated_stream(trace_id: str) -> bytes:
    """A streamed chat call whose every event the upstream holds until the test lets it through (`__gate__`)."""
    body = orjson.dumps({"model": SERVED, "stream": True, "messages": [{"role": "user", "content": "__gate__"}]})
    return _post_head(trace_id, len(body)) + body


def test_a_head_partly_come_behind_a_refused_body_when_it_is_answered_is_read_on(
    proxy: Any, vllm: Any, loop_thread: Any, otlp: OtlpReceiver, access: AccessLines
) -> None:
    """A refused body pipelined behind a call being served, then part of the next request's head: when the refusal
    is answered and the connection lingers, that head is read on, and recorded whole once it is (its trace, its
    caller), not cut at the answer. Before 2026-12-07 recorded then as a head cut: its fields unread, a new trace."""
    server, _ = vllm
    third = "5eed00000000000000000000000005e7"
    head = _get_models(third, "Host: x\r\n").encode()
    http = proxy.process._http
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        sock.sendall(_gated_stream("5eed00000000000000000000000005e5"))
        assert until(lambda: len(server.data_requests()) == 1)  # being served, held at the upstream
        (conn,) = http.connections
        sock.sendall(_post_keep(CHAT, "5eed00000000000000000000000005e6", b" " * 70_000).encode() + head[:40])
        assert until(lambda: conn.parsing is not None and conn.parsing.target == "/v1/models")  # read, behind
        for _ in range(16):  # the stream's events (8), let through
            server.release(loop_thread.loop)
        replies = _read_to_end(sock)  # the stream, then the 413, then the proxy's side closed
        assert replies.startswith(b"HTTP/1.1 200 ") and b"\r\n\r\nHTTP/1.1 413 " in replies, replies[-300:]
        sock.sendall(head[40:])
        assert_unserved(otlp, access, third, "request_too_large")


def test_a_client_leaving_with_requests_behind_a_refused_body_is_heard_while_the_one_before_is_served(
    proxy: Any, vllm: Any, otlp: OtlpReceiver, access: AccessLines
) -> None:
    """A call being served, a refused body pipelined behind it, then more requests than PIPELINE_DEPTH: reading goes on
    (nothing behind the refusal is served: at most PIPELINE_DEPTH are kept, to be recorded), so the client's leaving is
    heard, and the call's upstream request cancelled. Before 2026-12-07 (since the requests behind such a body were read
    on, earlier that day) reading paused with PIPELINE_DEPTH queued, and the leaving went unheard while that call ran."""
    server, _ = vllm
    behind = [f"5eed0000000000000000000000000{0x600 + n:03x}" for n in range(PIPELINE_DEPTH + 4)]
    http = proxy.process._http
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        sock.sendall(_gated_stream("5eed000000000000000000000000061f"))
        assert until(lambda: len(server.data_requests()) == 1)  # being served, held at the upstream
        (conn,) = http.connections
        sock.sendall(_post_keep(CHAT, "5eed000000000000000000000000061e", b" " * 70_000).encode())
        assert until(lambda: conn.parsing is None and len(conn.queue) == 1)  # its body read whole, dropped
        sock.sendall(b"".join(_get_models(trace_id, "Host: x\r\n").encode() for trace_id in behind))
        assert until(lambda: conn.parsing is None and len(conn.queue) >= 1 + PIPELINE_DEPTH)
    assert until(lambda: server.cancelled == 1)
    for trace_id in behind[:PIPELINE_DEPTH]:
        assert_unserved(otlp, access, trace_id, "client_disconnected")
    assert until(lambda: not http.connections)
    recorded = {getattr(r, "trace_id", None) for r in access.records}
    assert not recorded & set(behind[PIPELINE_DEPTH:]), recorded


def test_reading_paused_before_a_refused_body_comes_is_resumed_and_what_is_behind_it_recorded(
    proxy: Any, vllm: Any, loop_thread: Any, otlp: OtlpReceiver, access: AccessLines
) -> None:
    """A call being served, PIPELINE_DEPTH + 1 requests pipelined behind it (reading pauses), then, in a send of their
    own, a body over limits.max_body_bytes and requests behind it: reading resumes as the queue is served (its bytes
    were not read yet: nothing was refused then), each request before the refused body is answered, then the 413, and
    those behind it are recorded refused as it was."""
    server, _ = vllm
    http = proxy.process._http
    before = [f"5eed0000000000000000000000000{0x620 + n:03x}" for n in range(PIPELINE_DEPTH + 1)]
    behind = [f"5eed0000000000000000000000000{0x640 + n:03x}" for n in range(3)]
    with socket.create_connection(("127.0.0.1", proxy.bound.http.port), timeout=10) as sock:
        sock.sendall(_gated_stream("5eed000000000000000000000000061d"))
        assert until(lambda: len(server.data_requests()) == 1)  # being served, held at the upstream
        (conn,) = http.connections
        sock.sendall(b"".join(_get_models(trace_id, "Host: x\r\n").encode() for trace_id in before))
        assert until(lambda: len(conn.queue) == PIPELINE_DEPTH + 1 and not conn._reading)  # paused
        sock.sendall(_post_keep(CHAT, "5eed000000000000000000000000063f", b" " * 70_000).encode()
                     + b"".join(_get_models(trace_id, "Host: x\r\n").encode() for trace_id in behind))  # fmt: skip
        for _ in range(16):  # the stream's events (8), let through
            server.release(loop_thread.loop)
        replies = _read_to_end(sock)
    answers = (replies.count(b"HTTP/1.1 200 "), replies.count(b"HTTP/1.1 413 "))
    assert answers == (PIPELINE_DEPTH + 2, 1), replies[-300:]
    assert replies.rindex(b"HTTP/1.1 200 ") < replies.index(b"HTTP/1.1 413 ")
    for trace_id in behind:
        assert_unserved(otlp, access, trace_id, "request_too_large")
