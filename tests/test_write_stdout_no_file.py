"""`logs.write_stdout` (console spans, `serve`'s ready line) on a stdout that is no file (an `io.StringIO`, a test's
capture, a program embedding the proxy): written to it as `print` wrote the ready line, not raised (io's
UnsupportedOperation from `fileno()`, which stopped `serve` at its ready line where a `print` had worked)."""

from __future__ import annotations

import io

import pytest

from proxy import logs


def test_a_stdout_of_no_file_takes_the_line(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    logs.write_stdout(b'{"name": "chat m"}\n')
    logs.write_stdout(b"lineage-proxy ready http=127.0.0.1:8080\n")
    assert out.getvalue() == '{"name": "chat m"}\nlineage-proxy ready http=127.0.0.1:8080\n'
