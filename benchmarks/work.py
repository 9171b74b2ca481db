"""Python work per call, counted rather than timed: the bytecode instructions a hop runs per call.

    python -m benchmarks.work [--calls 200] [--baseline TREE] [--top 12]

Each hop runs as usual, but under a tracer that counts the instructions of every Python frame of every
thread (`sys.settrace` with `f_trace_opcodes`) between two signals; the same calls are sent through it one
at a time: the benchmark's ~1 KB chat call (HTTP, the full pipeline: key, zone, five detectors, spans to a
live receiver, edges in SQLite, metrics) and its small ModelInfer (gRPC); the httptools floor and the
grpc.aio passthrough count the same calls as references. The count is the same from run to run, so it
shows which Python a call runs and how much, whatever this VM's speed does. It is not a time: instructions
differ in cost by orders of magnitude, and work in C (orjson, re, hashlib, llhttp, grpc's core, the
allocator, the kernel) is not counted; a fifth fewer instructions was 3.5-4.7 % less CPU here. Time a
change with `benchmarks.ab`.

Writes results/work.{md,json}: instructions per call by hop, and the modules that run most of them.
`--baseline TREE` counts the proxy of another checkout too (`git worktree add TREE REV`).
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


# -- the counting side: runs inside the hop's process (`--count-module`)

_counts: collections.Counter[tuple[str, str]] = collections.Counter()
_on = False
# the signals that start and stop the count: real-time ones, which no hop handles (`serve` takes SIGUSR1 to cut
# its drain short, which had stopped the proxy at the count's start)
START = signal.SIGRTMIN + 1
STOP = signal.SIGRTMIN + 2


def _global(frame: FrameType, event: str, arg: Any) -> Any:
    if not _on:
        return None  # a frame begun while not counting is never counted
    frame.f_trace_opcodes = True
    frame.f_trace_lines = False
    return _local


def _local(frame: FrameType, event: str, arg: Any) -> Any:
    if event == "opcode" and _on:
        code = frame.f_code
        _counts[code.co_filename, code.co_name] += 1
    return _local


def _serve_counted(module: str, argv: list[str], out: str) -> None:
    """Run `module` as __main__ with `argv`; `START` starts counting, `STOP` stops and writes `out`."""
    import runpy

    def start(*_: Any) -> None:
        global _on
        _counts.clear()
        _on = True

    def stop(*_: Any) -> None:
        global _on
        _on = False
        Path(out).write_text(json.dumps([[file, name, n] for (file, name), n in _counts.items()]))

    signal.signal(START, start)
    signal.signal(STOP, stop)
    threading.settrace(_global)  # every thread started from now on (the export thread, the edge writer)
    sys.settrace(_global)
    sys.argv = [module, *argv]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


# -- the driving side


def _group(file: str) -> str:
    """A module's short name: `proxy/ingress/wire.py`, `grpc/aio/_call.py`, `asyncio/tasks.py`."""
    parts = Path(file).parts
    for anchor in ("proxy", "benchmarks", "grpc", "asyncio", "concurrent", "logging"):
        if anchor in parts:
            return "/".join(parts[len(parts) - 1 - parts[::-1].index(anchor) :])
    return parts[-1] if parts else file


class Counted:
    """One hop under the counter."""

    def __init__(self, name: str, proc: subprocess.Popen[bytes], out: Path) -> None:
        self.name, self.proc, self.out = name, proc, out

    def count(self, calls: int, one: Any) -> dict[str, Any]:
        """Send `calls` calls (`one()` sends one) while counting; the instructions per call, by module."""
        for _ in range(30):  # warm: first calls import, compile regexes, open connections, fill caches
            one()
        self.out.unlink(missing_ok=True)
        os.kill(self.proc.pid, START)
        time.sleep(0.2)  # the signal is handled between two instructions of the hop's main thread
        for _ in range(calls):
            one()
        time.sleep(1.5)  # what runs after the reply (spans, the export batch, the edge flush) is the call's too
        os.kill(self.proc.pid, STOP)
        for _ in range(300):
            if self.out.exists() and self.out.stat().st_size:
                break
            time.sleep(0.02)
        rows = json.loads(self.out.read_text())
        by_module: collections.Counter[str] = collections.Counter()
        by_function: collections.Counter[str] = collections.Counter()
        for file, name, n in rows:
            module = _group(file)
            by_module[module] += n
            by_function[f"{module}:{name}"] += n
        total = sum(by_module.values())
        return {
            "per_call": round(total / calls),
            "modules": {k: round(v / calls) for k, v in by_module.most_common()},
            "functions": {k: round(v / calls) for k, v in by_function.most_common(40)},
        }


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--count-module":
        _serve_counted(sys.argv[2], sys.argv[5:], sys.argv[3])  # work.py --count-module M OUT -- ARGS
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.work", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="calls counted per hop (default 200)")
    parser.add_argument("--baseline", metavar="TREE", help="also count the proxy of another checkout")
    parser.add_argument("--top", type=int, default=12, help="modules listed per hop (default 12)")
    parser.add_argument("--out", default=str(HERE / "results"), help="where work.{md,json} go")
    args = parser.parse_args()
    report = run(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "work.json").write_text(json.dumps(report, indent=1))
    text = render(report, args.top)
    (out / "work.md").write_text(text)
    print(text)
    return 0


def run(args: argparse.Namespace) -> dict[str, Any]:
    import grpc

    from benchmarks.run import BODY, HEADERS, KEY, Bench, free_port
    from benchmarks.upstreams import nginx_streaming_upstream_conf

    bench = Bench(argparse.Namespace(out=args.out))
    hops: dict[str, dict[str, Any]] = {}
    try:
        tmp = bench.tmp
        stream_port, up_port, grpc_port, otlp_port = free_port(), free_port(), free_port(), free_port()
        bench.start([sys.executable, "-m", "benchmarks.upstreams", "stream", str(stream_port)], "0", ready="ready")
        (tmp / "upstream.conf").write_text(nginx_streaming_upstream_conf(up_port, str(tmp), stream_port))
        bench.start(["nginx", "-p", str(tmp), "-c", str(tmp / "upstream.conf")], "0")
        bench.wait_port(up_port)
        bench.start([sys.executable, "-m", "benchmarks.upstreams", "grpc", str(grpc_port)], "0", ready="ready")
        bench.start([sys.executable, "-m", "benchmarks.upstreams", "otlp", str(otlp_port)], "0", ready="ready")
        upstream, grpc_upstream = f"http://127.0.0.1:{up_port}", f"127.0.0.1:{grpc_port}"

        def counted(name: str, module: str, argv: list[str], ready: str, tree: Path = ROOT) -> Counted:
            out = tmp / f"counts-{len(hops)}-{os.getpid()}.json"
            env = {"PYTHONPATH": str(tree)}  # that tree's `proxy` (and `benchmarks`) first
            proc = bench.start([sys.executable, str(HERE / "work.py"), "--count-module", module, str(out), "--", *argv],
                               "1", ready=ready, env=env, cwd=str(tree))  # fmt: skip
            return Counted(name, proc, out)

        def http_call(port: int) -> Any:
            conn = http.client.HTTPConnection("127.0.0.1", port)

            def one() -> None:
                conn.request("POST", "/v1/chat/completions", body=BODY, headers=HEADERS)
                reply = conn.getresponse()
                reply.read()
                assert reply.status == 200, reply.status

            return one

        request = (b"\x0a\x06simple" + b"\x2a" + bytes([len(t := b"\x0a\x02IN\x12\x04FP32\x1a\x02\x01\x04")]) + t
                   + b"\x3a\x10" + bytes(16))  # fmt: skip  # the run's ModelInfer
        metadata = (("authorization", f"Bearer {KEY}"), ("x-purpose", "assistant"))
        channels: list[grpc.Channel] = []

        def grpc_call(target: str) -> Any:
            channel = grpc.insecure_channel(target)
            channels.append(channel)
            infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
            return lambda: infer(request, metadata=metadata)

        trees = [("lineage-proxy", ROOT)] + ([(f"lineage-proxy @ {args.baseline}", Path(args.baseline))]
                                            if args.baseline else [])  # fmt: skip
        for name, tree in trees:
            port, grpc_listen = free_port(), free_port()
            config = bench.proxy_config(port, grpc_listen, upstream, grpc_upstream, exporter="otlp",
                                        endpoint=f"http://127.0.0.1:{otlp_port}", detectors=True)  # fmt: skip
            hop = counted(name, "proxy", ["serve", "--config", str(config), "--log-level", "error"],
                          "lineage-proxy ready", tree)  # fmt: skip
            _ready(port)
            hops[f"{name}, HTTP chat"] = hop.count(args.calls, http_call(port))
            hops[f"{name}, gRPC ModelInfer"] = hop.count(args.calls, grpc_call(f"127.0.0.1:{grpc_listen}"))
        port = free_port()
        floor = counted("httptools floor", "benchmarks.floor", [str(port), upstream], "ready")
        hops["httptools floor, HTTP chat"] = floor.count(args.calls, http_call(port))
        port = free_port()
        passthrough = counted("grpc.aio passthrough", "benchmarks.grpc_passthrough", [str(port), grpc_upstream],
                              "ready")  # fmt: skip
        hops["grpc.aio passthrough, gRPC ModelInfer"] = passthrough.count(args.calls, grpc_call(f"127.0.0.1:{port}"))
        for channel in channels:
            channel.close()
    finally:
        bench.stop()
    return {"calls": args.calls, "python": sys.version.split()[0], "hops": hops}


def _ready(port: int) -> None:
    """Until the proxy answers /readyz (its upstreams' checkpoints discovered)."""
    for _ in range(500):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError("the proxy did not become ready")


def render(report: dict[str, Any], top: int) -> str:
    hops = report["hops"]
    lines = [
        f"Python bytecode instructions per call ({report['calls']} calls per hop, one at a time; Python "
        f"{report['python']}; every thread of the hop's process, including what runs after the reply)",
        "",
        "| hop | instructions a call | most of them in |",
        "|---|---:|---|",
    ]
    for name, hop in hops.items():
        modules = ", ".join(f"{module} {n:,}" for module, n in list(hop["modules"].items())[:top] if n)
        lines.append(f"| {name} | {hop['per_call']:,} | {modules} |")
    ratios = []
    for kind, reference in (("HTTP chat", "httptools floor, HTTP chat"),
                            ("gRPC ModelInfer", "grpc.aio passthrough, gRPC ModelInfer")):  # fmt: skip
        for name, hop in hops.items():
            if name.endswith(kind) and name.startswith("lineage-proxy") and reference in hops:
                ratios.append(f"- {name} ÷ {reference}: {hop['per_call'] / hops[reference]['per_call']:.1f}×")
        before = [name for name in hops if name.startswith("lineage-proxy @ ") and name.endswith(kind)]
        if before and f"lineage-proxy, {kind}" in hops:
            now, then = hops[f"lineage-proxy, {kind}"]["per_call"], hops[before[0]]["per_call"]
            ratios.append(f"- lineage-proxy, {kind} ÷ {before[0]}: {now / then:.2f}×")
    return "\n".join([*lines, "", *ratios]) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
