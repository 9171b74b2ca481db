"""A checkpoint name is recorded at most NAME_MAX_CHARS long: its start and a digest of the whole. A caller names
the checkpoint when the upstream names its reply's model as asked (vLLM, llama.cpp) and its metadata does not
list it; whole, a model named with a megabyte went into the reply's `x-lineage-checkpoint`, every access line,
the store's key, spans and OpenLineage job names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from proxy.flow import NAME_MAX_CHARS, printable_name
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
