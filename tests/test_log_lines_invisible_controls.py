"""A log line shows a caller's name for a model so that a reader sees what was sent. The text format escaped C0,
C1 and the Unicode line separators, not the bidirectional controls: a model named with U+202E (RIGHT-TO-LEFT
OVERRIDE) laid out the rest of its access line right to left wherever the line is shown by a renderer that
follows the Unicode bidi algorithm (a browser's log view, a bidi terminal), its fields after the model
(operation, checkpoint, decision, code, status, ...) shown reversed and reorderable ("Trojan Source", CVE-2021-42574),
and U+200B made two names that differ look the same. The JSON format left every non-ASCII character raw: C1
controls (CSI, NEL), U+2028 and U+2029 (line breaks to `str.splitlines` and some viewers) and the bidi controls
too. Each is now written escaped: `\\u202e` in text, the same JSON escape in JSON (the value read back is the same)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.harness import ServeProcess
from tests.servers.vllm_like import SERVED

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: vllm, url: "${UPSTREAM}"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: assistant}
logging: {format: FORMAT, access: true}
"""
# RLO, LRI, PDI, RLM, ALM, ZWSP, BOM, and the C1 and line-separator characters the text format already escaped
HIDDEN = "\u202e\u2066\u2069\u200f\u061c\u200b\ufeff\u0085\u009b\u2028\u2029"
MODEL = f"{SERVED}\u202e{HIDDEN}eulav"


@pytest.mark.parametrize("form", ["text", "json"])
def test_an_access_line_shows_invisible_controls_escaped(vllm: Any, tmp_path: Path, form: str) -> None:
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("FORMAT", form))
    serve = ServeProcess(str(config), env={"UPSTREAM": upstream})
    try:
        reply = httpx.post(f"{serve.url}/v1/chat/completions", timeout=10,
                           json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
        line = serve.wait_log(reply.headers["x-trace-id"])
    finally:
        assert serve.stop() == 0
    shown = [f"U+{ord(c):04X}" for c in HIDDEN if c in line]
    assert not shown, f"{shown} raw in the {form} access line"
    assert len(line.splitlines()) == 1
    if form == "json":
        assert orjson.loads(line)["model"] == MODEL  # escaped as JSON escapes it: read back, the name as sent
    else:
        assert "\\u202e" in line and "\\u200b" in line
