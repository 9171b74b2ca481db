"""`policy.known_labels`: the labels a call may send, besides the config's own. A misspelt label (`heath` for a zone's
`health`) was taken as data no zone holds, and went to the model for any purpose; a caller sending a new label on
every call made a new flow a call. With the list set, such a label is refused (400, naming it, not the labels the
policy knows) before anything is forwarded, over the wire (`x-data-labels`, OIP's `data_labels`) and in `check --explain` alike."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest

from proxy.config import parse
from proxy.errors import ConfigError
from tests.configs import ONE_UPSTREAM
from tests.harness import proxy_error
from tests.servers.vllm_like import SERVED

ZONED = """
zones:
  - name: health
    labels: [health]
    allow_purposes: [care]
callers:
  - name: app
    api_key_sha256: 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824
    labels: [user-interaction]
lineage:
  store: ${STORE}
"""
KNOWN = ONE_UPSTREAM.replace("  anonymous: allow\n", "  anonymous: allow\n  known_labels: [team-*, dataset:faq]\n")
CONFIG = KNOWN + ZONED
OPEN = ONE_UPSTREAM + ZONED


def chat(proxy, labels: str) -> None:  # type: ignore[no-untyped-def]
    client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="hello", max_retries=0)
    client.chat.completions.create(
        model=SERVED,
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-data-labels": labels, "x-purpose": "care"},
    )


def test_a_label_the_config_does_not_know_is_refused_before_it_is_forwarded(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    # a zone's, a caller's, a detector's (built in, configured or not), listed, matching a listed pattern
    for labels in ("health", "user-interaction", "pii:iban", "dataset:faq", "team-a,team-b", "health,team-x"):
        chat(proxy, labels)
    forwarded = len(server.data_requests())
    assert forwarded == 6
    for labels, unknown in (("heath", "heath"), ("health,teams", "teams"), ("dataset:faqs", "dataset:faqs")):
        with pytest.raises(openai.BadRequestError) as refused:
            chat(proxy, labels)
        message = refused.value.body["message"]  # type: ignore[index]
        assert f"x-data-labels: unknown label {unknown!r}" in message, message
        assert "policy.known_labels" in message and "health" not in message  # the policy's labels not told
    assert len(server.data_requests()) == forwarded  # none of them reached the model


def test_oip_data_labels_are_held_to_the_same_list(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    body = {
        "inputs": [{"name": "x", "shape": [1], "datatype": "BYTES", "data": ["hi"]}],
        "parameters": {"data_labels": "heath"},
    }
    refused = httpx.post(f"{proxy.url}/v2/models/m/infer", json=body, headers={"authorization": "Bearer hello"})
    assert refused.status_code == 400, refused.text
    assert "parameters.data_labels: unknown label 'heath'" in proxy_error(refused)["message"]
    assert server.data_requests() == []


def test_without_the_list_any_label_is_taken(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(OPEN, UPSTREAM=upstream)
    chat(proxy, "heath")  # as before: a label of its own, no zone's
    assert len(server.data_requests()) == 1


def test_check_explain_refuses_it_as_serve_does(tmp_path: Path) -> None:
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("${UPSTREAM}", "http://127.0.0.1:9").replace("${STORE}", str(tmp_path / "l.db")))
    base = [sys.executable, "-m", "proxy", "check", "--config", str(config), "--explain", "--purpose", "care"]
    refused = subprocess.run([*base, "--labels", "heath"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "--labels: unknown label 'heath'" in refused.stderr + refused.stdout
    taken = subprocess.run([*base, "--labels", "team-a"], capture_output=True, text=True, timeout=60)
    assert taken.returncode == 0, taken.stderr


def test_a_list_entry_that_is_no_label_nor_pattern_is_a_config_problem() -> None:
    text = KNOWN.replace("[team-*, dataset:faq]", "[Team-*, 'a b', ok-*]").replace("${UPSTREAM}", "http://127.0.0.1:9")
    with pytest.raises(ConfigError) as bad:
        parse(text, env={})
    problems = [p for p in bad.value.problems if p.startswith("policy.known_labels")]
    assert [p.split(":")[0] for p in problems] == ["policy.known_labels[0]", "policy.known_labels[1]"]
