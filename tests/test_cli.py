"""The command line as users run it: check (and --explain), serve with SIGHUP and SIGTERM, demo."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.conftest import KEYS, sha
from tests.harness import ServeProcess
from tests.servers.vllm_like import SERVED

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True, text=True, timeout=60)


def test_version_and_help_on_every_command() -> None:
    assert cli("--version").stdout.strip() == "lineage-proxy 0.1.0"
    for command in ("serve", "check", "demo", "edges"):
        result = cli(command, "--help")
        assert result.returncode == 0 and result.stdout.startswith("usage: lineage-proxy " + command)


def test_check_valid_and_invalid(tmp_path: Path) -> None:
    ok = cli("check", "--config", str(ROOT / "config" / "example.yaml"))
    assert ok.returncode == 0 and ": ok (" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "listen: {http: '127.0.0.1:0'}\nupstreams: [{name: llama, url: 'http://a:1'}]\n"
        "routes:\n  - {model: a, upstream: llama}\n  - {model: b, upstream: llama}\n  - {model: c, upstream: vlm}\n"
        "polcy: {}\n"
    )
    result = cli("check", "--config", str(bad))
    assert result.returncode == 1
    assert "routes[2].upstream: unknown upstream 'vlm'" in result.stderr
    assert "polcy: unknown key" in result.stderr
    missing = cli("check", "--config", str(tmp_path / "none.yaml"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr


def test_check_explain_says_what_and_why() -> None:
    example = str(ROOT / "config" / "example.yaml")
    denied = cli("check", "--config", example, "--explain", "--caller", "glasses-app", "--purpose", "ads",
                 "--model", "llama-3.1-8b")  # fmt: skip
    assert denied.returncode == 2
    assert "decision:  deny" in denied.stdout and "caller 'glasses-app' may not act for purpose 'ads'" in denied.stdout
    rerouted = cli("check", "--config", example, "--explain", "--caller", "glasses-app", "--model", "llama-3.1-8b")
    assert rerouted.returncode == 0
    assert "decision:  reroute" in rerouted.stdout and "upstream:  llama (region eu)" in rerouted.stdout
    card = cli("check", "--config", example, "--explain", "--key", "eval", "--purpose", "evaluation",
               "--text", "card 4111 1111 1111 1111")  # fmt: skip
    assert "zone payment-data" in card.stdout and "pii:credit_card" in card.stdout


SERVE_CONFIG = f"""
listen:
  http: 127.0.0.1:0
upstreams:
  - name: vllm
    url: ${{UPSTREAM}}
routes:
  - model: "*"
    upstream: vllm
    purposes: [PURPOSES]
callers:
  - name: app
    api_key_sha256: {sha(KEYS["glasses"])}
lineage:
  store: ${{STORE}}
limits:
  drain_timeout_s: 20
"""


def call(base: str, purpose: str) -> httpx.Response:
    return httpx.post(f"{base}/v1/chat/completions", timeout=10,
                      headers={"Authorization": f"Bearer {KEYS['glasses']}", "x-purpose": purpose},
                      json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip


@pytest.fixture
def served(vllm, tmp_path):  # type: ignore[no-untyped-def]
    _, upstream = vllm
    path = tmp_path / "proxy.yaml"
    path.write_text(SERVE_CONFIG.replace("PURPOSES", "assistant"))
    serve = ServeProcess(str(path), env={"UPSTREAM": upstream, "STORE": str(tmp_path / "l.db")})
    yield serve, path
    serve.stop()


def test_sighup_swaps_a_valid_config_and_refuses_an_invalid_one(served) -> None:  # type: ignore[no-untyped-def]
    serve, path = served
    assert call(serve.url, "assistant").status_code == 200
    assert call(serve.url, "evaluation").status_code == 403
    path.write_text(SERVE_CONFIG.replace("PURPOSES", "assistant, evaluation"))
    serve.signal(signal.SIGHUP)
    serve.wait_log("reloaded")
    assert call(serve.url, "evaluation").status_code == 200
    path.write_text(
        SERVE_CONFIG.replace("PURPOSES", "evaluation").replace(
            "upstream: vllm\n    purposes", "upstream: vlm\n    purposes"
        )
    )
    serve.signal(signal.SIGHUP)
    line = serve.wait_log("reload refused")
    assert "old config stays in force" in line
    serve.wait_log("routes[0].upstream: unknown upstream 'vlm'")
    assert call(serve.url, "assistant").status_code == 200  # the old config (both purposes) still rules
    assert call(serve.url, "evaluation").status_code == 200
    assert serve.proc.poll() is None


def test_sigterm_drains_a_call_in_flight_then_exits_0(vllm, tmp_path, loop_thread) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    path = tmp_path / "proxy.yaml"
    path.write_text(SERVE_CONFIG.replace("PURPOSES", "assistant"))
    serve = ServeProcess(str(path), env={"UPSTREAM": upstream, "STORE": str(tmp_path / "l.db")})
    received: list[bytes] = []
    first = threading.Event()
    done = threading.Event()

    def stream() -> None:
        with httpx.stream("POST", f"{serve.url}/v1/chat/completions", timeout=20,
                          headers={"Authorization": f"Bearer {KEYS['glasses']}", "x-purpose": "assistant"},
                          json={"model": SERVED, "stream": True,
                                "messages": [{"role": "user", "content": "__gate__"}]}) as reply:  # fmt: skip
            for line in reply.iter_lines():
                if line.startswith("data: "):
                    received.append(line.encode())
                    first.set()
        done.set()

    worker = threading.Thread(target=stream)
    worker.start()
    assert first.wait(10)  # the call is in flight, waiting on the gated upstream
    serve.signal(signal.SIGTERM)
    serve.wait_log("stopping: draining")
    for _ in range(8):  # now let the upstream finish the reply
        server.release(loop_thread.loop)
    assert done.wait(15)
    worker.join()
    assert received[-1] == b"data: [DONE]"
    assert serve.proc.wait(20) == 0
    with pytest.raises(httpx.ConnectError):
        call(serve.url, "assistant")


def test_demo_runs_end_to_end() -> None:
    result = subprocess.run([sys.executable, "-m", "proxy", "demo"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "decision=reroute" in out and "decision=deny" in out and "decision=allow" in out
    assert "chunks)" in out  # the streamed call
    assert "lineage edges recorded (5)" in out
    assert "checkpoint=lineage-proxy/demo-echo-1" in out
