"""An OpenLineage transport URL's password is in no line `check` or `serve` writes: a transport that cannot
be built (a port out of range, which openlineage-python refuses only when it builds it: `ValueError: Need
valid url ..., passed http://user:PASS@...`) was logged with its traceback; one that fails to close, the
same; `check`'s (and a refused reload's) "expected an http(s):// URL, got '...'" and "openlineage-python
refuses this ... transport: ..." quoted the URL whole. Each now shows `user:***@`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import ServeProcess, dead_port

PASSWORD = "OLPASS-review-s8"

BASE = """
listen: {{http: "127.0.0.1:0"}}
upstreams: [{{name: m, url: "http://127.0.0.1:{dead}"}}]
routes: [{{model: "*", upstream: m}}]
policy: {{anonymous: allow, default_purpose: assistant}}
lineage:
  store: null
"""

# a transport of the user's own (`type: module.Class`), as openlineage-python lets one be named: its config
# refuses what it is given quoting the URL, and closing it fails quoting the URL, as requests' errors do
LEAKY = """
import attr
from openlineage.client.transport import Config, Transport


@attr.define
class LeakyConfig(Config):
    url: str

    @classmethod
    def from_dict(cls, params):
        if params.get("refuse"):
            raise ValueError(f"no route to {params['url']}")
        return cls(url=params["url"])


class LeakyTransport(Transport):
    kind = "leaky"
    config_class = LeakyConfig

    def __init__(self, config):
        self.config = config

    def emit(self, event):
        return None

    def close(self, timeout=-1):
        raise ConnectionError(f"could not close the session to {self.config.url}")
"""


def _config(tmp_path: Path, openlineage: str) -> Path:
    path = tmp_path / "proxy.yaml"
    path.write_text(BASE.format(dead=dead_port()) + f"  openlineage: {openlineage}\n")
    return path


def _env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "leakymod.py").write_text(LEAKY)
    return {"PYTHONPATH": str(tmp_path)}


def _check(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", "check", "--config", str(path)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **env})  # fmt: skip


@pytest.mark.parametrize(("openlineage", "shown"), [
    # a transport's url that is not http(s)
    (f'{{transport: {{type: http, url: "ftp://oluser:{PASSWORD}@marquez:5000/x"}}}}',
     "expected an http(s):// URL, got 'ftp://oluser:***@marquez:5000/x'"),
    # `url:` (Marquez) written without its scheme: the userinfo starts it
    (f'{{url: "oluser:{PASSWORD}@marquez:5000"}}', "expected an http(s):// URL, got 'oluser:***@marquez:5000'"),
    # a port that is none, which openlineage-python found only when it built the transport, at start
    (f'{{url: "http://oluser:{PASSWORD}@127.0.0.1:99999"}}',
     "the port must be 1-65535, got 99999 in 'http://oluser:***@127.0.0.1:99999'"),
    # a transport whose config refuses it, quoting the URL
    (f'{{transport: {{type: leakymod.LeakyTransport, url: "http://oluser:{PASSWORD}@marquez:5000", refuse: true}}}}',
     "refuses this leakymod.LeakyTransport transport: no route to http://oluser:***@marquez:5000"),
])  # fmt: skip
def test_check_shows_no_password_in_a_transport_problem(tmp_path: Path, openlineage: str, shown: str) -> None:
    done = _check(_config(tmp_path, openlineage), _env(tmp_path))
    assert done.returncode == 1, done.stderr
    assert shown in done.stderr, done.stderr
    assert PASSWORD not in done.stdout + done.stderr


def test_serve_logs_a_transport_that_fails_to_close_without_the_password(tmp_path: Path) -> None:
    path = _config(tmp_path, f'{{transport: {{type: leakymod.LeakyTransport, url: "http://oluser:{PASSWORD}@h:1"}}}}')
    serve = ServeProcess(str(path), env=_env(tmp_path))
    assert serve.stop() == 0
    line = serve.wait_log("failed to close")
    assert "(ConnectionError: could not close the session to http://oluser:***@h:1)" in line, line
    assert "Traceback" not in "".join(serve.stderr), "".join(serve.stderr)
    assert not [line for line in serve.stderr if PASSWORD in line], "".join(serve.stderr)


def test_a_refused_reload_logs_no_password(tmp_path: Path) -> None:
    path = _config(tmp_path, '{url: "http://127.0.0.1:9"}')
    serve = ServeProcess(str(path), env=_env(tmp_path))
    try:
        for openlineage, shown in [
            (f'{{url: "ftp://oluser:{PASSWORD}@marquez:5000"}}', "got 'ftp://oluser:***@marquez:5000'"),
            (f'{{transport: {{type: leakymod.LeakyTransport, url: "http://oluser:{PASSWORD}@m:1", refuse: true}}}}',
             "no route to http://oluser:***@m:1"),
        ]:  # fmt: skip
            refused = len([line for line in serve.stderr if "reload refused" in line])
            path.write_text(BASE.format(dead=dead_port()) + f"  openlineage: {openlineage}\n")
            serve.signal(signal.SIGHUP)
            serve.wait_log(shown)
            assert len([line for line in serve.stderr if "reload refused" in line]) == refused + 1, serve.stderr
    finally:
        assert serve.stop() == 0
    assert not [line for line in serve.stderr if PASSWORD in line], "".join(serve.stderr)
