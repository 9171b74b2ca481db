"""`policy.known_purposes`: the purposes a call's `x-purpose` may name, besides the config's own. Without it, a caller
naming a new purpose on every call made a new flow, a new row of the lineage store, each: 3,000 calls grew the store
from 64 KiB to 2 MiB. With it, such a call is refused (400, naming the key) before its request is read, over HTTP and
gRPC alike, and recorded under one placeholder purpose, `(unknown purpose)`, never the purpose as sent."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from proxy.config import parse
from proxy.errors import ConfigError
from tests.conftest import KEYS, sha
from tests.servers.vllm_like import SERVED

HTTP = f"""
listen: {{http: 127.0.0.1:0}}
upstreams:
  - name: vllm
    url: ${{UPSTREAM}}
routes:
  - model: "*"
    upstream: vllm
zones:
  - name: health
    labels: [health]
    allow_purposes: [care]
callers:
  - name: app
    api_key_sha256: {sha(KEYS["glasses"])}
    default_purpose: assistant
policy:
  anonymous: deny
  known_purposes: [analytics-*, support]
lineage:
  store: ${{STORE}}
"""
GRPC = """
listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}
upstreams:
  - name: oip
    grpc: ${OIP_GRPC}
    protocol: oip
routes:
  - model: echo
    upstream: oip
zones:
  - name: health
    labels: [health]
    allow_purposes: [care]
policy:
  anonymous: allow
  known_purposes: [support]
telemetry:
  exporter: none
lineage:
  store: ${STORE}
"""


def rows(store: Path) -> list[tuple[str, str, str, str, int]]:
    with sqlite3.connect(store) as db:
        found = db.execute("SELECT caller, purpose, decision, rule, count FROM edges ORDER BY purpose").fetchall()
    return [tuple(row) for row in found]


def test_an_unknown_purpose_is_refused_and_recorded_as_one(vllm, make_proxy, loop_thread, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    store = tmp_path / "lineage.db"
    proxy = make_proxy(HTTP, UPSTREAM=upstream, STORE=str(store))
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=KEYS["glasses"], max_retries=0)

    def chat(purpose: str | None) -> None:
        headers = {"x-purpose": purpose} if purpose is not None else {}
        client.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "hi"}],
                                       extra_headers=headers)  # fmt: skip

    # a zone's, the caller's default (no header), listed, matching a listed pattern, spelt in capitals
    for purpose in ("care", None, "support", "analytics-eu", "Analytics-US"):
        chat(purpose)
    assert len(server.data_requests()) == 5
    for n in range(30):  # a new purpose on every call
        with pytest.raises(openai.BadRequestError) as refused:
            chat(f"made-up-{n}")
        message = refused.value.body["message"]  # type: ignore[index]
        assert f"x-purpose: unknown purpose 'made-up-{n}'" in message and "policy.known_purposes" in message, message
        assert "support" not in message and "care" not in message  # the purposes the policy knows: not told
        assert refused.value.body["param"] == "x-purpose"  # type: ignore[index]
    assert len(server.data_requests()) == 5  # none reached the model
    # a key no caller owns is refused for its key, whatever purpose it names
    unknown = httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": SERVED, "messages": []},
                         headers={"authorization": "Bearer nobody", "x-purpose": "made-up"})  # fmt: skip
    assert unknown.status_code == 401, unknown.text
    loop_thread.run(proxy.process.stop())  # every count written
    recorded = rows(store)
    assert not [row for row in recorded if row[1].startswith("made-up")], recorded
    assert ("app", "(unknown purpose)", "deny", "policy.known_purposes", 30) in recorded, recorded
    assert len(recorded) == 6, recorded  # the 5 served flows and the one of every refusal


def test_audit_mode_refuses_an_unknown_purpose_too(vllm, make_proxy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`policy.mode: audit` forwards a denied call as `audit-deny`, but not one naming a purpose the list does not know:
    that one is refused as in enforce mode (README "Audit mode covers every denial but a few"), while a zone's denial
    goes through."""
    server, upstream = vllm
    config = HTTP.replace("  anonymous: deny\n", "  anonymous: deny\n  mode: audit\n", 1)
    proxy = make_proxy(config, UPSTREAM=upstream, STORE=str(tmp_path / "lineage.db"))
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key=KEYS["glasses"], max_retries=0)
    body = {"model": SERVED, "messages": [{"role": "user", "content": "hi"}]}
    audited = client.chat.completions.with_raw_response.create(
        **body, extra_headers={"x-purpose": "support", "x-data-labels": "health"}
    )
    assert audited.headers["x-lineage-decision"] == "audit-deny"  # the zone's denial, forwarded
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(**body, extra_headers={"x-purpose": "made-up"})
    assert "unknown purpose 'made-up'" in refused.value.body["message"]  # type: ignore[index]
    assert refused.value.response.headers["x-lineage-decision"] == "deny"
    assert len(server.data_requests()) == 1


def test_oip_grpc_is_held_to_the_same_list(faithful, make_proxy, loop_thread, tmp_path) -> None:  # type: ignore[no-untyped-def]
    address, log = faithful
    store = tmp_path / "lineage.db"
    proxy = make_proxy(GRPC, OIP_GRPC=address, STORE=str(store))
    client = triton.InferenceServerClient(proxy.grpc)
    tensor = triton.InferInput("TEXT", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([b"hi"], dtype=np.object_))
    try:
        client.infer("echo", [tensor], headers={"x-purpose": "care"})
        client.infer("echo", [tensor], headers={"x-purpose": "support"})
        for n in range(5):
            with pytest.raises(InferenceServerException) as refused:
                client.infer("echo", [tensor], headers={"x-purpose": f"made-up-{n}"})
            assert refused.value.status() == "StatusCode.INVALID_ARGUMENT"
            assert f"unknown purpose 'made-up-{n}'" in (refused.value.message() or "")
            assert "policy.known_purposes" in (refused.value.message() or "")
    finally:
        client.close()
    assert len(log.read_text().splitlines()) == 2  # only the known purposes' calls reached the model
    loop_thread.run(proxy.process.stop())
    recorded = rows(store)
    assert [row[1] for row in recorded] == ["(unknown purpose)", "care", "support"], recorded
    assert recorded[0] == ("anonymous", "(unknown purpose)", "deny", "policy.known_purposes", 5)


def test_without_the_list_any_purpose_is_taken(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(HTTP.replace("  known_purposes: [analytics-*, support]\n", ""), UPSTREAM=upstream)
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": SERVED, "messages": []},
                       headers={"authorization": f"Bearer {KEYS['glasses']}", "x-purpose": "made-up"})  # fmt: skip
    assert reply.status_code == 200, reply.text


def test_check_explain_refuses_it_as_serve_does(tmp_path: Path) -> None:
    config = tmp_path / "proxy.yaml"
    config.write_text(HTTP.replace("${UPSTREAM}", "http://127.0.0.1:9").replace("${STORE}", str(tmp_path / "l.db")))
    base = [sys.executable, "-m", "proxy", "check", "--config", str(config), "--explain", "--caller", "app"]
    refused = subprocess.run([*base, "--purpose", "made-up"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "--purpose: unknown purpose 'made-up'" in refused.stderr + refused.stdout
    taken = subprocess.run([*base, "--purpose", "analytics-x"], capture_output=True, text=True, timeout=60)
    assert taken.returncode == 0, taken.stderr


def test_a_list_entry_that_is_no_purpose_nor_pattern_is_a_config_problem(tmp_path: Path) -> None:
    text = HTTP.replace("[analytics-*, support]", "[Support, 'a b', ok-*]").replace("${UPSTREAM}", "http://127.0.0.1:9")
    with pytest.raises(ConfigError) as bad:
        parse(text.replace("${STORE}", str(tmp_path / "l.db")), env={})
    problems = [p for p in bad.value.problems if p.startswith("policy.known_purposes")]
    assert [p.split(":")[0] for p in problems] == ["policy.known_purposes[0]", "policy.known_purposes[1]"], problems
    assert "neither a purpose nor a pattern of purposes" in problems[0]
