"""A store signed with a key under 16 bytes (releases before 2026-11-30 10:00 took any key) is rotated onto a new key
after an upgrade: no release since signs with such a key, and the retired key was held to the signing key's length
too, though it signs nothing (it checks the entries signed before), so neither `serve` nor `verify` could take it.
No writer could go on with the store at all: with the new key alone its newest entry is signed with a key it lacks,
without a key it is a signed chain, with the old key that key is refused."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from proxy.record.store import EdgeKey, SqliteStore
from tests.harness import ProxyHandle
from tests.servers.vllm_like import SERVED, VllmLike

SHORT, NEW = b"short-key", b"a-new-key-of-32-bytes-0123456789"
FLOW = EdgeKey("app", "assistant", "", "org/model", "", "allow")

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: vllm, url: "${UPSTREAM}"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
lineage:
  store: ${STORE}
  flush_interval_s: 0.05
  integrity_key_file: ${NEW_KEY}
  integrity_retired_key_files: ["${SHORT_KEY}"]
"""


def test_a_store_signed_with_a_short_key_is_rotated_onto_a_new_one(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], loop_thread: Any, tmp_path: Path
) -> None:
    store = tmp_path / "lineage.db"
    written = SqliteStore(store, key=SHORT)  # as an earlier release signed it
    now = time.time()
    written.upsert([(FLOW, now, now, 2, None)])
    written.close()
    (tmp_path / "short.key").write_bytes(SHORT + b"\n")
    (tmp_path / "new.key").write_bytes(NEW)

    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, STORE=str(store), NEW_KEY=str(tmp_path / "new.key"),
                       SHORT_KEY=str(tmp_path / "short.key"))  # fmt: skip
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", timeout=10,
                       json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    assert reply.status_code == 200, reply.text
    loop_thread.run(proxy.process.runtime.sinks.flush())

    verified = subprocess.run([sys.executable, "-m", "proxy", "verify", "--store", str(store), "--integrity",
                               "--key-file", str(tmp_path / "new.key"), "--retired-key-file",
                               str(tmp_path / "short.key")], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert verified.returncode == 0 and "intact" in verified.stdout, verified.stdout + verified.stderr
    reader = SqliteStore(store, readonly=True)
    try:
        assert sum(row.count for row in reader.rows()) == 3  # the two calls signed with the old key, and this one
    finally:
        reader.close()
