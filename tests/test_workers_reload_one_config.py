"""`serve --workers N`: a SIGHUP gives every worker the same config. Each worker read the config file itself: a file
written in place (an editor, config management) or changed between the workers' reads left them on different configs
until the next SIGHUP, the same call decided differently by the worker the kernel gave its connection to; a config
handed over through a FIFO reached one reader of the three (the supervisor and two workers), the others refused an
empty file. The supervisor now reads it once and hands the same bytes to every worker (`loader.hand_over`).

Which config a worker runs shows in its own lines: the reload changes `logging.format`, which a worker applies before
it says `reloaded`, so its line is JSON under the config handed over and text under the one written after it."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.test_workers import WAIT_S, Serve

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: origin, url: "UPSTREAM"}]
routes: [{model: "*", upstream: origin}]
policy: {anonymous: allow, default_purpose: PURPOSE}
lineage: {store: "STORE"}
limits: {drain_timeout_s: 2}
logging: {format: FORMAT}
"""


def config_for(vllm: Any, tmp_path: Path) -> tuple[Path, str]:
    """proxy.yaml from CONFIG in front of `vllm` (its lines in text, its purpose `assistant`), and CONFIG with the
    upstream and store filled in, its FORMAT and PURPOSE left for a reload's."""
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    text = CONFIG.replace("UPSTREAM", upstream).replace("STORE", str(tmp_path / "lineage.db"))
    config.write_text(text.replace("FORMAT", "text").replace("PURPOSE", "assistant"))
    return config, text


def all_serving(serve: Serve) -> list[int]:
    """The workers, once the supervisor and both workers serve."""
    serve.ready()
    serve.wait("lineage_proxy: serving http=", 3)
    return serve.children()


def _reloaded(serve: Serve, config: Path) -> list[dict[str, str]]:
    """The workers' `reloaded` lines, each as a JSON object (one written in text fails here: another config)."""
    lines = serve.wait(f"reloaded {config}", 2)
    records = []
    for line in lines:
        assert line.startswith("{"), f"a worker reloaded another config (its line in text):\n{''.join(serve.err)}"
        records.append(orjson.loads(line))
    return records


def test_a_config_written_between_the_workers_reads_is_not_what_one_of_them_runs(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config, text = config_for(vllm, tmp_path)
    serve = Serve.workers(config, env={"TMPDIR": str(tmp_path)})
    try:
        held, other = all_serving(serve)
        # one worker's read held: stopped before the SIGHUP, it takes it (and reads) only once continued
        os.kill(held, signal.SIGSTOP)
        try:
            config.write_text(text.replace("FORMAT", "json").replace("PURPOSE", "support"))
            serve.proc.send_signal(signal.SIGHUP)
            serve.wait(f'"message":"reloaded {config}"', 1)  # the other worker read it, and runs it
            # written in place, after that read and before the held worker's: the next SIGHUP's
            config.write_text(text.replace("FORMAT", "text").replace("PURPOSE", "analytics"))
        finally:
            os.kill(held, signal.SIGCONT)
        records = _reloaded(serve, config)
        assert {record["process"] for record in records} == {"worker-1", "worker-2"}, records
        # a worker restarted later runs it too (the supervisor's `running`): its lines in JSON
        os.kill(other, signal.SIGKILL)
        serve.wait("restarting it")
        serve.wait('"message":"serving http=', 1)
        assert serve.stop() == 0, "".join(serve.err)
    finally:
        serve.end()


def test_a_config_handed_over_through_a_fifo_reaches_every_worker(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    config = tmp_path / "proxy.pipe"
    os.mkfifo(config)
    text = CONFIG.replace("UPSTREAM", upstream).replace("STORE", str(tmp_path / "lineage.db"))

    def write(content: str) -> threading.Thread:
        def writing() -> None:
            with open(config, "w") as pipe:  # waits for a reader; its close is the reader's end of file
                pipe.write(content)

        thread = threading.Thread(target=writing, daemon=True)
        thread.start()
        return thread

    start = write(text.replace("FORMAT", "text").replace("PURPOSE", "assistant"))
    serve = Serve.workers(config, env={"TMPDIR": str(tmp_path)})
    try:
        serve.ready()
        start.join(WAIT_S)
        serve.wait("lineage_proxy: serving http=", 3)
        serve.proc.send_signal(signal.SIGHUP)
        reload = write(text.replace("FORMAT", "json").replace("PURPOSE", "support"))  # written once, as for one process
        records = _reloaded(serve, config)
        assert {record["process"] for record in records} == {"worker-1", "worker-2"}, records
        reload.join(WAIT_S)
        assert serve.stop() == 0, "".join(serve.err)
    finally:
        serve.end()  # (a failed test's writer still waiting is a daemon thread)
    assert "reload refused" not in "".join(serve.err), "".join(serve.err)


def test_a_config_that_cannot_be_read_is_refused_by_every_worker_in_the_words_of_the_file(tmp_path: Path) -> None:
    from proxy.config.loader import Handover, hand_over, load, load_handed
    from proxy.errors import ConfigError

    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("UPSTREAM", "http://127.0.0.1:9").replace("STORE", str(tmp_path / "l.db"))
                      .replace("FORMAT", "json").replace("PURPOSE", "support"))  # fmt: skip
    handover = Handover()
    try:
        assert handover.take() is None  # none handed over yet (a worker loads the file itself)
        read = hand_over(str(config))
        handover.put(read, read)
        config.unlink()
        handed = handover.take()
        assert handed is not None and handed.newest == read and handed.accepted == read
        assert load_handed(handed.newest, str(config)).policy.default_purpose == "support"  # what was handed over
        handover.put(hand_over(str(config)), read)  # gone: why, handed over, with the last config accepted
        try:
            load(config)
        except ConfigError as exc:
            said = exc.problems
        handed = handover.take()
        assert handed is not None and handed.accepted == read
        try:
            load_handed(handed.newest, str(config))
        except ConfigError as exc:
            assert exc.problems == said and "cannot read" in said[0], (exc.problems, said)
        else:
            raise AssertionError("a config that could not be read was loaded")
    finally:
        handover.close()


def test_hand_overs_are_read_whole_whichever_record_they_overwrite() -> None:
    from proxy.config import loader

    handover = loader.Handover()
    try:
        for size in (10, loader._SPAN // 3, loader._SPAN // 2, loader._SPAN * 2, 10, loader._SPAN * 2, 7):
            newest, accepted = b"=" + b"n" * size, b"=" + b"a" * (size // 2)
            handover.put(newest, accepted if size % 2 else None)
            handed = handover.take()
            assert handed is not None and handed.newest == newest
            assert handed.accepted == (accepted if size % 2 else None)
        # a record being written under the reader's eyes (its bytes torn): read again, then refused saying so
        _, offset = loader._HEADER.unpack(os.pread(handover.fd, loader._HEADER.size, 0))
        os.pwrite(handover.fd, b"torn", offset + loader._RECORD.size + 2)
        saved, loader._TRIES = loader._TRIES, 3
        try:
            handover.take()
        except loader.ConfigError as exc:
            assert "could not be read whole" in exc.problems[0], exc.problems
        else:
            raise AssertionError("a torn hand-over was read")
        finally:
            loader._TRIES = saved
    finally:
        handover.close()


def test_without_memfd_a_hand_over_is_a_file_with_no_name_each_worker_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from proxy.config import loader

    def refused(*_args: object) -> int:  # (a seccomp profile that refuses memfd_create; a system without it)
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "memfd_create", refused)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    handover = loader.Handover()
    try:
        assert os.readlink(f"/proc/self/fd/{handover.fd}").endswith("(deleted)") and not list(tmp_path.iterdir())
        handover.put(b"=secret-newest", b"=secret-accepted")
        assert not list(tmp_path.iterdir())  # nothing named in the temporary directory
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # a worker forked after: it inherits the hand-over open
            try:
                handed = handover.take()
                ok = handed is not None and (handed.newest, handed.accepted) == (b"=secret-newest", b"=secret-accepted")
                os.write(write, b"ok" if ok else b"no")
            finally:
                os._exit(0)
        os.close(write)
        try:
            assert os.read(read, 2) == b"ok"
        finally:
            os.close(read)
            os.waitpid(child, 0)
    finally:
        handover.close()
