"""Added latency of the HTTP path, floor and proxies side by side: one connection, new connections, streams.

    python -m benchmarks.ttfb [TREE ...] [--rounds 6] [--calls 200] [--cold 20] [--streams 10]

TREEs are checkouts whose proxy runs beside this one's (`git worktree add TREE REV`; default: none, only
this checkout); each runs `benchmarks.run`'s full pipeline. With the direct upstream and the httptools
floor, every hop gets, each round, in an order rotated round by round so the VM's drift hits all alike:

- `--calls` sequential ~1 KB chat calls on one keep-alive connection (as wrk -c1 does): their p50;
- `--cold` such calls each on a new connection, the hop idle 20 ms before each (cold: a new connection,
  the first call of it, caches the idle time let go): their p50;
- `--streams` streamed chat calls each on a new connection, sequential (as `benchmarks.run`'s stream
  measure: 32 events 5 ms apart): the time to the first event, p50;
- as many streams on one kept-alive connection a hop (each read to its body's end): the time to the first event,
  p50. Beside the keep-alive p50 and the stream on a new connection, it tells what a stream's time to first byte
  owes to its new connection (this one has none) and what to the hop waiting idle (between calls, and while the
  upstream makes its first event: the keep-alive calls leave it none).

"added" is the hop's figure − direct's, per round; the medians over rounds are reported, and each
proxy's ÷ the floor's, and each TREE's proxy ÷ the first proxy's. The clients are raw sockets in this
process on CPU 0 (the same for every hop); the hops run on CPU 1, as in `benchmarks.run`.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time
from pathlib import Path

from benchmarks.run import BODY, HEADERS, Bench, Hop, connect, free_port, interleaved, recv, stream, stream_on
from benchmarks.upstreams import nginx_streaming_upstream_conf

HERE = Path(__file__).resolve().parent
CHAT = (
    "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
    + "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items())
    + f"Content-Length: {len(BODY)}\r\n\r\n"
).encode() + BODY
IDLE_S = 0.02  # before each cold call


def _reply(sock: socket.socket) -> None:
    """Read one Content-Length reply whole."""
    data = b""
    while (end := data.find(b"\r\n\r\n")) < 0:
        data += recv(sock)
    head = data[:end].lower()
    at = head.find(b"content-length:")
    length = int(head[at + 15 : head.find(b"\r\n", at) if head.find(b"\r\n", at) > 0 else None])
    while len(data) < end + 4 + length:
        data += recv(sock)
    if not data.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"not a 200: {data[:200]!r}")


def keep_alive(port: int, calls: int) -> list[float]:
    with connect(port) as sock:
        for _ in range(5):  # wakes the hop
            sock.sendall(CHAT)
            _reply(sock)
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            sock.sendall(CHAT)
            _reply(sock)
            times.append((time.perf_counter() - started) * 1e6)
    return times


def cold(port: int) -> float:
    time.sleep(IDLE_S)
    with connect(port) as sock:
        started = time.perf_counter()
        sock.sendall(CHAT)
        _reply(sock)
        return (time.perf_counter() - started) * 1e6


def new_stream(port: int) -> float:
    """Time to the first event of a stream on a new connection (`benchmarks.run.stream`)."""
    return stream(port)[0]


_KEPT: dict[int, socket.socket] = {}  # each hop's kept-alive connection for `kept_stream`


def kept_stream(port: int) -> float:
    """Time to the first event of a stream on the hop's kept-alive connection, then read to its body's end (a
    chunked body's last chunk: the next stream goes on the same connection)."""
    sock = _KEPT.get(port)
    if sock is None:
        sock = _KEPT[port] = connect(port)
    return stream_on(sock, _body_ended)[0]


def _body_ended(data: bytes) -> bool:
    return data.endswith(b"\r\n0\r\n\r\n")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ttfb", description=__doc__.split("\n\n")[0])
    parser.add_argument("trees", nargs="*", help="other checkouts whose proxy runs beside this one's")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=200, help="keep-alive calls per hop and round")
    parser.add_argument("--cold", type=int, default=20, help="calls on new connections per hop and round")
    parser.add_argument("--streams", type=int, default=10, help="streams per hop and round")
    parser.add_argument("--only-this", action="store_true", help="without this checkout's proxy (TREEs only)")
    args = parser.parse_args()
    os.sched_setaffinity(0, {0})
    bench = Bench(argparse.Namespace(out=None))
    try:
        tmp = bench.tmp
        stream_port, up_port, otlp_port, floor_port = free_port(), free_port(), free_port(), free_port()
        bench.start([sys.executable, "-m", "benchmarks.upstreams", "stream", str(stream_port)], "0", ready="ready")
        (tmp / "upstream.conf").write_text(nginx_streaming_upstream_conf(up_port, str(tmp), stream_port))
        up = bench.start(["nginx", "-p", str(tmp), "-c", str(tmp / "upstream.conf")], "0")
        bench.wait_port(up_port)
        bench.start([sys.executable, "-m", "benchmarks.upstreams", "otlp", str(otlp_port)], "0", ready="ready")
        upstream, endpoint = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{otlp_port}"
        floor = bench.start([sys.executable, "-m", "benchmarks.floor", str(floor_port), upstream], "1", ready="ready")
        hops = [Hop("direct", upstream, up.pid), Hop("httptools floor", f"http://127.0.0.1:{floor_port}", floor.pid)]
        trees = ([] if args.only_this else [str(HERE.parent)]) + args.trees
        for number, tree in enumerate(trees, 1):
            name = f"lineage-proxy #{number} @ {tree}"  # the same tree may run twice: A/A, the noise
            hops.append(bench.start_proxy(name, upstream, exporter="otlp", endpoint=endpoint, tree=tree))
        ports = [int(hop.base.rsplit(":", 1)[1]) for hop in hops]
        for port in ports:  # warm: imports, caches, the flows' first records
            keep_alive(port, 200)
            stream(port)
        for rnd in range(args.rounds):
            turn = hops[rnd % len(hops) :] + hops[: rnd % len(hops)]
            for hop in turn if rnd % 2 == 0 else turn[::-1]:
                port = ports[hops.index(hop)]
                hop.add("p50_us", statistics.median(keep_alive(port, args.calls)))
            for key, measure, n in (("cold_us", cold, args.cold), ("ttfb_us", new_stream, args.streams),
                                    ("kept_ttfb_us", kept_stream, args.streams)):  # fmt: skip
                turns = interleaved(measure, ports, n)  # call by call: drift within the block hits every hop alike
                for i, hop in enumerate(hops):
                    hop.add(key, statistics.median(turn[i] for turn in turns))
            print(f"round {rnd + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        report(hops)
        return 0
    finally:
        for sock in _KEPT.values():
            sock.close()
        bench.stop()


def report(hops: list[Hop]) -> None:
    direct, floor, proxies = hops[0], hops[1], hops[2:]
    keys = (("p50_us", "added p50 @1 keep-alive"), ("cold_us", "added, new connection"),
            ("ttfb_us", "added TTFB, stream"), ("kept_ttfb_us", "added TTFB, stream on a kept connection"))  # fmt: skip

    def added(hop: Hop, key: str) -> list[float]:
        return [a - d for a, d in zip(hop.results[key], direct.results[key], strict=True)]

    print("| hop | " + " | ".join(f"{label} µs" for _, label in keys) + " |")
    print("|---|" + "---:|" * len(keys))
    print("| direct | " + " | ".join(f"({statistics.median(direct.results[k]):,.0f})" for k, _ in keys) + " |")
    for hop in hops[1:]:
        print(f"| {hop.name} | " + " | ".join(f"{statistics.median(added(hop, k)):,.0f}" for k, _ in keys) + " |")
    print()
    for hop in proxies:
        ratios = [statistics.median([p / f for p, f in zip(added(hop, k), added(floor, k), strict=True)])
                  for k, _ in keys]  # fmt: skip
        print(f"{hop.name} ÷ floor (median of per-round ratios): "
              + ", ".join(f"{label} {r:.2f}×" for (_, label), r in zip(keys, ratios, strict=True)))  # fmt: skip
    for hop in proxies[1:]:
        rounds = [[c / b for c, b in zip(added(hop, k), added(proxies[0], k), strict=True)] for k, _ in keys]
        print(f"{hop.name} ÷ {proxies[0].name} (median of per-round ratios, and their range): " + ", ".join(
            f"{label} {statistics.median(r):.3f}× ({min(r):.2f}-{max(r):.2f})" for (_, label), r in zip(keys, rounds, strict=True)))  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
