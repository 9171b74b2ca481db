"""An access line names the model a call asked for, and a model's name is the caller's, as long as its body
(`limits.max_body_bytes`, 64 MiB). The line held it whole, twice (its message and its `model` field): a call naming
a model of 16 MiB made a 32 MiB line, 0.45 s of the event loop's time to format (every other call on that process
waited), written on that loop to a pipe at the pace of whoever reads it (and under the lock every `--workers`
process takes to write a line). Log pipelines cut or drop such lines anyway (Docker's at 16 KiB). The line names
such a model by its start and its length, as the span and the store bound theirs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

import proxy
from proxy.flow import NAME_MAX_CHARS
from tests.harness import ServeProcess

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: vllm, url: "${UPSTREAM}"}]
routes: [{model: served, upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
logging: {format: text, access: true}
"""
LONG = 1 << 20


def test_an_access_line_names_a_long_model_by_its_start_and_length(vllm: Any, tmp_path: Path) -> None:
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG)
    root = str(Path(proxy.__file__).parents[1])  # the build this test runs
    serve = ServeProcess(str(config), env={"UPSTREAM": upstream, "PYTHONPATH": root})
    try:
        body = b'{"model":"%s","messages":[{"role":"user","content":"hi"}]}' % (b"m" * LONG)
        reply = httpx.post(f"{serve.url}/v1/chat/completions", content=body, timeout=30,
                           headers={"content-type": "application/json"})  # fmt: skip
        assert reply.status_code == 404  # no route: refused, and logged
        line = serve.wait_log(f"trace_id={reply.headers['x-trace-id']}")
        short = httpx.post(f"{serve.url}/v1/chat/completions", timeout=30,
                           json={"model": "m" * NAME_MAX_CHARS, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
        whole = serve.wait_log(f"trace_id={short.headers['x-trace-id']}")
    finally:
        assert serve.stop() == 0
    assert len(line) < 4 * NAME_MAX_CHARS, f"an access line of {len(line):,} characters"
    assert f'model="{"m" * NAME_MAX_CHARS}... ({LONG:,} characters)"' in line, line[:300]
    assert f" model={'m' * NAME_MAX_CHARS} " in whole  # a name of at most 512 characters whole, as before
