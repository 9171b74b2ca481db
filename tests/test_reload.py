"""What a SIGHUP reload applies, and what it must not lose: a gRPC upstream's new TLS settings, what the
checkpoint book knew, the limits; and a SIGHUP while the proxy is still starting."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from tests.certs import Authority
from tests.conftest import sha
from tests.harness import LoopThread, serving
from tests.servers.vllm_like import SERVED, VllmLike
from tests.transport.test_grpc import simple_inputs

ROOT = Path(__file__).resolve().parent.parent


def write(path: Path, text: str, **values: str) -> Path:
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    path.write_text(text)
    return path


def reload(proxy, loop_thread: LoopThread, path: Path) -> bool:  # type: ignore[no-untyped-def]
    async def run() -> bool:
        return bool(proxy.process.reload(str(path)))

    return loop_thread.run(run())


# -- a gRPC upstream's TLS

GRPC_UPSTREAM = """
listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}
upstreams:
  - name: triton
    grpc: ${OIP_GRPC}
    protocol: oip
    region: eu
TLS
routes: [{model: "*", upstream: triton}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "${STORE}"}
"""


def test_a_reload_that_gives_a_grpc_upstream_tls_sends_its_calls_over_tls(
    make_proxy, loop_thread, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """The review's case (grpcA.yaml → grpcB.yaml): `tls: {ca}` added to a plaintext upstream on reload.
    The upstream here speaks plaintext only, so once TLS is applied the call cannot reach it."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    from tests.servers.real import faithful_oip

    ca = Authority(tmp_path)
    with faithful_oip(tmp_path) as (address, requests):
        address = address.replace("127.0.0.1", "localhost")
        proxy = make_proxy(GRPC_UPSTREAM.replace("TLS", ""), OIP_GRPC=address)
        client = grpcclient.InferenceServerClient(proxy.grpc)
        inputs = simple_inputs([2], [2])
        assert client.infer("simple", inputs).as_numpy("SUM").tolist() == [[4]]
        assert requests.read_text().count('"model": "simple"') == 1

        tls = f'    tls: {{ca: "{ca.pair.cert}"}}'
        config = write(tmp_path / "tls.yaml", GRPC_UPSTREAM.replace("TLS", tls), OIP_GRPC=address,
                       STORE=str(tmp_path / "lineage.db"))  # fmt: skip
        assert reload(proxy, loop_thread, config)
        with pytest.raises(InferenceServerException) as refused:
            client.infer("simple", inputs)
        assert refused.value.status() == "StatusCode.UNAVAILABLE", refused.value.message()
        assert requests.read_text().count('"model": "simple"') == 1  # nothing more reached it in plaintext


# -- the checkpoint book

BLOCKING = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: vllm
    url: ${UPSTREAM}
    region: eu
routes:
EXTRA  - model: "*"
    upstream: vllm
callers:
  - name: app
    api_key_sha256: KEY
    default_purpose: assistant
lineage:
  store: ${STORE}
  baseline: ${BASELINE}
  on_unapproved: block
""".replace("KEY", sha("key-app"))


class SlowMetadata(VllmLike):
    """/v1/models answers at once until `slow` is set; then not before the test lets it."""

    slow = False
    let_go: asyncio.Event | None = None

    async def list_models(self, request: web.Request) -> web.Response:
        if self.slow:
            assert self.let_go is not None
            await self.let_go.wait()
        return await super().list_models(request)


def chat(url: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", headers={"authorization": "Bearer key-app"}, timeout=10,
                      json={"model": SERVED, "messages": [{"role": "user", "content": "hello"}]})  # fmt: skip


def test_a_reload_keeps_the_checkpoints_known_until_the_upstream_answers_again(
    make_proxy, loop_thread, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """bl1.yaml → bl2.yaml: a reload that only adds a route, while the upstream's /v1/models is slow.
    The discovered checkpoint is not approved: calls stay refused across the reload (they went through
    until rediscovery), and /readyz stays ready."""
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text('version: 1\nflows:\n  - {caller: app, purpose: assistant, checkpoints: ["org/approved@1"]}\n')
    server = SlowMetadata()
    with serving(loop_thread, server.app()) as upstream:
        server.let_go = loop_thread.run(_event())
        try:
            env = {"UPSTREAM": upstream, "BASELINE": str(baseline)}
            proxy = make_proxy(BLOCKING.replace("EXTRA", ""), **env)
            first = chat(proxy.url)
            assert first.status_code == 403 and first.json()["error"]["code"] == "flow_not_approved"

            server.slow = True  # the new book's discovery waits from now on
            extra = "  - model: extra-model\n    upstream: vllm\n"
            config = write(tmp_path / "more-routes.yaml", BLOCKING.replace("EXTRA", extra),
                           STORE=str(tmp_path / "lineage.db"), **env)  # fmt: skip
            assert reload(proxy, loop_thread, config)
            after = chat(proxy.url)
            assert after.status_code == 403 and after.json()["error"]["code"] == "flow_not_approved", after.text
            assert proxy.process.ready()[0]
            assert not server.data_requests()  # no call reached the model
        finally:
            loop_thread.loop.call_soon_threadsafe(server.let_go.set)


async def _event() -> asyncio.Event:
    return asyncio.Event()


def test_a_changed_upstream_starts_from_what_its_own_metadata_says(make_proxy, loop_thread, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """What a book knew is kept only for the same server: an upstream that now has another URL is
    discovered afresh (here: nothing known while its metadata is slow)."""
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text('version: 1\nflows:\n  - {caller: app, purpose: assistant, checkpoints: ["org/approved@1"]}\n')
    first, second = SlowMetadata(), SlowMetadata()
    with serving(loop_thread, first.app()) as one, serving(loop_thread, second.app()) as two:
        second.slow, second.let_go = True, loop_thread.run(_event())
        try:
            proxy = make_proxy(BLOCKING.replace("EXTRA", ""), UPSTREAM=one, BASELINE=str(baseline))
            config = write(tmp_path / "moved.yaml", BLOCKING.replace("EXTRA", ""), UPSTREAM=two,
                           BASELINE=str(baseline), STORE=str(tmp_path / "lineage.db"))  # fmt: skip
            assert reload(proxy, loop_thread, config)
            assert not proxy.process.ready()[0]  # the moved upstream has not answered yet
            assert proxy.process.book.resolve(proxy.process.config.upstreams[0], SERVED, learn=False) is None
        finally:
            loop_thread.loop.call_soon_threadsafe(second.let_go.set)


# -- limits

LIMITED = """
listen: {http: 127.0.0.1:0GRPC}
upstreams: [{name: vllm, url: "${UPSTREAM}"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "${STORE}"}
LIMITS
"""


def test_a_reload_applies_the_request_limits_at_once(vllm, make_proxy, loop_thread, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """t_lim.py: `max_body_bytes: 1000` on reload; a 5 KB body was still forwarded."""
    server, upstream = vllm
    proxy = make_proxy(LIMITED.replace("GRPC", "").replace("LIMITS", ""), UPSTREAM=upstream)
    body = {"model": SERVED, "messages": [{"role": "user", "content": "x" * 5000}]}
    assert httpx.post(f"{proxy.url}/v1/chat/completions", json=body, timeout=10).status_code == 200
    limits = "limits: {max_body_bytes: 1000, max_headers: 20, max_header_bytes: 4096}"
    config = write(tmp_path / "limited.yaml", LIMITED.replace("GRPC", "").replace("LIMITS", limits),
                   UPSTREAM=upstream, STORE=str(tmp_path / "lineage.db"))  # fmt: skip
    assert reload(proxy, loop_thread, config)
    too_big = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, timeout=10)
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "request_too_large"
    many = {f"x-extra-{i}": "1" for i in range(30)}
    assert httpx.get(f"{proxy.url}/v1/models", headers=many, timeout=10).status_code == 431
    long = {"x-long": "y" * 5000}
    assert httpx.get(f"{proxy.url}/v1/models", headers=long, timeout=10).status_code == 431
    assert len(server.data_requests()) == 1


def test_max_body_bytes_is_applied_to_the_grpc_listener_too_without_a_warning(
    vllm, make_proxy, loop_thread, tmp_path: Path, caplog
) -> None:  # type: ignore[no-untyped-def]
    """It was fixed when the gRPC listener started, and named in a warning; the listener now takes a new
    server for it (tests/transport/test_grpc.py checks the limit on the wire)."""
    _, upstream = vllm
    grpc = ", grpc: 127.0.0.1:0"
    proxy = make_proxy(LIMITED.replace("GRPC", grpc).replace("LIMITS", ""), UPSTREAM=upstream)
    config = write(tmp_path / "limited.yaml",
                   LIMITED.replace("GRPC", grpc).replace("LIMITS", "limits: {max_body_bytes: 1000}"),
                   UPSTREAM=upstream, STORE=str(tmp_path / "lineage.db"))  # fmt: skip
    caplog.set_level(logging.WARNING, logger="lineage_proxy")
    assert reload(proxy, loop_thread, config)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert not any("max_body_bytes" in w for w in warnings), warnings


def test_lineage_settings_read_at_start_are_named_in_a_warning(
    vllm, make_proxy, loop_thread, tmp_path: Path, caplog
) -> None:  # type: ignore[no-untyped-def]
    """A reload naming another integrity key (or journal, flush interval, ...) logged only "reloaded" and went
    on signing with the old key: the settings the store reads once are named, as lineage.store was."""
    _, upstream = vllm
    proxy = make_proxy(LIMITED.replace("GRPC", "").replace("LIMITS", ""), UPSTREAM=upstream)
    key = tmp_path / "integrity.key"
    key.write_text("k" * 32)
    text = LIMITED.replace("GRPC", "").replace("LIMITS", "").replace(
        'lineage: {store: "${STORE}"}', f'lineage: {{store: "${{STORE}}", integrity_key_file: {key}, flush_interval_s: 0.5}}'
    )  # fmt: skip
    config = write(tmp_path / "keyed.yaml", text, UPSTREAM=upstream, STORE=str(proxy.process.config.lineage.store))
    caplog.set_level(logging.WARNING, logger="lineage_proxy")
    assert reload(proxy, loop_thread, config)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["reload: lineage.integrity_key_file, lineage.flush_interval_s changed; they take effect on "
                        "restart only"]  # fmt: skip


# -- a SIGHUP while starting

EARLY = """
import logging, os, signal, sys
from proxy import workers
from proxy.config import load

logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")
path, mode = sys.argv[1], sys.argv[2]
hook = "open_process" if mode == "single" else "claim"
original = getattr(workers, hook)

def early(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGHUP)  # a SIGHUP while the proxy is still starting
    return original(*args, **kwargs)

setattr(workers, hook, early)
config = load(path)
sys.exit(workers.run_single(path, config) if mode == "single" else workers.run_workers(path, config, 2))
"""


class Lines:
    """A subprocess's output lines, read as they come; `wait` is bounded."""

    def __init__(self, stream) -> None:  # type: ignore[no-untyped-def]
        self.lines: list[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()

    def wait(self, needle: str, timeout: float = 30.0) -> bool:
        return self.wait_for(lambda lines: any(needle in line for line in lines), timeout)

    def wait_for(self, predicate, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.lines), timeout)


@pytest.mark.parametrize("mode", ["single", "workers"])
def test_a_sighup_while_starting_is_held_and_applied_once_serving(vllm, tmp_path: Path, mode: str) -> None:  # type: ignore[no-untyped-def]
    """t_early.py: the default action of SIGHUP ended `serve` while it started. Now it is held: the
    process serves, and reloads once its loop handles signals (with --workers, each worker does)."""
    _, upstream = vllm
    config = write(tmp_path / "proxy.yaml", LIMITED.replace("GRPC", "").replace("LIMITS", ""), UPSTREAM=upstream,
                   STORE=str(tmp_path / "lineage.db"))  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", EARLY, str(config), mode], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    out, err = Lines(proc.stdout), Lines(proc.stderr)
    try:
        ready = out.wait("lineage-proxy ready")
        assert ready, f"exit {proc.poll()}; stderr:\n{''.join(err.lines)}"
        reloads = 1 if mode == "single" else 2  # with --workers: each worker
        reloaded = err.wait_for(lambda lines: sum("lineage_proxy: reloaded" in line for line in lines) == reloads)
        assert reloaded, "".join(err.lines)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert code == 0, "".join(err.lines)
