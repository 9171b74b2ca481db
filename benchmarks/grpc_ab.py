"""Before and after for the gRPC hop: two checkouts' proxies' ModelInfer latency, interleaved call block by block.

    python -m benchmarks.grpc_ab BASELINE [CANDIDATE] [--rounds 5]

BASELINE and CANDIDATE are trees (`git worktree add TREE REV`, or compiled scratch builds); CANDIDATE defaults to
this checkout. Both proxies run the full pipeline (`benchmarks.run`'s config) on CPU 1, in front of the same OIP
gRPC upstream (`benchmarks.upstreams grpc`), beside the grpc.aio passthrough (`benchmarks.grpc_passthrough`), bare
and with `--wire`. Each round is `benchmarks.run`'s `grpc_round`: sequential ModelInfer calls, every hop's
blocks of 25 calls interleaved, their order rotated block by block, so the VM's drift hits every hop alike.
Reports per round and as medians over rounds: each hop's added p50 (hop − direct), its CPU a call, and the
two proxies' added p50 ÷ the passthrough's; and the candidate's added p50 and CPU ÷ the baseline's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.grpc_ab", description=__doc__.split("\n\n")[0])
    parser.add_argument("baseline", help="the tree measured against")
    parser.add_argument("candidate", nargs="?", default=str(HERE.parent), help="the tree measured (default: this one)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import os

    from benchmarks.run import GRPC_REF, GRPC_WIRE, Bench, Hop, free_port
    from benchmarks.upstreams import nginx_streaming_upstream_conf

    os.sched_setaffinity(0, {0})
    bench = Bench(argparse.Namespace(out=None))
    try:
        tmp = bench.tmp
        stream_port, up_port, otlp_port, grpc_port, pt_port, wire_port = (free_port() for _ in range(6))
        bench.start([sys.executable, "-m", "benchmarks.upstreams", "stream", str(stream_port)], "0", ready="ready")
        (tmp / "upstream.conf").write_text(nginx_streaming_upstream_conf(up_port, str(tmp), stream_port))
        bench.start(["nginx", "-p", str(tmp), "-c", str(tmp / "upstream.conf")], "0")
        bench.wait_port(up_port)
        bench.start([sys.executable, "-m", "benchmarks.upstreams", "otlp", str(otlp_port)], "0", ready="ready")
        up = bench.start([sys.executable, "-m", "benchmarks.upstreams", "grpc", str(grpc_port)], "0", ready="ready")
        grpc_up = f"127.0.0.1:{grpc_port}"
        pt = bench.start([sys.executable, "-m", "benchmarks.grpc_passthrough", str(pt_port), grpc_up], "1",
                         ready="ready")  # fmt: skip
        wire = bench.start([sys.executable, "-m", "benchmarks.grpc_passthrough", str(wire_port), grpc_up, "--wire"],
                           "1", ready="ready")  # fmt: skip
        upstream, endpoint = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{otlp_port}"
        proxies = [
            bench.start_proxy(name, upstream, exporter="otlp", endpoint=endpoint, grpc_upstream=grpc_up, tree=tree)
            for name, tree in (("baseline", args.baseline), ("candidate", args.candidate))
        ]
        hops = [
            Hop("direct", "", up.pid, grpc=grpc_up),
            Hop(GRPC_REF, "", pt.pid, grpc=f"127.0.0.1:{pt_port}"),
            Hop(GRPC_WIRE, "", wire.pid, grpc=f"127.0.0.1:{wire_port}"),
            *proxies,
        ]
        added: dict[str, list[float]] = {hop.name: [] for hop in hops[1:]}
        cpu: dict[str, list[float]] = {hop.name: [] for hop in hops[1:]}
        paired: list[float] = []  # per block: the candidate's added p50 ÷ the baseline's, in the same turn
        for number in range(1, args.rounds + 1):
            p50, blocks, used = _round(hops)
            direct = p50[0]
            for i, hop in enumerate(hops[1:], 1):
                added[hop.name].append(p50[i] - direct)
                cpu[hop.name].append(used[i])
            paired.extend((c - d) / (b - d) for d, b, c in zip(blocks[0], blocks[-2], blocks[-1], strict=True) if b > d)
            ref = added[GRPC_REF][-1]
            line = "; ".join(f"{name}: +{a[-1]:.0f} µs, {cpu[name][-1]:.0f} µs CPU" for name, a in added.items())
            ratios = "; ".join(f"{p.name} {added[p.name][-1] / ref:.2f}×" for p in proxies) if ref > 0 else "–"
            print(f"round {number}: direct p50 {direct:.0f} µs; {line}; ÷ passthrough: {ratios}", flush=True)
        print("medians over rounds:")
        ref = statistics.median(added[GRPC_REF])
        for name, values in added.items():
            a = statistics.median(values)
            print(f"  {name}: added p50 {a:.0f} µs ({a / ref:.2f}× the passthrough's), "
                  f"CPU {statistics.median(cpu[name]):.0f} µs a call")  # fmt: skip
        base, cand = (p.name for p in proxies)
        per_round = [c / b for c, b in zip(added[cand], added[base], strict=True) if b > 0]
        cpu_round = [c / b for c, b in zip(cpu[cand], cpu[base], strict=True)]
        quartiles = statistics.quantiles(paired, n=4)
        print(f"candidate ÷ baseline: added p50 median of rounds {statistics.median(per_round):.3f} "
              f"(rounds {min(per_round):.3f}-{max(per_round):.3f}), of {len(paired)} blocks "
              f"{statistics.median(paired):.3f} (quartiles {quartiles[0]:.3f}-{quartiles[2]:.3f}); CPU a call "
              f"{statistics.median(cpu_round):.3f} (rounds {min(cpu_round):.3f}-{max(cpu_round):.3f})")  # fmt: skip
        return 0
    finally:
        bench.stop()


def _round(hops: list[Any]) -> tuple[list[float], list[list[float]], list[float]]:
    """`benchmarks.run`'s `grpc_round`, keeping each block's p50 (`grpc_blocks`). Returns each hop's p50 over the
    round, its p50 a block, and its CPU µs a call."""
    from benchmarks.run import GRPC_BLOCKS, GRPC_CALLS, grpc_blocks

    times, blocks, used = grpc_blocks(hops)
    calls = GRPC_BLOCKS * GRPC_CALLS
    return [statistics.median(t) for t in times], blocks, [u / 1e3 / calls for u in used]


if __name__ == "__main__":
    sys.exit(main())
