"""`telemetry.exporter: console` writes one JSON line a span on stdout, for the same pipelines and terminals as the
JSON log lines. orjson escapes C0 controls only, so a model a caller named (`gen_ai.request.model`, the span's
name), a reply's model, or captured content put C1 controls (CSI U+009B, NEL U+0085), U+2028/U+2029 (line breaks to
`str.splitlines`) and the bidirectional controls (U+202E lays out the rest of the line right to left) on the line
raw, which JSON log lines write as JSON escapes. A span's line now escapes them too; read back, its values are the
same."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

import proxy
from tests.harness import ServeProcess
from tests.servers.vllm_like import SERVED

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: vllm, url: "${UPSTREAM}"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: console}
"""
# RLO, LRI, PDI, RLM, ALM, ZWSP, BOM, NEL, CSI, LINE and PARAGRAPH SEPARATOR
HIDDEN = "\u202e\u2066\u2069\u200f\u061c\u200b\ufeff\u0085\u009b\u2028\u2029"
MODEL = f"{SERVED}{HIDDEN}eulav"


def test_a_console_span_line_escapes_invisible_controls(vllm: Any, tmp_path: Path) -> None:
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG)
    root = str(Path(proxy.__file__).parents[1])  # the build this test runs
    serve = ServeProcess(str(config), env={"UPSTREAM": upstream, "PYTHONPATH": root})
    try:
        reply = httpx.post(f"{serve.url}/v1/chat/completions", timeout=10,
                           json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
        line = serve.lines.get(timeout=10)
    finally:
        assert serve.stop() == 0
    span = json.loads(line)
    assert span["trace_id"] == reply.headers["x-trace-id"]
    assert span["attributes"]["gen_ai.request.model"] == MODEL  # the name as sent, read back
    shown = [f"U+{ord(c):04X}" for c in HIDDEN if c in line]
    assert not shown, f"{shown} raw in the span's line"
