"""Soak: a steady mixed load for a while, then `kill -9` under load, then restart — run by hand.

    python -m benchmarks.soak [--duration 600] [--rate 200]

One `lineage-proxy serve` (full pipeline: a caller key, a zone, detectors, edges in SQLite) in front of
the benchmark's upstreams. For `--duration` seconds it sends `--rate` calls a second, a mix of whole
chat calls, streams read to the end, and streams the client abandons mid-way, each with one of many
label sets (so new flows keep appearing). Every 10 s it samples the proxy's RSS and open file
descriptors. Then, under load, `kill -9`; a restart on the same store; and every flow whose reply the
client received in full must be in the store. Prints a table; exit 1 if an error, a lost flow, or
growth (RSS past 10 % of the post-warm-up figure, or file descriptors) was seen.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

from benchmarks.run import free_port, rss_mib
from benchmarks.upstreams import MODEL, nginx_streaming_upstream_conf

KEY = "soak-key"
KEY_SHA = "77ee1a6a5a0b4b3c7e1df33ff0f1bc2c4e0a6e9f5cd2e4e4b1b6a8b7c9d0e1f2"


def config(port: int, upstream: str, store: Path) -> str:
    import hashlib

    return f"""
listen: {{http: "127.0.0.1:{port}"}}
upstreams: [{{name: up, url: "{upstream}", region: eu}}]
routes: [{{model: "*", upstream: up}}]
callers:
  - {{name: soak, api_key_sha256: {hashlib.sha256(KEY.encode()).hexdigest()}, purposes: [assistant], default_purpose: assistant}}
zones: [{{name: z, labels: [zoned], allow_purposes: [assistant], regions: [eu]}}]
detectors: [email, phone, credit_card, ip_address, iban]
lineage: {{store: "{store}"}}
"""


def fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


class Load:
    def __init__(self, base: str, rate: float) -> None:
        self.base = base
        self.rate = rate
        self.answered: set[str] = set()  # label sets whose reply the client received in full
        self.errors = 0
        self.calls = 0
        self.abandoned = 0

    async def one(self, session: aiohttp.ClientSession, n: int) -> None:
        label = f"soak-{n % 5000}"  # 5,000 distinct flows, each seen again and again
        kind = n % 10
        headers = {"authorization": f"Bearer {KEY}", "x-data-labels": label, "content-type": "application/json"}
        stream = kind >= 6
        path = "/v1/chat/completions" + ("?s=1" if stream else "")
        body = orjson.dumps({"model": MODEL, "stream": stream, "messages": [{"role": "user", "content": f"hi {n}"}]})
        try:
            async with session.post(self.base + path, data=body, headers=headers) as reply:
                if reply.status != 200:
                    self.errors += 1
                    return
                if kind == 9:  # abandoned mid-stream
                    await reply.content.readany()
                    reply.close()
                    self.abandoned += 1
                    return
                data = await reply.read()
                if stream and b"[DONE]" not in data:
                    self.errors += 1
                    return
                self.answered.add(label)
        except (TimeoutError, aiohttp.ClientError):
            self.errors += 1
        finally:
            self.calls += 1

    async def run(self, seconds: float, on_tick: object = None) -> None:
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            tasks: set[asyncio.Task[None]] = set()
            start = time.monotonic()
            n = 0
            while (elapsed := time.monotonic() - start) < seconds:
                due = int(elapsed * self.rate)
                while n < due:
                    task = asyncio.create_task(self.one(session, n + random.randrange(1_000_000) * 5000))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    n += 1
                await asyncio.sleep(0.005)
            if tasks:
                await asyncio.wait(tasks, timeout=30)


def stored_labels(store: Path) -> set[str]:
    """The soak label of every stored flow (detectors may add pii:* labels beside it)."""
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT input_labels FROM edges").fetchall()
    return {label for (labels,) in rows for label in labels.split(",") if label.startswith("soak-")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of steady load (default 600)")
    parser.add_argument("--rate", type=float, default=200.0, help="calls per second (default 200)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lineage-soak-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        stream_port, up_port, port = free_port(), free_port(), free_port()
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "benchmarks.upstreams", "stream", str(stream_port)],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        )  # abandoned streams log there
        conf = nginx_streaming_upstream_conf(up_port, str(tmp), stream_port)
        (tmp / "upstream.conf").write_text(conf)
        procs.append(subprocess.Popen(["nginx", "-p", str(tmp), "-c", str(tmp / "upstream.conf")]))
        store = tmp / "lineage.db"
        (tmp / "proxy.yaml").write_text(config(port, f"http://127.0.0.1:{up_port}", store))

        def serve() -> subprocess.Popen[bytes]:
            proc = subprocess.Popen([sys.executable, "-m", "proxy", "serve", "--config", str(tmp / "proxy.yaml"),
                                     "--log-level", "warning"], stdout=subprocess.PIPE)  # fmt: skip
            assert proc.stdout is not None
            line = proc.stdout.readline().decode()
            assert line.startswith("lineage-proxy ready"), line
            return proc

        proxy = serve()
        base = f"http://127.0.0.1:{port}"
        load = Load(base, args.rate)
        samples: list[tuple[float, float, int]] = []

        async def soak() -> None:
            await load.run(min(30.0, args.duration / 10))  # warm-up
            samples.append((0.0, rss_mib(proxy.pid), fds(proxy.pid)))
            started = time.monotonic()
            remaining = args.duration
            while remaining > 0:
                step = min(10.0, remaining)
                await load.run(step)
                remaining -= step
                samples.append((time.monotonic() - started, rss_mib(proxy.pid), fds(proxy.pid)))

        asyncio.run(soak())
        answered_before_kill = set(load.answered)
        steady_errors, steady_calls = load.errors, load.calls  # calls cut by the kill below are not errors

        async def kill_under_load() -> None:
            async def killer() -> None:
                await asyncio.sleep(2.0)
                proxy.send_signal(signal.SIGKILL)

            await asyncio.gather(load.run(3.0), killer())

        load.answered.clear()
        asyncio.run(kill_under_load())
        proxy.wait(10)
        answered = answered_before_kill | load.answered
        proxy = serve()  # restart on the same store: it must open, and keep what was written
        lost = sorted(answered - stored_labels(store))
        proxy.send_signal(signal.SIGTERM)
        proxy.wait(30)

        base_rss, base_fds = samples[0][1], samples[0][2]
        peak_rss = max(s[1] for s in samples)
        end_fds = samples[-1][2]
        print(f"soak: {args.duration:g}s at {args.rate:g} calls/s; {steady_calls} calls "
              f"({load.abandoned} abandoned mid-stream), {steady_errors} errors")  # fmt: skip
        print("   t s   RSS MiB   fds")
        for t, rss, fd in samples:
            print(f"{t:6.0f}  {rss:8.1f}  {fd:4d}")
        growth = (peak_rss - base_rss) / base_rss
        print(
            f"RSS after warm-up {base_rss:.1f} MiB, peak {peak_rss:.1f} MiB ({growth:+.1%}); fds {base_fds} -> {end_fds}"
        )
        print(f"kill -9 under load: {len(answered)} flows answered in full, {len(lost)} missing after restart")
        failed = steady_errors > 0 or lost or growth > 0.10 or end_fds > base_fds + 5
        return 1 if failed else 0
    finally:
        for proc in procs:
            proc.terminate()


if __name__ == "__main__":
    sys.exit(main())
