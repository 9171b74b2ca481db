"""With `capture_content`, a request whose texts hold U+FFFD (an OIP element that is not UTF-8, or a chat message
holding the character itself) and a value written where no captured text shows it to mask (JSON escapes in a tool
call's `arguments`, a number the server prints otherwise) had its captured content masked, not withheld, from
568f274 on, when the same value stood plain in another text: `Detectors.stands_apart` took the decoded reading's
value for the plain one, and the span held `bob\\u0040example.org` unmasked beside `[pii:email]`."""

from __future__ import annotations

import orjson

from proxy.config import parse
from proxy.protocols.openai import read_request
from tests.harness import offline_pipeline
from tests.test_tool_arguments_exponent_numbers import chat

CONFIG = """
listen: {http: 127.0.0.1:8080}
upstreams: [{name: u, url: http://127.0.0.1:1, protocol: openai}]
routes: [{model: "*", upstream: u}]
policy: {anonymous: allow, default_purpose: assistant}
detectors: [email, credit_card]
telemetry: {exporter: otlp, endpoint: "http://127.0.0.1:1", capture_content: true}
"""


def _beside_plain(arguments: str, plain: str) -> dict[str, object]:
    body = chat(arguments)
    body["messages"].insert(0, {"role": "user", "content": plain + " \ufffd"})  # type: ignore[attr-defined]
    return body


def test_a_value_written_with_escapes_beside_its_plain_form_and_a_replacement_character_is_withheld() -> None:
    pipe = offline_pipeline(parse(CONFIG))
    request = read_request("chat", orjson.dumps(_beside_plain('{"to": "bob\\u0040example.org"}', "bob@example.org")))
    content = pipe._content(request)
    assert not any("bob\\u0040example.org" in part for part in content), content
    assert content == ("[withheld: a detected value is written with JSON escapes]",)


def test_a_reprinted_number_beside_its_plain_form_and_a_replacement_character_is_withheld() -> None:
    pipe = offline_pipeline(parse(CONFIG))
    request = read_request("chat", orjson.dumps(_beside_plain('{"card": 4.111111111111111e15}', "4111111111111111")))
    content = pipe._content(request)
    assert not any("4.111111111111111e15" in part for part in content), content
    assert len(content) == 1 and content[0].startswith("[withheld:") and "number" in content[0], content


def _beside(arguments: str, text: str) -> dict[str, object]:
    body = chat(arguments)
    body["messages"].insert(0, {"role": "user", "content": text})  # type: ignore[attr-defined]
    return body


def test_a_value_written_with_escapes_alone_beside_a_replacement_character_is_withheld_for_its_escapes() -> None:
    """A chat message holding U+FFFD itself is no text read in another charset: before 2026-12-05 such a call's content
    was withheld as `read in a charset other than UTF-8` (any text holding U+FFFD was taken for a non-UTF-8 element's)."""
    pipe = offline_pipeline(parse(CONFIG))
    request = read_request("chat", orjson.dumps(_beside('{"to": "bob\\u0040example.org"}', "hello \ufffd")))
    assert pipe._content(request) == ("[withheld: a detected value is written with JSON escapes]",)


def test_a_reprinted_number_alone_beside_a_replacement_character_is_withheld_for_its_printing() -> None:
    pipe = offline_pipeline(parse(CONFIG))
    request = read_request("chat", orjson.dumps(_beside('{"card": 4.111111111111111e15}', "hello \ufffd")))
    assert pipe._content(request) == (
        "[withheld: a detected value is written as a number the server prints otherwise]",
    )
