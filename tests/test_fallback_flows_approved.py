"""A fallback's flow is held to the approved baseline as the call's own is (`Pipeline.judged_for_others`):
- under `lineage.on_unapproved: warn`, a fallback whose flow the baseline does not approve is flagged: the call counted
  once in `lineage_proxy_unapproved_flows_total`, the flow logged with the checkpoint it reaches, the call's
  `lineage.approved` false. Until 2026-12-07 it was not: only the call's own flow was judged there;
- a model the server picks (`"default"`, `route: "fallback"`), one no route names, is judged as the `"*"` route's call
  naming no model, whose checkpoint only its reply names: under `block`, refused 403 `flow_not_approved` unless the
  baseline approves that flow for any checkpoint, with a reason saying so. Until 2026-12-07 it was judged as a call
  naming `*`, a name no server lists: 503 `checkpoint_unknown` ("is being asked about model '*'"), then 404
  `model_not_found`, "call the model by a name the metadata lists", which the caller never named (helper paths15)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.harness import serving
from tests.test_anthropic_cached_input_tokens import TELEMETRY
from tests.test_anthropic_fallbacks import ANSWERED, ASKED
from tests.test_fallback_models_judged import CONFIG, openai_app

HI = [{"role": "user", "content": "hi"}]
APPROVED = """version: 1
flows:
  - caller: anonymous
    purpose: assistant
    checkpoints: {checkpoints}
"""
ASKED_ONLY = APPROVED.format(checkpoints="[org/asked]")  # (`openai_app`'s roots: claude-asked's weights)
ROUTED = APPROVED.format(checkpoints="[org/asked, org/fallback]")  # every routed model's
ANY = APPROVED.replace("    checkpoints: {checkpoints}\n", "")  # whatever checkpoint


def _lineage(mode: str) -> str:
    return f"lineage:\n  store: ${{STORE}}\n  baseline: ${{BASELINE}}\n  on_unapproved: {mode}\n"


def _ask(url: str, extra: dict[str, Any]) -> tuple[int, str, str]:
    """An `assistant` chat to claude-asked through the openai SDK, retried while the upstream's metadata is being read
    (503 `checkpoint_unknown`, the first calls under `block`): its status, trace and error message."""
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=10,
                           default_headers={"x-purpose": "assistant"})  # fmt: skip
    try:
        for _ in range(100):
            try:
                raw = client.chat.completions.with_raw_response.create(model=ASKED, messages=HI, extra_body=extra)
                return 200, raw.headers["x-trace-id"], ""
            except openai.APIStatusError as error:
                if error.code != "checkpoint_unknown":
                    return error.status_code, error.response.headers["x-trace-id"], error.message
            httpx.get(f"{url}/v1/models", timeout=10)  # (a turn for discovery: no sleep)
        raise AssertionError("the metadata never named the models")
    finally:
        client.close()


@pytest.mark.parametrize(
    ("extra", "approved", "counted"),
    [
        ({"fallbacks": [ANSWERED]}, False, 1),  # LiteLLM's: claude-fallback's weights, not approved
        ({"models": [ASKED, ANSWERED]}, False, 1),  # OpenRouter's
        (f"{ASKED},{ANSWERED}", False, 1),  # a batch
        ({"fallbacks": [ASKED]}, True, 0),
        ({}, True, 0),
    ],
)
def test_warn_flags_a_fallbacks_unapproved_flow(loop_thread, otlp, make_proxy, tmp_path: Path, caplog, extra: Any,
                                                 approved: bool, counted: int) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    """`warn`: the call goes on, its fallback's unapproved flow flagged (counted once, logged naming org/fallback, the
    span's `lineage.approved` false); a call whose every model's flow is approved is not."""
    (tmp_path / "approved.yaml").write_text(ASKED_ONLY)
    seen: list[dict[str, Any]] = []
    caplog.set_level(logging.WARNING, logger="lineage_proxy.baseline")
    with serving(loop_thread, openai_app(seen)) as url:
        proxy = make_proxy(CONFIG + TELEMETRY + _lineage("warn"), UPSTREAM=url, OTLP=f"http://127.0.0.1:{otlp.port}",
                           BASELINE=str(tmp_path / "approved.yaml"))  # fmt: skip
        if isinstance(extra, str):  # (the batch: its `model`)
            client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=10,
                                   default_headers={"x-purpose": "assistant"})  # fmt: skip
            try:
                raw = client.chat.completions.with_raw_response.create(model=extra, messages=HI)
            finally:
                client.close()
            status, trace = 200, raw.headers["x-trace-id"]
        else:
            status, trace, _ = _ask(proxy.url, extra)
        span = otlp.by_trace(trace)
        metrics = httpx.get(f"{proxy.url}/metrics", timeout=10).text
    assert status == 200 and len(seen) == 1
    assert span.attributes.get("lineage.approved") is approved
    if not isinstance(extra, str):  # (a batch's: the one its reply names)
        assert span.attributes.get("lineage.checkpoint") == "org/asked"  # (its own flow's, approved)
    assert f"lineage_proxy_unapproved_flows_total {counted}" in metrics
    logged = [r.getMessage() for r in caplog.records if "unapproved flow" in r.getMessage()]
    assert len(logged) == counted and all("checkpoint org/fallback" in line for line in logged), logged


# (baseline, fallbacks) -> (status, code): a model the server picks under `block`
PICKED_CASES = [
    (ROUTED, {"route": "fallback"}, 403, "flow_not_approved"),  # any routed model's approved; a pick of another is not
    (ROUTED, {"fallbacks": "default"}, 403, "flow_not_approved"),  # (not a list: a form not known, the server's pick)
    (ANY, {"route": "fallback"}, 200, None),  # approved whatever it reaches
    (ASKED_ONLY, {"route": "fallback"}, 403, "flow_not_approved"),  # (claude-fallback's: refused as before)
    (ROUTED, {"fallbacks": [ANSWERED]}, 200, None),  # named: judged by its checkpoint
]


@pytest.mark.parametrize(("baseline", "extra", "status", "code"), PICKED_CASES)
def test_block_judges_a_picked_model_as_one_no_route_names(loop_thread, make_proxy, tmp_path: Path, baseline: str,
                                                           extra: dict[str, Any], status: int,
                                                           code: str | None) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    """`block`: a model the server picks may be one no route names, whose checkpoint only the reply names: refused
    403 `flow_not_approved` unless the baseline approves the flow for any checkpoint, its reason saying so (not 404,
    "call the model by a name the metadata lists" of a name `*` the caller never gave)."""
    (tmp_path / "approved.yaml").write_text(baseline)
    seen: list[dict[str, Any]] = []
    with serving(loop_thread, openai_app(seen)) as url:
        proxy = make_proxy(CONFIG + _lineage("block"), UPSTREAM=url, BASELINE=str(tmp_path / "approved.yaml"))
        got, _, message = _ask(proxy.url, extra)
    assert got == status, message
    assert len(seen) == (1 if status == 200 else 0)
    if code is not None:
        assert "model '*'" not in message and "metadata lists" not in message, message
        if baseline is ROUTED:
            assert "a model no route names" in message and "approve it for any checkpoint" in message, message


# the upstream pinned (`upstreams[].checkpoint`): whatever model it serves, a pick too, its weights are the pin's
PINNED = CONFIG.replace("    url: ${UPSTREAM}\n", "    url: ${UPSTREAM}\n    checkpoint: org/pinned\n")


@pytest.mark.parametrize("extra", [{"route": "fallback"}, {"fallbacks": "default"}])
def test_block_lets_a_pick_of_a_pinned_upstream_through(loop_thread, make_proxy, tmp_path: Path,
                                                        extra: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    """`block`, the `"*"` route's upstream pinned: the checkpoint of any model the server picks is known before its
    reply (the pin's), so a baseline approving the flow for it lets the call through, as a call naming any model is."""
    (tmp_path / "approved.yaml").write_text(APPROVED.format(checkpoints="[org/pinned]"))
    seen: list[dict[str, Any]] = []
    with serving(loop_thread, openai_app(seen)) as url:
        proxy = make_proxy(PINNED + _lineage("block"), UPSTREAM=url, BASELINE=str(tmp_path / "approved.yaml"))
        got, _, message = _ask(proxy.url, extra)
    assert (got, len(seen)) == (200, 1), message


@pytest.mark.parametrize(
    ("baseline", "extra", "approved"),
    [
        (ROUTED, {"route": "fallback"}, False),  # (what `block` refuses: a pick of a model no route names)
        (ROUTED, {"fallbacks": "default"}, False),
        (ANY, {"route": "fallback"}, True),  # approved whatever it reaches
    ],
)
def test_warn_flags_a_picked_model_block_refuses(loop_thread, otlp, make_proxy, tmp_path: Path, caplog, baseline: str,
                                                 extra: dict[str, Any], approved: bool) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    """`warn`: a model the server picks, whose flow `block` refuses (the baseline approving it for some checkpoints
    alone, the pick's known only from the reply), is flagged: the call goes on, counted once, the flow logged (its
    checkpoint not known: `-`) saying why, the span's `lineage.approved` false. Until review revpaths15 it was not."""
    (tmp_path / "approved.yaml").write_text(baseline)
    seen: list[dict[str, Any]] = []
    caplog.set_level(logging.WARNING, logger="lineage_proxy.baseline")
    with serving(loop_thread, openai_app(seen)) as url:
        proxy = make_proxy(CONFIG + TELEMETRY + _lineage("warn"), UPSTREAM=url, OTLP=f"http://127.0.0.1:{otlp.port}",
                           BASELINE=str(tmp_path / "approved.yaml"))  # fmt: skip
        status, trace, _ = _ask(proxy.url, extra)
        span = otlp.by_trace(trace)
        metrics = httpx.get(f"{proxy.url}/metrics", timeout=10).text
    assert status == 200 and len(seen) == 1
    assert span.attributes.get("lineage.approved") is approved
    assert f"lineage_proxy_unapproved_flows_total {0 if approved else 1}" in metrics
    logged = [r.getMessage() for r in caplog.records if "unapproved flow" in r.getMessage()]
    assert len(logged) == (0 if approved else 1), logged
    assert all("checkpoint - " in line and "the server may pick any model" in line for line in logged), logged
