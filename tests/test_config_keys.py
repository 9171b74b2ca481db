"""`lineage.integrity_key_file` must hold a key worth signing with, and its problems say how to make one."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config import parse
from proxy.errors import ConfigError


def problems(tmp_path: Path, setting: str, path: Path) -> list[str]:
    text = f"""
listen: {{http: 127.0.0.1:0}}
upstreams: [{{name: u, url: "http://127.0.0.1:9"}}]
routes: [{{model: "*", upstream: u}}]
policy: {{anonymous: allow, default_purpose: assistant}}
lineage: {{store: "{tmp_path / "lineage.db"}", {setting}: "{path}"}}
"""
    try:
        parse(text, env={})
    except ConfigError as exc:
        return [problem for problem in exc.problems if problem.startswith(f"lineage.{setting}:")]
    return []


def test_a_short_key_is_refused_with_how_to_make_one(tmp_path: Path) -> None:
    key = tmp_path / "chain.key"
    key.write_bytes(b"k\n")
    assert problems(tmp_path, "integrity_key_file", key) == [
        f"lineage.integrity_key_file: the key in {str(key)!r} is 1 byte: a key needs at least 16 (surrounding "
        f"whitespace aside); make one readable only by you with `(umask 077; head -c 32 /dev/urandom > {key})`"
    ]
    key.write_bytes(b" fifteen bytes!! \n")  # 15 once its whitespace is stripped, as the writers strip it
    assert "is 15 bytes" in problems(tmp_path, "integrity_key_file", key)[0]


def test_a_key_of_16_bytes_or_more_is_taken(tmp_path: Path) -> None:
    key = tmp_path / "chain.key"
    key.write_bytes(b"0123456789abcdef")
    assert problems(tmp_path, "integrity_key_file", key) == []


@pytest.mark.parametrize(("content", "why"), [(None, "No such file or directory"), (b" \n", "the file is empty")])
def test_an_unreadable_key_says_why(tmp_path: Path, content: bytes | None, why: str) -> None:
    key = tmp_path / "chain.key"
    if content is not None:
        key.write_bytes(content)
    assert problems(tmp_path, "integrity_key_file", key) == [
        f"lineage.integrity_key_file: cannot read a key from {str(key)!r}: {why} (make one readable only by you with "
        f"`(umask 077; head -c 32 /dev/urandom > {key})`)"
    ]


def test_a_key_file_that_is_a_directory_says_so_without_suggesting_to_overwrite_it(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, "integrity_key_file", tmp_path)
    assert found == f"lineage.integrity_key_file: cannot read a key from {str(tmp_path)!r}: Is a directory"


def test_an_unreadable_password_file_says_why(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    found = problems(tmp_path, "password_file", missing)
    assert f"lineage.password_file: cannot read a password from {str(missing)!r}: No such file or directory" in found


def test_a_short_key_never_signs_from_the_command_line(tmp_path: Path) -> None:
    """`verify --adopt-head` and `edges --copy-to` sign with `--key-file`: a key `serve` would refuse was
    taken there."""
    import subprocess
    import sys

    from proxy.record.store import EdgeKey, SqliteStore

    path = tmp_path / "s.db"
    store = SqliteStore(path)
    store.upsert([(EdgeKey("app", "assistant", "a", "ck", "", "allow"), 1.0, 1.0, 3, None)])
    store.close()
    short = tmp_path / "short.key"
    short.write_text("k\n")
    cli = [sys.executable, "-m", "proxy"]
    head = "sha256:" + "0" * 64
    adopt = subprocess.run([*cli, "verify", "--store", str(path), "--integrity", "--key-file", str(short),
                            "--adopt-head", head], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert adopt.returncode == 2 and "a key needs at least 16" in adopt.stderr, adopt.stderr
    copy = subprocess.run([*cli, "edges", "--store", str(path), "--copy-to", "postgresql://127.0.0.1:1/x",
                           "--key-file", str(short)], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert copy.returncode == 1 and "a key needs at least 16" in copy.stderr, copy.stderr


def test_a_signing_key_from_a_pipe_is_read_once(tmp_path: Path) -> None:
    """`--key-file /dev/stdin` (or `<(...)`): the key was read once to check it and again to use it, and the
    second read of a pipe is empty (a traceback)."""
    import json
    import subprocess
    import sys

    from proxy.record.store import EdgeKey, SqliteStore

    path = tmp_path / "s.db"
    store = SqliteStore(path)
    store.upsert([(EdgeKey("app", "assistant", "a", "ck", "", "allow"), 1.0, 1.0, 3, None)])
    store.close()
    cli = [sys.executable, "-m", "proxy", "verify", "--store", str(path), "--integrity"]
    head = json.loads(subprocess.run([*cli, "--json"], capture_output=True, text=True, timeout=60).stdout)["head"]
    adopted = subprocess.run([*cli, "--key-file", "/dev/stdin", "--adopt-head", head], input="k" * 32,
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert adopted.returncode == 0 and "Traceback" not in adopted.stderr, adopted.stderr
