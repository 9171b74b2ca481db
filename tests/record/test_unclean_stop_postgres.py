"""Two sidecars on one PostgreSQL store: each keeps its running marker beside its own journal (`proxy.markers`), never
beside the database, so neither calls the other's run its own. The one killed (SIGKILL) is said by its own next
start, naming its pid; the other, stopped cleanly and started again, says nothing."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from tests.servers.postgres import PostgresServer
from tests.test_unclean_stop_said import NEEDLE, ROOT
from tests.test_workers import WAIT_S, Serve, chat

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: vllm, url: "UPSTREAM"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "STORE", journal: "JOURNAL"}
"""


def sidecar(tmp_path: Path, name: str, upstream: str, store: str) -> Path:
    home = tmp_path / name
    home.mkdir()
    config = home / "proxy.yaml"
    config.write_text(CONFIG.replace("UPSTREAM", upstream).replace("STORE", store)
                      .replace("JOURNAL", str(home / "journal.db")))  # fmt: skip
    return config


def serve(config: Path) -> Serve:
    return Serve([sys.executable, "-m", "proxy", "serve", "--config", str(config)], env={"PYTHONPATH": str(ROOT)})


def test_sidecars_on_one_database_say_only_their_own_unclean_stop(  # type: ignore[no-untyped-def]
    postgres: PostgresServer, vllm, tmp_path: Path
) -> None:
    _, upstream = vllm
    store = postgres.database()
    a, b = sidecar(tmp_path, "a", upstream, store), sidecar(tmp_path, "b", upstream, store)
    first_a, first_b = serve(a), serve(b)
    again: list[Serve] = []
    try:
        for each in (first_a, first_b):
            assert chat(f"http://{each.ready()['http']}") == 200
        first_a.proc.send_signal(signal.SIGKILL)  # sidecar a: the OOM killer
        first_a.proc.wait(WAIT_S)
        assert first_b.stop() == 0, "".join(first_b.err)  # sidecar b: a clean stop
        for config in (b, a):  # b first: a's marker, on the same database, is not b's to say
            started = serve(config)
            again.append(started)
            started.ready()
        said_b = [line for line in again[0].err if NEEDLE in line]
        said_a = [line for line in again[1].err if NEEDLE in line]
        assert not said_b, said_b
        assert len(said_a) == 1 and f"pid {first_a.proc.pid} " in said_a[0], "".join(again[1].err)
        for each in again:
            assert each.stop() == 0, "".join(each.err)
    finally:
        for each in (first_a, first_b, *again):
            each.end()
