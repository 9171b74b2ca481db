"""With `capture_content`, a call whose detected value stands in its content only as the model reads it (a card
written in a tool call's `arguments` with an exponent, `4.111111111111111e15`) has no text in which to mask it: its
content is withheld. The placeholder said "written with JSON escapes" for such a number too, which holds none: an
auditor reading the span looked for escapes that were never there."""

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
detectors: [credit_card]
telemetry: {exporter: otlp, endpoint: "http://127.0.0.1:1", capture_content: true}
"""


def test_content_withheld_for_a_number_says_so() -> None:
    pipe = offline_pipeline(parse(CONFIG))
    number = read_request("chat", orjson.dumps(chat('{"card": 4.111111111111111e15}')))
    [placeholder] = pipe._content(number)
    assert placeholder.startswith("[withheld:") and "number" in placeholder, placeholder
    escaped = read_request("chat", orjson.dumps(chat('{"card": "4111\\u003111111111111"}')))
    assert pipe._content(escaped) == ("[withheld: a detected value is written with JSON escapes]",)
