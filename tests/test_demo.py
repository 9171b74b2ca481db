"""`lineage-proxy demo` as a first user runs it: what it says about its store, policy and calls."""

from __future__ import annotations

import hashlib
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from proxy import cli
from proxy.config import parse
from proxy.demo import ANALYTICS_KEY, DEMO_KEYS, GLASSES_KEY, _config_text, _outcome, describe_policy
from proxy.demo_model import MODEL
from tests.harness import demo_lines


def demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", "demo", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def plain() -> subprocess.CompletedProcess[str]:
    result = demo()
    assert result.returncode == 0, result.stderr
    return result


def test_without_store_it_says_the_store_is_temporary(plain: subprocess.CompletedProcess[str]) -> None:
    out = plain.stdout
    match = re.search(r"^lineage store (\S+) \(temporary, deleted when the demo exits; pass --store PATH to keep it\)$",
                      out, re.MULTILINE)  # fmt: skip
    assert match, out
    assert not Path(match.group(1)).exists()  # as it said
    assert "lineage-proxy edges --store lineage.db" in out  # how to keep one and query it
    assert out.count("temporary") == 1 and out.count("deleted when the demo exits") == 1  # said once


def test_it_names_the_sample_policy_file_where_it_is(plain: subprocess.CompletedProcess[str]) -> None:
    match = re.search(r"^the policy \((\S+)\):$", plain.stdout, re.MULTILINE)
    assert match, plain.stdout
    path = Path(match.group(1))
    assert path.is_absolute() and path.read_text(encoding="utf-8") == _config_text()


def test_it_shows_the_policy_and_every_caller_with_its_key(plain: subprocess.CompletedProcess[str]) -> None:
    out = plain.stdout
    config = parse(_config_text(), env={"DEMO_UPSTREAM": "http://127.0.0.1:1", "DEMO_STORE": "x.db"})
    assert {caller.api_key_sha256 for caller in config.callers} == set(DEMO_KEYS)  # every caller's key is known
    assert re.search(r"glasses-app +key demo-glasses-key +purposes analytics, assistant; inputs always labelled "
                     r"user-interaction; default purpose assistant", out)  # fmt: skip
    assert re.search(r"analytics-job +key demo-analytics-key +purposes analytics\n", out)
    assert ("interaction-data  labels user-interaction; allowed purposes assistant, safety-review; regions eu; "
            "on_deny reroute:eu-model") in out  # fmt: skip
    assert "model demo-chat -> us-model (region us), for purposes analytics, assistant, safety-review" in out
    assert "us-model (region us), eu-model (region eu)" in out
    assert "no key: deny" in out
    assert describe_policy(config) in out


def test_every_call_line_says_where_it_went_and_describes_its_labels_honestly(
    plain: subprocess.CompletedProcess[str],
) -> None:
    out = plain.stdout
    calls = re.findall(r"^- (.*)\n +HTTP (\d+)  decision=(\S+)  upstream=(\S+) .*labels=(\S+)", out, re.MULTILINE)
    assert len(calls) == 6, out
    analytics = next(call for call in calls if call[0].startswith("analytics-job"))
    assert "labelled public" in analytics[0] and "unlabelled" not in out
    assert analytics[1:3] == ("200", "allow") and analytics[4] == "public"
    # a rerouted and an allowed call differ in where they went (x-lineage-upstream), region from the config
    assert "decision=reroute  upstream=eu-model region=eu  " in out
    assert "decision=allow  upstream=us-model region=us  " in out
    assert {call[3] for call in calls if call[2] == "deny"} == {"-"}


def test_outcome_names_the_upstream_and_its_region() -> None:
    regions = {"us-model": "us", "eu-model": "eu"}
    rerouted = _outcome(200, {"x-lineage-decision": "reroute", "x-lineage-upstream": "eu-model"}, regions)
    assert "decision=reroute  upstream=eu-model region=eu  checkpoint=-" in rerouted
    allowed = _outcome(200, {"x-lineage-decision": "allow", "x-lineage-upstream": "us-model"}, regions)
    assert "upstream=us-model region=us" in allowed
    denied = _outcome(403, {"x-lineage-decision": "deny"}, regions)  # refusals reach no upstream: no header
    assert "decision=deny  upstream=-  checkpoint=-" in denied


def test_with_store_it_keeps_it_and_names_the_next_command(tmp_path: Path) -> None:
    store = tmp_path / "kept.db"
    result = demo("--store", str(store))
    assert result.returncode == 0, result.stderr
    assert f"lineage store {store} (kept)" in result.stdout
    assert f"query it with:\n  lineage-proxy edges --store {store}\n" in result.stdout
    assert store.exists()
    edges = subprocess.run([sys.executable, "-m", "proxy", "edges", "--store", str(store), "--json"],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert edges.returncode == 0 and len(edges.stdout.splitlines()) == 5


@pytest.mark.parametrize(("args", "port"), [((), 0), (("--keep",), 8080), (("--keep", "--port", "0"), 0),
                                            (("--port", "9000"), 9000)])  # fmt: skip
def test_port_defaults_to_8080_only_with_keep(monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...],
                                              port: int) -> None:  # fmt: skip
    seen: dict[str, object] = {}

    def fake_run_demo(keep: bool = False, store: str | None = None, port: int = 0) -> int:
        seen.update(keep=keep, port=port)
        return 0

    monkeypatch.setattr("proxy.demo.run_demo", fake_run_demo)
    monkeypatch.setattr(cli, "_setup_logging", lambda level, role: None)
    assert cli.main(["demo", *args]) == 0
    assert seen == {"keep": "--keep" in args, "port": port}


def test_keep_on_a_taken_port_is_one_clear_line() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = demo("--keep", "--port", str(port))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr == (f"lineage-proxy demo: cannot listen on 127.0.0.1:{port}: address already in use "
                             "(choose another with --port N; --port 0 takes any free port)\n")  # fmt: skip


# starts the command in argv[1:] with SIGINT at its default, as a shell starts a foreground job: a suite started
# with SIGINT ignored (a background job of a non-interactive shell) would pass the ignoring on, and a program
# started so keeps ignoring it (Python installs no KeyboardInterrupt handler), as Ctrl-C never reaches it there
WITH_SIGINT = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
)


@pytest.fixture
def kept() -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    proc = subprocess.Popen([sys.executable, "-c", WITH_SIGINT, sys.executable, "-m", "proxy", "demo", "--keep",
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    seen, lines = demo_lines(proc)
    while not seen[-1].startswith("and see the record grow"):
        seen.append(lines.get(timeout=10))
    yield proc, seen
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def test_keep_stays_up_for_every_caller_until_ctrl_c(kept: tuple[subprocess.Popen[str], list[str]]) -> None:
    proc, seen = kept
    out = "".join(seen)
    base = re.search(r"still serving on (http://127\.0\.0\.1:\d+) ", out).group(1)  # type: ignore[union-attr]
    assert f"-H 'Authorization: Bearer {GLASSES_KEY}'" in out and f"-H 'Authorization: Bearer {ANALYTICS_KEY}'" in out
    assert "key demo-glasses-key" in out and "key demo-analytics-key" in out
    for key, purpose, decision in ((GLASSES_KEY, "assistant", "reroute"), (ANALYTICS_KEY, "analytics", "allow")):
        reply = httpx.post(f"{base}/v1/chat/completions", timeout=10,
                           headers={"Authorization": f"Bearer {key}", "x-purpose": purpose},
                           json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
        assert reply.status_code == 200 and reply.headers["x-lineage-decision"] == decision
    proc.send_signal(signal.SIGINT)  # Ctrl-C: a clean stop, no traceback
    assert proc.wait(30) == 0
    assert proc.stderr is not None and "Traceback" not in proc.stderr.read()


def test_demo_keys_are_the_ones_in_the_config() -> None:
    for digest, key in DEMO_KEYS.items():
        assert hashlib.sha256(key.encode()).hexdigest() == digest
    assert f'# key "{GLASSES_KEY}"' in _config_text() and f'# key "{ANALYTICS_KEY}"' in _config_text()


def test_the_demo_exports_no_spans_whatever_the_environment_says() -> None:
    """The demo's config says `telemetry.exporter: none`, which an OTEL_* variable does not change (the file's keys
    win): no span exporter runs in it, so its flush before its stop flushes none, as the README's spans section says
    (rec15's change had it say a flush in a collector's Retry-After wait was the demo's; pinned by review revrec15)."""
    env = {"DEMO_UPSTREAM": "http://127.0.0.1:1", "DEMO_STORE": "x.db", "OTEL_TRACES_EXPORTER": "otlp",
           "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}  # fmt: skip
    assert parse(_config_text(), env=env).telemetry.exporter == "none"
