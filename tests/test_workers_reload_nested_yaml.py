"""A reload of a config nested too deeply for the YAML reader (a few thousand `[` or `{a: ` in a row: a generated
file gone wrong) is refused like any invalid config: each process logs the refusal and keeps the old config
(README: "an invalid one is refused, logged, and the old one stays"). PyYAML's composer recursed until Python's
limit and the RecursionError escaped `load`, which callers take as ConfigError only: with `--workers N` it escaped
the supervisor's SIGHUP handler and ended the supervisor, and with it (their parent gone) every worker: one
SIGHUP took the whole proxy down. `check` printed a traceback too."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.config import load
from proxy.errors import ConfigError
from tests.test_workers import WAIT_S, Serve, chat

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: origin, url: "UPSTREAM"}]
routes: [{model: "*", upstream: origin}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "STORE"}
limits: {drain_timeout_s: 2}
"""
NESTED = "x: " + "[" * 5000 + "]" * 5000 + "\n"


def test_a_config_nested_too_deeply_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nested.yaml"
    path.write_text(CONFIG + NESTED)
    with pytest.raises(ConfigError) as refused:
        load(path)
    assert "nested" in str(refused.value)
    checked = subprocess.run([sys.executable, "-m", "proxy", "check", "--config", str(path)], capture_output=True,
                             text=True, timeout=WAIT_S)  # fmt: skip
    assert checked.returncode == 1 and "Traceback" not in checked.stderr, checked.stderr


def test_a_reload_nested_too_deeply_leaves_the_workers_serving(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    text = CONFIG.replace("UPSTREAM", upstream).replace("STORE", str(tmp_path / "lineage.db"))
    config.write_text(text)
    serve = Serve.workers(config, env={"TMPDIR": str(tmp_path)})
    try:
        addresses = serve.ready()
        workers = serve.children()
        config.write_text(text + NESTED)
        serve.proc.send_signal(signal.SIGHUP)
        serve.wait("reload refused", 2)  # each worker
        assert [chat(f"http://{addresses['http']}") for _ in range(6)] == [200] * 6
        assert serve.proc.poll() is None, "".join(serve.err)  # the supervisor still runs its workers
        assert serve.children() == workers
        assert serve.stop() == 0, "".join(serve.err)
    finally:
        serve.end()
    assert "Traceback" not in "".join(serve.err)
