"""A caller's key is hashed once a process (`Pipeline._digest_of`), not once a connection: a client that opens a
connection for each stream or call had its key hashed on each, 12-17 µs of the request's admission after an idle
spell. Only keys a caller owns are kept, bounded, and for no longer than the config naming their caller is in force;
a key no caller owns, or a malformed one, is hashed each time and kept nowhere."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from proxy.config import parse
from proxy.errors import InvalidRequest, ProxyError, UnknownPurpose
from proxy.exchange import Exchange
from proxy.flow import KeyMemo
from proxy.ingress.http import _exchange
from proxy.pipeline import CALLER_KEY_MAX_CHARS, CALLERS_KEYS_MAX, Pipeline
from proxy.protocols import GRPC_ADAPTERS
from proxy.protocols.oip_grpc import MODEL_STREAM_INFER
from tests.harness import LoopThread, dead_port, offline_pipeline
from tests.ingress.grpc_proxied import Answering, proxied
from tests.ingress.test_grpc_stream_purpose_reload_gone import CONFIG as STREAMED
from tests.ingress.test_grpc_stream_purpose_reload_gone import message, reloaded
from tests.ingress.test_hostile_http import BODY, raw
from tests.servers.vllm_like import SERVED
from tests.test_expect_refused_key import first_answer
from tests.test_reload import reload
from tests.transport.test_grpc import CONFIG as GRPC_CONFIG
from tests.transport.test_grpc import simple_inputs

# those counting digests replace what the compiled modules call (tests/conftest.py: run with the modules interpreted)
interpreted = pytest.mark.interpreted

KEY = "sk-process-key"
CONFIG = """
listen: {{http: 127.0.0.1:8080}}
upstreams: [{{name: vllm, url: "http://127.0.0.1:1", checkpoint: m@1}}]
routes: [{{model: "*", upstream: vllm}}]
callers: [{callers}]
policy: {{anonymous: deny}}
lineage: {{store: {store}}}
"""
# a proxy started with this, its callers as `CONFIG`'s
RUNNING = """
listen: {{http: 127.0.0.1:0}}
upstreams: [{{name: vllm, url: "${{UPSTREAM}}"}}]
routes: [{{model: "*", upstream: vllm}}]
callers: [{callers}]
policy: {{anonymous: deny}}
"""
KNOWN = RUNNING.replace("policy: {{anonymous: deny}}", "policy: {{anonymous: deny, known_purposes: [assistant]}}")
APP = "{{name: app, api_key_sha256: {sha}, purposes: [assistant], default_purpose: assistant}}"
OTHER = "{name: other, api_key_sha256: " + "0" * 64 + ", purposes: [assistant], default_purpose: assistant}"
CHAT = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hello"}]})
SHA = hashlib.sha256(KEY.encode()).hexdigest()


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The fields hashed (`Pipeline._key_digest`), in order."""
    hashed: list[str] = []
    digest = Pipeline._key_digest

    def counted(auth: str) -> str:
        hashed.append(auth)
        return digest(auth)

    monkeypatch.setattr(Pipeline, "_key_digest", staticmethod(counted))
    return hashed


def pipeline(tmp_path: Path, callers: str) -> Pipeline:
    return offline_pipeline(parse(CONFIG.format(callers=callers, store=tmp_path / "lineage.db")))


def admitted(pipe: Pipeline, authorization: str) -> str | None:
    """The caller of one chat call sent with `authorization` on a connection of its own (a new `KeyMemo`)."""
    header = {"authorization": authorization}.get
    ex = _exchange(pipe, "POST", "/v1/chat/completions", header)
    ex.key_memo = KeyMemo()
    ex.admit(CHAT, header, (), deferred=True)
    assert ex.call is not None and ex.decision is not None
    assert ex.call.key_sha256 == hashlib.sha256(authorization.partition(" ")[2].strip().encode()).hexdigest()
    return ex.decision.caller


@interpreted
def test_a_callers_key_is_hashed_once_whatever_connection_it_comes_on(tmp_path: Path, keyed: list[str]) -> None:
    pipe = pipeline(tmp_path, APP.format(sha=SHA))
    assert [admitted(pipe, f"Bearer {KEY}") for _ in range(5)] == ["app"] * 5
    assert keyed == [f"Bearer {KEY}"]  # (before: hashed on each of the 5 connections)
    # who the key says made a call, as a refusal's record names it, and a data-free call's check: from the same
    assert pipe.caller_name({"authorization": f"Bearer {KEY}"}.get) == "app"
    assert pipe.identify_only({"authorization": f"Bearer {KEY}"}.get) == "app"
    assert keyed == [f"Bearer {KEY}"]


@interpreted
def test_a_key_no_caller_owns_or_a_malformed_one_is_hashed_each_time_and_kept_nowhere(
    tmp_path: Path, keyed: list[str]
) -> None:
    pipe = pipeline(tmp_path, APP.format(sha=SHA))
    for _ in range(3):
        with pytest.raises(ProxyError) as refused:
            admitted(pipe, "Bearer sk-nobody")
        assert refused.value.code == "invalid_api_key"
        with pytest.raises(InvalidRequest):
            admitted(pipe, f"Basic {KEY}")
    # each time, and once a call: a malformed one names no one, so its refusal's record does not read it again
    # (before 2026-12-06, helper hot: twice, `Exchange.admit` asked `Pipeline.caller_name`, which refused it again)
    assert set(keyed) == {"Bearer sk-nobody", f"Basic {KEY}"}
    assert keyed.count("Bearer sk-nobody") == 3 and keyed.count(f"Basic {KEY}") == 3
    assert pipe.callers_keys == {}


@interpreted
@pytest.mark.parametrize("refused_by", ["purpose", "size"])
def test_a_key_no_caller_owns_is_hashed_once_a_call_whatever_refuses_it(
    tmp_path: Path, keyed: list[str], refused_by: str
) -> None:
    """Refused before the call is read (a purpose `policy.known_purposes` does not list, a body past
    `READ_UNIDENTIFIED_MAX`: the key checked first), the refusal's caller, for its record, is the key's digest the
    connection's memo has: before 2026-12-06 (helper idle) hashed again (`Pipeline.caller_name` without the memo)."""
    config = CONFIG.replace("policy: {{anonymous: deny}}", "policy: {{anonymous: deny, known_purposes: [assistant]}}")
    pipe = offline_pipeline(parse(config.format(callers=APP.format(sha=SHA), store=tmp_path / "lineage.db")))
    purpose, body = ("made-up", CHAT) if refused_by == "purpose" else ("assistant", b" " * (1 << 20) + CHAT)
    for _ in range(3):
        header = {"authorization": "Bearer sk-nobody", "x-purpose": purpose}.get
        ex = _exchange(pipe, "POST", "/v1/chat/completions", header)
        ex.key_memo = KeyMemo()  # a connection of its own
        with pytest.raises(ProxyError) as refused:
            ex.admit(body, header, (), deferred=True)
        assert refused.value.code == "invalid_api_key" and refused.value.caller == "(unknown key)"
    assert keyed == ["Bearer sk-nobody"] * 3  # (before: 6, twice a call)


@pytest.fixture
def looked_up(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The fields looked up among the callers' keys (`Pipeline._digest_of`: a dict look-up, or a hash), in order."""
    fields: list[str] = []
    digest_of = Pipeline._digest_of

    def counted(self: Pipeline, auth: str) -> str:
        fields.append(auth)
        return digest_of(self, auth)

    monkeypatch.setattr(Pipeline, "_digest_of", counted)
    return fields


@interpreted
@pytest.mark.parametrize("refused_by", ["purpose", "size"])
def test_a_callers_key_is_looked_up_once_a_call_when_its_key_is_checked_first(
    tmp_path: Path, looked_up: list[str], refused_by: str
) -> None:
    """With `policy.known_purposes`, a purpose it does not list is refused once the key is checked (`check_purpose`),
    and a body past `READ_UNIDENTIFIED_MAX` is read once it is: the key's digest is the connection's memo's from then
    on, the refusal's caller the one the check named. Before 2026-12-06 (helper hot) a caller's key was looked up
    twice a call on a new connection (`Pipeline._digest_of`: the check without the memo, then the call or the
    refusal's record)."""
    config = CONFIG.replace("policy: {{anonymous: deny}}", "policy: {{anonymous: deny, known_purposes: [assistant]}}")
    pipe = offline_pipeline(parse(config.format(callers=APP.format(sha=SHA), store=tmp_path / "lineage.db")))
    purpose, body = ("made-up", CHAT) if refused_by == "purpose" else ("assistant", b" " * (1 << 20) + CHAT)
    for _ in range(3):
        header = {"authorization": f"Bearer {KEY}", "x-purpose": purpose}.get
        ex = _exchange(pipe, "POST", "/v1/chat/completions", header)
        ex.key_memo = KeyMemo()  # a connection of its own
        if refused_by == "purpose":
            with pytest.raises(ProxyError) as refused:
                ex.admit(body, header, (), deferred=True)
            assert type(refused.value) is UnknownPurpose and refused.value.caller == "app"
        else:
            ex.admit(body, header, (), deferred=True)
            assert ex.call is not None and ex.call.key_sha256 == SHA
    assert looked_up == [f"Bearer {KEY}"] * 3  # (before: 6, twice a call)


@interpreted
def test_the_keys_kept_are_bounded_however_a_callers_key_is_written(tmp_path: Path, keyed: list[str]) -> None:
    pipe = pipeline(tmp_path, APP.format(sha=SHA))
    for spaces in range(1, CALLERS_KEYS_MAX + 50):  # the same key, as many ways as a field can pad it
        assert admitted(pipe, "Bearer" + " " * spaces + KEY) == "app"
        assert len(pipe.callers_keys) <= CALLERS_KEYS_MAX
    padded = "Bearer " + KEY + " " * CALLER_KEY_MAX_CHARS  # longer than a key: hashed, not kept
    assert admitted(pipe, padded) == "app"
    assert padded not in pipe.callers_keys
    assert admitted(pipe, "Bearer" + " " * (CALLERS_KEYS_MAX + 49) + KEY) == "app"  # kept: not hashed again
    assert keyed.count(padded) == 1 and len(keyed) == CALLERS_KEYS_MAX + 50  # each way once, and the padded


@interpreted
def test_a_reload_keeps_none_of_the_keys_the_config_before_it_kept(tmp_path: Path, keyed: list[str]) -> None:
    before = pipeline(tmp_path, APP.format(sha=SHA))
    assert admitted(before, f"Bearer {KEY}") == "app"
    assert before.callers_keys == {f"Bearer {KEY}": SHA}
    after = pipeline(tmp_path, OTHER)  # its caller removed: the key is no one's now
    with pytest.raises(ProxyError) as refused:
        admitted(after, f"Bearer {KEY}")
    assert refused.value.code == "invalid_api_key"
    assert after.callers_keys == {}
    assert keyed == [f"Bearer {KEY}"] * 2


def test_a_reload_lets_go_of_the_keys_a_call_still_running_keeps_its_config_for(
    vllm: Any, make_proxy: Any, loop_thread: LoopThread, tmp_path: Path
) -> None:
    """(The review's find, helper revadmit.) A call decided by the config before a reload (a stream's) holds that
    config's Pipeline until it ends: its callers' keys were held with it, a caller the reload removed too."""
    _, upstream = vllm
    proxy = make_proxy(RUNNING.format(callers=APP.format(sha=SHA)), UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=KEY, max_retries=0)
    client.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "hello"}])
    running = proxy.process.ref.current  # as a call decided by it holds it (`Exchange.pipeline`)
    assert running.callers_keys == {f"Bearer {KEY}": SHA}
    path = tmp_path / "reloaded.yaml"
    path.write_text(RUNNING.format(callers=OTHER).replace("${UPSTREAM}", upstream))

    async def reload() -> bool:
        return bool(proxy.process.reload(str(path)))

    assert loop_thread.run(reload())
    assert running.callers_keys == {}  # (before: {"Bearer sk-process-key": SHA}, the removed caller's key)
    assert running.caller_name({"authorization": f"Bearer {KEY}"}.get) == "app"  # read by it still, kept no more
    assert running.callers_keys == {}
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "hello"}])


def _answered(got: bytes, sock: Any) -> bytes:
    """The rest of an answer `first_answer` began, to the connection's end."""
    with sock:
        while piece := sock.recv(65536):
            got += piece
    return got


@interpreted
@pytest.mark.parametrize("expects", [False, True], ids=["body", "100-continue"])
def test_a_malformed_key_is_read_once_a_call_the_http_listener_refuses(
    vllm: Any, make_proxy: Any, keyed: list[str], expects: bool
) -> None:
    """(The review's find, helper revhot.) `Exchange.admit` left a malformed Authorization's refusal naming no one,
    but the listener's answer read it again for its record (`HttpIngress._failed`: `Pipeline.caller_name`), as it did
    a call refused at its head (`Expect: 100-continue`): still twice a call at the socket."""
    _, upstream = vllm
    proxy = make_proxy(RUNNING.format(callers=APP.format(sha=SHA)), UPSTREAM=upstream)
    port = proxy.bound.http.port
    for _ in range(3):
        if expects:
            got = _answered(*first_answer(port, "Basic eDp5"))
        else:
            got = raw(port, "POST /v1/chat/completions HTTP/1.1\r\nAuthorization: Basic eDp5")
        assert got.startswith(b"HTTP/1.1 400 ") and b"'Bearer <key>'" in got, got[:400]
    assert keyed == ["Basic eDp5"] * 3  # (before: 6)


@interpreted
@pytest.mark.parametrize("purpose", ["assistant", "made-up"], ids=["served", "unknown-purpose"])
def test_a_callers_key_is_looked_up_once_a_call_that_waits_for_100_continue(
    vllm: Any, make_proxy: Any, looked_up: list[str], purpose: str
) -> None:
    """(The review's find, helper revhot.) A call sent with `Expect: 100-continue` (curl's, for a body over 1 MiB) has
    its key checked at its head (`Pipeline.identify_only`, `Exchange.refuse_at_head`), then with its body: each
    without the connection's memo, a caller's key was looked up three times on a new connection, twice where its
    purpose `policy.known_purposes` does not list refused it at its head."""
    _, upstream = vllm
    proxy = make_proxy(KNOWN.format(callers=APP.format(sha=SHA)), UPSTREAM=upstream)
    port = proxy.bound.http.port
    for _ in range(3):
        got, sock = first_answer(port, f"Bearer {KEY}\r\nx-purpose: {purpose}")
        if purpose == "assistant":
            assert got == b"HTTP/1.1 100 Continue\r\n\r\n", got[:200]
            sock.sendall(BODY)
            with sock:
                got = sock.recv(65536)
            assert got.startswith(b"HTTP/1.1 200 "), got[:400]
        else:
            got = _answered(got, sock)
            assert got.startswith(b"HTTP/1.1 400 ") and b"policy.known_purposes" in got, got[:400]
    assert looked_up == [f"Bearer {KEY}"] * 3  # (before: 9 served, 6 refused)


@interpreted
def test_a_malformed_key_is_read_once_a_call_the_grpc_listener_refuses(
    make_proxy: Any, otlp: Any, keyed: list[str]
) -> None:
    """(The review's find, helper revhot.) A gRPC call's refusal read a malformed Authorization again for its record
    (`_Ends.close`: `Pipeline.caller_name`), after `Exchange.admit` had stopped doing so."""
    proxy = make_proxy(GRPC_CONFIG, wait="probed", OIP_GRPC=f"127.0.0.1:{dead_port()}",
                       OTLP=f"http://127.0.0.1:{otlp.port}")  # fmt: skip
    client = grpcclient.InferenceServerClient(proxy.grpc)
    for _ in range(3):
        with pytest.raises(InferenceServerException) as refused:
            client.infer("simple", simple_inputs([1], [2]), headers={"authorization": "Basic eDp5"})
        assert refused.value.status() == "StatusCode.INVALID_ARGUMENT" and "Bearer <key>" in refused.value.message()
    assert keyed == ["Basic eDp5"] * 3  # (before: 6)


@interpreted
def test_a_callers_key_is_looked_up_once_a_call_its_client_leaves_after_100_continue(
    vllm: Any, make_proxy: Any, otlp: Any, looked_up: list[str]
) -> None:
    """(The review's find, helper revhot.) A call whose client leaves after `100 Continue`, its body sent in part, is
    recorded as its caller's (`HttpIngress._unread`): its key, checked at its head, was looked up again for that
    without the connection's memo (twice a call on a new connection)."""
    _, upstream = vllm
    config = RUNNING.format(callers=APP.format(sha=SHA)) + 'telemetry: {exporter: otlp, endpoint: "${OTLP}"}\n'
    proxy = make_proxy(config, UPSTREAM=upstream, OTLP=f"http://127.0.0.1:{otlp.port}")
    for call in range(3):
        trace_id = f"{0x5EED0 + call:032x}"
        got, sock = first_answer(
            proxy.bound.http.port, f"Bearer {KEY}\r\ntraceparent: 00-{trace_id}-00000000000000a1-01"
        )
        with sock:
            assert got == b"HTTP/1.1 100 Continue\r\n\r\n", got[:200]
            sock.sendall(BODY[:5])
        span = otlp.by_trace(trace_id)
        assert span.attributes["error.type"] == "client_disconnected" and span.attributes["lineage.caller"] == "app"
    assert looked_up == [f"Bearer {KEY}"] * 3  # (before: 6)


@interpreted
def test_a_malformed_key_a_reload_refuses_on_a_streams_later_message_is_read_once(
    loop_thread: LoopThread, otlp: Any, make_proxy: Any, tmp_path: Path, keyed: list[str]
) -> None:
    """(The review's find, helper revhot.) A stream opened while no caller had a key passes any Authorization on; a
    reload that gives callers keys and puts `policy.known_purposes` in force refuses its later message for that key
    (`Exchange._purpose_unknown`, `Pipeline.check_purpose`), whose refusal's record read a malformed one again."""
    header = {"x-purpose": "ads", "authorization": "Basic eDp5"}.get
    with proxied(loop_thread, otlp, make_proxy, STREAMED.replace("POLICY\n", ""), Answering()) as proxy:
        process = proxy.process
        adapter = GRPC_ADAPTERS[0]
        target = adapter.match("POST", MODEL_STREAM_INFER)
        assert target is not None
        pipe = process.ref.current
        ex = Exchange(pipe, adapter, target, pipe.trace(header))
        ex.admit(message(), header, (), deferred=True)
        ex.forwarded()
        assert keyed == []  # (no caller has a key: the field is the upstream's)
        text = STREAMED.replace("POLICY", f"  known_purposes: [support]\ncallers: [{APP.format(sha=SHA)}]")
        assert reload(proxy, loop_thread, reloaded(tmp_path, process, otlp, text))
        refusal = ex.readmit(message(), header, process.ref.current)
        assert refusal is not None and refusal.param == "authorization" and refusal.caller is None, refusal
    assert keyed == ["Basic eDp5"]  # (before: twice)
