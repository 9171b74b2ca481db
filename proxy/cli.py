"""The `lineage-proxy` command: serve, check, demo, edges."""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from collections.abc import Sequence

from proxy import __version__
from proxy.errors import ConfigError


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _load(path: str):  # type: ignore[no-untyped-def]
    from proxy.config import load

    try:
        return load(path)
    except ConfigError as exc:
        print(f"{path}: invalid configuration:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return None


def cmd_serve(args: argparse.Namespace) -> int:
    _setup_logging(args.log_level)
    config = _load(args.config)
    if config is None:
        return 1
    from proxy.workers import run_single, run_workers

    if args.workers <= 1:
        return run_single(args.config, config)
    return run_workers(args.config, config, args.workers)


def cmd_check(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 1
    if not args.explain:
        print(f"{args.config}: ok ({len(config.upstreams)} upstreams, {len(config.routes)} routes, "
              f"{len(config.callers)} callers, {len(config.zones)} zones)")  # fmt: skip
        return 0
    return _explain(config, args)


def _explain(config, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    """Decide one hypothetical call and say why: how an engineer debugs a policy."""
    from proxy.detectors import Detectors
    from proxy.errors import ProxyError
    from proxy.flow import Call, TraceContext
    from proxy.labels import format_labels, parse_labels
    from proxy.policy import Policy, decide

    key_sha = None
    if args.key:
        key_sha = hashlib.sha256(args.key.encode()).hexdigest()
    elif args.caller:
        match = [c for c in config.callers if c.name == args.caller]
        if not match:
            print(f"unknown caller {args.caller!r} (known: {', '.join(c.name for c in config.callers) or 'none'})")
            return 1
        key_sha = match[0].api_key_sha256
    try:
        labels = parse_labels(args.labels, source="--labels")
    except ProxyError as exc:
        print(exc.message)
        return 1
    detected = Detectors(config.detectors, config.limits.scan_max_chars).scan(args.text) if args.text else frozenset()
    call = Call("openai", "chat", args.model, TraceContext(1, 1), key_sha, args.purpose, labels, detected)
    decision = decide(call, Policy.compile(config))
    print(f"decision:  {decision.action}")
    if decision.code:
        print(f"code:      {decision.code}")
    print(f"rule:      {decision.rule or '-'}")
    print(f"reason:    {decision.reason or 'every rule passed'}")
    print(f"caller:    {decision.caller or 'anonymous'}")
    print(f"purpose:   {decision.purpose or '-'}")
    print(f"labels:    {format_labels(decision.labels) or '-'}")
    print(f"zones:     {', '.join(decision.zones) or '-'}")
    upstream = decision.upstream
    print(
        f"upstream:  {upstream.name + (f' (region {upstream.region})' if upstream.region else '') if upstream else '-'}"
    )
    return 0 if decision.action != "deny" else 2


def cmd_demo(args: argparse.Namespace) -> int:
    _setup_logging(args.log_level)
    from proxy.demo import run_demo

    return run_demo(keep=args.keep, store=args.store)


def cmd_edges(args: argparse.Namespace) -> int:
    from proxy.edges_query import run_edges

    return run_edges(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lineage-proxy",
        description="An inference sidecar that records which checkpoint saw which labelled data, for which "
        "purpose, and enforces purpose limits at the call boundary.",
    )
    parser.add_argument("--version", action="version", version=f"lineage-proxy {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    levels = ("debug", "info", "warning", "error")

    serve = sub.add_parser("serve", help="run the proxy", description="Run the proxy with a config file. "
                           "SIGTERM drains in-flight calls and exits 0; SIGHUP reloads the config.")  # fmt: skip
    serve.add_argument("--config", required=True, metavar="PATH", help="the YAML config (see config/)")
    serve.add_argument("--workers", type=int, default=1, metavar="N", help="processes sharing the ports (default 1)")
    serve.add_argument("--log-level", default="info", choices=levels)
    serve.set_defaults(func=cmd_serve)

    check = sub.add_parser("check", help="validate a config (and explain decisions)",
                           description="Validate a config: exit 0 if valid, else exit 1 listing every problem "
                           "with its location. With --explain, decide one hypothetical call and say why "
                           "(exit 2 when it would be denied).")  # fmt: skip
    check.add_argument("--config", required=True, metavar="PATH")
    check.add_argument("--explain", action="store_true", help="decide the call described by the options below")
    check.add_argument("--model", default="*", help="requested model (default: the '*' route)")
    check.add_argument("--purpose", help="the call's x-purpose")
    check.add_argument("--labels", help="the call's x-data-labels, comma-separated")
    who = check.add_mutually_exclusive_group()
    who.add_argument("--caller", help="act as this configured caller")
    who.add_argument("--key", help="act as the caller owning this API key")
    check.add_argument("--text", help="request content to run the detectors on")
    check.set_defaults(func=cmd_check)

    demo = sub.add_parser("demo", help="run the embedded demo end to end",
                          description="Start a demo model server and the proxy on loopback with a sample "
                          "policy, send a few calls (allowed, denied, rerouted, streamed), print what was "
                          "recorded and exit 0.")  # fmt: skip
    demo.add_argument("--keep", action="store_true", help="stay up afterwards so you can send your own calls")
    demo.add_argument("--store", metavar="PATH", help="lineage store file (default: a temporary file)")
    demo.add_argument("--log-level", default="warning", choices=levels)
    demo.set_defaults(func=cmd_demo)

    edges = sub.add_parser("edges", help="query the lineage store",
                           description="Which checkpoints saw which labels, for which purposes, by which "
                           "caller, how often.")  # fmt: skip
    edges.add_argument("--store", required=True, metavar="PATH", help="the lineage store (lineage.store)")
    edges.add_argument("--label", action="append", help="only flows carrying this label (in or out); repeatable")
    edges.add_argument("--purpose", help="only flows for this purpose")
    edges.add_argument("--checkpoint", help="only flows that reached this checkpoint")
    edges.add_argument("--caller", help="only flows from this caller")
    edges.add_argument("--decision", help="only flows with this decision (allow, deny, reroute, audit-deny)")
    edges.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    edges.set_defaults(func=cmd_edges)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
