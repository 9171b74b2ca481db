"""proxy/files.py: a file the config names, read whole; a FIFO read without blocking the interpreter's signal
checks, whatever its writer hands over (a secret through a pipe: `password_file: <(pass show db)`)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from proxy.files import read_bytes


def _writer(fifo: Path, pieces: list[bytes]) -> threading.Thread:
    """A writer that opens the FIFO (waiting, in the kernel, for the reader), writes `pieces` and closes it."""

    def write() -> None:
        fd = os.open(fifo, os.O_WRONLY)
        try:
            for piece in pieces:
                os.write(fd, piece)
        finally:
            os.close(fd)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(
    "pieces",
    [[b"s3cret\n"], [b"s3c", b"ret\n"], [b"x" * 200_000], []],
    ids=["one-write", "two-writes", "more-than-a-pipe-holds", "nothing"],
)
def test_a_fifo_gives_what_its_writer_wrote_until_it_closes(tmp_path: Path, pieces: list[bytes]) -> None:
    fifo = tmp_path / "secret"
    os.mkfifo(fifo)
    writer = _writer(fifo, pieces)
    assert read_bytes(fifo) == b"".join(pieces)
    writer.join()


def test_a_regular_file_and_a_missing_one(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_bytes(b"k" * 40)
    assert read_bytes(path) == b"k" * 40
    with pytest.raises(FileNotFoundError):
        read_bytes(tmp_path / "absent")
