"""Logs a pipeline can ingest: with `logging.format: json` every stderr line is one JSON object, a
call's access line carries its `x-trace-id`, and no prompt or reply text appears in any line."""

from __future__ import annotations

import asyncio
import fcntl
import logging
import re
from pathlib import Path

import httpx
import orjson
import pytest

from proxy.config import Logging
from proxy.logs import JsonFormatter
from tests.conftest import KEYS, sha
from tests.harness import ServeProcess
from tests.servers.vllm_like import SERVED

SECRET = "my-unmistakable-prompt-7f3a"

CONFIG = f"""
listen:
  http: 127.0.0.1:0
upstreams:
  - name: vllm
    url: ${{UPSTREAM}}
  - name: dead
    url: http://127.0.0.1:1
routes:
  - model: gone
    upstream: dead
  - model: "*"
    upstream: vllm
    purposes: [assistant]
callers:
  - name: app
    api_key_sha256: {sha(KEYS["glasses"])}
detectors: [email]
lineage:
  store: ${{STORE}}
logging:
  format: FORMAT
  access: true
"""


def chat(base: str, purpose: str, stream: bool = False) -> httpx.Response:
    body = {"model": SERVED, "messages": [{"role": "user", "content": f"{SECRET} ann@example.com"}], "stream": stream}
    headers = {"Authorization": f"Bearer {KEYS['glasses']}", "x-purpose": purpose}
    return httpx.post(f"{base}/v1/chat/completions", json=body, headers=headers, timeout=10)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_json_lines_with_trace_ids_and_no_content(vllm, tmp_path: Path, workers: str) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("FORMAT", "json"))
    serve = ServeProcess(str(config), "--workers", workers, env={"UPSTREAM": upstream, "STORE": str(tmp_path / "l.db")})
    try:
        allowed = chat(serve.url, "assistant")
        streamed = chat(serve.url, "assistant", stream=True)
        denied = chat(serve.url, "ads")
        unreachable = httpx.post(f"{serve.url}/v1/chat/completions", timeout=10,
                                 json={"model": "gone", "messages": [{"role": "user", "content": "hi"}]},
                                 headers={"Authorization": f"Bearer {KEYS['glasses']}", "x-purpose": "assistant"})  # fmt: skip
        assert (allowed.status_code, streamed.status_code, denied.status_code) == (200, 200, 403)
        assert unreachable.status_code == 502
        lines = {}
        for reply in (allowed, streamed, denied, unreachable):
            trace_id = reply.headers["x-trace-id"]
            lines[trace_id] = orjson.loads(serve.wait_log(f'"trace_id":"{trace_id}"'))
    finally:
        assert serve.stop() == 0
    parsed = [orjson.loads(line) for line in serve.stderr]  # every line, supervisor's and workers' alike
    assert all({"time", "level", "process", "pid", "logger", "message"} <= set(line) for line in parsed)
    assert not [line for line in serve.stderr if SECRET in line or "ann@example.com" in line]
    ok = lines[allowed.headers["x-trace-id"]]
    assert ok["logger"] == "lineage_proxy.access" and ok["caller"] == "app" and ok["purpose"] == "assistant"
    assert (ok["model"], ok["decision"], ok["status"], ok["upstream"]) == (SERVED, "allow", 200, "vllm")
    assert ok["checkpoint"] == allowed.headers["x-lineage-checkpoint"] and ok["duration_ms"] > 0
    assert "pii:email" in ok["labels"]
    no = lines[denied.headers["x-trace-id"]]
    assert (no["decision"], no["status"], no["code"], no["upstream"]) == ("deny", 403, "purpose_denied", "")
    dead = lines[unreachable.headers["x-trace-id"]]  # the proxy's own answer, not an upstream's: its status is kept
    assert (dead["status"], dead["code"]) == (502, "upstream_unavailable")


def test_long_lines_of_two_workers_reach_a_pipe_whole(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """t8b_long_access_slow_reader.py: with --workers 2 every process writes to the same stderr pipe, and a
    pipe takes a write whole only up to 4096 bytes: access lines of ~7 KB (64 labels of 100 characters) from
    two workers came out interleaved, 455 of 2,000 unparseable. Here the pipe holds 4096 bytes, so every such
    line has to be written in parts."""
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("FORMAT", "json"))
    serve = ServeProcess(str(config), "--workers", "2", env={"UPSTREAM": upstream, "STORE": str(tmp_path / "l.db")})
    assert serve.proc.stderr is not None
    fcntl.fcntl(serve.proc.stderr.fileno(), fcntl.F_SETPIPE_SZ, 4096)
    labels = ",".join(f"l{i:02d}-" + "x" * 96 for i in range(64))
    headers = {"Authorization": f"Bearer {KEYS['glasses']}", "x-purpose": "assistant", "x-data-labels": labels}
    body = {"model": SERVED, "messages": [{"role": "user", "content": "hi"}]}
    calls = 300

    async def load() -> list[str]:
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=32), timeout=30) as client:
            pending = iter(range(calls))

            async def one_by_one() -> list[str]:
                return [(await client.post(f"{serve.url}/v1/chat/completions", json=body, headers=headers))
                        .headers["x-trace-id"] for _ in pending]  # fmt: skip

            return [trace for done in await asyncio.gather(*(one_by_one() for _ in range(32))) for trace in done]

    try:
        traces = asyncio.run(load())
        serve.wait_log(f'"trace_id":"{traces[-1]}"')
    finally:
        assert serve.stop() == 0
    unparseable = []
    access = set()
    for line in serve.stderr:
        try:
            parsed = orjson.loads(line)
        except orjson.JSONDecodeError:
            unparseable.append(line)
            continue
        if parsed["logger"] == "lineage_proxy.access":
            access.add(parsed["trace_id"])
            assert len(line) > 6000 and len(parsed["labels"].split(",")) == 64
    assert not unparseable, f"{len(unparseable)} lines broken, the first: {unparseable[0][:300]}"
    assert access == set(traces)


def test_text_access_lines_are_key_value(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.replace("FORMAT", "text"))
    serve = ServeProcess(str(config), env={"UPSTREAM": upstream, "STORE": str(tmp_path / "l.db")})
    try:
        reply = chat(serve.url, "assistant")
        line = serve.wait_log(f"trace_id={reply.headers['x-trace-id']}")
    finally:
        assert serve.stop() == 0
    assert " lineage_proxy.access: allow chat " in line and "caller=app" in line and "status=200" in line
    assert SECRET not in "".join(serve.stderr)


def test_access_log_is_off_by_default() -> None:
    assert Logging().access is False


def test_json_formatter_keeps_exceptions_on_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("here",), exc_info=True)
        import sys

        record.exc_info = sys.exc_info()
    text = JsonFormatter().format(record)
    assert "\n" not in text
    line = orjson.loads(text)
    assert line["message"] == "failed here" and "ValueError: boom" in line["exception"]


def test_a_text_log_field_never_starts_a_line_of_its_own() -> None:
    """The access log's fields hold what callers wrote (a model name): a line break in one made a
    forged log line in the text format."""
    import logging

    from proxy.logs import TextFormatter

    record = logging.LogRecord("lineage_proxy.access", logging.INFO, __file__, 1, "call", None, None)
    record.model = "m\nINFO lineage_proxy.access forged=yes\r\x00"
    line = TextFormatter().format(record)
    assert "\n" not in line and "\r" not in line and "\x00" not in line
    assert line.endswith('model="m\\\\nINFO lineage_proxy.access forged=yes\\\\r\\\\x00"')  # quoted, \\ doubled


def test_a_text_log_field_cannot_add_a_field_or_a_terminal_control() -> None:
    """A model named `m caller=admin decision=allow` read as fields of its own ahead of the real ones;
    C1 controls (CSI rewrites a terminal's line) and U+2028 (a line break to `splitlines`) went through raw."""
    from proxy.logs import TextFormatter

    record = logging.LogRecord("lineage_proxy.access", logging.INFO, __file__, 1, "%s %s %s", None, None)
    record.args = ("deny", "chat", 'm\\" caller=admin decision=allow x="')  # a backslash before the quote too
    record.model = "m caller=admin\u009b2K\u2028\u0085"
    record.caller = "(unknown key)"
    line = TextFormatter().format(record)
    assert 'chat "m\\\\\\" caller=admin decision=allow x=\\"" model="m caller=admin\\\\x9b2K\\\\u2028\\\\x85"' in line
    assert line.endswith('caller="(unknown key)"') and len(line.splitlines()) == 1
    tokens = re.findall(r'(?:[^\s"]|"(?:[^"\\]|\\.)*")+', line)  # as a logfmt reader splits the line
    assert [t.split("=", 1)[0] for t in tokens if "=" in t and not t.startswith('"')] == ["model", "caller"], tokens


def test_a_text_log_message_never_starts_a_line_of_its_own_but_a_traceback_does() -> None:
    """The access log's message is formatted from what callers wrote (`"%s %s %s"` with the model name):
    a line break in an arg made a forged log line. A traceback still prints on lines of its own."""
    from proxy.logs import TextFormatter

    forged = "m\n2026-01-01 00:00:00,000 ERROR MainProcess[1] lineage_proxy.access: forged\r\x00"
    record = logging.LogRecord(
        "lineage_proxy.access", logging.INFO, __file__, 1, "%s %s %s", ("allow", "chat", forged), None
    )
    line = TextFormatter().format(record)
    assert "\n" not in line and "\r" not in line and "\x00" not in line
    assert line.endswith('lineage_proxy.access: allow chat "m\\\\n2026-01-01 00:00:00,000 ERROR MainProcess[1] '
                         'lineage_proxy.access: forged\\\\r\\\\x00"')  # fmt: skip
    assert record.message == f"allow chat {forged}"  # what other handlers see of the record is as it was
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("a\nb",), sys.exc_info())
    lines = TextFormatter().format(failed).splitlines()
    assert lines[0].endswith("x: failed a\\nb") and lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: boom"
