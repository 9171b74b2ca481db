"""Servers that take no port 0 (MLServer, llama.cpp, KServe, nginx) are started on a port picked free just before;
another process can take it first (CI stop 54: MLServer exited 3, uvicorn's bind failure). `served` starts such a
server again on fresh ports when it says its address is in use, and otherwise says what the server printed."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import httpx
import pytest

from tests.harness import dead_port
from tests.servers.real import Exited, served

SERVER = """
import http.server, sys
class Ready(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers()
    def log_message(self, *args):
        pass
if sys.argv[2] == "fail":
    sys.exit("model failed to load")
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Ready).serve_forever()
"""


def test_a_server_whose_port_was_taken_is_started_again_on_a_fresh_one(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    ports = [taken.getsockname()[1]]

    def command() -> tuple[list[str], list[str]]:
        port = ports[-1] if len(ports) == 1 else dead_port()
        ports.append(port)
        return [sys.executable, "-c", SERVER, str(port), "serve"], [f"http://127.0.0.1:{port}/ready"]

    with taken, served(command, tmp_path / "server.log") as proc:
        assert ports[1] == taken.getsockname()[1] and ports[2] != ports[1]  # tried the taken port, then another
        assert httpx.get(f"http://127.0.0.1:{ports[2]}/ready", timeout=5).status_code == 200
        assert proc.poll() is None
    assert proc.returncode is not None  # stopped at the end


def test_a_server_that_ends_for_another_reason_is_not_started_again_and_says_why(tmp_path: Path) -> None:
    calls = []

    def command() -> tuple[list[str], list[str]]:
        port = dead_port()
        calls.append(port)
        return [sys.executable, "-c", SERVER, str(port), "fail"], [f"http://127.0.0.1:{port}/ready"]

    with pytest.raises(Exited, match="model failed to load"), served(command, tmp_path / "server.log"):
        pass
    assert len(calls) == 1
