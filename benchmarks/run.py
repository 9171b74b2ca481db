"""One command, one run, every hop measured against the same upstream, interleaved, medians of rounds.

    python -m benchmarks.run [--rounds 3] [--duration 4] [--quick]

Needs Debian's nginx, with the http_v2 and grpc modules for the gRPC reference hop, and wrk
(`apt-get install nginx wrk`).
Pinning (2 cores): the upstreams, wrk and this script on CPU 0; each hop under test (nginx, aiohttp
passthrough, httptools floor, nginx grpc_pass, grpc.aio passthrough bare and with the wire work, lineage-proxy) on CPU 1;
`--workers 2` on both. Writes results/latest.{md,json}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson

from benchmarks.upstreams import MODEL, nginx_grpc_hop_conf, nginx_hop_conf, nginx_streaming_upstream_conf

HERE = Path(__file__).resolve().parent
KEY = "bench-key"
KEY_SHA = "c2e5e4e0d4b8c4f6e5e6a1d8b1e1f0c8a4d8c2b5e7f9a1c3d5e7f9b1d3f5a7c9"  # replaced at run time
PROMPT = (
    "You are a helpful assistant for a travel company. Answer briefly and precisely, citing the landmark's "
    "history where useful. The user is planning a three-day trip and wants to know which monuments to see first, "
    "how long the queues usually are in the morning, and whether tickets can be bought on the day. "
) * 3
BODY = orjson.dumps({"model": MODEL, "messages": [{"role": "system", "content": "Be concise."},
                                                  {"role": "user", "content": PROMPT}],
                     "max_tokens": 128, "temperature": 0.2})  # fmt: skip
HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}", "x-purpose": "assistant"}
STREAM_BODY = orjson.dumps({"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]})
STREAM = (  # `?s=1`: the upstream nginx passes it to `benchmarks.upstreams stream` (32 events 5 ms apart)
    f"POST /v1/chat/completions?s=1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    f"Authorization: Bearer {KEY}\r\nx-purpose: assistant\r\nContent-Length: {len(STREAM_BODY)}\r\n\r\n"
).encode() + STREAM_BODY
GRPC_WIRE = "grpc.aio passthrough + the proxy's wire work"
GRPC_REF = "grpc.aio passthrough"  # the gRPC hop the proxy's added p50 is held against
GRPC_WARMUP, GRPC_BLOCKS, GRPC_CALLS = 30, 12, 25  # per hop and round: 30 + 12 × (1 + 25) = 342 calls
POSTGRES = "lineage-proxy, PostgreSQL store"
# the floor doing a fixed amount of Python work a call, about lineage-proxy's extra CPU: the latency that
# much CPU costs by itself on this machine, stalls included (the p99 at one connection is set by it)
BUSY_US = 250
BUSY = f"httptools floor + {BUSY_US} µs of Python work a call"
STREAMED = (
    "direct",
    "nginx",
    "aiohttp passthrough",
    "httptools floor",
    BUSY,
    "lineage-proxy",
)  # time to first/last byte


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def connect(port: int) -> socket.socket:
    """A new connection to a hop, TCP_NODELAY: the raw-socket clients' (the same for every hop)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv(sock: socket.socket) -> bytes:
    chunk = sock.recv(65536)
    if not chunk:
        raise RuntimeError("the hop closed the connection")
    return chunk


def stream(port: int) -> tuple[float, float]:
    """A streamed chat call (`STREAM`) on a new connection: µs to its first event and to its last."""
    with connect(port) as sock:
        return stream_on(sock, _done)


def stream_on(sock: socket.socket, ended: Callable[[bytes], bool]) -> tuple[float, float]:
    """A streamed chat call (`STREAM`) on `sock`, read until `ended(what came)`: µs to its first event and to then."""
    started = time.perf_counter()
    sock.sendall(STREAM)
    data = b""
    first = 0.0
    while not ended(data):
        chunk = recv(sock)
        if not first and b"data: {" in data[-8:] + chunk:
            first = time.perf_counter()
        data += chunk
    return (first - started) * 1e6, (time.perf_counter() - started) * 1e6


def _done(data: bytes) -> bool:
    """Whether a stream's last event came (its connection then closed: not read to its body's end)."""
    return b"data: [DONE]" in data


T = TypeVar("T")


def interleaved(measure: Callable[[int], T], ports: Sequence[int], turns: int) -> list[list[T]]:
    """`turns` turns of one `measure(port)` through every port, the order rotated turn by turn, so the
    machine's drift within the block hits every hop alike: each turn's results, in `ports`' order."""
    n = len(ports)
    results = []
    for turn in range(turns):
        got = {i: measure(ports[i]) for i in [*range(turn % n, n), *range(turn % n)]}
        results.append([got[i] for i in range(n)])
    return results


def cpu_seconds(pid: int) -> float:
    """user+sys of a process and its live children (workers), from /proc."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid] + [int(p) for p in os.listdir("/proc") if p.isdigit() and _ppid(int(p)) == pid]
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def process_cpu_clocks(pid: int) -> list[int]:
    """The CPU-time clocks (CLOCK_PROCESS_CPUTIME_ID of another process: all its threads, in ns) of a
    process and its live children, found from /proc once; read them with `cpu_ns`. /proc's stat counts
    in ticks of 10 ms, too coarse for a block of a few ms."""
    pids = [pid] + [int(p) for p in os.listdir("/proc") if p.isdigit() and _ppid(int(p)) == pid]
    return [(~p << 3) | 2 for p in pids]  # the kernel's CPUCLOCK_SCHED clock of process p


def cpu_ns(clocks: list[int]) -> int:
    total = 0
    for clock in clocks:
        try:
            total += time.clock_gettime_ns(clock)
        except OSError:  # the process exited
            pass
    return total


def _ppid(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, IndexError):
        return -1


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Hop:
    name: str
    base: str
    pid: int  # whose CPU counts as this hop's cost (the upstream's for "direct")
    proc: subprocess.Popen[bytes] | None = None
    grpc: str | None = None  # host:port of its gRPC listener, if it has one
    results: dict[str, list[float]] = field(default_factory=dict)

    def add(self, key: str, value: float) -> None:
        self.results.setdefault(key, []).append(value)

    def median(self, key: str) -> float | None:
        values = self.results.get(key)
        return statistics.median(values) if values else None


def grpc_blocks(hops: list[Hop], blocks: int = GRPC_BLOCKS, calls: int = GRPC_CALLS) -> tuple[
    list[list[float]], list[list[float]], list[int]
]:  # fmt: skip
    """Sequential gRPC ModelInfer calls through every hop, interleaved in blocks (see `Bench.grpc_round`): per
    hop, every timed call's µs, each block's p50 µs (block by block, the same turn for all hops), and the CPU
    nanoseconds its process used over its own blocks."""
    import grpc

    request = (b"\x0a\x06simple" + b"\x2a" + bytes([len(t := b"\x0a\x02IN\x12\x04FP32\x1a\x02\x01\x04")]) + t
               + b"\x3a\x10" + bytes(16))  # fmt: skip
    md = (("authorization", f"Bearer {KEY}"), ("x-purpose", "assistant"))
    channels = [grpc.insecure_channel(hop.grpc or "") for hop in hops]
    try:
        infers = [c.unary_unary("/inference.GRPCInferenceService/ModelInfer") for c in channels]
        for infer in infers:  # warm: the connection, and each hop's first calls
            for _ in range(GRPC_WARMUP):
                infer(request, metadata=md)
        times: list[list[float]] = [[] for _ in hops]
        block_p50: list[list[float]] = [[] for _ in hops]
        cpu = [0] * len(hops)
        clocks = [process_cpu_clocks(hop.pid) for hop in hops]
        n = len(hops)
        for block in range(blocks):
            order = list(range(n))[block % n :] + list(range(n))[: block % n]
            for i in reversed(order) if block % 2 else order:
                infer = infers[i]
                infer(request, metadata=md)  # wakes the hop; untimed
                block_times = []
                before = cpu_ns(clocks[i])
                for _ in range(calls):
                    started = time.perf_counter()
                    infer(request, metadata=md)
                    block_times.append((time.perf_counter() - started) * 1e6)
                cpu[i] += cpu_ns(clocks[i]) - before
                times[i].extend(block_times)
                block_p50[i].append(statistics.median(block_times))
    finally:
        for channel in channels:
            channel.close()
    return times, block_p50, cpu


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="lineage-bench-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self._postgres: Any = None  # tests.servers.postgres.PostgresServer, when the PostgreSQL row runs
        self.lua = self.tmp / "post.lua"
        headers = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in HEADERS.items())
        self.lua.write_text(f'wrk.method = "POST"\nwrk.body = [[{BODY.decode()}]]\n{headers}')

    # -- processes

    def start(
        self, cmd: list[str], cpus: str, ready: str | None = None, env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> subprocess.Popen[bytes]:  # fmt: skip
        proc = subprocess.Popen(["taskset", "-c", cpus, *cmd], stdout=subprocess.PIPE if ready else subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})}, cwd=cwd)  # fmt: skip
        self.procs.append(proc)
        if ready is not None:
            assert proc.stdout is not None
            while True:
                line = proc.stdout.readline().decode()
                if not line:
                    raise RuntimeError(f"{cmd} exited before it was ready")
                if ready in line:
                    break
        return proc

    def wait_port(self, port: int) -> None:
        for _ in range(500):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.01)
        raise RuntimeError(f"nothing listening on {port}")

    def proxy_config(self, port: int, grpc_port: int | None, upstream: str, grpc_upstream: str | None, *,
                     exporter: str, endpoint: str, detectors: bool, metrics: bool = True,
                     store: str | None = None) -> Path:  # fmt: skip
        import hashlib

        lines = [
            "listen:",
            f"  http: 127.0.0.1:{port}",
            *([f"  grpc: 127.0.0.1:{grpc_port}"] if grpc_port else []),
            "upstreams:",
            "  - name: vllm",
            f"    url: {upstream}",
            "    region: eu",
            *(
                ["  - name: triton", f"    grpc: {grpc_upstream}", "    protocol: oip", "    region: eu"]
                if grpc_upstream
                else []
            ),
            "routes:",
            "  - model: simple",
            "    upstream: " + ("triton" if grpc_upstream else "vllm"),
            "  - model: '*'",
            "    upstream: vllm",
            "callers:",
            "  - name: app",
            f"    api_key_sha256: {hashlib.sha256(KEY.encode()).hexdigest()}",
            "    labels: [user-interaction]",
            "    default_purpose: assistant",
            "zones:",
            "  - name: interaction-data",
            "    labels: [user-interaction]",
            "    allow_purposes: [assistant]",
            "    regions: [eu]",
            "policy: {anonymous: deny}",
            "detectors: " + ("[email, phone, credit_card, ip_address, iban]" if detectors else "[]"),
            "telemetry:",
            f"  exporter: {exporter}",
            f"  endpoint: {endpoint}",
            "  export_timeout_s: 2",
            *([] if metrics else ["  metrics: false"]),  # only when off: a --baseline tree may predate the key
            "lineage:",
            f"  store: {store or self.tmp / f'lineage-{port}.db'}",
            *([f"  journal: {self.tmp / f'journal-{port}.db'}"] if store else []),
        ]
        path = self.tmp / f"proxy-{port}.yaml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start_proxy(self, name: str, upstream: str, *, exporter: str, endpoint: str, detectors: bool = True, metrics: bool = True,
                    workers: int = 1, grpc_upstream: str | None = None, tree: str | None = None,
                    store: str | None = None) -> Hop:  # fmt: skip
        """`tree`: run the proxy package of another checkout (`--baseline`), for before/after figures."""
        port = free_port()
        grpc_port = free_port() if grpc_upstream else None
        config = self.proxy_config(port, grpc_port, upstream, grpc_upstream, exporter=exporter, endpoint=endpoint,
                                   detectors=detectors, metrics=metrics, store=store)  # fmt: skip
        cpus = "0-1" if workers > 1 else "1"
        # `python -m` puts the working directory first on sys.path: run from the other tree, so its package loads
        env = {**os.environ, "PYTHONPATH": tree} if tree else None
        proc = self.start([sys.executable, "-m", "proxy", "serve", "--config", str(config), "--workers", str(workers),
                           "--log-level", "error"], cpus, ready="lineage-proxy ready", env=env, cwd=tree)  # fmt: skip
        hop = Hop(
            name, f"http://127.0.0.1:{port}", proc.pid, proc, grpc=f"127.0.0.1:{grpc_port}" if grpc_port else None
        )
        # wait until the checkpoint is discovered, as in production
        import httpx

        for _ in range(500):
            if httpx.get(hop.base + "/readyz").status_code == 200:
                break
            time.sleep(0.01)
        return hop

    def start_litellm(self, command: str, upstream: str) -> Hop:
        """LiteLLM's proxy, the Python LLM gateway users would otherwise pick, as one more hop."""
        port = free_port()
        config = self.tmp / "litellm.yaml"
        config.write_text(
            f"model_list:\n  - model_name: {MODEL}\n    litellm_params:\n      model: openai/{MODEL}\n"
            f"      api_base: {upstream}/v1\n      api_key: unused\nlitellm_settings:\n  telemetry: false\n"
        )
        env = {  # loopback only: no master key, no hub downloads, the bundled cost map
            "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
            "HF_HUB_OFFLINE": "1",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_LOG": "ERROR",
        }
        cmd = [command, "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
        proc = self.start(cmd, "1", env=env)
        for _ in range(1200):  # it takes a few seconds to import
            if proc.poll() is not None:
                raise RuntimeError(f"litellm exited with {proc.returncode}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return Hop("LiteLLM proxy (peer)", f"http://127.0.0.1:{port}", proc.pid, proc)
            time.sleep(0.1)
        raise RuntimeError("litellm did not listen within 120 s")

    def postgres(self) -> str | None:
        """A database on a throwaway PostgreSQL cluster (Debian's `postgresql` binaries), for the fleet
        store's row; None, and the row is left out, when PostgreSQL is not installed."""
        from tests.servers.postgres import PostgresServer, bin_dir

        binaries = bin_dir()
        if binaries is None:
            print("PostgreSQL is not installed (apt-get install postgresql): no PostgreSQL store row", file=sys.stderr)
            return None
        root = self.tmp / "postgres"
        root.mkdir()
        self.tmp.chmod(0o755)
        root.chmod(0o755)
        server = self._postgres = PostgresServer(binaries, root)
        server.start()
        return server.database()

    def stop(self) -> None:
        if self._postgres is not None:
            self._postgres.stop()
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- measurements

    def wrk(self, hop: Hop, connections: int, duration: float, path: str = "/v1/chat/completions") -> dict[str, float]:
        before = cpu_seconds(hop.pid)
        out = subprocess.run(
            [
                "taskset",
                "-c",
                "0",
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(duration))}s",
                "--timeout",
                "30s",  # a slow peer's replies count as late, not as socket errors
                "--latency",
                "-s",
                str(self.lua),
                hop.base + path,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        cpu = cpu_seconds(hop.pid) - before
        requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
        errors = 0
        if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
            errors += int(m.group(1))
        if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
            errors += sum(int(x) for x in m.groups())
        lat = {p: _us(v, unit) for p, v, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
        if not lat:
            raise RuntimeError(f"wrk got no replies from {hop.name}:\n{out}")
        return {"p50_us": lat["50"], "p99_us": lat["99"], "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
                "errors": errors, "requests": requests, "cpu_us_per_call": cpu / max(requests, 1) * 1e6}  # fmt: skip

    def side_by_side(
        self, hops: tuple[Hop, Hop], connections: int, duration: float, path: str = "/v1/chat/completions"
    ) -> tuple[dict[str, float], dict[str, float]]:
        """Both hops under their own wrk at the same time (both pinned to the same core): this VM's slow spells
        hit both alike, so the ratio of their CPU a call holds where figures timed in turns drift by ±30 %."""
        results: dict[int, dict[str, float]] = {}

        def load(index: int) -> None:
            results[index] = self.wrk(hops[index], connections, duration, path)

        threads = [threading.Thread(target=load, args=(index,)) for index in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if len(results) != 2:  # a thread's wrk failed (its traceback printed): no figure from half a pair
            raise RuntimeError(f"side by side: {hops[0].name} and {hops[1].name} did not both finish")
        return results[0], results[1]

    def stream_round(self, hops: list[Hop], turns: int) -> None:
        """One round of streams (`stream`) through every hop (hops[0] is "direct"), interleaved stream by stream
        (`interleaved`): the VM's drift over the round, larger than a hop's added TTFB, hits every hop alike. Adds,
        per hop, the median over turns of its µs to the first and the last event ("ttfb_us", "ttlb_us") and, but
        for hops[0], of the same turn's hop − direct ("added_ttfb_us", "added_ttlb_us")."""
        times = interleaved(stream, [int(hop.base.rsplit(":", 1)[1]) for hop in hops], turns)
        for i, hop in enumerate(hops):
            for at, key in enumerate(("ttfb_us", "ttlb_us")):
                hop.add(key, statistics.median(turn[i][at] for turn in times))
                if i:
                    hop.add(f"added_{key}", statistics.median(turn[i][at] - turn[0][at] for turn in times))

    def grpc_round(self, hops: list[Hop], blocks: int = GRPC_BLOCKS, calls: int = GRPC_CALLS) -> None:
        """One round of sequential gRPC ModelInfer calls through every hop (hops[0] is "direct"),
        interleaved in blocks so the machine's drift hits every hop alike: `blocks` blocks per hop of
        `calls` timed calls (each block after one untimed call that wakes the hop), the hops' order
        changing block by block (rotated, every other block reversed). Adds, per hop, the p50 µs of all
        its calls in the round ("p50_us"), its CPU µs per call over its own blocks ("cpu_us_per_call"),
        and, but for hops[0], the median over blocks of its added p50 (its block's p50 − direct's in the
        same turn) ÷ the reference hop's (GRPC_REF, when it is one of `hops`): "block_ratio"."""
        times, block_p50, cpu = grpc_blocks(hops, blocks, calls)
        names = [hop.name for hop in hops]
        ref = names.index(GRPC_REF) if GRPC_REF in names else None
        for i, hop in enumerate(hops):
            hop.add("p50_us", statistics.median(times[i]))
            hop.add("cpu_us_per_call", cpu[i] / 1e3 / (blocks * calls))
            if i and ref is not None:  # a turn whose reference added nothing over direct tells nothing
                ratios = [(b[i] - b[0]) / (b[ref] - b[0]) for b in zip(*block_p50, strict=True) if b[ref] > b[0]]
                hop.add("block_ratio", statistics.median(ratios) if ratios else float("nan"))


def _us(value: str, unit: str) -> float:
    return float(value) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per wrk run")
    parser.add_argument("--rss-calls", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="1 round, 2 s runs, 20k calls for RSS")
    parser.add_argument("--baseline", metavar="TREE", help="also measure the full pipeline of another checkout "
                        "(e.g. a `git worktree` of an older commit) in the same run: before/after figures")  # fmt: skip
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--litellm", default=os.environ.get("LP_LITELLM") or shutil.which("litellm"),
                        help="the `litellm` command of a venv with requirements-peers.txt (default: on PATH); "
                        "when given, LiteLLM's proxy runs as one more hop")  # fmt: skip
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration, args.rss_calls = 1, 2.0, 20_000
    for tool in ("nginx", "wrk", "taskset"):
        if shutil.which(tool) is None:
            print(f"{tool} not found: apt-get install nginx wrk util-linux", file=sys.stderr)
            return 1
    built = subprocess.run(["nginx", "-V"], capture_output=True, text=True).stderr
    if "--with-http_v2_module" not in built or "--without-http_grpc_module" in built:
        print("this nginx lacks the http_v2 or grpc module (grpc_pass): apt-get install nginx", file=sys.stderr)
        return 1
    os.sched_setaffinity(0, {0})
    bench = Bench(args)
    try:
        return run(bench, args)
    finally:
        bench.stop()


def run(bench: Bench, args: argparse.Namespace) -> int:
    tmp = bench.tmp
    stream_port, grpc_port, up_port, hop_port, pt_port, floor_port, grpc_hop_port, grpc_pt_port, grpc_wire_port = (
        free_port() for _ in range(9)
    )
    bench.start([sys.executable, "-m", "benchmarks.upstreams", "stream", str(stream_port)], "0", ready="ready")
    grpc_up = bench.start([sys.executable, "-m", "benchmarks.upstreams", "grpc", str(grpc_port)], "0", ready="ready")
    conf = nginx_streaming_upstream_conf(up_port, str(tmp), stream_port)
    (tmp / "upstream.conf").write_text(conf)
    up = bench.start(["nginx", "-p", str(tmp), "-c", str(tmp / "upstream.conf")], "0")
    bench.wait_port(up_port)
    upstream = f"http://127.0.0.1:{up_port}"
    (tmp / "hop.conf").write_text(nginx_hop_conf(hop_port, up_port, str(tmp)))
    hop_proc = bench.start(["nginx", "-p", str(tmp), "-c", str(tmp / "hop.conf")], "1")
    bench.wait_port(hop_port)
    pt = bench.start([sys.executable, "-m", "benchmarks.passthrough", str(pt_port), upstream], "1", ready="ready")
    floor = bench.start([sys.executable, "-m", "benchmarks.floor", str(floor_port), upstream], "1", ready="ready")
    busy_port = free_port()
    busy = bench.start([sys.executable, "-m", "benchmarks.floor", str(busy_port), upstream, "--busy-us", str(BUSY_US)],
                       "1", ready="ready")  # fmt: skip
    # the gRPC reference hops, in front of the same OIP upstream as the proxy's gRPC listener
    (tmp / "grpc-hop.conf").write_text(nginx_grpc_hop_conf(grpc_hop_port, grpc_port, str(tmp)))
    grpc_hop = bench.start(["nginx", "-p", str(tmp), "-c", str(tmp / "grpc-hop.conf")], "1")
    bench.wait_port(grpc_hop_port)
    grpc_pt = bench.start([sys.executable, "-m", "benchmarks.grpc_passthrough", str(grpc_pt_port),
                           f"127.0.0.1:{grpc_port}"], "1", ready="ready")  # fmt: skip
    grpc_wire = bench.start([sys.executable, "-m", "benchmarks.grpc_passthrough", str(grpc_wire_port),
                             f"127.0.0.1:{grpc_port}", "--wire"], "1", ready="ready")  # fmt: skip

    otlp_port = free_port()
    bench.start([sys.executable, "-m", "benchmarks.upstreams", "otlp", str(otlp_port)], "0", ready="ready")
    dead_port = free_port()
    direct = Hop("direct", upstream, up.pid)
    full = bench.start_proxy(
        "lineage-proxy",
        upstream,
        exporter="otlp",
        endpoint=f"http://127.0.0.1:{otlp_port}",
        grpc_upstream=f"127.0.0.1:{grpc_port}",
    )
    hops = [
        direct,
        Hop("nginx", f"http://127.0.0.1:{hop_port}", hop_proc.pid),
        Hop("aiohttp passthrough", f"http://127.0.0.1:{pt_port}", pt.pid),
        Hop("httptools floor", f"http://127.0.0.1:{floor_port}", floor.pid),
        Hop(BUSY, f"http://127.0.0.1:{busy_port}", busy.pid),
        full,
        off := bench.start_proxy(
            "lineage-proxy, exporter off", upstream, exporter="none", endpoint="http://127.0.0.1:1"
        ),
        dead := bench.start_proxy(
            "lineage-proxy, exporter dead", upstream, exporter="otlp", endpoint=f"http://127.0.0.1:{dead_port}"
        ),
        bench.start_proxy(
            "lineage-proxy, detectors off",
            upstream,
            exporter="otlp",
            endpoint=f"http://127.0.0.1:{otlp_port}",
            detectors=False,
        ),
        no_metrics := bench.start_proxy(
            "lineage-proxy, metrics off",
            upstream,
            exporter="otlp",
            endpoint=f"http://127.0.0.1:{otlp_port}",
            metrics=False,
        ),
    ]
    database = bench.postgres()
    postgres = None
    if database is not None:  # the fleet store: the same proxy writing one PostgreSQL database
        postgres = bench.start_proxy(POSTGRES, upstream, exporter="otlp", endpoint=f"http://127.0.0.1:{otlp_port}",
                                     store=database)  # fmt: skip
        hops.append(postgres)
    if args.litellm:
        hops.append(bench.start_litellm(args.litellm, upstream))
    if args.baseline:
        hops.append(bench.start_proxy(f"lineage-proxy @ {Path(args.baseline).name}", upstream, exporter="otlp",
                                      endpoint=f"http://127.0.0.1:{otlp_port}", tree=args.baseline))  # fmt: skip
    two = bench.start_proxy(
        "lineage-proxy, 2 workers", upstream, exporter="otlp", endpoint=f"http://127.0.0.1:{otlp_port}", workers=2
    )
    grpc_hops = [  # gRPC ModelInfer, measured apart from HTTP; "direct" costs the gRPC upstream's CPU
        Hop("direct", "", grpc_up.pid, grpc=f"127.0.0.1:{grpc_port}"),
        Hop("nginx grpc_pass", "", grpc_hop.pid, grpc=f"127.0.0.1:{grpc_hop_port}"),
        Hop("grpc.aio passthrough", "", grpc_pt.pid, grpc=f"127.0.0.1:{grpc_pt_port}"),
        Hop(GRPC_WIRE, "", grpc_wire.pid, grpc=f"127.0.0.1:{grpc_wire_port}"),
        Hop("lineage-proxy", "", full.pid, grpc=full.grpc),
    ]
    print(f"warming up; {args.rounds} rounds of {args.duration:g}s runs", file=sys.stderr)
    for hop in [*hops, two]:
        bench.wrk(hop, 8, 1.0)
    for rnd in range(args.rounds):
        for hop in hops:  # interleaved: every hop once per round, so drift hits all alike
            one = bench.wrk(hop, 1, args.duration)
            many = bench.wrk(hop, 64, args.duration)
            for key in ("p50_us", "p99_us", "cpu_us_per_call"):
                hop.add(key, one[key])
            hop.add("rps64", many["rps"])
            hop.add("cpu64", many["cpu_us_per_call"])
            hop.add("errors", one["errors"] + many["errors"])
            if hop is full:  # 2 workers right after 1, so the machine's drift hits both alike
                many2 = bench.wrk(two, 64, args.duration)
                two.add("rps64", many2["rps"])
                two.add("cpu64", many2["cpu_us_per_call"])
                two.add("errors", many2["errors"])
                two.add("ratio_vs_1", many2["rps"] / max(many["rps"], 1.0))
        bench.stream_round([hop for hop in hops if hop.name in STREAMED], 20 if args.quick else 40)
        if postgres is not None:  # the store's cost is a few per cent: timed in turns, drift hides it
            on_postgres, on_sqlite = bench.side_by_side((postgres, full), 8, args.duration)
            postgres.add("cpu_vs_sqlite", on_postgres["cpu_us_per_call"] / on_sqlite["cpu_us_per_call"])
            postgres.add("errors", on_postgres["errors"] + on_sqlite["errors"])
        # two costs of a few per cent, side by side for the same reason: a dead exporter (one connection each:
        # what a lone call waits) and the metrics (8 connections each)
        on_dead, on_off = bench.side_by_side((dead, off), 1, args.duration)
        dead.add("p50_vs_off", on_dead["p50_us"] / on_off["p50_us"])
        dead.add("cpu_vs_off", on_dead["cpu_us_per_call"] / on_off["cpu_us_per_call"])
        dead.add("errors", on_dead["errors"] + on_off["errors"])
        on_metrics, off_metrics = bench.side_by_side((full, no_metrics), 8, args.duration)
        no_metrics.add("cpu_on_vs_off", on_metrics["cpu_us_per_call"] / off_metrics["cpu_us_per_call"])
        no_metrics.add("errors", on_metrics["errors"] + off_metrics["errors"])
        bench.grpc_round(grpc_hops)  # interleaved too, in blocks of calls
        print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr)

    # RSS of the proxy over many calls (no growth expected)
    rss_start = rss_mib(full.pid)
    done = 0
    rss_mid = rss_start
    while done < args.rss_calls:
        result = bench.wrk(full, 64, args.duration)
        done += int(result["requests"])
        if done >= args.rss_calls // 2 and rss_mid == rss_start:
            rss_mid = rss_mib(full.pid)
    rss_end = rss_mib(full.pid)

    report = build_report(hops, two, direct, grpc_hops, rss=(rss_start, rss_mid, rss_end, done), args=args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(report["json"], indent=2))
    (out / "latest.md").write_text(report["md"])
    print(report["md"])
    return 0


def build_report(hops: list[Hop], two: Hop, direct: Hop, grpc_hops: list[Hop],
                 rss: tuple[float, float, float, int], args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    d50, d99 = direct.median("p50_us") or 0, direct.median("p99_us") or 0
    rows = []
    data: dict[str, Any] = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": machine(),
                            "rounds": args.rounds, "duration_s": args.duration, "hops": {}}  # fmt: skip
    for hop in [*hops, two]:
        p50, p99 = hop.median("p50_us"), hop.median("p99_us")
        entry = {
            "added_p50_us": None if p50 is None or hop is direct else p50 - d50,
            "added_p99_us": None if p99 is None or hop is direct else p99 - d99,
            "p50_us": p50,
            "p99_us": p99,
            "rps_64": hop.median("rps64"),
            "cpu_us_per_call": hop.median("cpu_us_per_call"),
            "added_ttfb_us": hop.median("added_ttfb_us"),
            "added_ttlb_us": hop.median("added_ttlb_us"),
            "errors": sum(hop.results.get("errors", [])),
            "cpu_us_per_call_64": hop.median("cpu64"),
        }
        data.setdefault("per_round", {})[hop.name] = hop.results  # every figure of every round
        data["hops"][hop.name] = entry
        rows.append((hop.name, entry))
    grpc: dict[str, dict[str, float | None]] = {}
    gd50 = grpc_hops[0].median("p50_us") or 0
    for hop in grpc_hops:
        p50 = hop.median("p50_us")
        grpc[hop.name] = {"p50_us": p50, "added_p50_us": None if p50 is None or hop is grpc_hops[0] else p50 - gd50,
                          "cpu_us_per_call": hop.median("cpu_us_per_call")}  # fmt: skip
    grpc_direct, grpc_lp = grpc["direct"], grpc["lineage-proxy"]
    lp_blocks = next(hop for hop in grpc_hops if hop.name == "lineage-proxy").median("block_ratio")
    data["grpc"] = {"direct_p50_us": grpc_direct["p50_us"], "proxy_p50_us": grpc_lp["p50_us"],
                    "added_p50_us": grpc_lp["added_p50_us"], "hops": grpc,
                    "per_round": {hop.name: hop.results for hop in grpc_hops}}  # fmt: skip
    data["rss_mib"] = {"start": rss[0], "half": rss[1], "end": rss[2], "calls": rss[3]}

    def f(v: float | None, digits: int = 0) -> str:
        return "–" if v is None else f"{v:,.{digits}f}"

    lines = [
        f"Run {data['date']} on {data['machine']}; {args.rounds} rounds × {args.duration:g} s per wrk run, medians. "
        "~1 KB chat call; added = hop − direct in the same round.",
        "",
        "| hop | added p50 µs | added p99 µs | req/s @64 | CPU µs/call | CPU µs/call @64 | added TTFB µs | added TTLB µs "
        "| errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, e in rows:
        if name == "direct":
            lines.append(f"| direct (p50 {f(e['p50_us'])} µs, p99 {f(e['p99_us'])} µs) | – | – | {f(e['rps_64'])} | "
                         f"{f(e['cpu_us_per_call'])} (upstream) | {f(e['cpu_us_per_call_64'], 1)} (upstream) | – | – | "
                         f"{e['errors']} |")  # fmt: skip
            continue
        lines.append(f"| {name} | {f(e['added_p50_us'])} | {f(e['added_p99_us'])} | {f(e['rps_64'])} | "
                     f"{f(e['cpu_us_per_call'])} | {f(e['cpu_us_per_call_64'], 1)} | {f(e['added_ttfb_us'])} | "
                     f"{f(e['added_ttlb_us'])} | {e['errors']} |")  # fmt: skip
    lines += [
        "",
        f"| gRPC hop (ModelInfer, small tensor; per round {GRPC_BLOCKS} blocks of {GRPC_CALLS} sequential calls, hops interleaved) "
        "| p50 µs | added p50 µs | CPU µs/call |",
        "|---|---:|---:|---:|",
    ]
    for name, g in grpc.items():
        label = {"direct": "direct", "nginx grpc_pass": "nginx grpc_pass (h2c, upstream keep-alive)"}.get(name, name)
        cpu = f(g["cpu_us_per_call"]) + (" (upstream)" if name == "direct" else "")
        lines.append(f"| {label} | {f(g['p50_us'])} | {f(g['added_p50_us'])} | {cpu} |")
    pt = data["hops"]["aiohttp passthrough"]
    fl = data["hops"]["httptools floor"]
    busy = data["hops"][BUSY]
    lp = data["hops"]["lineage-proxy"]
    off = data["hops"]["lineage-proxy, exporter off"]
    dead = data["hops"]["lineage-proxy, exporter dead"]
    no_metrics = data["hops"]["lineage-proxy, metrics off"]
    postgres_ratio = next((hop.median("cpu_vs_sqlite") for hop in hops if hop.name == POSTGRES), None)
    by_name = {hop.name: hop for hop in hops}
    dead_p50 = by_name["lineage-proxy, exporter dead"].median("p50_vs_off")
    dead_cpu = by_name["lineage-proxy, exporter dead"].median("cpu_vs_off")
    metrics_cpu = by_name["lineage-proxy, metrics off"].median("cpu_on_vs_off")
    targets: dict[str, dict[str, Any]] = {}

    def target(key: str, a: float | None, b: float | None, limit: float, at_most: bool = True) -> str:
        """a ÷ b against its target, kept under data["targets"][key]; "1.23× (≤ 1.6× ✓)" for the table.
        No ratio ("–") when the reference's figure is not above 0 (an added time within noise of direct)."""
        value = ratio(a, b) if b is not None and b > 0 else None
        met = None if value is None else (value <= limit if at_most else value >= limit)
        bound = f"{'≤' if at_most else '≥'} {limit:g}×"
        targets[key] = {"ratio": value, "target": bound, "met": met}
        return f"{f(value, 2)}× ({bound}{'' if met is None else ' ✓' if met else ' ✗'})"

    lines += [
        "",
        f"Proxy RSS over {rss[3]:,} calls: {rss[0]:.1f} → {rss[1]:.1f} → {rss[2]:.1f} MiB.",
        "",
        "Targets (lineage-proxy ÷ httptools floor, same run):",
        f"- added p50 {target('floor_added_p50', lp['added_p50_us'], fl['added_p50_us'], 1.6)}; "
        f"CPU/call {target('floor_cpu', lp['cpu_us_per_call'], fl['cpu_us_per_call'], 1.6)} at one connection, "
        f"{target('floor_cpu64', lp['cpu_us_per_call_64'], fl['cpu_us_per_call_64'], 1.6)} at 64; "
        f"req/s @64 {target('floor_rps64', lp['rps_64'], fl['rps_64'], 0.7, at_most=False)}; "
        f"p99 @1 connection {target('floor_p99', lp['p99_us'], fl['p99_us'], 2)}; "
        f"streamed added TTFB {target('floor_ttfb', lp['added_ttfb_us'], fl['added_ttfb_us'], 1.6)}",
        "",
        "Targets (lineage-proxy ÷ aiohttp passthrough, same run):",
        f"- added p50 {target('passthrough_added_p50', lp['added_p50_us'], pt['added_p50_us'], 1.25)}; "
        f"CPU/call {target('passthrough_cpu', lp['cpu_us_per_call'], pt['cpu_us_per_call'], 1.5)}; "
        f"p99 {target('passthrough_p99', lp['p99_us'], pt['p99_us'], 3)}",
        f"- added TTFB {target('passthrough_ttfb', lp['added_ttfb_us'], pt['added_ttfb_us'], 1.25)} the passthrough's",
        "",
        "Targets (gRPC, lineage-proxy ÷ grpc.aio passthrough, same run):",
        f"- added p50 {target('grpc_added_p50', grpc_lp['added_p50_us'], grpc['grpc.aio passthrough']['added_p50_us'], 1.25)}; "
        f"CPU/call {f(ratio(grpc_lp['cpu_us_per_call'], grpc['grpc.aio passthrough']['cpu_us_per_call']), 2)}× (no target); "
        f"added p50, median of per-block ratios: {f(lp_blocks, 2)}×",
        f"- of which grpc.aio's own cost for the wire work every proxied call needs (metadata both ways, deadline, lineage "
        f"trailers): the wire passthrough ÷ the bare one, added p50 "
        f"{f(ratio(grpc[GRPC_WIRE]['added_p50_us'], grpc['grpc.aio passthrough']['added_p50_us']), 2)}×; "
        f"lineage-proxy ÷ the wire passthrough {f(ratio(grpc_lp['added_p50_us'], grpc[GRPC_WIRE]['added_p50_us']), 2)}×",
        "",
        "Other:",
        f"- lineage-proxy against the floor doing {BUSY_US} µs of Python work a call (CPU/call "
        f"{f(busy['cpu_us_per_call'])} against {f(lp['cpu_us_per_call'])}): added p50 "
        f"{f(ratio(lp['added_p50_us'], busy['added_p50_us']), 2)}×, p99 @1 connection {f(ratio(lp['p99_us'], busy['p99_us']), 2)}×, "
        f"streamed added TTFB {f(ratio(lp['added_ttfb_us'], busy['added_ttfb_us']), 2)}× (the reference hop shows what "
        "that much CPU a call costs in latency by itself, with no other work)",
        "- exporter dead ÷ off (the two proxies side by side on CPU 1, one connection each, median of per-round "
        f"ratios): p50 {target('exporter_dead_vs_off', dead_p50, 1.0, 1.1)}, CPU/call "
        f"{target('exporter_dead_cpu', dead_cpu, 1.0, 1.05)}; timed in turns with the other hops: added p50 "
        f"{f(ratio(dead['added_p50_us'], off['added_p50_us']), 2)}×",
        "- metrics on ÷ off, CPU/call (side by side, 8 connections each, median of per-round ratios): "
        f"{target('metrics_cpu', metrics_cpu, 1.0, 1.05)}; timed in turns with the other hops: "
        f"{f(ratio(lp['cpu_us_per_call'], no_metrics['cpu_us_per_call']), 2)}×",
        *(
            [
                "- PostgreSQL ÷ SQLite store, CPU/call (the two proxies side by side on CPU 1, 8 connections each, "
                f"median of per-round ratios): {target('postgres_cpu', postgres_ratio, 1.0, 1.05)}; "
                f"timed in turns with the other hops: "
                f"{f(ratio(data['hops'][POSTGRES]['cpu_us_per_call'], lp['cpu_us_per_call']), 2)}×"
            ]
            if POSTGRES in data["hops"]
            else []
        ),
        f"- 2 workers ÷ 1 worker, req/s @64 (adjacent runs, median of per-round ratios): {f(two.median('ratio_vs_1'), 2)}×",
    ]
    peer = data["hops"].get("LiteLLM proxy (peer)")
    if peer is not None:
        lines.append(
            f"- LiteLLM proxy ÷ lineage-proxy: added p50 {f(ratio(peer['added_p50_us'], lp['added_p50_us']), 0)}×, "
            f"CPU/call {f(ratio(peer['cpu_us_per_call'], lp['cpu_us_per_call']), 0)}×"
        )
    data["targets"] = targets
    return {"json": data, "md": "\n".join(lines) + "\n"}


def ratio(a: float | None, b: float | None) -> float | None:
    return None if not a or not b else a / b


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    return f"{os.cpu_count()} × {cpu}, Linux {platform.release()}, Python {platform.python_version()}"


if __name__ == "__main__":
    raise SystemExit(main())
