"""`limits.max_connections` is any whole number from 1 to the config, but grpc's server options are C ints and grpc
core takes a connection bound below INT_MAX only: `grpc.max_allowed_incoming_connections` given the config's value as
it is, a bound of 2**31 or more (written as "no bound") raised OverflowError as the gRPC server was made, and one of
2**31 - 1 failed grpc core's check `max_incoming_connections < 0x7fffffff`, which aborts the whole process (SIGABRT: at
start, or in a reload, the proxy serving every call then). It is held at the largest bound grpc takes, as the
listener's other options are held to a C int (`_ms`, its receive limit)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from tests.harness import ServeProcess
from tests.ingress.test_grpc_connection_cap import CONFIG, connect


def test_a_max_connections_past_a_c_int_still_serves_grpc(make_proxy: Any) -> None:
    proxy = make_proxy(CONFIG.replace("CAP", str(2**31)), wait="none")
    sock, taken = connect(proxy.bound.grpc.port)
    try:
        assert taken, "the gRPC listener took no connection"
    finally:
        sock.close()


@pytest.mark.parametrize("cap", [2**31 - 1, 2**31])
def test_serve_with_max_connections_at_int_max_starts(tmp_path: Path, cap: int) -> None:
    path = tmp_path / "proxy.yaml"
    path.write_text(CONFIG.replace("CAP", str(cap)))
    serve = ServeProcess(str(path))  # (asserts its ready line: grpc core's abort ended it before)
    try:
        host, port = serve.addresses["grpc"].rsplit(":", 1)
        sock, taken = connect(int(port))
        sock.close()
        assert taken, "the gRPC listener took no connection"
    finally:
        assert serve.stop() == 0


def test_a_reload_to_max_connections_at_int_max_keeps_serving(tmp_path: Path) -> None:
    path = tmp_path / "proxy.yaml"
    path.write_text(CONFIG.replace("CAP", "4096"))
    serve = ServeProcess(str(path))
    path.write_text(CONFIG.replace("CAP", str(2**31 - 1)))  # a new gRPC server (`_grpc_changed`)
    serve.signal(signal.SIGHUP)
    serve.wait_log("reloaded")  # the new server's start was scheduled before this line: it has run by the stop's turn
    assert serve.stop() == 0, "".join(serve.stderr)
