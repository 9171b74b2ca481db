"""A process writes its log lines with one thread (`proxy.logs._Writer`), whoever logs: a signal handler that logs
(SIGTERM's, SIGHUP's) runs in the main thread between two of its instructions, and in a line's `put` (the lock is
reentrant for it) it could come while the first line was starting the writer's thread, before that thread was
kept: it started a second one. Two threads took the lines in turns and wrote them at once: out of order, and a long
line (past PIPE_BUF) in pieces among another's."""

from __future__ import annotations

import os
import threading

import pytest

from proxy import logs


def test_a_line_logged_while_the_first_starts_the_thread_starts_no_second(monkeypatch: pytest.MonkeyPatch) -> None:
    read_end, write_end = os.pipe()
    writer = logs._Writer(write_end, logs.WholeLineHandler())  # (the handler only formats the drops line)
    made: list[threading.Thread] = []
    init = threading.Thread.__init__

    def made_while_a_signal_logs(thread: threading.Thread, *args: object, **kwargs: object) -> None:
        made.append(thread)
        if len(made) == 1:  # a signal handler runs here, in the main thread, and logs
            writer.put(b"from the signal handler\n")
        init(thread, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(threading.Thread, "__init__", made_while_a_signal_logs)
    writer.put(b"the first line\n")
    monkeypatch.undo()
    assert writer.flush(10)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as lines:
        assert sorted(lines.read().splitlines()) == [b"from the signal handler", b"the first line"]
    assert len(made) == 1, f"{len(made)} writer threads started"
