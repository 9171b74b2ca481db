"""A failure raised again as it is (`Exchange.upstream_failed` passing on one of `forwarded`, the charset reader's
error handler given an error it does not replace) and the paths beside it work as the proxy is built: compiled, a
`del` of the parameter in a `finally` (6b0db59) crashed the process there (mypyc released a reference the call did not
own) and made every other use of it an UnboundLocalError: every upstream failure a 500 `internal_error`, every byte
a reply's charset does not read a crash. Run in a process of its own, so that a crash is this test's failure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_SCRIPT = r"""
import sys
from pathlib import Path

import pytest

from proxy.errors import UpstreamUnavailable
from proxy.protocols.charsets import _REPLACING
from tests.test_forwarded_first import admitted, broken, pipeline

assert b"a\xffb".decode("utf-8", _REPLACING) == "a\ufffdb"
with pytest.raises(UnicodeEncodeError):
    "\udc80".encode("ascii", _REPLACING)
print("charsets", flush=True)

pipe = pipeline(Path(sys.argv[1]))
ex, _ = admitted(pipe, deferred=False)
assert type(ex.upstream_failed(ConnectionRefusedError("refused"))) is UpstreamUnavailable
print("mapped", flush=True)

ex, _ = admitted(pipe, deferred=True)
broken(ex)
with pytest.raises((TypeError, AttributeError)) as raised:
    ex.forwarded()
with pytest.raises((TypeError, AttributeError)) as passed_on:
    ex.upstream_failed(raised.value)
assert passed_on.value is raised.value
print("passed on", flush=True)
"""


def test_a_failure_raised_again_as_it_is_and_its_neighbours_work_as_built(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path)], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert (done.returncode, done.stdout.split("\n")) == (0, ["charsets", "mapped", "passed on", ""]), done.stderr[
        -2000:
    ]
