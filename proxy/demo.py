"""`lineage-proxy demo`: the embedded default, end to end on loopback, in one process.

A demo model server, the proxy in front of it with the sample policy (demo_config.yaml), a handful of
calls that show each decision, then what the record holds. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shlex
import signal
import sqlite3
import tempfile
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from proxy.config import Config, SqliteNameError, parse, sqlite_file
from proxy.demo_model import MODEL, make_app
from proxy.edges_query import render_table
from proxy.errors import StartupError
from proxy.record.integrity import SIGNED
from proxy.record.store import (
    READ_WAIT_S,
    SqliteStore,
    StoreBusy,
    StoreReplaced,
    Unblocker,
    UnreadableHere,
    busy,
    is_busy,
    opened_whole,
    require_directory,
)
from proxy.record.stores import is_database
from proxy.server import ProxyProcess
from proxy.workers import install_uvloop, open_process, start_process

GLASSES_KEY = "demo-glasses-key"
ANALYTICS_KEY = "demo-analytics-key"
DEMO_KEYS = {hashlib.sha256(key.encode()).hexdigest(): key for key in (GLASSES_KEY, ANALYTICS_KEY)}

CALLS = [
    ("glasses-app asks the assistant (its data must stay in the EU: rerouted)",
     GLASSES_KEY, {"x-purpose": "assistant"}, "What is that building?", False),
    ("glasses-app streams an answer",
     GLASSES_KEY, {"x-purpose": "assistant"}, "Read this sign to me, please.", True),
    ("glasses-app sends an e-mail address (detected: pii:email)",
     GLASSES_KEY, {}, "Remind me to write to ana@example.org", False),
    ("glasses-app tries to use interaction data for analytics (denied by the zone)",
     GLASSES_KEY, {"x-purpose": "analytics"}, "What did I look at today?", False),
    ("analytics-job sends data labelled public (no zone covers that label: allowed, stays on the US model)",
     ANALYTICS_KEY, {"x-purpose": "analytics", "x-data-labels": "public"}, "Summarise: sales rose 4%.", False),
    ("a call without an API key (anonymous: deny)",
     None, {"x-purpose": "assistant"}, "Hello?", False),
]  # fmt: skip


def config_path() -> Path:
    """The sample policy's file, as installed with the package: the path a newcomer can open or copy."""
    return Path(str(resources.files("proxy").joinpath("demo_config.yaml"))).resolve()


def _config_text() -> str:
    return config_path().read_text(encoding="utf-8")


def _names(items: frozenset[str] | None, anything: str = "any") -> str:
    return ", ".join(sorted(items)) if items else anything


def describe_policy(config: Config) -> str:
    """The sample policy in a few lines: who may call with which key, and what the zones allow."""
    regions = {upstream.name: upstream.region for upstream in config.upstreams}
    lines = [f"the policy ({config_path()}):"]
    ups = ", ".join(f"{u.name} (region {u.region or '-'})" for u in config.upstreams)
    lines.append(f"  upstreams  {ups}; both are the demo model server")
    for i, route in enumerate(config.routes):
        where = f"{route.upstream} (region {regions.get(route.upstream) or '-'})"
        lines.append(f"  {'routes' if i == 0 else '':<9}  model {route.model} -> {where}, "
                     f"for purposes {_names(route.purposes)}")  # fmt: skip
    width = max((len(c.name) for c in config.callers), default=0)
    for i, caller in enumerate(config.callers):
        key = DEMO_KEYS.get(caller.api_key_sha256 or "", "?")
        extra = f"; inputs always labelled {_names(caller.labels)}" if caller.labels else ""
        if caller.default_purpose:
            extra += f"; default purpose {caller.default_purpose}"
        lines.append(f"  {'callers' if i == 0 else '':<9}  {caller.name:<{width}}  key {key:<18}  "
                     f"purposes {_names(caller.purposes)}{extra}")  # fmt: skip
    lines.append(f"  {'' if config.callers else 'callers':<9}  no key: {config.policy.anonymous} "
                 f"(policy.anonymous); policy.mode: {config.policy.mode}")  # fmt: skip
    for i, zone in enumerate(config.zones):
        on_deny = f"reroute:{zone.reroute_to}" if zone.reroute_to else "block"
        lines.append(f"  {'zones' if i == 0 else '':<9}  {zone.name}  labels {_names(zone.labels)}; "
                     f"allowed purposes {_names(zone.allow_purposes)}; regions {_names(zone.regions)}; "
                     f"on_deny {on_deny}")  # fmt: skip
    if config.detectors:
        names = ", ".join(d.name for d in config.detectors)
        lines.append(f"  detectors  {names} (found in the text: adds the label pii:<kind>)")
    return "\n".join(lines)


async def _send(session: aiohttp.ClientSession, base: str, key: str | None, headers: dict[str, str],
                text: str, stream: bool) -> tuple[int, dict[str, str], str]:  # fmt: skip
    headers = dict(headers)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    body = {"model": MODEL, "messages": [{"role": "user", "content": text}], "stream": stream}
    async with session.post(f"{base}/v1/chat/completions", data=orjson.dumps(body), headers=headers) as resp:
        raw = await resp.read()
        if resp.status >= 400:
            answer = orjson.loads(raw)["error"]["message"]
        elif stream:
            pieces = []
            for line in raw.split(b"\n"):
                if line.startswith(b"data: {"):
                    delta = orjson.loads(line[6:])["choices"][0].get("delta", {})
                    pieces.append(delta.get("content") or "")
            answer = "".join(pieces) + f"   ({len(pieces)} chunks)"
        else:
            answer = orjson.loads(raw)["choices"][0]["message"]["content"]
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}, answer


def _outcome(status: int, headers: Mapping[str, str], regions: Mapping[str, str | None]) -> str:
    """One line per call: what the client saw, including where it went (x-lineage-upstream)."""
    upstream = headers.get("x-lineage-upstream", "-")
    where = f"upstream={upstream}"
    if upstream in regions:
        where += f" region={regions[upstream] or '-'}"
    return (f"HTTP {status}  decision={headers.get('x-lineage-decision', '-')}  {where}  "
            f"checkpoint={headers.get('x-lineage-checkpoint', '-')}  labels={headers.get('x-data-labels') or '-'}  "
            f"trace={headers.get('x-trace-id', '-')}")  # fmt: skip


async def _demo(keep: bool, store: str, port: int, temporary: bool) -> int:
    loop = asyncio.get_running_loop()
    # SIGTERM or SIGINT: no more demo calls, --keep ends, the servers stop and the temporary store is deleted; exit 0,
    # as `serve` stops. SIGINT has its own handler, as serve's: one started as a background job of a script (SIGINT
    # ignored at start, so Python raises no KeyboardInterrupt) stops on `kill -INT` too. A second SIGINT raises
    # KeyboardInterrupt as before (exit 130), should the stop hang.
    stop = asyncio.Event()

    def interrupted() -> None:
        stop.set()
        loop.remove_signal_handler(signal.SIGINT)  # back to Python's default_int_handler

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, interrupted)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # held since run_demo began: delivered now
    try:
        return await _serve_demo(keep, store, port, temporary, stop)
    finally:
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        loop.remove_signal_handler(signal.SIGTERM)
        loop.remove_signal_handler(signal.SIGINT)


async def _serve_demo(keep: bool, store: str, port: int, temporary: bool, stop: asyncio.Event) -> int:
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        upstream_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        env = {**os.environ, "DEMO_UPSTREAM": f"http://127.0.0.1:{upstream_port}", "DEMO_STORE": store,
               "DEMO_PORT": str(port)}  # fmt: skip
        config = parse(_config_text(), source=str(config_path()), env=env)
        proxy = open_process(config)
        bound = await start_process(proxy)
        try:
            await asyncio.to_thread(_mark, store)  # (its tables are made: the writer opened it)
            return await _run(proxy, config, f"http://{bound.http}", upstream_port, keep, store, temporary, stop)
        finally:
            await proxy.stop()
    finally:
        await runner.cleanup()


async def _run(proxy: ProxyProcess, config: Config, base: str, upstream_port: int, keep: bool, store: str,
               temporary: bool, stop: asyncio.Event) -> int:  # fmt: skip
    for _ in range(200):  # wait until the upstream's metadata is known (checkpoint from the source)
        if proxy.ready()[0]:
            break
        await asyncio.sleep(0.01)
    kept = "temporary, deleted when the demo exits; pass --store PATH to keep it" if temporary else "kept"
    print(f"demo model server on http://127.0.0.1:{upstream_port}, proxy on {base}")
    print(f"lineage store {store} ({kept})\n")
    print(describe_policy(config))
    print("  to start from it: copy it, and set DEMO_UPSTREAM (your model server's URL) and DEMO_STORE (the lineage "
          "store)\n  or write your values in their place; `lineage-proxy check --config COPY` validates the copy\n")  # fmt: skip
    regions = {upstream.name: upstream.region for upstream in config.upstreams}
    async with aiohttp.ClientSession() as session:
        for title, key, headers, text, stream in CALLS:
            if stop.is_set():  # stopped: what was recorded so far is shown
                break
            status, reply_headers, answer = await _send(session, base, key, headers, text, stream)
            print(f"- {title}")
            print(f"    {_outcome(status, reply_headers, regions)}")
            print(f"    {answer}")
    await proxy.runtime.sinks.flush()
    try:
        reader = SqliteStore(store, readonly=True)
        try:
            rows = reader.rows()
        finally:
            reader.close()
    except (StoreReplaced, UnreadableHere) as exc:  # as the readers say it; until 2026-12-07 a traceback
        raise StartupError(f"lineage store {store}: {exc}") from None
    print(f"\nlineage edges recorded ({len(rows)}):\n")
    print(render_table(rows))
    query = f"lineage-proxy edges --store {shlex.quote(store)}"
    if temporary:
        print("\nto keep a store and query it:\n  lineage-proxy demo --store lineage.db && lineage-proxy edges "
              "--store lineage.db")  # fmt: skip
    else:
        print(f"\nthe store is kept in {store}; query it with:\n  {query}")
    if keep and not stop.is_set():
        body = f'{{"model": "{MODEL}", "messages": [{{"role": "user", "content": "hi"}}]}}'
        print(f"\nstill serving on {base} (Ctrl-C or SIGTERM to stop). Send your own calls as any caller above, e.g.:\n"
              f"  curl -s {base}/v1/chat/completions -H 'Authorization: Bearer {GLASSES_KEY}' "
              f"-H 'x-purpose: assistant' -d '{body}' -i\n"
              f"  curl -s {base}/v1/chat/completions -H 'Authorization: Bearer {ANALYTICS_KEY}' "
              f"-H 'x-purpose: analytics' -H 'x-data-labels: public' -d '{body}' -i\n"
              f"and see the record grow from another terminal: {query}", flush=True)  # fmt: skip
        try:
            await stop.wait()
        except asyncio.CancelledError:  # Ctrl-C
            pass
    return 0


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


_MARK = "demo"  # the key of the row a demo writes in its store's `meta` table: the store is a demo's (`_not_a_demos`)


def _mark(store: str) -> None:
    """Mark `store` (its tables made by the proxy's writer, just started) as a demo's: a row in its `meta` table,
    which no proxy writes and a later `demo --store` looks for (`_not_a_demos`)."""
    with _unblocked(store):
        db = sqlite3.connect(store, timeout=10)
        try:
            with db:
                db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, 'lineage-proxy demo')", (_MARK,))
        finally:
            db.close()


@contextlib.contextmanager
def _unblocked(store: str) -> Iterator[None]:
    """Its body's SQLite opens of `store` with an `Unblocker`, as `serve`'s writer opens it (`opened_whole`): a FIFO
    swapped in where SQLite opens the store or its -journal, -wal or -shm is opened for writing within 0.05 s, and the
    demo refused (StartupError, `replaced as it was opened`), where SQLite's open of it (the -journal, read-only, to
    see whether it is one to roll back) waited for a writer for ever and the demo hung (until 2026-12-07: `_mark`,
    once the proxy's writer had checked and opened the store; `_rows`, reading a store a demo wrote)."""
    unblocker = Unblocker(store)
    try:
        yield
    finally:
        opened_whole(unblocker, "lineage store", store, None)


def _demo_file(store: str) -> str:
    """The file `--store` names, as `serve`'s writer and the readers open it (`sqlite_file`: `file:lineage.db` is
    lineage.db), written so that the demo's config reads it as that file (`./file:x` for a file named `file:x`); a URI
    they refuse (`?mode=ro`, a host) is refused in their words, StartupError. A PostgreSQL URL as given
    (`_not_a_demos`); a file whose name reads as one (`file:postgresql://h/x.db`: a SQLite file to them) as
    `./postgresql://h/x.db`, which it is then refused as (review revrec15). Until 2026-12-07 the demo checked a file
    named `file:lineage.db`, found none, and added its calls to the proxy's record at lineage.db; a refused URI ended it
    with a traceback naming `lineage.store`."""
    if is_database(store):
        return store
    try:
        file = sqlite_file(store)
    except SqliteNameError as exc:
        raise StartupError(f"--store {exc}") from None
    return f"./{file}" if file.startswith("file:") or is_database(file) else file


def _not_a_demos(store: str, given: str | None = None) -> None:
    """Raise StartupError when `store` is not a demo's: a PostgreSQL URL (a fleet's shared record: the demo's store
    is a file, and its calls would be added to that record), a file whose chain is signed with an integrity key (a
    proxy's record: the demo signs nothing, and takes no key), or a file that holds flows while no demo marked it
    (`_mark`: a proxy's own record, `./lineage.db`, whoever its callers are; a store an earlier release's demo
    wrote, unmarked, too). A new or empty file, or a store a demo marked, is used; a file that is no lineage store
    is left to the store's own refusal when it opens. `given`: `--store` as given (a `file:` URI), which it names."""
    named = store if given is None else given
    if is_database(store):
        from proxy.record.postgres import redact  # (psycopg only when used)

        raise StartupError(f"--store {redact(store)}: the demo keeps its record in a file; a PostgreSQL store is "
                           "a proxy's own record, and the demo would add its calls to it. Give a new file, or leave "
                           "out --store for a temporary one")  # fmt: skip
    # where the proxy's writer could not open it, refused in its words before any read of it here: a -journal that is a
    # FIFO beside a store a demo wrote hung `_rows` for ever (SQLite opens it to see whether it is one to roll back)
    require_directory(store, "lineage store")
    try:
        _looked_at(store, named)
    except StoreBusy as exc:  # named as given, as the other refusals name it (review revrec17: `file:x` said as `x`)
        raise StartupError(f"--store {named}: {exc}") from None


def _looked_at(store: str, named: str) -> None:
    """`_not_a_demos`'s looks at the SQLite file `store` (`named` as given); StoreBusy when a lock kept them out."""
    newest = _rows(store, "SELECT hash FROM chain ORDER BY seq DESC LIMIT 1")
    if newest and str(newest[0][0]).startswith(SIGNED):  # its writers had lineage.integrity_key_file
        raise StartupError(f"--store {named}: its record is signed with an integrity key (a proxy's "
                           "lineage.integrity_key_file): a proxy's own record, not a demo's. The demo signs nothing "
                           "and takes no key (an unsigned entry on top of signed ones would leave that record "
                           "unverifiable). Give a new file (or one an earlier demo wrote), or leave out --store for "
                           "a temporary one")  # fmt: skip
    flows, callers = _flows(store)  # none: a new or empty file, an empty store, or no store (the writer says why)
    if not flows:
        return
    if not _rows(store, "SELECT 1 FROM meta WHERE key = ?", (_MARK,)):  # (no meta table: a store of an early release)
        names = ", ".join(callers[:5]) + (", ..." if len(callers) > 5 else "")
        raise StartupError(f"--store {named}: it holds {flows} flow(s) the demo did not write (callers {names}): "
                           "no demo marked it. The demo would add its calls to that record. Give a new file (or one "
                           "an earlier demo of this release wrote), or leave out --store for a temporary one")  # fmt: skip


def _flows(store: str) -> tuple[int, list[str]]:
    """How many flows `store`'s edges hold and the first callers they name (six at most), when it is a SQLite file
    with an edges table; else none."""
    found = _rows(store, "SELECT count(*) FROM edges")
    callers = _rows(store, "SELECT DISTINCT caller FROM edges ORDER BY 1 LIMIT 6")
    return (int(found[0][0]) if found else 0), [str(row[0]) for row in callers]


def _rows(store: str, query: str, parameters: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
    """The rows `query` reads from `store`, opened read-only; none when it is no SQLite file (or a new, empty one),
    or has not the table asked."""
    if not Path(store).is_file() or Path(store).stat().st_size == 0:
        return []
    with _unblocked(store):
        try:
            db = sqlite3.connect(f"{Path(store).resolve().as_uri()}?mode=ro", uri=True, timeout=READ_WAIT_S)
            try:
                return db.execute(query, parameters).fetchall()
            finally:
                db.close()
        except sqlite3.Error as exc:
            # a lock held past the wait is no answer: taken as none, it let a proxy's own record, locked as the demo
            # looked (its three reads 5 s each, then the writer's open), pass as a new file (until 2026-12-07)
            if isinstance(exc, sqlite3.OperationalError) and is_busy(exc):
                raise busy(store, exc, READ_WAIT_S, reader=True, then="nothing was read: run the demo again") from None
            return []


def run_demo(keep: bool = False, store: str | None = None, port: int = 0) -> int:
    """Run the demo; the proxy listens on 127.0.0.1:`port` (0: any free port). Raises StartupError, also for a
    `store` holding flows a demo did not write (`_not_a_demos`). A SIGTERM
    or SIGINT is held until the loop handles it (then it stops the demo), so it never ends the process before
    cleanup."""
    if store is not None:
        given, store = store, _demo_file(store)
        _not_a_demos(store, given)
    install_uvloop()
    held = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        if store is not None:
            return asyncio.run(_demo(keep, store, port, temporary=False))
        with tempfile.TemporaryDirectory(prefix="lineage-demo-") as tmp:
            return asyncio.run(_demo(keep, os.path.join(tmp, "lineage.db"), port, temporary=True))
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
