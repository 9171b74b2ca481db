"""With `serve --workers N`, a `POST /lora-adapters` relayed through one worker made only that worker read the
adapters' scales again (and hold them stale until it had): the other workers recorded, and checked, their calls with
the scales read before until their next discovery round (`discovery_interval_s`, a minute by default), calls served
by the new mix named as the old one, and `block` approving them. The workers now count such changes in memory they
share (`checkpoints.Changes`): a worker whose call depends on scales another worker's POST changed holds them stale
(`+lora:?`) and reads them again, as the worker that relayed it does."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Any

import httpx

from proxy import checkpoints
from proxy.config import parse
from proxy.protocols import Fetch
from tests.harness import proxy_error
from tests.test_llama_lora import ADAPTERS, BASE, DEFAULT, LLAMA_SERVER
from tests.test_llama_lora_scales_set import llama_server as llama_server
from tests.test_workers import Serve

ROOT = Path(__file__).resolve().parent.parent
CALLS_MAX = 400  # calls on new connections until each worker answered: the kernel spreads them, not evenly
NEW = "org/gemma-3+lora:sql.gguf:0.25"  # what serves once the POST below set the scales
UNKNOWN = "org/gemma-3+lora:?"  # the scales set, not read since

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - {name: llamacpp, url: "%s", discovery_interval_s: 600}
routes:
  - {model: "*", upstream: llamacpp}
policy:
  anonymous: allow
  default_purpose: assistant
logging: {format: text, access: true}
lineage:
  store: %s
"""
TWO = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: llamacpp, url: "http://127.0.0.1:1"}, {name: plain, url: "http://127.0.0.1:2"}]
routes: [{model: "*", upstream: llamacpp}]
"""
BODY = {"model": "gemma", "messages": [{"role": "user", "content": "hi"}]}


class Workers:
    """`serve --workers 2` and the calls made to it, one at a time, each on a new connection (either worker may take
    it: the kernel spreads them): which worker answered each, from its access line."""

    def __init__(self, config: Path) -> None:
        # the workers import this copy's code, not the one the venv has installed
        path = str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
        self.serve = Serve.workers(config, 2, env={"PYTHONPATH": path})
        self.url = f"http://{self.serve.ready()['http']}"
        self.pids = set(self.serve.children())
        assert len(self.pids) == 2, self.pids
        self.answered = 0

    def call(self, method: str, path: str, body: object) -> tuple[int, httpx.Response]:
        """One call: the worker that answered (the `answered`-th access line: one call at a time), and the reply."""
        reply = httpx.request(method, f"{self.url}{path}", json=body, timeout=10)
        self.answered += 1
        line = self.serve.wait(" lineage_proxy.access", self.answered)[-1]
        found = re.search(r"\[(\d+)\] lineage_proxy.access", line)
        assert found is not None, line
        assert int(found.group(1)) in self.pids, (line, self.pids)
        return int(found.group(1)), reply

    def both_read(self) -> None:
        """Calls until each worker answered one, with the scales it read (the server's own: DEFAULT)."""
        seen: set[int] = set()
        for _ in range(CALLS_MAX):
            pid, reply = self.call("POST", "/v1/chat/completions", BODY)
            assert reply.status_code == 200 and reply.headers["x-lineage-checkpoint"] == DEFAULT, reply.headers
            seen.add(pid)
            if seen == self.pids:
                return
        raise AssertionError(f"{CALLS_MAX} calls on new connections all answered by {seen}")

    def set_scales(self) -> int:
        """sql.gguf at 0.25, med.gguf (not named) at 0, through whichever worker takes it: the other one's pid."""
        relayed, reply = self.call("POST", "/lora-adapters", [{"id": 0, "scale": 0.25}])
        assert reply.status_code == 200 and reply.json() == {"success": True}, reply.text
        (other,) = self.pids - {relayed}
        return other


def test_scales_set_through_one_worker_are_read_again_by_every_worker(llama_server: str, tmp_path: Path) -> None:
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG % (llama_server, tmp_path / "lineage.db"))
    workers = Workers(config)
    try:
        workers.both_read()
        other = workers.set_scales()
        after: dict[int, list[str]] = {pid: [] for pid in workers.pids}
        for _ in range(CALLS_MAX):  # until the other worker answered with the scales set (held unknown meanwhile)
            pid, reply = workers.call("POST", "/v1/chat/completions", BODY)
            assert reply.status_code == 200, reply.text
            after[pid].append(reply.headers["x-lineage-checkpoint"])
            if after[other] and after[other][-1] == NEW:
                break
        # the other worker never named the mix the server no longer applies (it did, for ten minutes)
        assert DEFAULT not in after[other], after
        assert after[other] and set(after[other]) <= {UNKNOWN, NEW} and after[other][-1] == NEW, after
        (relayed,) = workers.pids - {other}
        assert set(after[relayed]) <= {NEW}, after
        assert workers.serve.stop() == 0, "".join(workers.serve.err)
    finally:
        workers.serve.end()


def test_block_refuses_scales_set_through_another_worker(llama_server: str, tmp_path: Path) -> None:
    """`block` with the server's own scales approved: once a client set others through one worker, no worker lets a
    call through checked as served by the scales approved (the other one did, for ten minutes)."""
    approved = tmp_path / "approved.yaml"
    approved.write_text(
        f"version: 1\nflows:\n  - {{caller: anonymous, purpose: assistant, checkpoints: ['{DEFAULT}']}}\n"
    )
    config = tmp_path / "proxy.yaml"
    config.write_text(
        CONFIG % (llama_server, tmp_path / "lineage.db") + f"  baseline: {approved}\n  on_unapproved: block\n"
    )
    workers = Workers(config)
    try:
        workers.both_read()
        other = workers.set_scales()
        codes: dict[int, list[str]] = {pid: [] for pid in workers.pids}
        for _ in range(CALLS_MAX):  # until the other worker refused a call as served by the scales set (read again)
            pid, reply = workers.call("POST", "/v1/chat/completions", BODY)
            assert reply.status_code != 200, (pid, other, reply.headers)  # was 200 on the other worker: DEFAULT
            codes[pid].append(proxy_error(reply)["code"])
            if codes[other] and codes[other][-1] == "flow_not_approved":
                break
        assert set(codes[other]) <= {"checkpoint_unknown", "flow_not_approved"}, codes
        assert codes[other] and codes[other][-1] == "flow_not_approved", codes
        assert workers.serve.stop() == 0, "".join(workers.serve.err)
    finally:
        workers.serve.end()


def test_books_sharing_changes_hold_scales_another_set_stale_until_read() -> None:
    """Two workers' books, in one process: a change one counts makes the other's scales stale at its next `resolve`
    (the call checked as served by weights not known, `+lora:?`), asks it for a round, and that round reads them; an
    upstream without adapters, nothing depends on: not made stale, its calls as before."""
    config = parse(TWO, source="t.yaml")
    lora, plain = config.upstreams
    scales: list[Any] = [ADAPTERS]

    async def get_json(upstream: Any, path: str) -> Any:
        if path == "/v1/models":
            return {"object": "list", "data": [LLAMA_SERVER]}
        if upstream.name == "plain":
            raise checkpoints.MetadataStatus(404, path)  # a llama-server started without --lora
        return scales[0]

    async def main() -> None:
        changes = checkpoints.Changes()
        one, other = (checkpoints.CheckpointBook(config.upstreams, Fetch(get_json), changes=changes) for _ in "12")
        for book in (one, other):
            for upstream in (lora, plain):
                await book.refresh(upstream)
        assert other.resolve(lora, "x", learn=False).name == DEFAULT  # type: ignore[union-attr]
        scales[0] = [{**ADAPTERS[0], "scale": 0.25}, {**ADAPTERS[1], "scale": 0.0}]
        one.changed(lora)  # (a POST /lora-adapters relayed by the other worker: no round runs in this test)
        one.changed(plain)
        found = other.resolve(lora, "x", learn=False)
        assert found is not None and found.name == BASE + "+lora:?" and found.unsure, found
        assert other.stale("llamacpp") and other.incomplete["llamacpp"]
        assert other.resolve(plain, "x", learn=False).name == BASE  # type: ignore[union-attr]
        assert not other.stale("plain")
        await other.refresh(lora)
        found = other.resolve(lora, "x", learn=False)
        assert found is not None and found.name == NEW and not found.unsure, found
        assert not other.stale("llamacpp") and not other.incomplete["llamacpp"]

    asyncio.run(main())
