"""gRPC streams of many tiny messages through the proxy, beside a steady client of unary ModelInfer calls.

    python -m benchmarks.grpc_many KIND N [K]

A proxy (a zone, detectors, a SQLite store; this checkout, interpreted) in front of a raw-bytes OIP gRPC upstream
(`upstream`, below). KIND: `req`, a ModelStreamInfer of N tiny requests, each answered by one tiny reply; `rep`, one
request the upstream answers with N tiny replies; `pt`, a passthrough (unknown service) stream of N tiny messages,
each echoed; `slow`, N tiny requests to an upstream that reads none after the first (10 s, then cancelled). K > 1:
the same bytes in N/K messages K times as big. Prints the proxy's CPU over the stream (and a message's share of it,
the prober's calls included: subtract their count times a unary call's CPU), its RSS before and at its peak, and the
prober's latency.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
INFER = "/inference.GRPCInferenceService/ModelInfer"
STREAM = "/inference.GRPCInferenceService/ModelStreamInfer"
UP = "/test.X/Up"


def ld(field: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    size, out = len(payload), bytearray([field << 3 | 2])
    while size >= 0x80:
        out.append(size & 0x7F | 0x80)
        size >>= 7
    out.append(size)
    return bytes(out) + payload


def request(pad: int = 0) -> bytes:
    """A ModelInferRequest of model `simple`: one INT32 input, its raw contents 4 bytes (and `pad` more)."""
    tensor = ld(1, b"A") + ld(2, b"INT32") + bytes([0x18, 1])
    return ld(1, b"simple") + ld(5, tensor) + ld(7, bytes(4 + pad))


TINY_REPLY = ld(2, ld(1, b"simple"))  # ModelStreamInferResponse{infer_response{model_name}}


async def upstream() -> None:
    import grpc
    import grpc.aio

    from benchmarks.upstreams import _infer_reply

    reply = _infer_reply()

    async def infer(_: bytes, context: Any) -> bytes:
        return reply

    async def meta(_: bytes, context: Any) -> bytes:
        return bytes([0x0A, 6]) + b"simple" + bytes([0x12, 1]) + b"1"

    async def stream(requests: AsyncIterator[bytes], context: Any) -> None:
        mode = dict(context.invocation_metadata()).get("x-mode", "echo")
        if mode.startswith("flood"):
            _, n, k = mode.split(":")
            message = TINY_REPLY if k == "1" else ld(2, ld(1, b"simple") + ld(6, bytes(int(k) * len(TINY_REPLY))))
            await context.read()
            for _ in range(int(n) // int(k)):
                await context.write(message)
            return
        if mode == "slow":  # the first message answered, then none read
            await context.read()
            await context.write(TINY_REPLY)
            await asyncio.Event().wait()
        async for _ in requests:
            await context.write(TINY_REPLY)

    async def echo(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for message in requests:
            yield message

    server = grpc.aio.server(options=[("grpc.max_receive_message_length", -1)])
    server.add_generic_rpc_handlers((
        grpc.method_handlers_generic_handler("inference.GRPCInferenceService", {
            "ModelInfer": grpc.unary_unary_rpc_method_handler(infer),
            "ModelMetadata": grpc.unary_unary_rpc_method_handler(meta),
            "ModelStreamInfer": grpc.stream_stream_rpc_method_handler(stream),
        }),
        grpc.method_handlers_generic_handler("test.X", {"Up": grpc.stream_stream_rpc_method_handler(echo)}),
    ))  # fmt: skip
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print("ready", port, flush=True)
    await server.wait_for_termination()


def stat(pid: int) -> tuple[float, int]:
    """The process's CPU seconds and its RSS (KiB)."""
    fields = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    found = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return cpu, int(found.group(1)) if found else 0


CONFIG = """listen: {{http: 127.0.0.1:0, grpc: 127.0.0.1:0}}
upstreams:
  - {{name: triton, grpc: "127.0.0.1:{port}", protocol: oip, region: eu, checkpoint: simple@1}}
routes:
  - {{model: "*", upstream: triton}}
zones:
  - {{name: interaction-data, labels: [user-interaction], allow_purposes: [assistant], regions: [eu]}}
policy: {{anonymous: allow, default_purpose: assistant, passthrough: forward}}
detectors: [email, phone, credit_card, ip_address, iban]
limits: {{max_body_bytes: 67108864, bodies_max_bytes: 268435456}}
lineage: {{store: {tmp}/lineage.db}}
"""


def main() -> None:
    import grpc

    kind, n = sys.argv[1], int(sys.argv[2])
    k = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    tmp = tempfile.mkdtemp()
    up = subprocess.Popen([sys.executable, "-m", "benchmarks.grpc_many", "upstream"], stdout=subprocess.PIPE,
                          text=True, cwd=HERE.parent)  # fmt: skip
    assert up.stdout is not None
    port = int(up.stdout.readline().split()[1])
    Path(tmp, "c.yaml").write_text(CONFIG.format(port=port, tmp=tmp))
    env = {**os.environ, "LINEAGE_PROXY_INTERPRETED": "1"}
    proxy = subprocess.Popen([sys.executable, "-m", "proxy", "serve", "--config", f"{tmp}/c.yaml"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=HERE.parent)  # fmt: skip
    try:
        assert proxy.stdout is not None
        address = ""
        for line in proxy.stdout:
            if "lineage-proxy ready" in line:
                address = line.split("grpc=")[1].split()[0]
                break
        out = proxy.stdout
        threading.Thread(target=lambda: [None for _ in out], daemon=True).start()
        _measure(grpc, address, proxy.pid, kind, n, k)
    finally:
        proxy.terminate()
        up.terminate()
        proxy.wait(20)
        up.wait(5)


def _measure(grpc: Any, address: str, pid: int, kind: str, n: int, k: int) -> None:
    labels = (("x-data-labels", "user-interaction"),)
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    channel = grpc.insecure_channel(address, options=options)
    infer = channel.unary_unary(INFER)
    for _ in range(50):
        infer(request(), metadata=labels, timeout=10)
    cpu, _ = stat(pid)
    for _ in range(500):
        infer(request(), metadata=labels, timeout=10)
    unary_us = (stat(pid)[0] - cpu) / 500 * 1e6
    latencies: list[float] = []
    stop = threading.Event()
    peak = [stat(pid)[1]]
    before = peak[0]

    def probe() -> None:
        call = grpc.insecure_channel(address).unary_unary(INFER)
        while not stop.is_set():
            start = time.perf_counter()
            call(request(), metadata=labels, timeout=60)
            latencies.append(time.perf_counter() - start)

    def memory() -> None:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], stat(pid)[1])

    threads = [threading.Thread(target=probe, daemon=True), threading.Thread(target=memory, daemon=True)]
    for thread in threads:
        thread.start()
    cpu, start = stat(pid)[0], time.perf_counter()
    count = n // k
    message = request(pad=(k - 1) * len(request())) if k > 1 else request()
    replies = 0
    if kind == "rep":
        mode = f"flood:{n}:{k}"
        call = channel.stream_stream(STREAM)(iter([request()]), metadata=(*labels, ("x-mode", mode)), timeout=3600)
    else:
        mode = "slow" if kind == "slow" else "echo"
        call = channel.stream_stream(UP if kind == "pt" else STREAM)(
            iter([message] * count), metadata=(*labels, ("x-mode", mode)), timeout=3600
        )
    try:
        if kind == "slow":
            next(call)
            time.sleep(10)
            call.cancel()
        else:
            for _ in call:
                replies += 1
    except grpc.RpcError as exc:
        print("ended", exc.code(), exc.details()[:200])
    wall = time.perf_counter() - start
    used = stat(pid)[0] - cpu
    stop.set()
    for thread in threads:
        thread.join()
    latencies.sort()
    calls = len(latencies)
    worst = latencies[-1] * 1e3 if latencies else 0.0
    p99 = latencies[int(calls * 0.99)] * 1e3 if latencies else 0.0
    own = (used - calls * unary_us / 1e6) / max(count, 1) * 1e6
    print(f"{kind} messages={count} of {len(message)} B, replies={replies}, wall {wall:.1f} s, proxy CPU {used:.1f} s: "
          f"{own:.0f} µs a message (the prober's {calls} calls at {unary_us:.0f} µs each taken off); prober p99 "
          f"{p99:.1f} ms, worst {worst:.1f} ms; RSS {before // 1024} -> {peak[0] // 1024} MiB")  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1:] == ["upstream"]:
        asyncio.run(upstream())
    else:
        main()
