"""A failure raised again as it is is not raised from a variable of the frame raising it, which its traceback holds:
that frame and what it holds would wait for the collector in a reference cycle. `Exchange.upstream_failed` passing on
a failure of the proxy's own deferred work (`forwarded`), and the charset reader's error handler given an error it
does not replace (one not decoding), each held it so before 2026-12-05. Run interpreted: compiled, their frames hold no
locals, and the tests could not fail."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from proxy.protocols.charsets import _REPLACING
from tests.test_forwarded_first import admitted, pipeline

pytestmark = pytest.mark.interpreted


def _frames_holding(error: BaseException, name: str) -> list[str]:
    """The frames named `name` in `error`'s traceback that hold it in a variable."""
    held = []
    tb: TracebackType | None = error.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == name and any(value is error for value in frame.f_locals.values()):
            held.append(name)
        tb = tb.tb_next
    return held


def test_a_failure_upstream_failed_passes_on_is_not_held_by_its_frame(tmp_path: Path) -> None:
    ex, _ = admitted(pipeline(tmp_path), deferred=True)
    broken = RuntimeError("observer")

    def observer(*args: Any) -> Any:
        raise broken

    ex.adapter = type("Broken", (), {"name": "openai", "observer": staticmethod(observer)})()  # type: ignore[assignment]
    with pytest.raises(RuntimeError):
        ex.forwarded()
    with pytest.raises(RuntimeError) as passed_on:
        ex.upstream_failed(broken)
    assert passed_on.value is broken  # raised as it is
    assert _frames_holding(broken, "upstream_failed") == []


def test_an_error_the_charset_handler_does_not_replace_is_not_held_by_its_frame() -> None:
    with pytest.raises(UnicodeEncodeError) as raised:
        "\udc80".encode("ascii", _REPLACING)  # an encoding's error: not the handler's to replace
    assert _frames_holding(raised.value, "_replaced") == []
