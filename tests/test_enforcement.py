"""Purpose enforcement end to end: the real openai SDK sees each contract error as its typed error with
the human reason; denied calls never reach an upstream; reroutes reach the compliant one; audit mode
lets calls through and says what it would have done; labels propagate on the reply."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import openai
import orjson
import pytest

from proxy.record.store import SqliteStore
from tests.conftest import KEYS, sha
from tests.harness import proxy_error, start_app
from tests.servers.vllm_like import ROOT, SERVED, VllmLike
from tests.test_exchange import Counting

CONFIG = f"""
listen:
  http: 127.0.0.1:0
upstreams:
  - name: us
    url: ${{US}}
    region: us
  - name: eu
    url: ${{EU}}
    region: eu
routes:
  - model: {SERVED}
    upstream: us
    purposes: [assistant, ads, safety-review]
callers:
  - name: glasses-app
    api_key_sha256: {sha(KEYS["glasses"])}
    purposes: [assistant, ads]
    labels: [user-interaction]
    default_purpose: assistant
  - name: ads-ranker
    api_key_sha256: {sha(KEYS["ads"])}
    purposes: [ads]
zones:
  - name: interaction-data
    labels: [user-interaction]
    allow_purposes: [assistant, safety-review]
    regions: [eu]
    on_deny: reroute:eu
  - name: health
    labels: [health]
    allow_purposes: [assistant]
    regions: [us]
policy:
  mode: ${{MODE:-enforce}}
  anonymous: deny
detectors: [email, credit_card]
lineage:
  store: ${{STORE}}
"""

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture
def two(loop_thread, make_proxy):  # type: ignore[no-untyped-def]
    us, eu = VllmLike(), VllmLike()
    runners = []
    urls = []
    for server in (us, eu):
        runner, port = loop_thread.run(start_app(server.app()))
        runners.append(runner)
        urls.append(f"http://127.0.0.1:{port}")

    def make(mode: str = "enforce", config: str = CONFIG):  # type: ignore[no-untyped-def]
        return make_proxy(config, US=urls[0], EU=urls[1], MODE=mode)

    yield us, eu, make
    for runner in runners:
        loop_thread.run(runner.cleanup())


def sdk(proxy, key: str | None, **headers: str) -> openai.OpenAI:  # type: ignore[no-untyped-def]
    return openai.OpenAI(
        base_url=f"{proxy.url}/v1",
        api_key=KEYS.get(key, key) if key else "",
        max_retries=0,
        timeout=10,
        default_headers=headers or None,
    )


def test_zone_purpose_denial_is_a_typed_403_and_never_reaches_an_upstream(two) -> None:  # type: ignore[no-untyped-def]
    us, eu, make = two
    proxy = make()
    with pytest.raises(openai.PermissionDeniedError) as caught:
        sdk(proxy, "glasses", **{"x-purpose": "ads"}).chat.completions.create(model=SERVED, messages=MESSAGES)
    error = caught.value
    assert error.status_code == 403 and error.code == "purpose_denied"
    assert error.message == "Error code: 403 - " + (
        "purpose 'ads' is not allowed for data labelled 'user-interaction' "
        "(zone interaction-data allows: assistant, safety-review)"
    )
    assert error.response.headers["x-lineage-decision"] == "deny"
    assert us.data_requests() == [] and eu.data_requests() == []


def test_every_denial_code_as_the_sdk_sees_it(two) -> None:  # type: ignore[no-untyped-def]
    us, eu, make = two
    proxy = make()
    cases = [
        (sdk(proxy, "wrong-key", **{"x-purpose": "assistant"}), openai.AuthenticationError, 401, "invalid_api_key", "unknown API key"),
        (sdk(proxy, "ads"), openai.PermissionDeniedError, 403, "purpose_required", "no purpose given"),
        (sdk(proxy, "ads", **{"x-purpose": "assistant"}), openai.PermissionDeniedError, 403, "purpose_denied",
         "caller 'ads-ranker' may not act for purpose 'assistant'"),
        (sdk(proxy, "ads", **{"x-purpose": "ads", "x-data-labels": "health"}), openai.PermissionDeniedError, 403,
         "purpose_denied", "zone health allows: assistant"),
        (sdk(proxy, "ads", **{"x-purpose": "ads", "x-data-labels": "Bad Label"}), openai.BadRequestError, 400,
         "invalid_request", "x-data-labels: invalid label 'Bad Label'"),
        (sdk(proxy, "ads", **{"x-purpose": "no such!"}), openai.BadRequestError, 400, "invalid_request", "x-purpose"),
    ]  # fmt: skip
    for client, kind, status, code, needle in cases:
        with pytest.raises(kind) as caught:
            client.chat.completions.create(model=SERVED, messages=MESSAGES)
        assert caught.value.status_code == status and caught.value.code == code, caught.value.message
        assert needle in caught.value.message
    # the SDK refuses to send no key at all, so a plain client shows the missing-key case
    nokey = httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": SERVED, "messages": MESSAGES},
                       headers={"x-purpose": "assistant"})  # fmt: skip
    assert nokey.status_code == 401
    assert nokey.json()["error"] == {"message": "missing API key: send 'Authorization: Bearer <key>'",
                                     "type": "authentication_error", "code": "invalid_api_key", "param": None}  # fmt: skip
    with pytest.raises(openai.NotFoundError) as missing:
        sdk(proxy, "ads", **{"x-purpose": "ads"}).chat.completions.create(model="other", messages=MESSAGES)
    assert missing.value.code == "model_not_found"
    assert us.data_requests() == [] and eu.data_requests() == []


def test_region_denial_when_no_reroute_fits(two) -> None:  # type: ignore[no-untyped-def]
    us, eu, make = two
    proxy = make()
    # user-interaction must stay in eu, health in us: no upstream satisfies both
    client = sdk(proxy, "glasses", **{"x-purpose": "assistant", "x-data-labels": "health"})
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.chat.completions.create(model=SERVED, messages=MESSAGES)
    assert caught.value.code == "region_denied"
    assert "may only go to regions eu (zone interaction-data)" in caught.value.message
    assert us.data_requests() == [] and eu.data_requests() == []


def test_reroute_reaches_the_compliant_upstream(two) -> None:  # type: ignore[no-untyped-def]
    us, eu, make = two
    proxy = make()
    reply = sdk(proxy, "glasses").chat.completions.with_raw_response.create(model=SERVED, messages=MESSAGES)
    assert reply.http_response.headers["x-lineage-decision"] == "reroute"
    assert reply.http_response.headers["x-lineage-checkpoint"] == ROOT
    assert reply.http_response.headers["x-data-labels"] == "user-interaction"
    assert len(eu.data_requests()) == 1 and us.data_requests() == []
    # the caller's key is the proxy's business: it never reaches the upstream
    assert "Authorization" not in eu.data_requests()[0].headers


def test_unlabelled_call_stays_on_its_route(two) -> None:  # type: ignore[no-untyped-def]
    us, eu, make = two
    proxy = make()
    reply = sdk(proxy, "ads", **{"x-purpose": "ads"}).chat.completions.with_raw_response.create(
        model=SERVED, messages=MESSAGES
    )
    assert reply.http_response.headers["x-lineage-decision"] == "allow"
    assert len(us.data_requests()) == 1 and eu.data_requests() == []


def test_audit_mode_lets_the_call_through_and_says_so(two) -> None:  # type: ignore[no-untyped-def]
    us, eu, make = two
    proxy = make("audit")
    reply = sdk(proxy, "glasses", **{"x-purpose": "ads"}).chat.completions.with_raw_response.create(
        model=SERVED, messages=MESSAGES
    )
    assert reply.http_response.status_code == 200
    assert reply.http_response.headers["x-lineage-decision"] == "audit-deny"
    # audit mode forwards what it would have refused, but a reroute never blocks: the zone's data still
    # goes only to a region the zone allows, exactly where the same call with an allowed purpose goes
    assert us.data_requests() == [] and len(eu.data_requests()) == 1
    assert reply.http_response.headers["x-lineage-upstream"] == "eu"
    allowed = sdk(proxy, "glasses", **{"x-purpose": "assistant"}).chat.completions.with_raw_response.create(
        model=SERVED, messages=MESSAGES
    )
    assert allowed.http_response.headers["x-lineage-decision"] == "reroute"
    assert allowed.http_response.headers["x-lineage-upstream"] == "eu" and len(eu.data_requests()) == 2
    anonymous = httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": SERVED, "messages": MESSAGES},
                           headers={"x-purpose": "ads", "x-data-labels": "health"}, timeout=10)  # fmt: skip
    assert anonymous.headers["x-lineage-decision"] == "audit-deny" and anonymous.headers["x-lineage-upstream"] == "us"


RECORDED_ZONE = """  - name: recorded-data
    labels: [recorded]
    allow_purposes: [ads]
    require_record: true
"""


@pytest.mark.parametrize("mode", ["enforce", "audit"])
def test_a_zone_that_requires_a_record_while_nothing_records(two, loop_thread, tmp_path, mode: str) -> None:  # type: ignore[no-untyped-def]
    """Enforced: the zone's calls are refused with 503 record_unavailable and never reach the upstream.
    Audited: they go through as audit-deny, recorded with the code, rule and reason they would have had.
    Calls outside the zone are not touched either way."""
    us, eu, make = two
    proxy = make(mode, CONFIG.replace("zones:\n", "zones:\n" + RECORDED_ZONE))
    # what the edge aggregator answers while its store and journal both refuse writes (made to refuse for
    # real in tests/record/test_postgres.py); the store itself still records, so this test can read it
    proxy.process.runtime.recording = lambda: False
    client = sdk(proxy, "ads", **{"x-purpose": "ads", "x-data-labels": "recorded"})
    reason = ("zone recorded-data requires every call to be recorded, and the lineage store cannot record now "
              "(its database and journal both refuse writes)")  # fmt: skip
    if mode == "enforce":
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(model=SERVED, messages=MESSAGES)
        assert (caught.value.status_code, caught.value.code) == (503, "record_unavailable")
        assert caught.value.message == f"Error code: 503 - {reason}"
        assert caught.value.response.headers["x-lineage-decision"] == "deny"
        assert us.data_requests() == []
    else:
        reply = client.chat.completions.with_raw_response.create(model=SERVED, messages=MESSAGES)
        assert reply.http_response.status_code == 200
        assert reply.http_response.headers["x-lineage-decision"] == "audit-deny"
        assert reply.http_response.headers["x-lineage-upstream"] == "us"
        assert len(us.data_requests()) == 1
    unzoned = sdk(proxy, "ads", **{"x-purpose": "ads"}).chat.completions.with_raw_response.create(
        model=SERVED, messages=MESSAGES
    )
    assert unzoned.http_response.headers["x-lineage-decision"] == "allow"
    assert eu.data_requests() == []
    loop_thread.run(proxy.process.runtime.sinks.flush())
    store = SqliteStore(tmp_path / "lineage.db", readonly=True)
    try:
        rows = {row.key.input_labels: row for row in store.rows()}
    finally:
        store.close()
    recorded = rows["recorded"]
    expected = ("deny" if mode == "enforce" else "audit-deny", "zone:recorded-data", reason, 1)
    assert (recorded.key.decision, recorded.rule, recorded.reason, recorded.count) == expected
    assert rows[""].key.decision == "allow"


def test_detected_labels_on_input_and_output(two) -> None:  # type: ignore[no-untyped-def]
    us, eu, make = two
    proxy = make()
    client = sdk(proxy, "ads", **{"x-purpose": "ads", "x-data-labels": "campaign-7"})
    reply = client.chat.completions.with_raw_response.create(
        model=SERVED, messages=[{"role": "user", "content": "card 4111 1111 1111 1111"}]
    )
    # the upstream echoes the prompt, so the output carries the card too
    assert reply.http_response.headers["x-data-labels"] == "campaign-7,pii:credit_card"
    streamed = client.chat.completions.with_raw_response.create(
        model=SERVED, messages=[{"role": "user", "content": "mail a@b.io"}], stream=True
    )
    # streamed replies: headers go out before the output, so they carry the input's labels
    assert streamed.http_response.headers["x-data-labels"] == "campaign-7,pii:email"
    streamed.http_response.read()


def test_oip_rest_data_labels_parameter(loop_thread, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """OIP calls may carry labels as the request parameter `data_labels` (here against a minimal
    in-test OIP REST endpoint; the real MLServer is driven in tests/transport/test_grpc.py)."""
    from aiohttp import web

    seen = []

    async def infer(request: web.Request) -> web.Response:
        seen.append(await request.json())
        return web.json_response({"model_name": "iris", "model_version": "3", "id": "r1",
                                  "outputs": [{"name": "out", "shape": [1], "datatype": "INT64", "data": [2]}]})  # fmt: skip

    async def meta(request: web.Request) -> web.Response:
        return web.json_response({"name": "iris", "versions": ["1", "3"], "platform": "sklearn"})

    async def ready(request: web.Request) -> web.Response:
        return web.Response()

    app = web.Application()
    app.router.add_post("/v2/models/iris/infer", infer)
    app.router.add_get("/v2/models/iris", meta)
    app.router.add_get("/v2/health/ready", ready)
    runner, port = loop_thread.run(start_app(app))
    config = (
        CONFIG.replace("  - name: eu\n    url: ${EU}\n    region: eu\n", "")
        .replace("routes:\n", "routes:\n  - model: iris\n    upstream: oip\n")
        .replace(
            "upstreams:\n",
            f"upstreams:\n  - name: oip\n    url: http://127.0.0.1:{port}\n    protocol: oip\n    region: us\n",
        )
    )
    config = config.replace("on_deny: reroute:eu", "on_deny: block")
    proxy = make_proxy(config, wait="probed", US=f"http://127.0.0.1:{port}")
    body = {"parameters": {"data_labels": "health"},
            "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}  # fmt: skip
    headers = {"Authorization": f"Bearer {KEYS['ads']}", "x-purpose": "ads"}
    denied = httpx.post(f"{proxy.url}/v2/models/iris/infer", json=body, headers=headers)
    assert denied.status_code == 403 and proxy_error(denied)["code"] == "purpose_denied"
    assert seen == []
    body["parameters"] = {"data_labels": ["campaign-7"]}
    ok = httpx.post(f"{proxy.url}/v2/models/iris/infer", json=body, headers=headers)
    assert ok.status_code == 200, ok.text
    assert ok.headers["x-data-labels"] == "campaign-7"
    assert ok.headers["x-lineage-checkpoint"] == "iris:3"
    assert seen[0]["inputs"][0]["data"] == [5.1, 3.5, 1.4, 0.2]
    body["parameters"] = {"data_labels": 7}
    bad = httpx.post(f"{proxy.url}/v2/models/iris/infer", json=body, headers=headers)
    assert bad.status_code == 400 and "data_labels" in proxy_error(bad)["message"]
    loop_thread.run(runner.cleanup())


def test_models_served_by_two_upstreams_are_listed_once(two) -> None:  # type: ignore[no-untyped-def]
    us, eu, make = two
    proxy = make()
    listed = sdk(proxy, "glasses").models.list()
    assert [m.id for m in listed.data] == [SERVED]  # `sql-lora` (both list it) has no route: a call for it is refused


RELOADED = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: vllm
    url: ${UPSTREAM}
routes:
  - model: "*"
    upstream: vllm
zones:
  - name: secret
    labels: [secret]
    allow_purposes: [PURPOSES]
policy: {anonymous: allow}
lineage:
  store: ${STORE}
"""


def test_a_request_whose_body_arrives_after_a_reload_is_decided_by_the_new_config(
    vllm, make_proxy, tmp_path, loop_thread
) -> None:  # type: ignore[no-untyped-def]
    """The call is decided once its body is in: a reload that tightened a zone while the body was on its
    way applies to it (the pipeline had been taken as the request's head arrived)."""
    server, upstream = vllm
    proxy = make_proxy(RELOADED.replace("PURPOSES", "assistant, ads"), UPSTREAM=upstream)
    tightened = tmp_path / "tightened.yaml"
    tightened.write_text(RELOADED.replace("PURPOSES", "assistant").replace("${UPSTREAM}", upstream)
                         .replace("${STORE}", str(tmp_path / "lineage.db")))  # fmt: skip
    body = orjson.dumps({"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nx-purpose: ads\r\n"
            f"x-data-labels: secret\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")  # fmt: skip
    stats = proxy.process.runtime.stats
    with socket.create_connection((proxy.bound.http.host, proxy.bound.http.port), timeout=10) as sock:
        sock.sendall(head.encode())
        deadline = time.monotonic() + 10
        while stats.in_flight == 0:  # the head is read: its call has begun, waiting for the body
            assert time.monotonic() < deadline, "the proxy never began the call"
            loop_thread.run(asyncio.sleep(0.001))
        assert proxy.process.reload(str(tightened))
        sock.sendall(body)
        reply = b"".join(iter(lambda: sock.recv(65536), b""))
    assert reply.startswith(b"HTTP/1.1 403"), reply[:200]
    assert b"purpose_denied" in reply
    assert server.data_requests() == []


def test_a_key_no_caller_owns_is_recorded_apart_from_unauthenticated_calls(two, tmp_path, loop_thread) -> None:  # type: ignore[no-untyped-def]
    """Both were caller `anonymous`, one edge whose rule was whichever came last: a baseline approving the
    missing-key denials (`policy.anonymous`) approved the key guessing too."""
    _, _, make = two
    proxy = make()
    for key in ("guess-1", "guess-2"):
        with pytest.raises(openai.AuthenticationError):
            sdk(proxy, key).chat.completions.create(model=SERVED, messages=MESSAGES)  # type: ignore[arg-type]
    # the SDK refuses to send no key at all: a plain client sends none
    missing = httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": SERVED, "messages": MESSAGES}, timeout=10)
    assert missing.status_code == 401
    loop_thread.run(proxy.process.runtime.sinks.flush())
    store = SqliteStore(tmp_path / "lineage.db", readonly=True)
    try:
        rows = {row.key.caller: (row.count, row.rule) for row in store.rows()}
    finally:
        store.close()
    assert rows == {"(unknown key)": (2, "callers"), "anonymous": (1, "policy.anonymous")}


class Callers(Counting):
    """A record sink keeping who each finished call was recorded as, and why it was refused."""

    name = "callers"

    def __init__(self) -> None:
        self.ended: list[tuple[str | None, str | None]] = []  # type: ignore[assignment]

    def on_end(self, call, decision, outcome, output_labels) -> None:  # type: ignore[no-untyped-def]
        self.ended.append((decision.caller, decision.code))


def test_calls_refused_before_they_are_read_are_recorded_as_their_callers(two) -> None:  # type: ignore[no-untyped-def]
    """A guessed key on a listing or a stored reply read back, and a known caller's malformed request,
    were recorded as `anonymous`."""
    _, _, make = two
    proxy = make()
    callers = Callers()
    proxy.process.runtime.sinks.swap(callers.name, callers)
    guess = {"Authorization": "Bearer guess-1"}
    assert httpx.get(f"{proxy.url}/v1/models", headers=guess, timeout=10).status_code == 401
    assert httpx.get(f"{proxy.url}/v1/responses/resp_1", headers=guess, timeout=10).status_code == 401
    known = {"Authorization": f"Bearer {KEYS['glasses']}", "Content-Type": "application/json"}
    assert (
        httpx.post(f"{proxy.url}/v1/chat/completions", content=b"{not json", headers=known, timeout=10).status_code
        == 400
    )
    assert callers.ended == [("(unknown key)", "invalid_api_key"), ("(unknown key)", "invalid_api_key"),
                             ("glasses-app", "invalid_request")]  # fmt: skip
    # refusals are denials for the metrics too (they were errors only)
    assert 'lineage_proxy_decisions_total{decision="deny"} 3' in proxy.process.metrics_text()


@pytest.mark.interpreted  # patches what a compiled module calls directly (tests/conftest.py)
def test_a_large_body_from_an_unknown_caller_is_refused_before_it_is_read(two, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Reading a body costs the one event loop up to seconds for tens of MB: a guessed key, or none where
    anonymous calls are denied, gets its 401 before a body over 1 MiB is parsed (a smaller one is read, so its
    labels are in the record); a known caller's large body is read as ever."""
    from proxy.protocols import openai as openai_adapter

    _, _, make = two
    proxy = make()
    callers = Callers()
    proxy.process.runtime.sinks.swap(callers.name, callers)
    parsed: list[int] = []
    real = openai_adapter.read_request
    monkeypatch.setattr(openai_adapter, "read_request", lambda op, body: parsed.append(len(body)) or real(op, body))
    large = {"model": SERVED, "messages": [{"role": "user", "content": "x" * (2 << 20)}]}
    for headers in ({"Authorization": "Bearer guess-1"}, {}):
        assert (
            httpx.post(f"{proxy.url}/v1/chat/completions", json=large, headers=headers, timeout=30).status_code == 401
        )
    assert parsed == []
    small = {"model": SERVED, "messages": MESSAGES}
    assert httpx.post(f"{proxy.url}/v1/chat/completions", json=small, headers={"Authorization": "Bearer guess-2"},
                      timeout=10).status_code == 401  # fmt: skip
    known = {"Authorization": f"Bearer {KEYS['glasses']}"}
    assert httpx.post(f"{proxy.url}/v1/chat/completions", json=large, headers=known, timeout=30).status_code == 200
    assert len(parsed) == 2 and parsed[1] > 2 << 20
    assert [caller for caller, _ in callers.ended] == ["(unknown key)", None, "(unknown key)", "glasses-app"]
