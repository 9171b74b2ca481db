"""A baseline entry may name the sidecars whose flows it approves (`sidecars: [patterns]`, matched as a caller's
are): a flow one deployment of a fleet may make and another may not. `verify` judges each edge by the entries
approving its recorder's flows (a flow approved for other sidecars only is `new-sidecar`), and the boundary verifier
(`lineage.on_unapproved: block`) by those approving its own process's, resolved once per loaded config, never per
call. `verify --write-baseline` writes entries for any sidecar unless asked for one per sidecar (`--per-sidecar`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest

from proxy.baseline import NEW_SIDECAR, BaselineError, Flow, parse_baseline
from proxy.config import parse
from proxy.policy import Policy
from proxy.record.store import SqliteStore
from tests.harness import ProxyHandle, proxy_error
from tests.servers.vllm_like import VllmLike
from tests.test_readers_sidecar import ALLOWED, DENIED, cli, fleet

ONLY_A = """version: 1
flows:
  - caller: glasses-app
    purpose: assistant
    labels: [email]
    sidecars: ["model-a-*"]
  - caller: eval-batch
    purpose: evaluation
    labels: [card]
    decisions: [deny]
"""


def test_an_entry_names_sidecars_as_patterns_and_is_checked_like_any_key() -> None:
    baseline = parse_baseline(ONLY_A)
    restricted, anyone = baseline.approvals
    assert restricted.sidecars == ("model-a-*",) and restricted.restricted and not anyone.restricted
    flow = Flow("glasses-app", "assistant", frozenset({"email"}), "llama@v1", "allow")
    assert baseline.for_sidecar("model-a-eu").covering(flow) is restricted
    finding = baseline.for_sidecar("model-b-us").explain(flow)
    assert finding is not None and finding.kind == NEW_SIDECAR and "'model-b-us'" in finding.message, finding
    assert "model-a-*" in finding.message
    assert parse_baseline(ONLY_A.replace('["model-a-*"]', "['']")).for_sidecar("").covering(flow) is not None
    unrestricted = parse_baseline(ONLY_A.replace('    sidecars: ["model-a-*"]\n', ""))
    assert unrestricted.for_sidecar("model-b-us") is unrestricted  # nothing to resolve: the file's as it is
    for bad, why in [("[]", "an empty list is refused"), ('["model a"]', "never matches"), ("{}", "expected a list")]:
        with pytest.raises(BaselineError, match=why):
            parse_baseline(ONLY_A.replace('["model-a-*"]', bad))


def test_verify_judges_each_sidecars_edge_by_the_entries_for_its_flows(tmp_path: Path) -> None:
    store = fleet(tmp_path)  # model-a-eu and model-b-us both served ALLOWED; model-b-us refused DENIED
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text(ONLY_A)
    said = cli("verify", "--store", str(store), "--baseline", str(baseline))
    assert said.returncode == 1, said.stdout + said.stderr
    # flows, not edges (as `report` and `--write-baseline` count them): ALLOWED is unapproved, for model-b-us's edge,
    # and DENIED approved (before 2026-12-03, "2 approved": model-a-eu's edge of ALLOWED as well)
    assert "FAIL: 1 unapproved flow (7 calls), 1 approved, 0 approved entries unseen" in said.stdout, said.stdout
    assert "UNAPPROVED new-sidecar: recorded by sidecar 'model-b-us'" in said.stdout, said.stdout
    as_json = orjson.loads(cli("verify", "--store", str(store), "--baseline", str(baseline), "--json").stdout)
    (unapproved,) = as_json["unapproved"]
    assert unapproved["kind"] == NEW_SIDECAR and unapproved["edge"]["sidecar"] == "model-b-us"

    baseline.write_text(ONLY_A.replace('"model-a-*"', '"model-[ab]-*"'))  # both ways: approved for both now
    said = cli("verify", "--store", str(store), "--baseline", str(baseline))
    assert said.returncode == 0 and "ok: 0 unapproved flows (0 calls), 2 approved" in said.stdout, said.stdout

    baseline.write_text(ONLY_A.replace('"model-a-*"', '"model-c"'))  # an entry no sidecar's flow used is unseen
    said = cli("verify", "--store", str(store), "--baseline", str(baseline))
    assert said.returncode == 1 and "UNSEEN" in said.stdout and "recorded by model-c matched no flow" in said.stdout


def test_write_baseline_names_sidecars_only_when_asked(tmp_path: Path) -> None:
    store = fleet(tmp_path)
    shared, each = tmp_path / "shared.yaml", tmp_path / "each.yaml"
    written = cli("verify", "--store", str(store), "--write-baseline", str(shared))
    assert written.returncode == 0 and "2 entries from 2 flows" in written.stdout, written.stdout
    assert "sidecars" not in shared.read_text()
    written = cli("verify", "--store", str(store), "--write-baseline", str(each), "--per-sidecar")
    assert written.returncode == 0 and "3 entries from 2 flows" in written.stdout, written.stdout
    entries = parse_baseline(each.read_text()).approvals
    assert sorted((a.caller, a.sidecars) for a in entries) == [
        ("eval-batch", ("model-b-us",)), ("glasses-app", ("model-a-eu",)), ("glasses-app", ("model-b-us",))
    ]  # fmt: skip
    for written_baseline in (shared, each):
        said = cli("verify", "--store", str(store), "--baseline", str(written_baseline))
        assert said.returncode == 0, said.stdout
    later = SqliteStore(str(store), sidecar="model-c")  # a new deployment serving an approved flow
    now = time.time()
    later.upsert([(ALLOWED, now, now, 1, None), (DENIED, now, now, 1, "no")])
    later.close()
    assert cli("verify", "--store", str(store), "--baseline", str(shared)).returncode == 0
    said = cli("verify", "--store", str(store), "--baseline", str(each))
    assert said.returncode == 1 and said.stdout.count("UNAPPROVED new-sidecar: recorded by sidecar 'model-c'") == 2
    refused = cli("verify", "--store", str(store), "--baseline", str(each), "--per-sidecar")
    assert refused.returncode == 2 and "--per-sidecar only makes sense with --write-baseline" in refused.stderr


CONFIG = """listen: {{http: "127.0.0.1:0"}}
upstreams: [{{name: llama, url: "{upstream}"}}]
routes: [{{model: "*", upstream: llama}}]
policy: {{anonymous: allow, default_purpose: assistant}}
telemetry: {{exporter: none}}
lineage: {{store: null, baseline: {baseline}, on_unapproved: block, sidecar: {sidecar}}}
"""
BOUNDARY = """version: 1
flows:
  - caller: anonymous
    purpose: assistant
    sidecars: ["model-b*"]
"""


def test_the_boundary_resolves_entries_for_its_own_sidecar_once(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], tmp_path: Path
) -> None:
    server, upstream = vllm
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text(BOUNDARY)
    policy = Policy.compile(parse(CONFIG.format(upstream=upstream, baseline=baseline, sidecar="model-a"),
                                  source="a.yaml", env={}))  # fmt: skip
    assert policy.baseline is not None and policy.baseline.approvals == ()  # resolved at compile: none of a's
    replies = {}
    for sidecar in ("model-a", "model-b-eu"):
        proxy = make_proxy(CONFIG.format(upstream=upstream, baseline=baseline, sidecar=sidecar))
        body = {"model": "anything", "messages": [{"role": "user", "content": "hi"}]}
        replies[sidecar] = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, timeout=10)
    refused = replies["model-a"]
    assert refused.status_code == 403, refused.text
    error = proxy_error(refused)
    assert error["code"] == "flow_not_approved" and "sidecar 'model-a'" in error["message"], error
    assert replies["model-b-eu"].status_code == 200, replies["model-b-eu"].text
    assert len([r for r in server.data_requests() if r.path.endswith("/completions")]) == 1  # b's alone forwarded
