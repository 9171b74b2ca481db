"""`--workers 2` with `exporter: console` behind a stdout nobody reads: one worker's export is stalled in its write, the
other's batch waits for the record lock the workers take turns by. A reload's stop gives up on both after
`export_timeout_s` and counts them lost. Once stdout was read again, both went out: the waiting one too, which the
kernel's wait for the lock could not give up on, so one batch a process was written after being counted lost. Now a
batch waiting for another process's turn asks for the lock without waiting, and is dropped once its stop gives up:
one batch in all is written so, the one being written when the stop gave up."""

from __future__ import annotations

import re
import signal
import threading
import time
from pathlib import Path

import httpx

from tests.record.test_console_spans_whole import CONFIG, WAIT_S, Piped, load, spans_of

LOST = re.compile(r"(worker-\d)\[\d+\].* (\d+) spans? not exported at shutdown: an export was still in flight")


def _counted(admin: str) -> dict[str, int]:
    text = httpx.get(f"http://{admin}/metrics", timeout=WAIT_S).text
    return {kind: int(float(re.search(rf"^lineage_proxy_spans_{kind}_total (\S+)$", text, re.M).group(1)))  # type: ignore[union-attr]
            for kind in ("exported", "dropped", "export_failed")}  # fmt: skip


def test_one_batch_in_all_reaches_stdout_after_being_counted_lost(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    # a queue of one span: each span a batch of its own, taken as it comes (the others dropped, counted)
    written = (CONFIG.replace("{http: 127.0.0.1:0}", "{http: 127.0.0.1:0, admin: 127.0.0.1:0}")
               .replace("{exporter: console}", "{exporter: console, export_timeout_s: 1, queue_size: 1, "
                        "service_name: s0}"))  # fmt: skip
    config.write_text(written)
    serve = Piped(config, {"UPSTREAM": upstream, "STORE": str(tmp_path / "l.db")}, "--workers", "2",
                  non_blocking=False, stderr_too=False, read_at_once=False)  # fmt: skip
    said: list[str] = []
    heard = threading.Condition()

    def pump() -> None:
        assert serve.proc.stderr is not None
        for line in serve.proc.stderr:
            with heard:
                said.append(line.decode())
                heard.notify_all()

    threading.Thread(target=pump, daemon=True).start()

    def lost() -> dict[str, int]:
        return {found[1]: int(found[2]) for line in said if (found := LOST.search(line))}

    try:
        calls = len(load(serve.url, 64))  # each span ~13 KB, the pipe 4096 bytes: the first write stalls
        config.write_text(written.replace("service_name: s0", "service_name: s1"))
        serve.proc.send_signal(signal.SIGHUP)  # each worker's exporter stopped, given up on after 1 s
        with heard:
            assert heard.wait_for(lambda: len(lost()) == 2, WAIT_S), "".join(said)
        # every span counted, by each worker's count as the scrape's worker reads it (within a second)
        deadline = time.monotonic() + WAIT_S
        while sum((counted := _counted(serve.addresses["admin"])).values()) != calls:
            assert time.monotonic() < deadline, (counted, calls)
            time.sleep(0.1)  # a poll of what the workers share, not a synchronisation of the proxy's
        serve.reading.set()  # stdout read again: what still waits to be written goes out now
        serve.proc.send_signal(signal.SIGTERM)
        assert serve.proc.wait(WAIT_S) == 0
    finally:
        serve.reading.set()
        if serve.proc.poll() is None:
            serve.proc.kill()
    lines = []
    while (line := serve.lines.get(timeout=WAIT_S)) != "<eof>":
        lines.append(line)
    spanned, broken = spans_of(lines)
    assert not broken
    # each worker had a batch in flight (the stalled write's, and the one waiting for the lock): 1 span each
    assert sorted(lost()) == ["worker-1", "worker-2"], lost()
    # of the spans counted lost, only the one being written reached stdout
    assert len(spanned) - counted["exported"] == 1, (len(spanned), counted, lost())
