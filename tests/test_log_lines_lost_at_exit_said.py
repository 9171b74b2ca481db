"""Log lines still held when a process exits, after the 5 s it waits for stderr to take them (`logs.EXIT_WAIT_S`),
were lost unsaid. Those still waiting are now dropped, counted in `lineage_proxy_log_lines_dropped_total` and said in
one line in their place, which gets out once the line being written is (when stderr is read, however slowly)."""

from __future__ import annotations

import fcntl
import logging
import os
import re
import select

import pytest

from proxy import logs


def test_lines_still_held_at_exit_are_said_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "EXIT_WAIT_S", 0.2)  # how long the exit waits: here nothing reads, so it ends waiting
    monkeypatch.setattr(logs, "EXIT_SAY_S", 0.1, raising=False)
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
    flags = fcntl.fcntl(write_end, fcntl.F_GETFL)
    fcntl.fcntl(write_end, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    filled = 0
    try:
        while True:  # stderr full, to the last byte: nothing reads it
            filled += os.write(write_end, b"f")
    except BlockingIOError:
        pass
    fcntl.fcntl(write_end, fcntl.F_SETFL, flags)
    stream = os.fdopen(write_end, "w")
    handler = logs.WholeLineHandler(stream)
    handler.setFormatter(logs.TextFormatter())
    logger = logging.getLogger("lineage_proxy.test_lost_at_exit")
    logger.propagate = False
    logger.addHandler(handler)
    dropped_before = logs.dropped()
    try:
        logger.warning("line 000")  # the writer takes it, and waits for room
        writer = handler._writer
        assert writer is not None
        with writer._cond:
            assert writer._cond.wait_for(lambda: writer._busy and not writer._lines, 30)
        for i in range(1, 200):  # held behind it
            logger.warning("line %03d", i)
        handler.flush()  # as `logging.shutdown` at exit: waits EXIT_WAIT_S, nothing reads
        assert logs.dropped() - dropped_before == 199  # counted as they are dropped, while nothing reads
        received = b""
        while b"not written" not in received:  # stderr read again (slowly, after the wait): the line saying it
            assert select.select([read_end], [], [], 30)[0], received[-300:]
            chunk = os.read(read_end, 65536)
            assert chunk, received[-300:]  # before: the 199 lines, still held, and no line saying anything
            received += chunk
            assert b"line 199" not in received, "the lines held were written after the exit's wait"
    finally:
        os.close(read_end)
        logger.removeHandler(handler)
        stream.close()
    text = received.decode()
    assert text.startswith("f" * filled)
    assert [line for line in text.splitlines() if " line " in line and line.endswith("line 000")]
    said = re.findall(r"(\d+) log lines \(access lines among them\) still held at exit were not written", text)
    assert said == ["199"], text[-500:]
