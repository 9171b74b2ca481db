"""Before and after: two checkouts' proxies under the same load at the same time, CPU a call compared.

    python -m benchmarks.ab BASELINE [CANDIDATE] [--rounds 6] [--connections 8] [--duration 6] [--stream]

BASELINE and CANDIDATE are trees (`git worktree add TREE REV`); CANDIDATE defaults to this checkout. Both
proxies run the full pipeline (`benchmarks.run`'s config: key, zone, five detectors, spans to a live
receiver, edges in SQLite, metrics) pinned to the same core, each under its own wrk with the same
connections, at the same time, round after round. This VM's speed drifts by ±30 % from one second to the
next (benchmarks/README.md), so the same code timed in turns read 0.72-1.61× itself from round to round;
run side by side, both proxies meet the same slow spells, and the ratio of their CPU a call held within
±1 % over rounds. Reports each round and the median ratio, CANDIDATE ÷ BASELINE.

`--stream`: the same, on streamed chat calls (`"stream": true`, `?s=1`: the upstream's SSE stream of CHUNKS
events INTERVAL_MS apart, `benchmarks.upstreams stream`) instead of whole replies; a call then lasts about
CHUNKS × INTERVAL_MS, so it wants more connections (64 when not given). Reports CPU a stream and a streamed
event (a stream's CPU over its CHUNKS events), and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__.split("\n\n")[0])
    parser.add_argument("baseline", help="the tree measured against (git worktree add TREE REV)")
    parser.add_argument("candidate", nargs="?", default=str(HERE.parent), help="the tree measured (default: this one)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--connections", type=int, help="wrk connections to each proxy (default 8; 64 with --stream)")
    parser.add_argument("--duration", type=float, default=6.0, help="seconds a round (default 6)")
    parser.add_argument("--stream", action="store_true", help="streamed chat calls (SSE) instead of whole replies")
    args = parser.parse_args()
    if args.connections is None:
        args.connections = 64 if args.stream else 8
    ratios = run(args)
    print(f"CPU a {'stream' if args.stream else 'call'}, candidate ÷ baseline: median {statistics.median(ratios):.3f} "
          f"(rounds {min(ratios):.3f}-{max(ratios):.3f})")  # fmt: skip
    return 0


def run(args: argparse.Namespace) -> list[float]:
    from benchmarks.run import BODY, HEADERS, Bench, free_port
    from benchmarks.upstreams import CHUNKS, nginx_streaming_upstream_conf

    bench = Bench(argparse.Namespace(out=None))
    path, unit = "/v1/chat/completions", "a call"
    try:
        tmp = bench.tmp
        if args.stream:  # the run's chat call with "stream": true, sent with ?s=1 (the upstream's SSE stream)
            body = orjson.dumps({**orjson.loads(BODY), "stream": True}).decode()
            headers = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in HEADERS.items())
            bench.lua = tmp / "stream.lua"
            bench.lua.write_text(f'wrk.method = "POST"\nwrk.body = [[{body}]]\n{headers}')
            path, unit = "/v1/chat/completions?s=1", "a stream"
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
            bench.wrk(hop, args.connections, 2.0, path)
        ratios = []
        for number in range(1, args.rounds + 1):
            before, after = bench.side_by_side(hops, args.connections, args.duration, path)
            if before["errors"] or after["errors"]:
                raise RuntimeError(f"round {number}: errors (baseline {before['errors']}, candidate {after['errors']})")
            ratios.append(after["cpu_us_per_call"] / before["cpu_us_per_call"])
            events = (f" ({before['cpu_us_per_call'] / CHUNKS:.1f} and {after['cpu_us_per_call'] / CHUNKS:.1f} µs "
                      f"an event)" if args.stream else "")  # fmt: skip
            print(f"round {number}: baseline {before['cpu_us_per_call']:.0f} µs {unit} ({before['requests']:,} calls), "
                  f"candidate {after['cpu_us_per_call']:.0f} µs ({after['requests']:,}): {ratios[-1]:.3f}{events}",
                  flush=True)  # fmt: skip
        return ratios
    finally:
        bench.stop()


if __name__ == "__main__":
    raise SystemExit(main())
