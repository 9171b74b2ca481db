"""The command line as users run it: check (and --explain), serve with SIGHUP and SIGTERM, edges, demo."""

from __future__ import annotations

import argparse
import json as json_module
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from proxy import BUILD
from proxy.cli import DECISIONS, EXPLAIN_ONLY, build_parser
from proxy.record.store import EdgeKey, SqliteStore
from tests.conftest import KEYS, sha
from tests.harness import ServeProcess, dead_port
from tests.servers.vllm_like import SERVED

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", *args], capture_output=True, text=True, timeout=60)


def test_version_and_help_on_every_command() -> None:
    assert cli("--version").stdout.strip() == f"lineage-proxy 0.1.0 ({BUILD})"  # which build: tests/test_build.py
    for command in ("serve", "check", "demo", "edges", "verify", "report"):
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
    unknown = cli("check", "--config", example, "--explain", "--caller", "nobody")
    assert unknown.returncode == 1 and "unknown caller 'nobody' (known: glasses-app, eval-batch)" in unknown.stderr


def test_check_reports_two_listeners_on_one_port_with_its_location(tmp_path: Path) -> None:
    config = listen_config(tmp_path, ports={"http": 18080, "admin": 18080})
    result = cli("check", "--config", config)
    assert result.returncode == 1 and result.stdout == ""
    assert "  listen.admin: 127.0.0.1:18080 is listen.http's address" in result.stderr


def test_check_refuses_a_caller_nothing_can_identify(tmp_path: Path) -> None:
    config = tmp_path / "proxy.yaml"
    config.write_text(Path(listen_config(tmp_path)).read_text() + "callers:\n  - {name: app, purposes: [assistant]}\n")
    result = cli("check", "--config", str(config))
    assert result.returncode == 1
    assert "  callers[0]: nothing identifies this caller: give api_key_sha256" in result.stderr


def test_check_explain_acts_as_a_caller_known_by_its_certificate(tmp_path: Path) -> None:
    from tests.certs import Authority

    authority = Authority(tmp_path)
    server = authority.issue("server", common_name="127.0.0.1", server=True)
    config = tmp_path / "proxy.yaml"
    config.write_text(
        f"listen: {{http: 127.0.0.1:0, tls: {{cert: '{server.cert}', key: '{server.key}', "
        f"client_ca: '{authority.pair.cert}'}}}}\n"
        "upstreams: [{name: m, url: 'http://127.0.0.1:9'}]\nroutes: [{model: '*', upstream: m}]\n"
        "callers: [{name: batch, tls_identity: CN=batch, purposes: [evaluation], default_purpose: evaluation}]\n"
    )
    result = cli("check", "--config", str(config), "--explain", "--caller", "batch")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "caller:    batch\n" in result.stdout and "purpose:   evaluation\n" in result.stdout


def test_check_counts_are_pluralised() -> None:
    minimal = cli("check", "--config", str(ROOT / "config" / "minimal.yaml"))
    assert minimal.returncode == 0
    assert minimal.stdout.endswith(": ok (1 upstream, 1 route, 0 callers, 0 zones)\n")
    example = cli("check", "--config", str(ROOT / "config" / "example.yaml"))
    assert example.stdout.endswith(": ok (3 upstreams, 3 routes, 2 callers, 2 zones)\n")


@pytest.mark.parametrize("option", EXPLAIN_ONLY)
def test_check_options_of_explain_without_explain_are_an_error(option: str) -> None:
    result = cli("check", "--config", str(ROOT / "config" / "minimal.yaml"), f"--{option}", "x")
    assert result.returncode == 2 and result.stdout == ""
    assert f"error: --{option} only makes sense with --explain" in result.stderr


def test_every_option_of_every_command_has_help_text() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(commands) == {"serve", "check", "demo", "edges", "verify", "report"}
    for name, command in commands.items():
        for action in command._actions:
            assert action.help, f"{name} {'/'.join(action.option_strings)} has no help text"
    assert "the YAML config to validate" in cli("check", "--help").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("serve", "--config", "x.yaml", "--workers", "0"), "--workers: must be at least 1, not 0"),
        (("serve", "--config", "x.yaml", "--workers", "99999"), "--workers: at most 256, not 99999"),
        (("demo", "--port", "70000"), "--port: a port is 0-65535, not 70000"),
        # a number in ASCII digits alone, as the config's number keys read text (int() took each; `--workers ٢` was 2)
        (("serve", "--config", "x.yaml", "--workers", "\u0662"), "--workers: not a number: '\u0662'"),
        (("serve", "--config", "x.yaml", "--workers", "1_0"), "--workers: not a number: '1_0'"),
        (("serve", "--config", "x.yaml", "--workers", " 2 "), "--workers: not a number: ' 2 '"),
        (("demo", "--port", "\u0668\u0660\u0668\u0660"), "--port: not a port number: '\u0668\u0660\u0668\u0660'"),
        (("demo", "--port", "+80"), "--port: not a port number: '+80'"),
        (("demo", "--port", "-1"), "--port: a port is 0-65535, not -1"),
        (("edges", "--store", "x.db", "--decision", "bogus"), "--decision: invalid choice: 'bogus'"),
    ],
)
def test_unknown_values_are_errors(args: tuple[str, ...], message: str) -> None:
    result = cli(*args)
    assert result.returncode == 2 and message in result.stderr


# -- edges


def edge_store(path: Path, n: int) -> Path:
    store = SqliteStore(path)
    rows = [(EdgeKey(f"caller-{i}", "assistant", "user-interaction", "ckpt", "user-interaction",
                     DECISIONS[i % len(DECISIONS)]), 1.0, 2.0, i + 1, None) for i in range(n)]  # fmt: skip
    store.upsert(rows)
    store.close()
    return path


def test_edges_filters_by_decision(tmp_path: Path) -> None:
    store = str(edge_store(tmp_path / "l.db", 8))
    result = cli("edges", "--store", store, "--decision", "audit-deny", "--json")
    assert result.returncode == 0
    assert [line.count('"decision":"audit-deny"') for line in result.stdout.splitlines()] == [1, 1]


def test_edges_filters_by_rule(tmp_path: Path) -> None:
    """Each kind of denial of one flow is an edge of its own: `--rule` picks one kind, `-` the allowed calls."""
    path = tmp_path / "l.db"
    store = SqliteStore(path)
    flow = ("app", "ads", "pii:email", "", "")
    store.upsert([(EdgeKey(*flow, "deny", "route:restricted"), 1.0, 2.0, 1, None),
                  (EdgeKey(*flow, "deny", "zone:pii"), 1.0, 2.0, 2, None),
                  (EdgeKey("app", "ads", "public", "m", "public", "allow"), 1.0, 2.0, 3, None)])  # fmt: skip
    store.close()
    for rule, counts in (("zone:pii", [2]), ("route:restricted", [1]), ("-", [3]), ("zone:other", [])):
        result = cli("edges", "--store", str(path), "--rule", rule, "--json")
        assert result.returncode == 0, result.stderr
        assert [json_module.loads(line)["count"] for line in result.stdout.splitlines()] == counts, rule


@pytest.mark.parametrize("json", [True, False])
def test_edges_into_a_closed_pipe_ends_quietly(tmp_path: Path, json: bool) -> None:
    """`lineage-proxy edges ... | head -3`: no BrokenPipeError, no traceback, the shell's SIGPIPE status."""
    store = str(edge_store(tmp_path / "l.db", 3000))  # far more than a pipe buffer holds
    args = [sys.executable, "-m", "proxy", "edges", "--store", store] + (["--json"] if json else [])
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    head = [proc.stdout.readline() for _ in range(3)]
    proc.stdout.close()
    stderr = proc.stderr.read()
    assert proc.wait(30) == 141
    assert stderr == ""
    assert "caller-" in head[-1]


def test_edges_on_a_file_that_is_not_a_store(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a database, just text that is long enough to have a header-sized first page\n" * 20)
    other = tmp_path / "other.db"
    SqliteStore(other).close()
    db = sqlite3.connect(other)
    db.execute("DROP TABLE edges")
    db.close()
    for path, reason in ((text, "not a lineage store: file is not a database"),
                         (other, "not a lineage store: no such table: edges"),
                         (tmp_path, "is a directory, not a lineage store"),
                         (tmp_path / "none.db", "no lineage store there (is lineage.store set to this path?)")):  # fmt: skip
        result = cli("edges", "--store", str(path))
        assert (result.returncode, result.stderr) == (1, f"lineage-proxy edges: {path}: {reason}\n")


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


class GatedStream:
    """A streamed chat call through `serve` to the gated upstream, read on a thread: `first` once it is in flight."""

    def __init__(self, url: str) -> None:
        self.received: list[bytes] = []
        self.first = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._read, args=(url,))
        self.thread.start()
        assert self.first.wait(10)  # the call is in flight, waiting on the gated upstream

    def _read(self, url: str) -> None:
        try:
            with httpx.stream("POST", f"{url}/v1/chat/completions", timeout=20,
                              headers={"Authorization": f"Bearer {KEYS['glasses']}", "x-purpose": "assistant"},
                              json={"model": SERVED, "stream": True,
                                    "messages": [{"role": "user", "content": "__gate__"}]}) as reply:  # fmt: skip
                for line in reply.iter_lines():
                    if line.startswith("data: "):
                        self.received.append(line.encode())
                        self.first.set()
        except httpx.HTTPError as exc:
            self.error = exc
        self.done.set()

    def finished(self) -> list[bytes]:
        assert self.done.wait(15)
        self.thread.join()
        return self.received


@pytest.fixture
def serve_gated(vllm, tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / "proxy.yaml"
    path.write_text(SERVE_CONFIG.replace("PURPOSES", "assistant") + "logging: {access: true}\n")
    serve = ServeProcess(str(path), env={"UPSTREAM": vllm[1], "STORE": str(tmp_path / "l.db")})
    yield serve, vllm[0]
    serve.stop()


def test_sigterm_drains_a_call_in_flight_then_exits_0(serve_gated, loop_thread) -> None:  # type: ignore[no-untyped-def]
    serve, server = serve_gated
    stream = GatedStream(serve.url)
    serve.signal(signal.SIGTERM)
    serve.wait_log("stopping: draining")
    for _ in range(8):  # now let the upstream finish the reply
        server.release(loop_thread.loop)
    assert stream.finished()[-1] == b"data: [DONE]"
    assert serve.proc.wait(20) == 0
    with pytest.raises(httpx.ConnectError):
        call(serve.url, "assistant")


def test_a_second_ctrl_c_cuts_the_drain_short_and_the_call_is_recorded_as_cut(serve_gated) -> None:  # type: ignore[no-untyped-def]
    serve, _ = serve_gated
    stream = GatedStream(serve.url)
    serve.signal(signal.SIGINT)
    serve.wait_log("stopping: draining")
    serve.signal(signal.SIGINT)  # the upstream is never released: the drain would last its 20 s
    serve.wait_log("1 HTTP call(s) still running were cut off (cut short by a second SIGINT)")
    assert serve.proc.wait(10) == 0
    assert b"data: [DONE]" not in stream.finished()
    assert stream.error is not None  # the connection closed mid-stream
    access = [line for line in serve.stderr if "lineage_proxy.access" in line]
    assert len(access) == 1 and "code=drain_timeout" in access[0], access


def test_sigusr1_stops_with_the_drain_cut_short(serve_gated) -> None:  # type: ignore[no-untyped-def]
    """The signal a --workers supervisor passes on for a second SIGINT, sent to one process as it is: it was the
    default action, the process killed there, without its drain or its record's last flush. Its lines name SIGUSR1,
    not the second SIGINT that never came (nor a supervisor this process does not have)."""
    serve, _ = serve_gated
    stream = GatedStream(serve.url)
    serve.signal(signal.SIGUSR1)
    serve.wait_log("1 HTTP call(s) still running were cut off (cut short by SIGUSR1)")
    assert not [line for line in serve.stderr if "SIGINT" in line], serve.stderr
    assert serve.proc.wait(10) == 0
    assert b"data: [DONE]" not in stream.finished()
    access = [line for line in serve.stderr if "lineage_proxy.access" in line]
    assert len(access) == 1 and "code=drain_timeout" in access[0], access


def test_ctrl_c_beside_a_sigterm_is_one_stop_and_the_drain_runs_its_course(serve_gated, loop_thread) -> None:  # type: ignore[no-untyped-def]
    serve, server = serve_gated
    stream = GatedStream(serve.url)
    serve.signal(signal.SIGINT)  # a terminal's Ctrl-C to a --workers worker, and the supervisor's SIGTERM after it
    serve.wait_log("stopping: draining")
    serve.signal(signal.SIGTERM)
    serve.signal(signal.SIGTERM)
    for _ in range(8):
        server.release(loop_thread.loop)
    assert stream.finished()[-1] == b"data: [DONE]"
    assert serve.proc.wait(20) == 0
    assert not any("cut off" in line for line in serve.stderr)


def test_demo_runs_end_to_end() -> None:
    result = subprocess.run([sys.executable, "-m", "proxy", "demo"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "decision=reroute" in out and "decision=deny" in out and "decision=allow" in out
    assert "chunks)" in out  # the streamed call
    assert "lineage edges recorded (5)" in out
    assert "checkpoint=lineage-proxy/demo-echo-1" in out


# -- serve: startup errors, worker ids in logs


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port somebody else is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def listen_config(tmp_path: Path, store: str = "null", ports: dict[str, int] | None = None) -> str:
    listen = "".join(f"  {name}: 127.0.0.1:{port}\n" for name, port in {"http": 0, **(ports or {})}.items())
    path = tmp_path / "proxy.yaml"
    path.write_text(f"listen:\n{listen}upstreams: [{{name: m, url: 'http://127.0.0.1:{dead_port()}'}}]\n"
                    f"routes: [{{model: '*', upstream: m}}]\nlineage: {{store: {store}}}\n")  # fmt: skip
    return str(path)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("lineage-proxy serve: ")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.mark.parametrize("listener", ["http", "admin", "grpc"])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_on_a_taken_port_says_which_in_one_line(tmp_path: Path, taken_port: int, listener: str,
                                                       workers: str) -> None:  # fmt: skip
    config = listen_config(tmp_path, ports={listener: taken_port})
    result = cli("serve", "--config", config, "--workers", workers)
    assert one_error_line(result) == (f"lineage-proxy serve: cannot listen on 127.0.0.1:{taken_port}: address already in use "
                                      f"(stop what listens there, or set listen.{listener} to a free port)")  # fmt: skip


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_with_a_store_that_cannot_be_opened(tmp_path: Path, workers: str) -> None:
    (tmp_path / "a-file").write_text("")
    store = tmp_path / "a-file" / "lineage.db"
    result = cli("serve", "--config", listen_config(tmp_path, store=str(store)), "--workers", workers)
    line = one_error_line(result)
    assert re.fullmatch(rf"lineage-proxy serve: (worker-1: )?cannot open the lineage store {store}: .+", line), line
    assert ("worker-1: " in line) == (workers == "2")


def test_workers_log_lines_say_which_process_wrote_them(tmp_path: Path) -> None:
    serve = ServeProcess(listen_config(tmp_path), "--workers", "2")
    try:
        lines = [serve.wait_log(f"{role}[") for role in ("supervisor", "worker-1", "worker-2")]
    finally:
        assert serve.stop() == 0
    pids = {re.search(r" (supervisor|worker-\d)\[(\d+)\] ", line).group(2) for line in lines}  # type: ignore[union-attr]
    assert len(pids) == 3, lines
    single = ServeProcess(listen_config(tmp_path))
    try:
        assert f" proxy[{single.proc.pid}] lineage_proxy: serving " in single.wait_log("serving")
    finally:
        assert single.stop() == 0
