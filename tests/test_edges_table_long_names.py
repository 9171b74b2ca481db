"""`lineage-proxy edges` shows a long name cut, not every row padded to it. A caller names the checkpoint when
the upstream names its reply's model as asked (vLLM, llama.cpp) and the metadata does not list it: one call
asking for a model named with a megabyte made the checkpoint column that wide, so every row of the table was
a megabyte of padding (300 MB for 200 flows, the whole table built in memory before a line was printed).
`--json` keeps every name as recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from proxy.cli import main
from proxy.flow import printable_name
from tests.harness import LoopThread
from tests.servers.vllm_like import SERVED
from tests.test_openlineage_refused_event import raw_chat

CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams: [{name: llm, url: "${UPSTREAM}"}]
routes: [{model: "*", upstream: llm}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "${STORE}"}
"""
LONG = "m" * (1 << 20)
CELL_MAX = 200  # what a cell of the table shows at most


def test_a_checkpoint_named_with_a_megabyte_pads_no_row(
    vllm: Any, make_proxy: Any, loop_thread: LoopThread, tmp_path: Path, capsys: Any
) -> None:
    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    assert raw_chat(proxy.url, LONG).startswith(b"HTTP/1.1 200")
    for labels in ("a", "b", "c"):
        sent = httpx.post(f"{proxy.url}/v1/chat/completions", headers={"x-data-labels": labels}, timeout=10,
                          json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
        assert sent.status_code == 200
    loop_thread.run(proxy.process.runtime.sinks.flush())
    store = str(tmp_path / "lineage.db")
    assert main(["edges", "--store", store]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and max(map(len, lines)) < 2 * CELL_MAX + 200, [len(line) for line in lines]
    (long_row,) = [line for line in lines if line.startswith("mmm")]
    assert long_row.startswith("m" * (CELL_MAX - 3) + "...")
    assert main(["edges", "--store", store, "--json"]) == 0
    names = {json.loads(line)["checkpoint"] for line in capsys.readouterr().out.splitlines()}
    assert printable_name(LONG) in names and len(names) == 2  # as recorded: its start and a digest
