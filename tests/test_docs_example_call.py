"""The README's first example call ("Use it": the openai SDK against `lineage-proxy demo --keep`) prints what the
README shows it prints: the block is taken from README.md by its fence, run with the real openai SDK against the
demo on port 0, and every printed line but the trace id compared with the README's. The refusal the README quotes
for the same call with `x-purpose: analytics` is what the SDK raises. A change to the demo's policy, model or
labels that the example does not follow fails here, not in a first user's terminal."""

from __future__ import annotations

import contextlib
import io
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.harness import demo_lines

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
BASE_URL = '"http://127.0.0.1:8080/v1"'  # as the example writes it: the demo's port with --keep
TRACE_ID = re.compile(r"x-trace-id: [0-9a-f]{32}")


def example() -> tuple[str, list[str]]:
    """The example's code and the lines the README says it prints (the plain block after it, introduced by
    "prints")."""
    found = re.findall(r"^```python\n(.*?)^```\n\nprints\n\n```\n(.*?)^```$", README, re.M | re.S)
    blocks = [(code, out) for code, out in found if "with_raw_response" in code]
    assert len(blocks) == 1, f"the README shows {len(blocks)} openai SDK example calls with their output"
    code, out = blocks[0]
    assert BASE_URL in code
    return code, out.splitlines()


@pytest.fixture(scope="module")
def demo() -> Iterator[str]:
    """`lineage-proxy demo --keep` on port 0, waited on until it says where it serves; its base URL."""
    proc = subprocess.Popen([sys.executable, "-m", "proxy", "demo", "--keep", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    try:
        seen, _ = demo_lines(proc)
        match = re.search(r"still serving on (http://127\.0\.0\.1:\d+) ", seen[-1])
        assert match, seen[-1]
        yield match.group(1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_the_example_call_prints_what_the_readme_shows(demo: str) -> None:
    code, shown = example()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code.replace(BASE_URL, repr(f"{demo}/v1")), "README.md", "exec"), {})
    printed = out.getvalue().splitlines()
    assert len(printed) == len(shown), (printed, shown)
    for got, said in zip(printed, shown, strict=True):
        if said.startswith("x-trace-id: "):  # one run's id: the shape is what is compared
            assert TRACE_ID.fullmatch(got) and TRACE_ID.fullmatch(said), (got, said)
        else:
            assert got == said


def test_the_refusal_it_quotes_is_what_the_sdk_raises_for_analytics(demo: str) -> None:
    code, _ = example()
    refused = code.replace(BASE_URL, repr(f"{demo}/v1")).replace('"x-purpose": "assistant"', '"x-purpose": "analytics"')
    assert refused != code.replace(BASE_URL, repr(f"{demo}/v1"))
    with pytest.raises(openai.PermissionDeniedError) as raised, contextlib.redirect_stdout(io.StringIO()):
        exec(compile(refused, "README.md", "exec"), {})
    error = raised.value
    assert error.status_code == 403 and error.response.headers["x-lineage-decision"] == "deny"
    assert error.code == "purpose_denied"
    said = " ".join(README.split())  # the quote is wrapped across lines
    assert f"raises `openai.PermissionDeniedError` with the reason: `{error}`" in said, str(error)
    assert "is refused, 403 `purpose_denied` with `x-lineage-decision: deny`" in said
