"""The `lineage-proxy` command: serve, check, demo, edges, verify, report."""

from __future__ import annotations

import argparse
import codecs
import errno
import functools
import hashlib
import io
import logging
import multiprocessing
import os
import re
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

from proxy import BUILD, __version__
from proxy.errors import ConfigError

if TYPE_CHECKING:
    from proxy.baseline import Flow
    from proxy.config import Caller, Config, Upstream
    from proxy.flow import Call, Decision
    from proxy.policy import Policy, Unknown

# `check` options that describe the hypothetical call of --explain; without it they would do nothing
EXPLAIN_ONLY = ("model", "purpose", "labels", "caller", "key", "text", "checkpoint")
DECISIONS = ("allow", "deny", "reroute", "audit-deny")


def _setup_logging(level: str, role: str) -> None:
    """Log to stderr; every line names the process it came from (`worker-2[4711]`, `supervisor[4710]`)."""
    multiprocessing.current_process().name = role  # forked workers carry their own name (workers.py)
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(processName)s[%(process)d] %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _load(path: str, command: str):  # type: ignore[no-untyped-def]
    """The config at `path`, else None, its problems said under `lineage-proxy <command>: PATH: invalid configuration:`,
    one a line, as `report --config` says them and every command's line saying why it stops begins (until 2026-12-07
    `check`'s and `serve`'s began `PATH: `, naming no command)."""
    from proxy.config import load

    try:
        return load(path)
    except ConfigError as exc:
        _fail(f"{path}: invalid configuration:" + "".join(f"\n  {problem}" for problem in exc.problems), command)
        return None


def _fail(message: str, command: str | None) -> int:
    """The line saying why `command` stops, `lineage-proxy <command>: ...` as every command's (`verify`'s, `report`'s,
    `edges`'), `lineage-proxy: ...` before a command is known; exit 1."""
    logs = sys.modules.get("proxy.logs")
    if logs is not None:  # the log lines still held by its writer thread (`logs._Writer`) go first, each whole
        logs.flush()
    sys.stderr.write(
        f"lineage-proxy{f' {command}' if command else ''}: {message}\n"
    )  # one write: never split by a log line
    sys.stderr.flush()
    return 1


class _StopBeforeServing(BaseException):
    """A SIGTERM/SIGINT while `serve` loads its config: nothing is claimed or bound yet, so it stops there.
    A BaseException, as KeyboardInterrupt is: no `except Exception` on the way swallows it."""


_stop_asked = False


def _stop_before_serving(signum: int, frame: object) -> None:
    global _stop_asked
    # once: a second one (Ctrl-C, then a SIGTERM) while the first is handled must not raise past `cmd_serve`
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # also kept, as the raise can be lost: a handler runs in whatever Python code runs when the signal comes,
    # and one in a weakref callback or a `__del__` (an import's module-lock callback) is printed as ignored, and
    # the start went on to serve with the signal spent and SIGTERM ignored
    _stop_asked = True
    raise _StopBeforeServing


def _unraisable(default: Callable[[Any], object], unraisable: Any) -> None:
    """`sys.unraisablehook` while `serve` loads: a lost `_stop_before_serving` raise is no error to report
    (`_stop_asked` holds it); anything else is reported as ever."""
    if not isinstance(unraisable.exc_value, _StopBeforeServing):
        default(unraisable)


def cmd_serve(args: argparse.Namespace) -> int:
    # a SIGTERM/SIGINT before the proxy serves must not end it where it is (claims, a supervisor without its
    # workers). Nothing is claimed or bound while the config loads and modules import: one stops `serve` there,
    # even waiting to read a file (a FIFO nobody writes: the wait is interrupted). From the end of the load
    # they are blocked until `hold_stop` holds them (a handler that raised past the load would end it anywhere),
    # and the start abandoned as soon as it can be. A SIGHUP (a reload) must not end it either: ignored while
    # the config loads (a reload would read the same file), then held until the serving loop applies it
    # (`hold_sighup`)
    role = "proxy" if args.workers == 1 else "supervisor"
    default_unraisable = sys.unraisablehook
    sys.unraisablehook = functools.partial(_unraisable, default_unraisable)
    try:
        signal.signal(signal.SIGTERM, _stop_before_serving)
        signal.signal(signal.SIGINT, _stop_before_serving)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        _setup_logging(args.log_level or "info", role)
        config = _load(args.config, "serve")
        if config is not None:
            from proxy.logs import configure

            configure(config.logging, args.log_level)  # logging: in the config; --log-level wins
            for warning in config.warnings:  # (said once, by the process that read the config: not by each worker)
                logging.getLogger("lineage_proxy").warning("%s", warning)
            from proxy.workers import hold_sighup, run_single, run_workers
        # one that came until now raises here (pthread_sigmask runs the handlers of those pending); one
        # that comes after waits, blocked, for `hold_stop` (or for the exit, when the config is invalid)
        signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGTERM, signal.SIGINT))
        if _stop_asked:  # its raise was lost
            raise _StopBeforeServing
    except _StopBeforeServing:
        _setup_logging(args.log_level or "info", role)  # in case it came before logging was set up
        logging.getLogger("lineage_proxy").info("stopping before serving")
        return 0
    finally:
        sys.unraisablehook = default_unraisable
    if config is None:
        return 1
    hold_sighup()

    from proxy.errors import StartupError

    try:
        from proxy.server import console_refusal

        refusal = console_refusal(None, config.telemetry)  # said before anything is claimed, as a store's is
        if refusal is not None:
            raise StartupError(refusal)
        if args.workers == 1:
            return run_single(args.config, config)
        return run_workers(args.config, config, args.workers)
    except StartupError as exc:
        message = f"{exc}{_taken_cure(exc)}"
        if config.logging.format == "json":  # as every other line of serve's, one a JSON log pipeline reads
            logging.getLogger("lineage_proxy").error("%s", message)
            return 1
        return _fail(message, "serve")


def _taken_cure(exc: BaseException) -> str:
    """What to do about a listen address in use, in the config's words (`demo` says its own: `--port`); else ''. Held
    by a lineage-proxy that is starting, that proxy is to stop: nothing listens there yet (until 2026-12-07 it was
    said `(by a lineage-proxy that is starting) (stop what listens there, ...)`, which `ss -ltn` showed none of)."""
    from proxy.workers import ListenError

    if isinstance(exc, ListenError) and exc.taken is not None:
        holder = "the lineage-proxy starting there" if exc.starting else "what listens there"
        return f" (stop {holder}, or set listen.{exc.taken} to a free port)"
    return ""


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def cmd_check(args: argparse.Namespace) -> int:
    config = _load(args.config, "check")
    if config is None:
        return 1
    for warning in config.warnings:  # valid now, not for long (a certificate near its notAfter): exit 0, said
        print(f"warning: {warning}", file=sys.stderr)
    from proxy.record.stores import unopenable

    unwritable = unopenable(config.lineage)
    if unwritable and not args.explain:
        return _fail(f"{args.config}: serve could not start:" + "".join(f"\n  {said}" for said in unwritable), "check")
    for problem in unwritable:  # `--explain` decides its call all the same: said, not its exit
        print(f"warning: {problem}", file=sys.stderr)
    if not args.explain:
        counts = ", ".join(
            _count(len(items), noun)
            for items, noun in (
                (config.upstreams, "upstream"),
                (config.routes, "route"),
                (config.callers, "caller"),
                (config.zones, "zone"),
            )
        )
        print(f"{args.config}: ok ({counts})")
        return 0
    return _explain(config, args)


def _explain(config, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    """Decide one hypothetical call and say why: how an engineer debugs a policy."""
    from proxy.baseline import checkpoint_pattern
    from proxy.detectors import Detectors
    from proxy.errors import ProxyError
    from proxy.flow import Call, TraceContext
    from proxy.labels import PURPOSE_GRAMMAR, format_labels, is_label, normalize, parse_labels
    from proxy.pipeline import known_labels, known_purposes, unknown_purpose
    from proxy.policy import Policy, Served, boundary_flow, decide, pinned, refuse

    key_sha: str | None = None
    peer: tuple[str, ...] = ()
    if args.key:
        # serve reads a key only when some caller has one (`Pipeline.key_digest`); else the call is anonymous, its
        # Authorization the upstream's business, passed on
        if any(c.api_key_sha256 for c in config.callers):
            key_sha = hashlib.sha256(args.key.strip().encode()).hexdigest()  # stripped, as serve strips it
        else:
            print("note: no caller has an API key, so serve reads none: this call is anonymous, and its key is "
                  "passed on to the upstream", file=sys.stderr)  # fmt: skip
    elif args.caller:
        match = [c for c in config.callers if c.name == args.caller]
        if not match:
            known = ", ".join(c.name for c in config.callers) or "none"
            return _fail(f"unknown caller {args.caller!r} (known: {known})", "check")
        key_sha, peer = _credentials(match[0])
    try:
        labels = parse_labels(args.labels, source="--labels")
        sendable = known_labels(config)
        if sendable is not None:
            sendable.check(labels, source="--labels")  # as serve refuses it (x-data-labels)
    except ProxyError as exc:
        return _fail(exc.message, "check")
    purpose = args.purpose
    if purpose is not None:  # normalised as serve normalises x-purpose (`Assistant` is `assistant`)
        purpose = normalize(purpose)
        if not is_label(purpose):
            return _fail(f"--purpose: invalid purpose {args.purpose.strip()!r}{PURPOSE_GRAMMAR}", "check")
        nameable = known_purposes(config)
        if nameable is not None and not nameable.knows(purpose):  # as serve refuses it (x-purpose)
            return _fail(unknown_purpose(purpose, "--purpose").message, "check")
    detected = Detectors(config.detectors, config.limits.scan_max_chars).scan(args.text) if args.text else frozenset()
    model = args.model if args.model is not None else "*"
    if args.model is None and not any(route.model == "*" for route in config.routes):
        # the '*' route is the default model; without one, "no route for model '*'" was a denial of a model never
        # named, exit 2 as if the policy refused the call
        routed = ", ".join(route.model for route in config.routes)
        return _fail(
            f"--model is needed: {args.config} has no '*' route, so a call names its model (routed: {routed})", "check"
        )
    call = Call("openai", "chat", model, TraceContext(1, 1), key_sha, purpose, labels, detected, peer=peer)
    policy = Policy.compile(config)
    served: Served = pinned
    if args.checkpoint:  # named as calls report it (`printable_name`), raw or already so
        checkpoint = checkpoint_pattern(args.checkpoint)
        served = lambda upstream, model, version: checkpoint  # noqa: E731
    elif policy.block_unapproved:  # as serve decides before the metadata names the checkpoint (pipeline._served)
        served = _unnamed
    decision = decide(call, policy, served)
    reason, fits = decision.reason or "every rule passed", ""
    if decision.code == "checkpoint_unknown":  # the call as it would be forwarded once the checkpoint is named
        anything: Served = lambda upstream, model, version: None  # noqa: E731
        forwarded = decide(call, policy, anything)
        reason = _unknown_reason(call, forwarded, audit=decision.action != "deny")
        fits = ", ".join(_approved_checkpoints(policy, boundary_flow(call, forwarded, anything))) or "none"
    weights = _route_weights(config, call, decision) if decision.action in ("allow", "reroute") else None
    if weights is not None and not args.checkpoint:  # as serve decides before the server's metadata has answered
        decision = refuse(decision, policy, "checkpoint_unknown", weights[0], weights[1])
        reason = weights[1]
    print(f"decision:  {decision.action}")
    if decision.code:
        print(f"code:      {decision.code}")
    print(f"rule:      {decision.rule or '-'}")
    print(f"reason:    {reason}")
    print(f"caller:    {decision.caller or 'anonymous'}")
    print(f"purpose:   {decision.purpose or '-'}")
    print(f"labels:    {format_labels(decision.labels) or '-'}")
    print(f"zones:     {', '.join(decision.zones) or '-'}")
    upstream = decision.upstream
    print(
        f"upstream:  {upstream.name + (f' (region {upstream.region})' if upstream.region else '') if upstream else '-'}"
    )
    # the other listener refuses a call its upstream's protocol does not speak: said when the config has that listener
    other_listens = upstream is not None and (upstream.url is None or config.listen.grpc is not None)
    if upstream is not None and decision.forwards and (upstream.url is None or upstream.grpc is None) and other_listens:
        spoken, other = ("gRPC", "HTTP") if upstream.url is None else ("HTTP", "gRPC")
        print(f"listener:  {spoken} only: on the {other} listener this call is refused (502 / UNAVAILABLE "
              f"upstream_unavailable, rule upstream:{upstream.name})")  # fmt: skip
    if weights is not None:
        print(f"weights:   {weights[2]}")
    if decision.code == "checkpoint_unknown" and fits:
        print("checkpoint: not known (serve takes it from the upstream's metadata; --checkpoint C names it)")
        print(f"approved:  once the metadata names one of: {fits}")
    elif decision.approved is not None:
        flow = boundary_flow(call, decision, served)
        if upstream is not None:
            print(f"checkpoint: {flow.checkpoint or _not_named(upstream, call.model)}")
        if decision.approved:
            print("approved:  yes (lineage.baseline covers this flow)")
        elif decision.code == "flow_not_approved":
            print("approved:  no (refused: lineage.on_unapproved is block)")
        else:
            finding = policy.unapproved(flow)
            why = f"{finding.kind}: {finding.message}" if finding is not None else "-"
            print(f"approved:  no, {why} (lineage.on_unapproved: {config.lineage.on_unapproved})")
    return 0 if decision.action != "deny" else 2


def _route_weights(config: Config, call: Call, decision: Decision) -> tuple[str, str, str] | None:
    """A forwarded call that serve holds to the purposes of a purpose-limited route on its upstream's server whose
    weights its model may run on (`Pipeline._held`): (rule, reason, what serve does), or None. `check` asks no
    upstream, so which names run on the route's weights is not known here, as in serve before the server's metadata
    has answered: it refuses the call then (503 `checkpoint_unknown`, retryable), and once it has, 403 `purpose_denied`
    where the metadata says the name runs on those weights, 404 `model_not_found` where a vLLM's (SGLang's) list does
    not hold the name once asked about it (`Pipeline._unheld`: it would load it on its base), else forwards it. Until
    review routes2 (2026-12-05) it said serve forwarded the last too."""
    from proxy.checkpoints import metadata_names, server
    from proxy.flow import quoted_name

    upstream = decision.upstream
    if upstream is None:
        return None
    upstreams = {u.name: u for u in config.upstreams}
    reached = server(upstream)
    for route in config.routes:
        limited = upstreams.get(route.upstream)
        if route.model == "*" or route.purposes is None or route.model == call.model or limited is None:
            continue
        if decision.purpose in route.purposes or not metadata_names(limited):
            continue
        # on the route's upstream, or another whose metadata names its checkpoints reaching the same server
        if limited.name != upstream.name and not (metadata_names(upstream) and server(limited) == reached):
            continue
        allows = ", ".join(sorted(route.purposes)) or "none"
        reason = (f"model {quoted_name(call.model)} may be served by the weights of model {quoted_name(route.model)} "
                  f"on upstream {limited.name}'s server, which may not be used for purpose {decision.purpose!r} "
                  f"(route allows: {allows}); check asks no upstream, so which weights serve it is not known here, "
                  "as in serve before that server's metadata has answered")  # fmt: skip
        does = (f"serve refuses this call 503 checkpoint_unknown (rule route:{route.model}, retryable) until upstream "
                f"{limited.name}'s metadata has answered; then 403 purpose_denied if it says model "
                f"{quoted_name(call.model)} runs on the weights of model {quoted_name(route.model)} (or applies its "
                "own LoRA adapters to them); if that server is a vLLM or SGLang (which load LoRA adapters on their "
                f"base by name) whose model list does not hold model {quoted_name(call.model)}, 503 until that list "
                f"has been asked about it, then 404 model_not_found (rule route:{route.model}, not forwarded); else "
                "it forwards it")  # fmt: skip
        return f"route:{route.model}", reason, does
    return None


def _unnamed(upstream: Upstream, model: str, version: str | None) -> str | Unknown | None:
    """What `serve` with `lineage.on_unapproved: block` knows before an upstream's metadata has named the
    checkpoint: a pin, else, where the metadata could name it, not yet (`Unknown`: serve refuses such a call
    with 503 checkpoint_unknown unless the flow is approved whatever its checkpoint, 404 model_not_found once the
    metadata, asked about the model, does not list it). `check` asks no upstream."""
    from proxy.checkpoints import metadata_names
    from proxy.policy import Unknown, pinned

    if model and metadata_names(upstream):
        return Unknown(lambda upstream, model, caller: "", upstream, model)
    return pinned(upstream, model, version)


def _unknown_reason(call: Call, forwarded: Decision, *, audit: bool) -> str:
    name = forwarded.upstream.name if forwarded.upstream is not None else "-"
    does = "forwards this call as audit-deny (enforced: 503 checkpoint_unknown)" if audit else (
        "refuses this call: 503 checkpoint_unknown, retryable")  # fmt: skip
    return (f"check asks no upstream, so the checkpoint serving model {call.model!r} on upstream {name} is not "
            f"known here. Until {name}'s metadata names it, serve {does} (lineage.on_unapproved is block, and no "
            "baseline entry covering the flow approves any checkpoint); once its metadata, asked about the model, "
            "does not list it, 404 model_not_found (a typo); then it decides on the checkpoint named. "
            "Pass --checkpoint C to decide with it")  # fmt: skip


def _approved_checkpoints(policy: Policy, flow: Flow) -> list[str]:
    """The checkpoints the baseline's entries covering the rest of `flow` approve."""
    if policy.baseline is None:
        return []
    return sorted({p for a in policy.baseline.approvals if a.matches(flow) for p in a.checkpoints})


def _not_named(upstream: Upstream, model: str) -> str:
    from proxy.checkpoints import metadata_names

    if model and metadata_names(upstream):
        return (f"not known to check (serve takes it from upstream {upstream.name}'s metadata; --checkpoint C "
                "decides with it), taken here as any approved one")  # fmt: skip
    return "not known before the reply (any approved one fits)"


def _credentials(caller: Caller) -> tuple[str | None, tuple[str, ...]]:
    """What a call from `caller` presents: its key's digest, else the identity its client certificate proves."""
    if caller.api_key_sha256 is not None:
        return caller.api_key_sha256, ()
    return None, (caller.tls_identity,) if caller.tls_identity is not None else ()


def cmd_demo(args: argparse.Namespace) -> int:
    _setup_logging(args.log_level, "demo")
    from proxy.demo import run_demo
    from proxy.errors import StartupError
    from proxy.workers import ListenError

    port = args.port if args.port is not None else (8080 if args.keep else 0)
    try:
        return run_demo(keep=args.keep, store=args.store, port=port)
    except ListenError as exc:
        return _fail(f"{exc} (choose another with --port N; --port 0 takes any free port)", "demo")
    except StartupError as exc:
        return _fail(str(exc), "demo")


def cmd_verify(args: argparse.Namespace) -> int:
    from proxy.verify import run_verify

    return run_verify(args)


def cmd_report(args: argparse.Namespace) -> int:
    from proxy.report import run_report

    return run_report(args)


def _duration(text: str) -> str:
    """`--since`: a duration as `parse_duration` reads one, written without spaces, as `--workers` and `--port` are
    (its `strip()` and the space it takes before the unit read `' 30d'` and `'30 d'` as 30 days until 2026-12-07)."""
    from proxy.verify import parse_duration

    if any(char.isspace() for char in text):
        raise argparse.ArgumentTypeError(f"expected a duration such as 30d, 12h, 15m or 90s, not {text!r}")
    parse_duration(text)  # an ArgumentTypeError names the problem
    return text


def _head(text: str) -> str:
    from proxy.verify import parse_head

    return parse_head(text)  # an ArgumentTypeError says what a head looks like


def _path(text: str) -> str:
    """A flag's file path (`--config`, `--baseline`, `--out`, a key file's, a store's): one beginning with a `~` the
    shell did not expand (it expands one unquoted at a word's start, not `'~/proxy.yaml'` nor `--config=~/proxy.yaml`)
    that names nothing is an ArgumentTypeError saying so and the path meant, where the command looked for, or wrote
    into, a directory named `~` in the working directory (`no file /srv/~/proxy.yaml`, said by `check` until
    2026-12-07). A path so written that names a file is read as written."""
    meant = os.path.expanduser(text)
    if meant != text and not os.path.lexists(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} does not exist: the shell did not expand '~' (it does only unquoted, at a word's start: not "
            f"quoted, nor after '='): write {meant!r}"
        )
    return text


def _store(text: str) -> str:
    """A flag's lineage store, checked as the config's `lineage.store` is for libpq's key=value pairs
    (`store_pairs_problem`): an ArgumentTypeError in the config's words, which quote none of it (its password), where
    the command took it for a SQLite file's name and said it whole (`no lineage store there`); a SQLite file's path as
    any flag's (`_path`)."""
    from proxy.config import store_pairs_problem

    _path(text)
    said = store_pairs_problem(text)
    if said is not None:
        raise argparse.ArgumentTypeError(said)
    return text


def cmd_edges(args: argparse.Namespace) -> int:
    from proxy.edges_query import run_edges

    return run_edges(args)


def _decimal(text: str) -> int:
    """A whole number as written in ASCII digits alone, the rule the config's number keys read text by (int() takes
    `" 2 "`, `"1_0"`, `"+80"` and other scripts' digits, `"٢"`: until 2026-12-07 `--workers ٢` was 2); ValueError.
    A `-` before digits is a number below 0, said out of range (`-1`); `-0` is none, and no number (until 2026-12-07
    `--port -0` was port 0)."""
    digits = text.removeprefix("-")
    if not (digits.isascii() and digits.isdecimal()) or (digits != text and int(digits) == 0):
        raise ValueError(text)
    return int(text)


def _positive(text: str) -> int:
    try:
        value = _decimal(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


MAX_WORKERS = 256


def _workers(text: str) -> int:
    """`--workers`: at least 1, at most `MAX_WORKERS` (a slip such as 99999 would fork processes until the machine
    is out of them: before 2026-12-05 it started hundreds, holding the machine minutes before it failed)."""
    value = _positive(text)
    if value > MAX_WORKERS:
        raise argparse.ArgumentTypeError(
            f"at most {MAX_WORKERS}, not {value} (a worker a core is the most that helps: this machine has "
            f"{os.cpu_count() or 1})"
        )
    return value


def _port(text: str) -> int:
    try:
        value = _decimal(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0-65535, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lineage-proxy",
        description="An inference sidecar that records which checkpoint saw which labelled data, for which "
        "purpose, and enforces purpose limits at the call boundary.",
    )
    parser.add_argument("--version", action="version", version=f"lineage-proxy {__version__} ({BUILD})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    levels = ("debug", "info", "warning", "error")

    serve = sub.add_parser("serve", help="run the proxy", description="Run the proxy with a config file. "
                           "SIGTERM or Ctrl-C drains in-flight calls and exits 0 (a second Ctrl-C cuts the drain short); SIGHUP reloads the "
                           "config.")  # fmt: skip
    serve.add_argument("--config", required=True, type=_path, metavar="PATH",
                       help="the YAML config (its keys: the README's Configuration by example; `lineage-proxy demo` "
                       "prints the path of a sample one to start from)")  # fmt: skip
    serve.add_argument("--workers", type=_workers, default=1, metavar="N",
                       help=f"processes sharing the ports (SO_REUSEPORT; default 1, at most {MAX_WORKERS})")  # fmt: skip
    serve.add_argument("--log-level", choices=levels,
                       help="log verbosity on stderr (default: the config's logging.level, else info)")  # fmt: skip
    serve.set_defaults(func=cmd_serve, subparser=serve)

    check = sub.add_parser("check", help="validate a config (and explain decisions)",
                           description="Validate a config: exit 0 if valid, else exit 1 listing every problem "
                           "with its location. With --explain, decide one hypothetical call and say why "
                           "(exit 2 when it would be denied).")  # fmt: skip
    check.add_argument("--config", required=True, type=_path, metavar="PATH", help="the YAML config to validate")
    check.add_argument("--explain", action="store_true", help="decide the call described by the options below")
    check.add_argument("--model", help="requested model (default: the '*' route; needed where there is none); "
                       "with --explain")  # fmt: skip
    check.add_argument("--purpose", help="the call's x-purpose; with --explain")
    check.add_argument("--labels", help="the call's x-data-labels, comma-separated; with --explain")
    who = check.add_mutually_exclusive_group()
    who.add_argument("--caller", help="act as this configured caller; with --explain")
    who.add_argument("--key", help="act as the caller owning this API key; with --explain")
    check.add_argument("--text", help="request content to run the detectors on; with --explain")
    check.add_argument("--checkpoint", help="the checkpoint the upstream serves, for lineage.baseline (default: "
                       "its pin in the config, else unknown: with lineage.on_unapproved: block, refused as serve "
                       "refuses it until the upstream's metadata names it, 503 checkpoint_unknown, unless the flow "
                       "is approved for any checkpoint); with --explain")  # fmt: skip
    check.set_defaults(func=cmd_check, subparser=check)

    demo = sub.add_parser("demo", help="run the embedded demo end to end",
                          description="Start a demo model server and the proxy on loopback with a sample "
                          "policy, print that policy and the path of its file (a starting point to copy), send a "
                          "few calls (allowed, denied, rerouted, streamed), print what was recorded and exit 0.")  # fmt: skip
    demo.add_argument("--keep", action="store_true",
                      help="stay up afterwards so you can send your own calls, until Ctrl-C or SIGTERM (exit 0; a "
                      "temporary store is deleted then)")  # fmt: skip
    demo.add_argument("--port", type=_port, metavar="N",
                      help="the proxy's port on 127.0.0.1 (default 8080 with --keep, else any free port; "
                      "0: any free port)")  # fmt: skip
    demo.add_argument("--store", type=_store, metavar="PATH",
                      help="keep the lineage store in this file (default: a temporary file deleted at exit); a new "
                      "file or one an earlier demo wrote (it marks its store): a store holding other flows (a proxy's "
                      "own record), or a PostgreSQL URL, is refused (exit 1), left as it was")  # fmt: skip
    demo.add_argument(
        "--log-level", default="warning", choices=levels, help="log verbosity on stderr (default warning)"
    )
    demo.set_defaults(func=cmd_demo, subparser=demo)

    edges = sub.add_parser("edges", help="query the lineage store",
                           description="Which checkpoints saw which labels, for which purposes, by which "
                           "caller, how often.")  # fmt: skip
    edges.add_argument("--store", required=True, type=_store, metavar="PATH|URL",
                       help="the lineage store (lineage.store): a SQLite file or a postgresql:// URL")  # fmt: skip
    edges.add_argument("--copy-to", type=_store, metavar="URL",
                       help="add every edge of --store to this PostgreSQL store (once per history) and exit")  # fmt: skip
    edges.add_argument("--key-file", type=_path, metavar="FILE",
                       help="with --copy-to: the HMAC key of both stores' chains (lineage.integrity_key_file), to "
                       "verify the source and sign the copy")  # fmt: skip
    edges.add_argument("--retired-key-file", type=_path, metavar="FILE", action="append", default=[],
                       help="with --copy-to --key-file: a key the source's (or the target's) chain was signed with "
                       "before a rotation (lineage.integrity_retired_key_files); repeatable, oldest first")  # fmt: skip
    edges.add_argument("--unkeyed-source", action="store_true",
                       help="with --copy-to --key-file: the source's chain has no key (it is verified unkeyed; the "
                       "key signs the copy only)")  # fmt: skip
    edges.add_argument("--label", action="append", help="only flows carrying this label (in or out); repeatable")
    edges.add_argument("--purpose", help="only flows for this purpose")
    edges.add_argument("--checkpoint", help="only flows that reached this checkpoint")
    edges.add_argument("--caller", help="only flows from this caller")
    edges.add_argument("--decision", choices=DECISIONS, help="only flows with this decision")
    edges.add_argument("--rule", help="only flows decided by this rule (zone:NAME, route:MODEL, policy.anonymous, "
                       "...; '-': allowed calls, which no rule decided)")  # fmt: skip
    edges.add_argument("--sidecar", help="only flows recorded by this sidecar (lineage.sidecar; '-': those recorded "
                       "before sidecars were named)")  # fmt: skip
    edges.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    edges.set_defaults(func=cmd_edges, subparser=edges)

    verify = sub.add_parser("verify", help="check recorded flows against the approved baseline",
                            description="Print every recorded flow no entry of the baseline covers, and why "
                            "(new caller, new purpose, a label reaching a new checkpoint, a route served by a "
                            "different checkpoint, a new kind of denial), and approved entries not seen. Exit 0 "
                            "when every flow is approved, 1 when any is not, 2 on a usage or file error. With "
                            "--write-baseline, start a baseline from what is recorded. With --integrity, prove "
                            "the record untouched: exit 0 intact, 1 naming the first broken link (or an "
                            "--expect-head no longer in the chain), 2 on a usage or file error or a keyed chain "
                            "without --key-file. --baseline with --integrity judges the flows of a record that "
                            "verifies, as a CI gate: --baseline alone reads the edge table as it stands, which "
                            "anyone who can write the store can edit.")  # fmt: skip
    verify.add_argument("--store", required=True, type=_store, metavar="PATH|URL",
                        help="the lineage store (lineage.store): a SQLite file or a postgresql:// URL")  # fmt: skip
    what = verify.add_mutually_exclusive_group()
    what.add_argument("--baseline", type=_path, metavar="FILE", help="the approved flows (YAML) to verify against")
    what.add_argument("--write-baseline", type=_path, metavar="FILE",
                      help="write a baseline approving what is recorded, to review and edit")  # fmt: skip
    verify.add_argument("--integrity", action="store_true",
                        help="prove the record untouched: walk the store's hash chain and replay it against the "
                        "edge table; exit 0 intact, 1 naming the first broken link, 2 on a usage or file error or "
                        "a keyed chain without --key-file. With --baseline, the flows judged are those of the "
                        "record it proves (a record that does not verify fails the gate)")  # fmt: skip
    verify.add_argument("--key-file", type=_path, metavar="FILE",
                        help="with --integrity: the HMAC key the chain was signed with (lineage.integrity_key_file)")  # fmt: skip
    verify.add_argument("--retired-key-file", type=_path, metavar="FILE", action="append", default=[],
                        help="with --integrity --key-file: a key the chain was signed with before --key-file "
                        "replaced it (lineage.integrity_retired_key_files); repeatable, oldest first")  # fmt: skip
    verify.add_argument("--expect-head", metavar="HEAD", type=_head, action="append", default=[],
                        help="with --integrity: a head printed by an earlier verify, recorded elsewhere; exit 1 "
                        "unless it is still in the chain (nothing up to it was cut away since, with its counts; "
                        "entries written after it can be). Repeatable")  # fmt: skip
    verify.add_argument("--adopt-head", metavar="HEAD", type=_head,
                        help="with --integrity --key-file: sign on top of this unsigned newest entry, so a store "
                        "kept unkeyed until now is signed from here on (a keyed proxy stops on an unsigned head: a "
                        "chain rebuilt without the key looks the same; check it against a head recorded earlier)")  # fmt: skip
    verify.add_argument("--since", type=_duration, metavar="DURATION",
                        help="only flows last seen this recently (2w, 30d, 12h, 15m, 90s); approved entries not "
                        "seen in it are listed (default: the whole store)")  # fmt: skip
    verify.add_argument("--json", action="store_true",
                        help="one JSON document instead of text; with --baseline or --integrity")  # fmt: skip
    verify.add_argument("--force", action="store_true", help="let --write-baseline replace an existing file")
    verify.add_argument("--per-sidecar", action="store_true",
                        help="with --write-baseline: an entry per sidecar that recorded a flow, approving that "
                        "sidecar's alone (sidecars: [NAME]); without it an entry approves any sidecar's")  # fmt: skip
    verify.set_defaults(func=cmd_verify, subparser=verify)

    report = sub.add_parser("report", help="write a self-contained HTML report of the recorded flows",
                            description="Write one HTML file (no network fetch when opened) with the flow graph, "
                            "every flow, denials with their reasons, checkpoints and when they changed, flows "
                            "outside the baseline and, with --config, the policy in force. Exit 0 when written, "
                            "1 when an input cannot be read, the record does not verify (--integrity) or the file "
                            "cannot be written. Without --integrity it draws the edge table as it stands, which "
                            "anyone who can write the store can edit.")  # fmt: skip
    report.add_argument("--store", required=True, type=_store, metavar="PATH|URL",
                        help="the lineage store (lineage.store): a SQLite file or a postgresql:// URL")  # fmt: skip
    report.add_argument("--config", type=_path, metavar="FILE", action="append",
                        help="the proxy's config: shows the policy in force and verifies against its "
                        "lineage.baseline; once for each sidecar's of a fleet writing the store, each policy "
                        "shown under its file's name")  # fmt: skip
    report.add_argument(
        "--baseline", type=_path, metavar="FILE", help="verify against this baseline (default: the config's)"
    )
    report.add_argument("--since", type=_duration, metavar="DURATION",
                        help="only flows last seen this recently (2w, 30d, 12h, 15m, 90s; default: the whole "
                        "store)")  # fmt: skip
    report.add_argument("--out", required=True, type=_path, metavar="FILE.html", help="where to write the report")
    report.add_argument("--integrity", action="store_true",
                        help="draw only a record that verifies, as `verify --integrity` proves it, its rows read in "
                        "the same transaction; the header names the chain head verified. A record that does not "
                        "verify: exit 1, its first broken link printed, no report written")  # fmt: skip
    report.add_argument("--key-file", type=_path, metavar="FILE",
                        help="with --integrity: the HMAC key the chain was signed with (lineage.integrity_key_file)")  # fmt: skip
    report.add_argument("--retired-key-file", type=_path, metavar="FILE", action="append", default=[],
                        help="with --integrity --key-file: a key the chain was signed with before --key-file "
                        "replaced it (lineage.integrity_retired_key_files); repeatable, oldest first")  # fmt: skip
    report.add_argument("--expect-head", metavar="HEAD", type=_head, action="append", default=[],
                        help="with --integrity: a head printed by an earlier verify, recorded elsewhere; exit 1, no "
                        "report written, unless it is still in the chain. Repeatable")  # fmt: skip
    report.set_defaults(func=cmd_report, subparser=report)
    return parser


def _validate(args: argparse.Namespace) -> None:
    """Options that would do nothing are errors (exit 2), not silently ignored."""
    if args.command == "check" and not args.explain:
        for name in EXPLAIN_ONLY:
            if getattr(args, name) is not None:
                args.subparser.error(f"--{name} only makes sense with --explain")
    if args.command == "edges" and args.key_file and not args.copy_to:
        args.subparser.error("--key-file goes with --copy-to")
    if args.command == "report" and not args.integrity:
        for option in ("key_file", "expect_head"):
            if getattr(args, option):
                args.subparser.error(f"--{option.replace('_', '-')} goes with --integrity")
    if args.command in ("edges", "verify", "report") and args.retired_key_file and not args.key_file:
        args.subparser.error("--retired-key-file goes with --key-file (the key that replaced it)")
    if args.command == "edges" and args.unkeyed_source and not args.key_file:
        args.subparser.error("--unkeyed-source goes with --copy-to --key-file (without a key, nothing is keyed)")
    if args.command == "verify":
        if not (args.baseline or args.write_baseline or args.integrity):
            args.subparser.error("one of the arguments --baseline --write-baseline --integrity is required")
        if args.integrity and args.write_baseline:
            args.subparser.error("--integrity goes with --baseline or alone (--write-baseline approves what is "
                                 "recorded: check the record first, `verify --integrity`)")  # fmt: skip
        if args.json and args.write_baseline:
            args.subparser.error("--json goes with --baseline or --integrity (--write-baseline writes YAML)")
        if args.since and args.integrity and not args.baseline:
            args.subparser.error(
                "--since goes with --baseline or --write-baseline (--integrity proves the whole chain)"
            )
        if args.expect_head and not args.integrity:
            args.subparser.error("--expect-head goes with --integrity")
        if args.adopt_head and not (args.integrity and args.key_file):
            args.subparser.error("--adopt-head goes with --integrity --key-file")
        if args.adopt_head and args.baseline:
            args.subparser.error("--adopt-head goes with --integrity --key-file alone: adopt the head, then run the "
                                 "gate (`verify --baseline FILE --integrity --key-file KEY`)")  # fmt: skip
        if args.adopt_head and (args.expect_head or args.json):
            args.subparser.error("--adopt-head takes neither --expect-head nor --json: check the head first "
                                 "(`verify --integrity --expect-head`), then adopt it")  # fmt: skip
        if args.force and not args.write_baseline:
            args.subparser.error("--force only makes sense with --write-baseline")
        if args.per_sidecar and not args.write_baseline:
            args.subparser.error("--per-sidecar only makes sense with --write-baseline")


class _StdoutRefused(OSError):
    """A write to stdout that failed other than with EPIPE (its reader gone: BrokenPipeError, exit 141, kept): one
    open for reading alone (`1</dev/null`, EBADF), a full disk or `1>/dev/full` (ENOSPC), EIO."""


class _StdoutFile(io.FileIO):
    """stdout's file under `sys.stdout` (`_guard_stdout`): its failed writes are told from any other OSError, so `main`
    says them in one line, where they ended `check`, `edges`, `verify`, `report` and `demo` with a traceback. The first
    is kept (`failed`): one swallowed on the way (argparse's `--help` and `--version` take any OSError, which, with each
    write unbuffered under `-u`, reached them) is still said."""

    failed: OSError | None = None

    def write(self, data: Any, /) -> int:  # any buffer, as FileIO.write takes (typeshed's type is no module)
        try:
            return super().write(data)
        except BrokenPipeError as exc:
            self.failed = self.failed or exc
            raise
        except OSError as exc:
            self.failed = self.failed or _StdoutRefused(exc.errno, exc.strerror)
            raise self.failed from None


def _guard_stdout() -> _StdoutFile | None:
    """Writes to stdout go through `_StdoutFile` (returned), as `print` wrote them: the same encoding and buffering,
    unbuffered under `-u` or PYTHONUNBUFFERED as Python's own stdout is (buffered, a demo's lines came all at once as it
    ended). With no stdout (`1>&-`) /dev/null is opened as fd 1, `sys.stdout` left None (nothing is written, and
    `serve` still says a console exporter has nowhere to go): else the first file or socket opened took fd 1, and the
    demo aborted on uvloop's `fd > STDERR_FILENO` assertion (exit 134) as it closed a socket there. A stdout that is no
    file (a test's capture) is left as it is."""
    _fill_closed_standard_fds()
    stdout = sys.stdout
    if stdout is None:
        return None
    if stdout is not sys.__stdout__ or not isinstance(stdout, io.TextIOWrapper):
        return None
    stdout.flush()
    raw = _StdoutFile(stdout.fileno(), "w", closefd=False)
    buffer = raw if isinstance(stdout.buffer, io.RawIOBase) else io.BufferedWriter(raw)
    errors = STDOUT_ESCAPE if stdout.errors in ("strict", "surrogateescape") else stdout.errors  # (a user's own kept)
    sys.stdout = io.TextIOWrapper(buffer, encoding=stdout.encoding, errors=errors,
                                  line_buffering=stdout.line_buffering, write_through=stdout.write_through)  # fmt: skip
    return raw


# the error handler of the guarded stdout (`_guard_stdout`): a character its encoding cannot write
STDOUT_ESCAPE: Final = "lineage-proxy-stdout"


def _stdout_escape(exc: UnicodeError) -> tuple[str | bytes, int]:
    """A character stdout's encoding cannot write (`PYTHONIOENCODING=ascii`, a Latin-1 locale) as a JSON escape,
    `\\u00e9`, and one past U+FFFF as two, `\\ud83d\\ude00`: a name of the store in `edges` or `verify`, a path in
    `report`'s line, ended the command with a traceback (UnicodeEncodeError), its output cut. A JSON escape, not
    Python's `\\xe9`, so that `--json` stays JSON that reads back the same names (they are in its strings alone). A
    byte Python decoded as a surrogate (`surrogateescape`: a path's byte no UTF-8) is written back as it was, as
    Python's stdout writes it."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    text = exc.object[exc.start : exc.end]
    if all("\udc80" <= c <= "\udcff" for c in text):
        return bytes(ord(c) - 0xDC00 for c in text), exc.end
    return _stdout_escape_text(text), exc.end


codecs.register_error(STDOUT_ESCAPE, _stdout_escape)


def _stdout_encoding() -> str:
    """The codec's name of stdout's encoding (`utf-8` however it is spelt); `utf-8` with no stdout (nothing written)."""
    encoding = getattr(sys.stdout, "encoding", None)
    return codecs.lookup(encoding).name if isinstance(encoding, str) else "utf-8"


def stdout_text(text: str) -> str:
    """`text` as stdout writes it (`_stdout_escape`: what its encoding cannot write, escaped): the width a table's
    cell takes there."""
    if text.isascii():
        return text
    encoding = _stdout_encoding()
    return text.encode(encoding, STDOUT_ESCAPE).decode(encoding, "surrogateescape")


def stdout_json(document: bytes) -> str:
    """A JSON document (orjson's UTF-8) to write to stdout: as it is on a UTF-8 stdout; on any other, every character
    past ASCII a JSON escape (`\\u00e9`), so that what is written is ASCII, the same text in that encoding and in the
    UTF-8 a JSON reader (jq, RFC 8259) takes, and reads back the same names. Written by `_stdout_escape` alone, only
    what the encoding cannot write was escaped: a Latin-1 stdout wrote `é` as one byte, no UTF-8."""
    text = document.decode()
    if text.isascii() or _stdout_encoding() == "utf-8":
        return text
    return _PAST_ASCII.sub(lambda found: _stdout_escape_text(found.group()), text)


_PAST_ASCII: Final = re.compile("[^\x00-\x7f]+")


def _stdout_escape_text(text: str) -> str:
    """`text` as JSON escapes, one a UTF-16 code unit: `\\u00e9`, `\\ud83d\\ude00`."""
    return "".join(f"\\u{unit}" for unit in text.encode("utf-16-be", "surrogatepass").hex(" ", 2).split())


def _fill_closed_standard_fds() -> None:
    """/dev/null as each of fds 0, 1 and 2 that is closed (`0<&-`, `1>&-`, `2>&-`; Python's `sys.stdin`, `sys.stdout`
    or `sys.stderr` stays None): with stdin or stderr closed the demo aborted as with stdout closed (exit 134), and
    `serve`'s running marker was opened as fd 2."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDONLY if fd == 0 else os.O_WRONLY)  # (the lowest number free: `fd`)


# a command's exit when its stdout takes no write: what it exits on a file error (verify's 2: 1 says flows are
# unapproved), its `--help`'s too; 1 for the others, and for `lineage-proxy --help` and `--version`
STDOUT_REFUSED_EXIT: Final = {"verify": 2}
COMMANDS: Final = ("serve", "check", "demo", "edges", "verify", "report")


def _stdout_refused(exc: OSError, command: str | None) -> int:
    """One line for a stdout that takes no write, where the command's output is lost (part of it may be written)."""
    _quiet_stdout()  # what is left buffered is not written at exit, nor said there as an ignored exception
    why = "it is open for reading only (1</dev/null)" if exc.errno == errno.EBADF else exc.strerror
    _fail(f"stdout takes no write ({why}): the output is lost; give it a stdout that does (a terminal, a file "
          "or a pipe), or 1>/dev/null for none", command)  # fmt: skip
    return STDOUT_REFUSED_EXIT.get(command or "", 1)


def _quiet_stdout() -> None:
    """The reader went away (`| head`): send what is left to /dev/null, so exiting says nothing more."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    # grpc's C core writes lines of its own to stderr at its INFO level unless told otherwise (one a failed TLS
    # handshake, each retry of an exporter's or upstream's channel), which are not the proxy's log lines, nor JSON
    # under logging.format: json; its errors it still writes. Before grpc is imported; a user's own setting wins
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    stdout = _guard_stdout()
    # the command, before argparse reads it: its `--help` exits as it does (`verify --help 1>/dev/full` exited 1, which
    # from `verify` says flows are unapproved, and said no command). It comes first: the options before it (`--help`,
    # `--version`) are the program's, each ending it
    given = sys.argv[1:] if argv is None else argv
    command: str | None = given[0] if given and given[0] in COMMANDS else None
    try:
        try:
            args = build_parser().parse_args(argv)  # (`--help`, `--version`: printed, then a SystemExit)
            command = args.command
            _validate(args)
            code = int(args.func(args))
        finally:
            if sys.stdout is not None:  # (None: started with no stdout, `1>&-`, where a SIGTERM's stop exited 1)
                sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
            if stdout is not None and stdout.failed is not None:  # (one swallowed: argparse's)
                raise stdout.failed
        return code
    except _StdoutRefused as exc:
        return _stdout_refused(exc, command)
    except BrokenPipeError:
        _quiet_stdout()
        return 141  # what a shell reports for a writer ended by SIGPIPE (128 + 13), as `yes | head` does
    except KeyboardInterrupt:
        return 130
