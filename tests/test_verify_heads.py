"""A head given to `verify --integrity` that is not one (mistyped, cut short) is a usage error saying what a
head looks like, not a verdict that the chain lost it."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from proxy.cli import main
from proxy.record.store import SqliteStore


def verify(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(["verify", *args])
    except SystemExit as exc:  # argparse's usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "lineage.db"
    SqliteStore(path).close()
    return path


@pytest.mark.parametrize("option", ["--expect-head", "--adopt-head"])
@pytest.mark.parametrize("head", ["garbage", "sha256:abc", "sha1:" + "0" * 64, "sha256:" + "g" * 64, ""])
def test_a_malformed_head_is_a_usage_error(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, head: str
) -> None:
    key = tmp_path / "chain.key"
    key.write_bytes(b"0123456789abcdef0123")
    code, out, err = verify(capsys, "--store", str(store), "--integrity", "--key-file", str(key), option, head)
    assert (code, out) == (2, "")
    assert f"argument {option}: expected a chain head as `verify --integrity` prints it, sha256:<64 hex digits> " \
           f"or hmac-sha256:<64 hex digits>, not {head!r}" in err  # fmt: skip


def test_a_well_formed_head_is_checked_against_the_chain(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = verify(capsys, "--store", str(store), "--integrity", "--json")
    head = orjson.loads(out)["head"]
    assert verify(capsys, "--store", str(store), "--integrity", "--expect-head", f" {head.upper()}\n")[0] == 0
    other = "sha256:" + "0" * 64
    code, out, _ = verify(capsys, "--store", str(store), "--integrity", "--expect-head", other)
    assert code == 1 and f"the head {other} is not in the chain" in out
