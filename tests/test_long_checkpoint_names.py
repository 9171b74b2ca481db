"""A checkpoint name is recorded at most NAME_MAX_CHARS long: its start and a digest of the whole. A caller names
the checkpoint when the upstream names its reply's model as asked (vLLM, llama.cpp) and its metadata does not
list it; whole, a model named with a megabyte went into the reply's `x-lineage-checkpoint`, every access line,
the store's key, spans and OpenLineage job names."""

from __future__ import annotations

import hashlib
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from proxy.flow import NAME_MAX_CHARS, QUOTED_DIGEST_CHARS, printable_name
from proxy.record.store import SqliteStore
from tests.harness import LoopThread
from tests.test_edges_table_long_names import CONFIG
from tests.test_openlineage_refused_event import raw_chat


def test_a_long_name_is_its_start_and_a_digest_of_the_whole() -> None:
    long = "org/" + "m" * 5000
    cut = printable_name(long)
    assert len(cut) == NAME_MAX_CHARS and cut.startswith("org/mmm") and "...sha256:" in cut
    assert printable_name(long) == cut  # one name, one record
    assert printable_name(long + "x") != cut  # names alike but for their end stay apart
    assert printable_name(cut) == cut  # a name read back (the baseline, `--checkpoint`) is itself
    assert printable_name("org/model@" + "a" * 40) == "org/model@" + "a" * 40
    escaped = printable_name("\n" * 1000)  # percent-encoded first, then cut: visible ASCII
    assert len(escaped) == NAME_MAX_CHARS and escaped.isprintable() and escaped.isascii()


@pytest.mark.interpreted  # records what the module's quote and sha256 are given (tests/conftest.py)
def test_a_name_as_long_as_a_body_is_read_at_its_start_and_end_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """An upstream echoes the model a caller names, as long as a body: encoded and hashed whole, a name of 64 MiB of
    non-ASCII characters took the event loop ~6 s. Now its start and end alone are read, as `quoted_name` reads them,
    and a name up to QUOTED_DIGEST_CHARS keeps the digest of the whole it had."""
    quote, sha256 = urllib.parse.quote, hashlib.sha256
    read: list[int] = []
    monkeypatch.setattr(urllib.parse, "quote", lambda text, **kw: read.append(len(text)) or quote(text, **kw))
    monkeypatch.setattr(hashlib, "sha256", lambda data: read.append(len(data)) or sha256(data))
    long = "\u00fc" * (1 << 20)
    cut = printable_name(long)
    # at most its start and end, each character at most 12 encoded (4 UTF-8 bytes): before, quote read 1,048,576
    assert max(read) <= 12 * QUOTED_DIGEST_CHARS + 64, read  # characters and sha256 6,291,456 bytes
    assert len(cut) == NAME_MAX_CHARS and cut.isascii() and cut.startswith("%C3%BC") and "...sha256:" in cut
    assert printable_name(long) == cut
    assert printable_name(long + "x") != cut and printable_name(long + "\u00fc") != cut  # its end, its length
    assert printable_name("x" + long[1:]) != cut  # its start
    middle = len(long) // 2
    assert printable_name(long[:middle] + "x" + long[middle + 1 :]) == cut  # only its middle: alike (quoted_name's)
    edge = "\u00fc" * QUOTED_DIGEST_CHARS  # as long as a name whose whole is read
    whole = quote(edge, safe="".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%"))
    assert printable_name(edge) == f"{whole[: NAME_MAX_CHARS - 26]}...sha256:{sha256(whole.encode()).hexdigest()[:16]}"


def test_a_model_named_with_a_megabyte_is_recorded_cut(
    vllm: Any, make_proxy: Any, loop_thread: LoopThread, tmp_path: Path
) -> None:
    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    head = raw_chat(proxy.url, "m" * (1 << 20))
    assert head.startswith(b"HTTP/1.1 200") and len(head) < 4096
    name = printable_name("m" * (1 << 20))
    assert f"\r\nx-lineage-checkpoint: {name}\r\n".encode() in head
    loop_thread.run(proxy.process.runtime.sinks.flush())
    store = SqliteStore(tmp_path / "lineage.db", readonly=True)
    assert [row.key.checkpoint for row in store.rows()] == [name]
    store.close()
