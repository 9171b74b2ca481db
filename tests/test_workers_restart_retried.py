"""`serve --workers N`: a worker that dies while its restart cannot succeed for a moment (the lineage store held
by another program's write lock longer than a proxy opening it waits: a `VACUUM`, an open `sqlite3` shell
transaction) is started again once it can. The supervisor tried once, logged "not restarting it again" and
served on with one worker fewer for good, however soon the store was free again."""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path

from tests.test_workers import Serve, chat

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: origin, url: "UPSTREAM"}]
routes: [{model: "*", upstream: origin}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "STORE"}
limits: {drain_timeout_s: 2}
"""


def test_a_worker_whose_restart_fails_for_a_while_is_started_again(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    store = tmp_path / "lineage.db"
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("UPSTREAM", upstream).replace("STORE", str(store)))
    serve = Serve.workers(config, env={"TMPDIR": str(tmp_path)})
    holder = sqlite3.connect(store, isolation_level=None, timeout=10)
    try:
        addresses = serve.ready()
        holder.execute("BEGIN EXCLUSIVE")  # another program holds the store's write lock
        os.kill(serve.children()[0], signal.SIGKILL)
        serve.wait("restarting it")
        serve.wait("cannot open the lineage store")  # its restart waited for the lock, then failed
        holder.execute("ROLLBACK")  # the lock is let go
        serve.wait("lineage_proxy: serving http=", 4)  # two workers, the supervisor, the replacement
        assert len(serve.children()) == 2, "".join(serve.err)
        assert [chat(f"http://{addresses['http']}") for _ in range(4)] == [200] * 4
        assert serve.stop() == 0, "".join(serve.err)
    finally:
        holder.close()
        serve.end()
