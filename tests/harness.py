"""Test plumbing: a background event loop, servers on port 0, the proxy started in-process.

Tests stay synchronous and drive the proxy with real clients (openai SDK, tritonclient) from the
test thread; servers run on one background loop. Readiness is awaited, never slept for.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import queue
import secrets
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import uvloop
from aiohttp import web

from proxy.checkpoints import CheckpointBook
from proxy.config import Config, parse
from proxy.pipeline import Pipeline, Runtime, StoredReplies
from proxy.protocols import Fetch
from proxy.protocols.kserve import v1_call_path
from proxy.protocols.tgi import NATIVE_PATHS as TGI_NATIVE_PATHS
from proxy.record.sinks import FanOut
from proxy.server import Bound, ProxyProcess

T = TypeVar("T")

# the end of a config: the zone most tests hold calls against (`pii:email`, allowed for `assistant` alone), the email
# detector, the lineage store `make_proxy` gives
EMAIL_ZONE = """zones:
  - name: personal
    labels: [pii:email]
    allow_purposes: [assistant]
detectors: [email]
lineage:
  store: ${STORE}
"""


# the head of a config: one llama.cpp server (`${UPSTREAM}`) for every model, anonymous calls for `assistant`; a zone,
# detectors and the store to append (`EMAIL_ZONE`)
LLAMACPP_HEAD = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: llamacpp
    url: ${UPSTREAM}
routes:
  - model: "*"
    upstream: llamacpp
policy:
  anonymous: allow
  default_purpose: assistant
"""


class FakeTransport:
    """Stands in for a socket's transport, for a connection driven through asyncio's Protocol calls with no
    socket: keeps what is written (`written`) and whether it was closed, and does nothing else."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def writelines(self, lines: tuple[bytes, ...]) -> None:
        self.written.extend(lines)

    def is_closing(self) -> bool:
        return self.closed

    def can_write_eof(self) -> bool:
        return False

    def abort(self) -> None:
        self.closed = True

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


class LoopThread:
    """The in-process proxy's loop: uvloop, as `lineage-proxy serve` runs it."""

    def __init__(self) -> None:
        self.loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


async def start_app(app: web.Application, ssl_context: ssl.SSLContext | None = None) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


@contextlib.contextmanager
def serving(loop_thread: LoopThread, app: web.Application) -> Iterator[str]:
    """An aiohttp app served on the loop thread for the block: its base URL."""

    async def start() -> tuple[web.AppRunner, int]:
        return await start_app(app)

    runner, port = loop_thread.run(start())
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop_thread.run(runner.cleanup())


@contextlib.contextmanager
def proxy_before(
    loop_thread: LoopThread,
    make_proxy: Callable[..., ProxyHandle],
    config: str,
    origin: Callable[[], Coroutine[Any, Any, tuple[asyncio.Server, int]]],
) -> Iterator[int]:
    """A proxy (`config`, its `${UPSTREAM}` the origin) in front of a raw asyncio origin started on the loop
    thread for the block: the proxy's port."""
    server, port = loop_thread.run(origin())
    proxy = make_proxy(config, UPSTREAM=f"http://127.0.0.1:{port}")
    try:
        yield int(proxy.url.rsplit(":", 1)[1])
    finally:

        async def close() -> None:
            server.close()

        loop_thread.run(close())


def proxy_error(reply: Any) -> dict[str, Any]:
    """The proxy's error reply (an httpx.Response) as `message`, `code`, `type` and `param`, checked to be in the
    shape of the API its request's path belongs to: OIP v2 REST's (`{"error": "<message>", "code": ...}`) on
    `/v2` and `/v2/...`, KServe V1's calls and Ollama's `/api/<name>`, TGI's (its type `error_type`) on its native
    paths (at `/`, of a call that is TGI's), the OpenAI one (`{"error": {"message": ...}}`) elsewhere."""
    answer = reply.json()
    path = reply.request.url.path
    ollama = path.startswith("/api/") and ("/" not in path[5:] or path.startswith("/api/blobs/"))
    if path == "/v2" or path.startswith("/v2/") or v1_call_path(path) or ollama:
        assert isinstance(answer["error"], str), answer  # what tritonclient and the ollama client raise with
        return {"message": answer["error"], "code": answer["code"], "type": answer["type"], "param": answer["param"]}
    tgis = path != "/" or _root_tgis(reply)
    if path in TGI_NATIVE_PATHS and (tgis or (tgis is None and isinstance(answer["error"], str))):
        # (`/` is other apps' root too: a refusal there is in TGI's shape only when the call is TGI's, `shape_root`)
        assert isinstance(answer["error"], str), answer  # what huggingface_hub raises with
        return {"message": answer["error"], "code": answer["code"], "type": answer["error_type"],
                "param": answer["param"]}  # fmt: skip
    assert isinstance(answer["error"], dict), answer
    return dict(answer["error"])


class _Twice(Exception):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({key for key, _ in pairs}) != len(pairs):
        raise _Twice
    return dict(pairs)


def _root_tgis(reply: Any) -> bool | None:
    """Whether a refusal at `/` must be in TGI's shape, by the body sent (`shape_root`): a JSON object whose `inputs` is a
    string, each key once, is TGI's, any other body not; None (either shape) where the proxy may not have read it (413,
    431, over 1 MiB, a content coding, a body streamed)."""
    request = reply.request
    try:
        content = request.content
    except Exception:  # httpx.RequestNotRead: a streamed body
        return None
    if reply.status_code in (413, 431) or len(content) > 1 << 20 or "content-encoding" in request.headers:
        return None
    try:
        data = json.loads(content, object_pairs_hook=_pairs)
    except (ValueError, _Twice):  # (UnicodeDecodeError is a ValueError)
        return False
    return type(data) is dict and type(data.get("inputs")) is str


def traced(**headers: str) -> tuple[str, dict[str, str]]:
    """A trace id of the test's own and the headers that carry it (`traceparent`, with `headers`): for a client that
    keeps the reply's headers from its caller (huggingface_hub's, ollama's), the call's span is found by it."""
    trace_id = secrets.token_hex(16)
    return trace_id, {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01", **headers}


def demo_lines(proc: subprocess.Popen[str]) -> tuple[list[str], queue.Queue[str]]:
    """The lines a started `demo --keep` prints to its stdout up to its `still serving on` line, waited on (60 s at
    most a line), and the queue a thread goes on filling with those after it (`<eof>` at its end)."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put("<eof>")

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    while not seen or not seen[-1].startswith("still serving on "):
        line = lines.get(timeout=60)
        assert line != "<eof>", "".join(seen) + (proc.stderr.read() if proc.stderr else "")
        seen.append(line)
    return seen, lines


def dead_port() -> int:
    """A loopback port with nothing listening (bound then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ProxyHandle:
    process: ProxyProcess
    bound: Bound
    config: Config

    @property
    def url(self) -> str:
        return f"http://{self.bound.http}"

    @property
    def grpc(self) -> str:
        assert self.bound.grpc is not None
        return str(self.bound.grpc)


async def start_proxy(config_text: str, *, wait: str = "reachable", env: dict[str, str] | None = None) -> ProxyHandle:
    config = parse(config_text, source="test.yaml", env={**os.environ, **(env or {})})
    process = ProxyProcess(config)
    bound = await process.start()
    if wait == "reachable":
        await asyncio.wait_for(process.book.wait_reachable(), 10)
    elif wait == "probed":
        await asyncio.wait_for(process.book.wait_probed(), 10)
    return ProxyHandle(process, bound, config)


class ServeProcess:
    """`lineage-proxy serve` as a user runs it, in a subprocess; waits for its ready line."""

    def __init__(
        self, config_path: str, *args: str, env: dict[str, str] | None = None, run_by: Sequence[str] = ()
    ) -> None:
        """`run_by`: a command that runs it (`setpriv ...`), before the interpreter's."""
        import queue
        import subprocess
        import sys

        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        self._stderr_cond = threading.Condition()
        self.proc = subprocess.Popen(
            [*run_by, sys.executable, "-m", "proxy", "serve", "--config", config_path, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        threading.Thread(target=self._pump_stdout, daemon=True).start()
        threading.Thread(target=self._pump_stderr, daemon=True).start()
        line = self.lines.get(timeout=30)
        assert line.startswith("lineage-proxy ready "), line
        self.addresses = dict(part.split("=", 1) for part in line.split()[2:])

    def _pump_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put("<eof>")

    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._stderr_cond:
                self.stderr.append(line)
                self._stderr_cond.notify_all()

    def wait_log(self, needle: str, timeout: float = 10.0) -> str:
        """Block until a stderr line containing `needle` appears; returns it."""
        with self._stderr_cond:
            found = self._stderr_cond.wait_for(lambda: any(needle in line for line in self.stderr), timeout)
            assert found, f"{needle!r} never logged; stderr so far:\n{''.join(self.stderr)}"
            return next(line for line in self.stderr if needle in line)

    @property
    def url(self) -> str:
        return f"http://{self.addresses['http']}"

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self) -> int:
        import signal as _signal

        if self.proc.poll() is None:
            self.proc.send_signal(_signal.SIGTERM)
        return self.proc.wait(30)


def assert_refused_after_decision(otlp: Any, trace_id: str, store: Path, rule: str, labels: str) -> None:
    """A call decided to go through that the proxy refused before forwarding it (`Exchange.refuse`), recorded as
    the refusal it is: its span and its edge say `deny` by `rule`, the input `labels`, and name no upstream,
    checkpoint or output (`otlp`: a tests.servers.otlp_receiver.OtlpReceiver; `store`: the SQLite lineage store)."""
    from proxy.record.store import SqliteStore

    span = otlp.by_trace(trace_id).attributes
    assert span["lineage.decision"] == "deny" and span["error.type"] == "upstream_unavailable"
    assert span["lineage.rule"] == rule
    assert "lineage.upstream" not in span and "lineage.checkpoint" not in span
    assert list(span["lineage.input.labels"]) == [labels] and not list(span.get("lineage.output.labels", []))
    kept = SqliteStore(store, readonly=True)  # a new flow's edge is written before its answer
    try:
        (row,) = [row for row in kept.rows() if row.key.input_labels == labels]
    finally:
        kept.close()
    assert (row.key.decision, row.key.rule, row.key.checkpoint, row.key.output_labels) == ("deny", rule, "", "")


def offline_pipeline(config: Config, sequences_kept: int | None = None) -> Pipeline:
    """A pipeline for `config` with no sinks and a checkpoint book that asks no upstream: for tests that drive
    `Exchange` objects directly. `sequences_kept`: how many OIP sequences its process remembers."""

    async def nowhere(*args: Any) -> Any:
        raise RuntimeError("no metadata is asked here")

    runtime = Runtime(CheckpointBook(config.upstreams, Fetch(nowhere)), FanOut())
    if sequences_kept is not None:
        runtime.sequences = StoredReplies(most=sequences_kept)
    return Pipeline(config, runtime)


def fill(disk: Path) -> None:
    """Every byte of the disk taken."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
