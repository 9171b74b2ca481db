"""An HTTPS upstream's TLS files renewed on a hung mount (a FIFO nobody writes stands in for one): a reload asks its
next connection to read them again (`reread_tls`), which it did on the event loop's default executor. The call waited
for good (the read was awaited before the connect timeout began), and a SIGTERM never ended the proxy: `asyncio.run`
joins that executor's threads at its end, and one waited on the file. The context is now made on a daemon thread,
within connect_timeout_s: the call gets its 502 (no connection within it), and a stop drains and exits 0."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from tests.certs import Authority
from tests.harness import LoopThread
from tests.servers.vllm_like import SERVED, VllmLike
from tests.test_reload_load_waits import BASELINE, _waits_on
from tests.test_workers import ROOT, Serve

WAIT_S = 10.0

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: vllm
    url: https://localhost:PORT
    connect_timeout_s: 0.5
    tls: {ca: "CA"}
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "STORE"BASELINE}
"""


def test_a_call_and_a_stop_do_not_wait_for_an_https_upstreams_tls_files_on_a_hung_mount(
    loop_thread: LoopThread, tmp_path: Path
) -> None:
    authority = Authority(tmp_path, "model server CA")
    pair = authority.issue("upstream", common_name="localhost", server=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(pair.cert), str(pair.key))

    async def start() -> tuple[web.AppRunner, int]:
        runner = web.AppRunner(VllmLike().app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    runner, port = loop_thread.run(start())
    ca = tmp_path / "upstream-ca.pem"  # a regular file, then a FIFO once the reload's load has read it
    ca.write_bytes(authority.pair.cert.read_bytes())
    baseline = tmp_path / "baseline.pipe"
    os.mkfifo(baseline)
    config = tmp_path / "proxy.yaml"
    text = (CONFIG.replace("PORT", str(port)).replace("CA", str(ca))
            .replace("STORE", str(tmp_path / "lineage.db")))  # fmt: skip
    config.write_text(text.replace("BASELINE", ""))
    serve = Serve([sys.executable, "-m", "proxy", "serve", "--config", str(config)], env={"PYTHONPATH": str(ROOT)})
    try:
        url = f"http://{serve.ready()['http']}/v1/chat/completions"

        def chat() -> int:
            body = {"model": SERVED, "messages": [{"role": "user", "content": "hello"}]}
            try:  # a new connection to the proxy, which has none idle to the upstream (`Connection: close`)
                return httpx.post(url, json=body, headers={"connection": "close"}, timeout=WAIT_S).status_code
            except httpx.TimeoutException:
                pytest.fail(f"a call waited for the upstream's TLS files; stderr:\n{''.join(serve.err)}")

        assert chat() == 200
        config.write_text(text.replace("BASELINE", f', baseline: "{baseline}"'))
        serve.proc.send_signal(signal.SIGHUP)
        _waits_on(serve, baseline)  # the load has read the CA and waits for the baseline
        pipe = tmp_path / "ca.pipe"
        os.mkfifo(pipe)
        os.replace(pipe, ca)  # the CA's mount hangs from now on
        with open(baseline, "w") as writing:
            writing.write(BASELINE)
        serve.wait("reloaded")
        loop_thread.run(runner.cleanup())  # the upstream's connection the proxy keeps idle ends: the next call connects
        runner, port = loop_thread.run(_restart(context, port))
        assert chat() == 502  # no connection within connect_timeout_s
        serve.proc.send_signal(signal.SIGTERM)
        try:
            code = serve.proc.wait(WAIT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {WAIT_S:g} s after SIGTERM; stderr:\n{''.join(serve.err)}")
        assert code == 0, "".join(serve.err)
    finally:
        serve.end()
        loop_thread.run(runner.cleanup())


async def _restart(context: ssl.SSLContext, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(VllmLike().app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=context)
    await site.start()
    return runner, port
