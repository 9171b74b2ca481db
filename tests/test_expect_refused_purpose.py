"""A client that sends `Expect: 100-continue` waits for `100 Continue` before it sends its body. The proxy said it to a
call whose head alone is a refusal no body can change (a purpose its caller may not use, no purpose at all), read the
whole body (up to `limits.max_body_bytes`) and only then answered 403. Now such a call is answered at its head, no 100,
decided by the same rules (`refused_by_head`, `decide` on what the head says) and recorded as the refusal it is; a call
whose head leaves the decision to its body (a route's purposes, where the body names the model) still gets 100."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.config import parse
from proxy.flow import Call, TraceContext
from proxy.policy import Policy
from tests.conftest import KEYS, sha
from tests.servers.vllm_like import SERVED
from tests.test_expect_refused_key import first_answer

CONFIG = f"""
listen: {{http: 127.0.0.1:0}}
upstreams:
  - name: vllm
    url: ${{UPSTREAM}}
routes:
  - model: "*"
    upstream: vllm
  - model: locked
    upstream: vllm
    purposes: [ads]
callers:
  - name: app
    api_key_sha256: {sha(KEYS["glasses"])}
    purposes: [assistant]
    default_purpose: assistant
  - name: nodefault
    api_key_sha256: {sha(KEYS["ads"])}
policy:
  anonymous: deny
  mode: ${{MODE:-enforce}}
lineage:
  store: ${{STORE}}
"""
BODY = orjson.dumps({"model": SERVED, "messages": [{"role": "user", "content": "hello"}]})


def answer_at(port: int, key: str, purpose: str | None) -> tuple[bytes, Any]:
    extra = f"\r\nx-purpose: {purpose}" if purpose else ""
    return first_answer(port, f"Bearer {KEYS[key]}{extra}")


@pytest.mark.parametrize(
    "key, purpose, code, rule",
    [("glasses", "ads", "purpose_denied", "caller:app"), ("ads", None, "purpose_required", "policy.default_purpose")],
    ids=["caller-purposes", "no-purpose"],
)
def test_a_call_its_head_refuses_gets_no_100(  # type: ignore[no-untyped-def]
    vllm, make_proxy, loop_thread, tmp_path: Path, key: str, purpose: str | None, code: str, rule: str
) -> None:
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    got, sock = answer_at(proxy.bound.http.port, key, purpose)
    with sock:
        assert got.startswith(b"HTTP/1.1 403 "), got[:200]  # not "100 Continue"
        while piece := sock.recv(65536):  # the answer, then the end of the connection
            got += piece
    head, _, body = got.partition(b"\r\n\r\n")
    assert b"\r\nconnection: close" in head.lower()
    assert b"\r\nx-lineage-decision: deny" in head.lower()
    assert orjson.loads(body)["error"]["code"] == code
    assert server.data_requests() == []
    loop_thread.run(proxy.process.runtime.sinks.flush())  # recorded as the refusal it is: its flow's edge
    from proxy.record.store import SqliteStore

    store = SqliteStore(tmp_path / "lineage.db", readonly=True)
    try:
        edges = [(r.key.caller, r.key.purpose, r.key.decision, r.key.rule) for r in store.rows()]
    finally:
        store.close()
    assert edges == [("app" if key == "glasses" else "nodefault", purpose or "", "deny", rule)], edges


@pytest.mark.parametrize("mode", ["enforce", "audit"])
def test_a_call_whose_body_decides_still_gets_100_continue(vllm, make_proxy, mode: str) -> None:  # type: ignore[no-untyped-def]
    """The route `locked` allows `ads` only, but which model the call is for is the body's to say; audit mode refuses
    nothing, so its call goes on as `audit-deny`."""
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, MODE=mode)
    got, sock = answer_at(proxy.bound.http.port, "glasses", "assistant" if mode == "enforce" else "ads")
    with sock:
        assert got == b"HTTP/1.1 100 Continue\r\n\r\n", got[:200]
        sock.sendall(BODY)
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
    assert len(server.data_requests()) == 1


def test_a_routes_purposes_refuse_at_the_head_only_for_a_model_the_path_names() -> None:
    from proxy.policy import refused_by_head

    policy = Policy.compile(parse(CONFIG, env={"UPSTREAM": "http://127.0.0.1:9", "STORE": "/nonexistent/lineage.db"}))
    trace = TraceContext(1, 1)
    head = Call("oip", "infer", "locked", trace, key_sha256=sha(KEYS["glasses"]), purpose="ads")
    named = refused_by_head(head, policy, model_named=False)
    assert named is not None and named.rule == "caller:app"  # the caller's purposes, whatever the model
    head = Call("oip", "infer", "locked", trace, key_sha256=sha(KEYS["ads"]), purpose="assistant")
    named = refused_by_head(head, policy, model_named=True)
    assert named is not None and (named.code, named.rule) == ("purpose_denied", "route:locked")
    assert refused_by_head(head, policy, model_named=False) is None  # a body could name another model
    allowed = Call("oip", "infer", "locked", trace, key_sha256=sha(KEYS["ads"]), purpose="ads")
    assert refused_by_head(allowed, policy, model_named=True) is None
