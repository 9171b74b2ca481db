"""A SIGHUP whose listener TLS files are slow to come (a key on a hung mount; a FIFO stands in for one): the config was
loaded off the event loop, but the reload then read the listener's certificate, key and client CA again on the loop
(`ListenerTls.reload`, and the gRPC listener's check of a renewal), so while the file waited the proxy answered
nothing and SIGTERM, a callback of that loop, did nothing (with `--workers`, the watchdog killed the worker). The
files are now read with the config, off the loop: calls are served with the old context meanwhile, the new one is
applied once read, and a stop meanwhile drains and exits 0.

The key becomes a FIFO after the load read it, as a mount may hang between two reads: the load waits on the
baseline, another FIFO, meanwhile."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.certs import Authority
from tests.servers.vllm_like import SERVED
from tests.test_reload_load_waits import BASELINE, _waits_on
from tests.test_workers import ROOT, Serve

WAIT_S = 10.0

CONFIG = """
listen:
  http: 127.0.0.1:0
  tls: {cert: "CERT", key: "KEY"}
upstreams: [{name: vllm, url: "UPSTREAM"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "STORE"BASELINE}
"""


class Feeder:
    """Writes `data` into a FIFO for every reader that opens it, until stopped."""

    def __init__(self, fifo: Path, data: bytes) -> None:
        self.fifo, self.data = fifo, data
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped:
            try:
                with open(self.fifo, "wb") as pipe:  # waits for a reader
                    pipe.write(self.data)
            except BrokenPipeError:  # the stop's reader, gone at once
                pass

    def stop(self) -> None:
        self.stopped = True
        while self.thread.is_alive():  # its open waits for a reader: one that opens and leaves ends it
            os.close(os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK))
            self.thread.join(0.05)


def test_calls_are_served_and_a_stop_works_while_a_reload_waits_for_the_listeners_tls_files(
    vllm, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    ca = Authority(tmp_path, "server CA")
    server = ca.issue("server", common_name="localhost", server=True)
    key_pem = Path(server.key).read_bytes()
    key = tmp_path / "listener.key"  # a regular file, then a FIFO once the load has read it
    key.write_bytes(key_pem)
    baseline = tmp_path / "baseline.pipe"
    os.mkfifo(baseline)
    config = tmp_path / "proxy.yaml"
    text = (CONFIG.replace("UPSTREAM", upstream).replace("STORE", str(tmp_path / "lineage.db"))
            .replace("CERT", str(server.cert)).replace("KEY", str(key)))  # fmt: skip
    config.write_text(text.replace("BASELINE", ""))
    trust = ssl.create_default_context(cafile=str(ca.pair.cert))
    serve = Serve([sys.executable, "-m", "proxy", "serve", "--config", str(config)], env={"PYTHONPATH": str(ROOT)})
    feeder: Feeder | None = None
    try:
        url = f"https://{serve.ready()['http']}/v1/chat/completions"

        def chat() -> int:
            try:
                with httpx.Client(verify=trust, timeout=WAIT_S) as each:  # a new connection: a new handshake
                    body = {"model": SERVED, "messages": [{"role": "user", "content": "hello"}]}
                    return each.post(url, json=body).status_code
            except httpx.TimeoutException:
                pytest.fail(
                    f"a call went unanswered while a reload waited for its TLS files; stderr:\n{''.join(serve.err)}"
                )

        assert chat() == 200
        config.write_text(text.replace("BASELINE", f', baseline: "{baseline}"'))
        for reload in (1, 2):
            serve.proc.send_signal(signal.SIGHUP)
            _waits_on(serve, baseline)  # the load has read the key and waits for the baseline
            pipe = tmp_path / "key.pipe"
            os.mkfifo(pipe)
            os.replace(pipe, key)  # the key's mount hangs from now on
            with open(baseline, "w") as writing:
                writing.write(BASELINE)  # the load ends; what reads the key after it waits
            assert [chat() for _ in range(4)] == [200] * 4  # served with the context in force
            if reload == 1:  # the key comes: the new context is applied, and serves
                feeder = Feeder(key, key_pem)
                serve.wait("reloaded")
                feeder.stop()
                assert chat() == 200
                key.unlink()
                key.write_bytes(key_pem)
        serve.proc.send_signal(signal.SIGTERM)  # while the second reload waits for the key
        try:
            code = serve.proc.wait(WAIT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {WAIT_S:g} s after SIGTERM; stderr:\n{''.join(serve.err)}")
        assert code == 0, "".join(serve.err)
        assert not [line for line in serve.err if "refused" in line], serve.err
    finally:
        serve.end()
        if feeder is not None:
            feeder.stop()
