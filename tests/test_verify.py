"""verify against a store made by real calls through the proxy, and the verifier at the boundary: blocks
before the upstream sees the call, or flags it (log line, metric, span attribute); reloads with SIGHUP."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys

import httpx
import openai
import pytest

from proxy.baseline import NEW_CALLER, NEW_CHECKPOINT, NEW_DENIAL, NEW_LABEL, NEW_PURPOSE
from proxy.errors import DENIAL_ERRORS
from tests.conftest import KEYS
from tests.harness import ServeProcess
from tests.servers.vllm_like import SERVED
from tests.traffic import approved_traffic, proxy_config, send

APPROVED = """
version: 1
flows:
  - caller: glasses-app          # the glasses answer their user
    purpose: assistant
    labels: [user-interaction]
    checkpoints: ["org/llama@*"]
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def recorded(vllm, make_proxy, loop_thread, tmp_path):  # type: ignore[no-untyped-def]
    """A store holding the approved traffic, and a function that runs more traffic against a proxy
    with another pinned checkpoint (sharing the store) and flushes the counts."""
    _, upstream = vllm
    store = tmp_path / "lineage.db"
    proxies = {}

    def proxy(pin: str = "org/llama@v1"):  # type: ignore[no-untyped-def]
        if pin not in proxies:
            proxies[pin] = make_proxy(proxy_config(pin=pin), UPSTREAM=upstream)
        return proxies[pin]

    def flush() -> None:
        for handle in proxies.values():
            loop_thread.run(handle.process.runtime.sinks.flush())

    approved_traffic(proxy().url)
    flush()
    return store, proxy, flush


def test_an_approved_store_passes_and_the_written_baseline_reads_back(recorded, tmp_path) -> None:  # type: ignore[no-untyped-def]
    store, _, _ = recorded
    baseline = tmp_path / "baseline.yaml"
    wrote = cli("verify", "--store", str(store), "--write-baseline", str(baseline))
    assert wrote.returncode == 0 and "3 entries from 3 flows; review it before use" in wrote.stdout, wrote.stderr
    text = baseline.read_text()
    assert text.startswith("# lineage-proxy baseline") and "never rewrites it" in text
    assert "# the caller was told: purpose 'ads' is not allowed for data labelled 'user-interaction'" in text
    assert "    checkpoints: [org/llama@v1]" in text and "    rules: ['zone:interaction-data']" in text
    ok = cli("verify", "--store", str(store), "--baseline", str(baseline))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.strip().splitlines()[-1].startswith("ok: 0 unapproved flows (0 calls), 3 approved, 0 approved")
    assert f"the flows of {store} (all recorded) against {baseline}" in ok.stdout
    again = cli("verify", "--store", str(store), "--write-baseline", str(baseline))
    assert again.returncode == 2 and "exists; a reviewed baseline is never overwritten" in again.stderr
    assert cli("verify", "--store", str(store), "--write-baseline", str(baseline), "--force").returncode == 0


def test_each_kind_of_new_flow_is_caught_and_named(recorded, tmp_path) -> None:  # type: ignore[no-untyped-def]
    store, proxy, flush = recorded
    baseline = tmp_path / "baseline.yaml"
    assert cli("verify", "--store", str(store), "--write-baseline", str(baseline)).returncode == 0
    url = proxy().url
    assert send(url, "ops", "assistant") == 200  # a caller never seen
    assert send(url, "ads-ranker", "analytics", labels="public") == 200  # a purpose new for this caller
    assert send(url, "glasses-app", text="mail me at jo@example.com") == 200  # pii:email reaches the model
    assert send(url, "ads-ranker", "ads", labels="user-interaction") == 403  # a refusal of a new kind
    assert send(proxy("org/llama@v2").url, "glasses-app") == 200  # the route now served by v2
    flush()
    result = cli("verify", "--store", str(store), "--baseline", str(baseline))
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "UNAPPROVED new-caller: new caller 'ops': no approved flow names it" in out
    assert "UNAPPROVED new-purpose: new purpose 'analytics' for caller 'ads-ranker' (approved purposes: ads)" in out
    assert "UNAPPROVED new-label: label 'pii:email' reaching 'org/llama@v1', which it never reached" in out
    assert "UNAPPROVED new-checkpoint: now served by 'org/llama@v2', not a checkpoint approved for 'glasses-app'" in out
    assert "UNAPPROVED new-denial: a new kind of denial for 'ads-ranker' acting for 'ads': deny by rule " in out
    assert "the caller was told: purpose 'ads' is not allowed for data labelled 'user-interaction'" in out
    assert out.strip().splitlines()[-1].startswith("FAIL: 5 unapproved flows (5 calls), 3 approved")
    as_json = json.loads(cli("verify", "--store", str(store), "--baseline", str(baseline), "--json").stdout)
    assert as_json["ok"] is False and as_json["approved"] == 3
    assert sorted(u["kind"] for u in as_json["unapproved"]) == sorted(
        [NEW_CALLER, NEW_PURPOSE, NEW_LABEL, NEW_CHECKPOINT, NEW_DENIAL]
    )
    denial = next(u for u in as_json["unapproved"] if u["kind"] == NEW_DENIAL)["edge"]
    assert denial["rule"] == "zone:interaction-data" and "zone interaction-data allows: assistant" in denial["reason"]


def test_patterns_widen_an_entry_and_unseen_entries_are_listed(recorded, tmp_path) -> None:  # type: ignore[no-untyped-def]
    store, proxy, flush = recorded
    assert send(proxy().url, "glasses-app", text="jo@example.com") == 200
    assert send(proxy("org/llama@v2").url, "glasses-app") == 200
    flush()
    baseline = tmp_path / "reviewed.yaml"
    baseline.write_text(
        "version: 1\nflows:\n"
        "  - {caller: glasses-app, purpose: assistant, labels: [user-interaction, 'pii:*'], checkpoints: ['org/llama@*']}\n"
        "  - {caller: ads-ranker, purpose: ads, labels: [public], decisions: [allow]}\n"
        "  - {caller: glasses-app, purpose: ads, labels: ['*'], decisions: [deny], rules: ['zone:*']}\n"
        "  # nobody has asked for this yet\n"
        "  - {caller: eval-batch, purpose: evaluation}\n"
    )
    result = cli("verify", "--store", str(store), "--baseline", str(baseline), "--since", "1h")
    assert result.returncode == 0, result.stdout
    assert (
        f"UNSEEN {baseline}:7 (flows[3]): eval-batch acting for evaluation (allow, reroute) matched no flow (last seen in the last 1h)"
        in result.stdout
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--baseline", "missing.yaml"), "missing.yaml: cannot read"),
        (("--baseline", "BAD"), "BAD:4: flows[0].decisions[0]: must be one of allow, reroute, deny, audit-deny"),
        (("--baseline", "BAD"), "BAD:3: flows[0].colour: unknown key"),
        (("--baseline", "BAD", "--since", "soon"), "expected a duration such as 30d"),
        # ASCII digits alone, as serve --workers and demo --port (Python's \d took other scripts': 30 days each)
        (
            ("--baseline", "BAD", "--since", "\u0663\u0660d"),
            "expected a duration such as 30d, 12h, 15m or 90s, not '\u0663\u0660d'",
        ),
        (
            ("--baseline", "BAD", "--since", "\uff13\uff10d"),
            "expected a duration such as 30d, 12h, 15m or 90s, not '\uff13\uff10d'",
        ),
        (("--baseline", "BAD", "--write-baseline", "x.yaml"), "not allowed with argument"),
        (
            ("--write-baseline", "x.yaml", "--json"),
            "--json goes with --baseline or --integrity (--write-baseline writes YAML)",
        ),
        (
            ("--integrity", "--since", "1d"),
            "--since goes with --baseline or --write-baseline (--integrity proves the whole chain)",
        ),
    ],
)
def test_usage_and_file_errors_exit_2(tmp_path, args: tuple[str, ...], message: str) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.yaml"
    bad.write_text("flows:\n  - caller: a\n    colour: red\n    decisions: [alow]\n    purpose: p\n")
    store = tmp_path / "lineage.db"
    from proxy.record.store import SqliteStore

    SqliteStore(store).close()
    args = tuple(str(bad) if a == "BAD" else str(tmp_path / a) if a.endswith(".yaml") else a for a in args)
    message = message.replace("BAD", str(bad)).replace("missing.yaml", str(tmp_path / "missing.yaml"))
    result = cli("verify", "--store", str(store), *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    nowhere = cli("verify", "--store", str(tmp_path / "none.db"), "--baseline", str(bad))
    assert nowhere.returncode == 2 and "no lineage store there" in nowhere.stderr


def test_help_says_what_json_goes_with() -> None:
    help_text = " ".join(cli("verify", "--help").stdout.split())
    assert "one JSON document instead of text; with --baseline or --integrity" in help_text


def test_integrity_of_an_sqlite_file_with_no_tables_says_it_is_not_a_lineage_store(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    empty = tmp_path / "other.db"
    sqlite3.connect(empty).execute("PRAGMA user_version = 1").connection.close()
    result = cli("verify", "--store", str(empty), "--integrity")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"lineage-proxy verify: {empty}: not a lineage store (it has no tables)\n"


def failed_and_unnamed_edges(path) -> None:  # type: ignore[no-untyped-def]
    """What the proxy records for a call whose upstream failed (allow, no checkpoint) and for
    calls recorded with no purpose: one that named none where there is no default, and ones refused for their key
    (401, recorded without the purpose they named)."""
    from proxy.record.store import EdgeKey, SqliteStore

    store = SqliteStore(path)
    store.upsert([
        (EdgeKey("glasses-app", "assistant", "user-interaction", "org/llama@v1", "user-interaction", "allow"), 1.0, 2.0, 3, None),
        (EdgeKey("glasses-app", "assistant", "user-interaction", "", "", "allow"), 1.0, 2.0, 2, None),
        (EdgeKey("anonymous", "", "", "", "", "deny", "policy.anonymous"), 1.0, 2.0, 1, None),
        (EdgeKey("(unknown key)", "", "", "", "", "deny", "callers"), 1.0, 2.0, 1, None),
        (EdgeKey("anonymous", "", "", "", "", "deny", "policy.default_purpose"), 1.0, 2.0, 1, None),
    ])  # fmt: skip
    store.close()


def test_a_written_baseline_says_what_an_empty_checkpoint_or_purpose_means(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store, baseline = tmp_path / "lineage.db", tmp_path / "baseline.yaml"
    failed_and_unnamed_edges(store)
    assert cli("verify", "--store", str(store), "--write-baseline", str(baseline)).returncode == 0
    text = baseline.read_text()
    assert "    checkpoints: ['']  # none known: the upstream failed (502/504) or its reply named none\n" in text
    # a 401's edge has no purpose whatever the call named (`config/minimal.yaml` has a default_purpose, and its
    # baseline said "there was no default" of its anonymous calls' refusals)
    no_default = "    purpose: ''  # none: the call named no purpose and there was no default\n"
    for_key = (
        "    purpose: ''  # none: a call refused for its API key is recorded without a purpose, whatever it named\n"
    )
    entries = text.split("\n\n")
    assert [e.count(no_default) + 2 * e.count(for_key) for e in entries if "policy.anonymous" in e] == [2]
    assert [e.count(no_default) + 2 * e.count(for_key) for e in entries if "rules: [callers]" in e] == [2]
    assert [e.count(no_default) + 2 * e.count(for_key) for e in entries if "policy.default_purpose" in e] == [1]
    ok = cli("verify", "--store", str(store), "--baseline", str(baseline))
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_verify_never_prints_an_empty_name_as_a_name(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store, baseline = tmp_path / "lineage.db", tmp_path / "baseline.yaml"
    failed_and_unnamed_edges(store)
    baseline.write_text("version: 1\nflows:\n  - {caller: glasses-app, purpose: assistant, labels: [user-interaction], "
                        "checkpoints: ['org/llama@*']}\n  - {caller: anonymous, purpose: assistant, decisions: [deny]}\n")  # fmt: skip
    result = cli("verify", "--store", str(store), "--baseline", str(baseline))
    assert result.returncode == 1
    out = result.stdout
    assert "''" not in out, out
    assert ("UNAPPROVED new-checkpoint: served by no known checkpoint (the upstream failed, or its reply named "
            "none), which no entry approves for 'glasses-app' acting for 'assistant'") in out  # fmt: skip
    assert "UNAPPROVED new-purpose: no purpose named, by caller 'anonymous' (approved purposes: assistant)" in out


# -- the verifier at the boundary


def test_block_refuses_an_unapproved_flow_before_the_upstream_sees_it(vllm, make_proxy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    baseline = tmp_path / "approved.yaml"
    baseline.write_text(APPROVED)
    proxy = make_proxy(proxy_config(baseline=str(baseline), on_unapproved="block"), UPSTREAM=upstream)
    assert send(proxy.url, "glasses-app") == 200
    assert len(server.data_requests()) == 1
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=KEYS["ads"], max_retries=0,
                           default_headers={"x-purpose": "analytics"})  # fmt: skip
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "hi"}])
    error = caught.value
    assert error.status_code == 403 and error.code == "flow_not_approved"
    assert "flow not in the approved baseline: new caller 'ads-ranker'" in error.message
    assert error.response.headers["x-lineage-decision"] == "deny"
    assert len(server.data_requests()) == 1  # the refused call never reached the model
    metrics = httpx.get(f"{proxy.url}/metrics").text
    assert "lineage_proxy_unapproved_flows_total 1\n" in metrics
    assert 'lineage_proxy_errors_total{type="flow_not_approved"} 1' in metrics


def test_the_error_is_one_of_the_family_with_its_grpc_code() -> None:
    error = DENIAL_ERRORS["flow_not_approved"]("why")
    assert (error.status, error.grpc_code, error.error_type) == (403, "PERMISSION_DENIED", "permission_error")


def test_warn_flags_with_a_log_line_the_metric_and_the_span(vllm, make_proxy, otlp, tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    baseline = tmp_path / "approved.yaml"
    baseline.write_text(APPROVED)
    proxy = make_proxy(proxy_config(baseline=str(baseline), otlp=otlp.port), UPSTREAM=upstream)
    caplog.set_level(logging.WARNING, logger="lineage_proxy.baseline")
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=KEYS["ads"], max_retries=0,
                           default_headers={"x-purpose": "analytics", "x-data-labels": "public"})  # fmt: skip
    traces = []
    for _ in range(2):
        reply = client.chat.completions.with_raw_response.create(
            model=SERVED, messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.http_response.status_code == 200
        traces.append(reply.http_response.headers["x-trace-id"])
    assert len(server.data_requests()) == 2  # warn: the calls went through
    flagged = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.trace_id for r in flagged] == traces[:1]  # type: ignore[attr-defined]  # the line joins the trace
    warnings = [r.getMessage() for r in flagged]
    assert len(warnings) == 1, warnings  # once per flow, not once per call
    assert warnings[0].startswith("unapproved flow: caller 'ads-ranker' purpose 'analytics' labels public checkpoint "
                                  "org/llama@v1 decision allow: new caller 'ads-ranker'")  # fmt: skip
    assert "lineage_proxy_unapproved_flows_total 2\n" in httpx.get(f"{proxy.url}/metrics").text
    span = otlp.by_trace(reply.http_response.headers["x-trace-id"])
    assert span.attributes["lineage.approved"] is False and span.attributes["lineage.decision"] == "allow"
    approved = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=KEYS["glasses"], max_retries=0)
    ok = approved.chat.completions.with_raw_response.create(model=SERVED, messages=[{"role": "user", "content": "hi"}])
    assert otlp.by_trace(ok.http_response.headers["x-trace-id"]).attributes["lineage.approved"] is True


def test_sighup_rereads_the_baseline_and_refuses_a_broken_one(vllm, tmp_path) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    baseline = tmp_path / "approved.yaml"
    baseline.write_text(APPROVED)
    config = tmp_path / "proxy.yaml"
    config.write_text(proxy_config(baseline=str(baseline), on_unapproved="block"))
    serve = ServeProcess(str(config), env={"UPSTREAM": upstream, "STORE": str(tmp_path / "l.db")})
    try:
        assert send(serve.url, "ads-ranker", "ads", labels="public") == 403
        baseline.write_text(APPROVED + "  - {caller: ads-ranker, purpose: ads, labels: [public]}\n")
        serve.signal(signal.SIGHUP)
        serve.wait_log("reloaded")
        assert send(serve.url, "ads-ranker", "ads", labels="public") == 200
        baseline.write_text(APPROVED + "  - {caller: ads-ranker, purpose: ads, decisions: maybe}\n")
        serve.signal(signal.SIGHUP)
        serve.wait_log("reload refused")
        serve.wait_log(f"lineage.baseline: {baseline}:8: flows[1].decisions[0]: must be one of allow")
        assert send(serve.url, "ads-ranker", "ads", labels="public") == 200  # the old baseline stays in force
        assert send(serve.url, "ops", "assistant") == 403
    finally:
        assert serve.stop() == 0


def test_check_explain_shows_the_boundary_verifier(tmp_path) -> None:  # type: ignore[no-untyped-def]
    baseline = tmp_path / "approved.yaml"
    baseline.write_text(APPROVED)
    for mode, code in (("warn", 0), ("block", 2)):
        config = tmp_path / f"{mode}.yaml"
        config.write_text(proxy_config(baseline=str(baseline), on_unapproved=mode).replace("${UPSTREAM}", "http://127.0.0.1:1").replace("${STORE}", str(tmp_path / "l.db")))  # fmt: skip
        new = cli("check", "--config", str(config), "--explain", "--caller", "ads-ranker", "--purpose", "ads")
        assert new.returncode == code, new.stdout + new.stderr
        if mode == "warn":
            assert "decision:  allow" in new.stdout
            assert "approved:  no, new-caller: new caller 'ads-ranker'" in new.stdout
        else:
            assert (
                "code:      flow_not_approved" in new.stdout and "refused: lineage.on_unapproved is block" in new.stdout
            )
        ok = cli("check", "--config", str(config), "--explain", "--caller", "glasses-app")
        assert ok.returncode == 0 and "checkpoint: org/llama@v1" in ok.stdout and "approved:  yes" in ok.stdout
        moved = cli("check", "--config", str(config), "--explain", "--caller", "glasses-app", "--checkpoint", "other/x")
        assert "new-checkpoint: now served by 'other/x'" in moved.stdout or "flow_not_approved" in moved.stdout


def test_a_written_baseline_approves_recorded_names_literally(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A checkpoint recorded as `*` (an upstream echoing the model a caller asked for) was written as the
    pattern `*`, approving every checkpoint; the fallback route's rule `route:*` every route's denial."""
    from proxy.record.store import EdgeKey, SqliteStore

    store = tmp_path / "l.db"
    writer = SqliteStore(store)
    writer.upsert([(EdgeKey("app", "assistant", "", "*", "", "allow"), 1.0, 1.0, 1, None),
                   (EdgeKey("app", "assistant", "", "ck", "", "audit-deny", "route:*"), 1.0, 1.0, 1, None)])  # fmt: skip
    writer.close()
    baseline = tmp_path / "b.yaml"
    assert cli("verify", "--store", str(store), "--write-baseline", str(baseline)).returncode == 0
    assert "'[*]'" in baseline.read_text() and "route:[*]" in baseline.read_text()
    assert cli("verify", "--store", str(store), "--baseline", str(baseline)).returncode == 0  # what happened
    writer = SqliteStore(store)
    writer.upsert([(EdgeKey("app", "assistant", "", "evil/model", "", "allow"), 2.0, 2.0, 1, None),
                   (EdgeKey("app", "assistant", "", "ck", "", "audit-deny", "route:secret"), 2.0, 2.0, 1, None)])  # fmt: skip
    writer.close()
    found = cli("verify", "--store", str(store), "--baseline", str(baseline), "--json")
    assert found.returncode == 1
    unapproved = {(u["edge"]["checkpoint"], u["edge"]["rule"]) for u in json.loads(found.stdout)["unapproved"]}
    assert unapproved == {("evil/model", None), ("ck", "route:secret")}, found.stdout
