"""Before and after: two checkouts' proxies under the same load at the same time, CPU a call compared.

    python -m benchmarks.ab BASELINE [CANDIDATE] [--rounds 6] [--connections 8] [--duration 6]

BASELINE and CANDIDATE are trees (`git worktree add TREE REV`); CANDIDATE defaults to this checkout. Both
proxies run the full pipeline (`benchmarks.run`'s config: key, zone, five detectors, spans to a live
receiver, edges in SQLite, metrics) pinned to the same core, each under its own wrk with the same
connections, at the same time, round after round. This VM's speed drifts by ±30 % from one second to the
next (benchmarks/README.md), so the same code timed in turns read 0.72-1.61× itself from round to round;
run side by side, both proxies meet the same slow spells, and the ratio of their CPU a call held within
±1 % over rounds. Reports each round and the median ratio, CANDIDATE ÷ BASELINE.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__.split("\n\n")[0])
    parser.add_argument("baseline", help="the tree measured against (git worktree add TREE REV)")
    parser.add_argument("candidate", nargs="?", default=str(HERE.parent), help="the tree measured (default: this one)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--connections", type=int, default=8, help="wrk connections to each proxy (default 8)")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds a round (default 6)")
    args = parser.parse_args()
    ratios = run(args)
    print(f"CPU a call, candidate ÷ baseline: median {statistics.median(ratios):.3f} "
          f"(rounds {min(ratios):.3f}-{max(ratios):.3f})")  # fmt: skip
    return 0


def run(args: argparse.Namespace) -> list[float]:
    from benchmarks.run import Bench, free_port
    from benchmarks.upstreams import nginx_streaming_upstream_conf

    bench = Bench(argparse.Namespace(out=None))
    try:
        tmp = bench.tmp
        stream_port, up_port, otlp_port = free_port(), free_port(), free_port()
        bench.start([sys.executable, "-m", "benchmarks.upstreams", "stream", str(stream_port)], "0", ready="ready")
        (tmp / "upstream.conf").write_text(nginx_streaming_upstream_conf(up_port, str(tmp), stream_port))
        bench.start(["nginx", "-p", str(tmp), "-c", str(tmp / "upstream.conf")], "0")
        bench.wait_port(up_port)
        bench.start([sys.executable, "-m", "benchmarks.upstreams", "otlp", str(otlp_port)], "0", ready="ready")
        upstream, endpoint = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{otlp_port}"
        baseline = bench.start_proxy("baseline", upstream, exporter="otlp", endpoint=endpoint, tree=args.baseline)
        candidate = bench.start_proxy("candidate", upstream, exporter="otlp", endpoint=endpoint, tree=args.candidate)
        hops = (baseline, candidate)
        for hop in hops:  # warm: imports, caches, the first flows' writes
            bench.wrk(hop, args.connections, 2.0)
        ratios = []
        for number in range(1, args.rounds + 1):
            before, after = bench.side_by_side(hops, args.connections, args.duration)
            if before["errors"] or after["errors"]:
                raise RuntimeError(f"round {number}: errors (baseline {before['errors']}, candidate {after['errors']})")
            ratios.append(after["cpu_us_per_call"] / before["cpu_us_per_call"])
            print(f"round {number}: baseline {before['cpu_us_per_call']:.0f} µs a call ({before['requests']:,} calls), "
                  f"candidate {after['cpu_us_per_call']:.0f} µs ({after['requests']:,}): {ratios[-1]:.3f}",
                  flush=True)  # fmt: skip
        return ratios
    finally:
        bench.stop()


if __name__ == "__main__":
    raise SystemExit(main())
