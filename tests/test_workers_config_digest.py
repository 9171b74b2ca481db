"""Which config each process runs, by the digest of its file (the first 12 hex digits of its sha256, as
`sha256sum FILE | cut -c1-12` prints them): in the lines that say it serves or reloaded (`config_sha256`), and on
/metrics as `lineage_proxy_config_info{process,digest}`, with `--workers N` for every worker serving whichever answers
the scrape. Nothing said it before: after a reload an operator could not tell whether each worker had taken it."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import LoopThread, serving
from tests.test_workers import WAIT_S, Serve, SlowMetadata, alive, config_file
from tests.test_workers_reload_one_config import all_serving, config_for


def sha256sum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def configs(text: str) -> dict[str, str]:
    """`lineage_proxy_config_info`'s series in an exposition: process -> digest (each 1)."""
    found = {}
    for family in text_string_to_metric_families(text):
        if family.name == "lineage_proxy_config_info":
            for sample in family.samples:
                assert sample.value == 1, sample
                found[sample.labels["process"]] = sample.labels["digest"]
    return found


def scraped(serve: Serve, address: str | None = None) -> dict[str, str]:
    """`lineage_proxy_config_info` as a scrape of `address` (the HTTP listener's unless said) finds it."""
    reply = httpx.get(f"http://{address or serve.ready()['http']}/metrics", timeout=10)
    assert reply.status_code == 200, reply.text
    return configs(reply.text)


def test_each_worker_says_and_shows_the_digest_of_the_config_it_runs(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config, text = config_for(vllm, tmp_path)
    started = sha256sum(config)
    serve = Serve.workers(config, env={"TMPDIR": str(tmp_path)})
    try:
        all_serving(serve)
        lines = serve.wait("lineage_proxy: serving http=", 3)
        # the supervisor's too, once its workers serve (until 2026-12-05 it said no digest)
        assert [f"config_sha256={started}" in line for line in lines] == [True] * 3, lines
        assert sum("supervisor[" in line for line in lines) == 1, lines
        assert scraped(serve) == {"worker-1": started, "worker-2": started}
        config.write_text(text.replace("FORMAT", "json").replace("PURPOSE", "support"))
        reloaded = sha256sum(config)
        serve.proc.send_signal(signal.SIGHUP)
        lines = serve.wait(f'"message":"reloaded {config}"', 2)
        assert [orjson.loads(line)["config_sha256"] for line in lines] == [reloaded, reloaded], lines
        assert scraped(serve) == {"worker-1": reloaded, "worker-2": reloaded}
        os.kill(serve.children()[0], signal.SIGKILL)  # restarted on the config its siblings run
        restarted = orjson.loads(serve.wait('"message":"serving http=', 1)[0])
        assert restarted["config_sha256"] == reloaded, restarted
        assert scraped(serve) == {"worker-1": reloaded, "worker-2": reloaded}
        assert serve.stop() == 0, "".join(serve.err)
    finally:
        serve.end()


def test_one_process_shows_the_digest_of_the_config_it_runs(make_proxy, vllm, loop_thread: LoopThread,
                                                            tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    config, text = config_for(vllm, tmp_path)
    proxy = make_proxy(config.read_text())  # (its text parsed as the file's bytes are)
    assert configs(proxy.process.metrics_text()) == {"proxy": sha256sum(config)}
    config.write_text(text.replace("FORMAT", "text").replace("PURPOSE", "support"))

    async def reload() -> bool:
        return bool(proxy.process.reload(str(config)))

    assert loop_thread.run(reload())
    assert configs(proxy.process.metrics_text()) == {"proxy": sha256sum(config)}  # the new one's alone


def test_a_worker_that_died_shows_no_config_while_the_supervisor_starts_another(  # type: ignore[no-untyped-def]
    loop_thread: LoopThread, tmp_path: Path
) -> None:
    """A worker that died is not reaped while the supervisor waits for another worker's start (up to
    `worker_stall_s` + its grace): its slot still named it, and every scrape showed it serving the config it died with,
    after a reload too, beside its siblings on the new one (`count by (digest)` said they differ). Found by the review
    of the change that added the series (helper revworkers)."""
    server = SlowMetadata()
    with serving(loop_thread, server.app()) as upstream:
        config = config_file(tmp_path, upstream)
        config.write_text(config.read_text().replace("timeout_s: 10", "timeout_s: 60"))  # the start waits this long
        serve = Serve.workers(config, 3)
        try:
            admin = serve.ready()["admin"]
            serve.wait("lineage_proxy: serving http=", 4)
            server.hang = True
            first, second, _ = sorted(serve.children())
            os.kill(first, signal.SIGKILL)  # restarted: its replacement waits for the upstream's metadata
            serve.wait("waiting up to")
            os.kill(second, signal.SIGKILL)  # dead, not reaped while the supervisor waits for that start
            deadline = time.monotonic() + WAIT_S
            while alive(second):
                assert time.monotonic() < deadline, "a SIGKILLed worker still runs"
            assert list(scraped(serve, admin).values()) == [sha256sum(config)]  # the one worker serving
            config.write_text(config.read_text().replace("assistant", "support"))
            serve.proc.send_signal(signal.SIGHUP)
            serve.wait(f"reloaded {config}")
            assert list(scraped(serve, admin).values()) == [sha256sum(config)]
        finally:
            server.hang = False
            serve.end()
