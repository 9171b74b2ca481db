"""A record lock the file system refuses (NFS without lockd answers ENOLCK) costs the lock, not the line: the
writes go on unlocked, as when no lock file could be made. Stood in for by a lock file opened read-only, on which
an exclusive `lockf` is refused (EBADF), as a refusing file system refuses it."""

from __future__ import annotations

import os
from pathlib import Path

from proxy import logs


def test_a_refused_record_lock_writes_the_line_unlocked_and_keeps_writing(tmp_path: Path) -> None:
    lock_file = tmp_path / "lock"
    lock_file.write_bytes(b"")
    read_only = os.open(lock_file, os.O_RDONLY)
    lock = logs._ForkLock()
    lock.fd = read_only
    read_end, write_end = os.pipe()
    try:
        lock.write(write_end, b"first line\n")
        lock.write(write_end, b"second line\n")
        os.close(write_end)
        with os.fdopen(read_end, "rb") as reader:
            assert reader.read() == b"first line\nsecond line\n"
        assert lock.fd is None  # not asked again at every line
    finally:
        os.close(read_only)
