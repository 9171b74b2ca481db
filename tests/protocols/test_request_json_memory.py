"""A request body's keys are counted (`load_request_json`, to tell a duplicate key) without a list of every
'"\\s*:' in it: a 64 MiB body (within `limits.max_body_bytes`) of `\\":` written over and over, white space after
its first key's colon, made one of 22 million objects, 1.1 GB for one request."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from proxy.errors import InvalidRequest
from proxy.protocols import _KEY_TOKEN, _KEY_WINDOW, _key_tokens, load_request_json

ROOT = Path(__file__).resolve().parent.parent.parent  # the checkout: its proxy, compiled or not, is the one measured
MEASURE = """
import resource, sys
from proxy.protocols import load_request_json
body = b'{"model": "m", "messages": [{"role": "user", "content": "' + b'\\\\":' * (16_000_000 // 3) + b'"}]}'
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
load_request_json(body)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024 / len(body))
"""


def test_a_body_of_key_like_tokens_takes_about_its_size_to_read() -> None:
    grown = float(
        subprocess.run([sys.executable, "-c", MEASURE], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    )
    assert grown < 3, f"reading the body took {grown:.1f} times its size"


@pytest.mark.parametrize("shift", range(-4, 5))
def test_a_token_across_a_windows_end_is_counted_once(shift: int) -> None:
    token = b'"  \t :'
    at = _KEY_WINDOW - len(token) // 2 + shift
    body = b"a" * at + token + b"a" * 100 + b'"' * 5 + b" " * (_KEY_WINDOW + 3) + b":" + b"b" * 10
    assert _key_tokens(body) == len(_KEY_TOKEN.findall(body)) == 2


def test_counted_by_windows_as_in_one_search() -> None:
    rng = random.Random(7)
    for size in (_KEY_WINDOW - 1, _KEY_WINDOW, _KEY_WINDOW + 1, 3 * _KEY_WINDOW + 17):
        for alphabet in (b'" :a', b'"\t\n\r\x0b\x0c :', b'\\":x '):
            body = bytes(rng.choice(alphabet) for _ in range(size))
            assert _key_tokens(body) == len(_KEY_TOKEN.findall(body))


def test_a_duplicate_key_in_a_large_body_is_still_refused() -> None:
    filler = [{"role": "user", "content": "x" * 100} for _ in range(2 * _KEY_WINDOW // 100)]
    whole = orjson.dumps({"model": "m", "messages": filler}, option=orjson.OPT_INDENT_2)
    assert len(whole) > _KEY_WINDOW and load_request_json(whole)["model"] == "m"
    twice = whole[:-2] + b',\n  "model": "other"\n}'
    with pytest.raises(InvalidRequest, match="appears twice"):
        load_request_json(twice)
