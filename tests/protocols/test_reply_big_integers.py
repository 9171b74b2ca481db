"""An integer past 64 bits in a reply is read with its digits as written. orjson reads one as a double
(`123456789012345678901234` is `1.2345678901234568e+23`), where the Anthropic and OpenAI Python SDKs (Python's
`json`) keep every digit: a tool call's input `{"to": 123456789012345678901234}` reached the client whole while
the proxy scanned `1.2345678901234569e23`, and an account number a detector names went unlabelled. A tool input
(or arguments given as an object) that orjson wrote with such a double is read again from the reply's bytes by
Python's `json`; one without is written once, as before."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.harness import LoopThread
from tests.servers.otlp_receiver import OtlpReceiver
from tests.test_unsized_replies_output import RawUpstream, Reply, Setup

ACCOUNT = "123456789012345678901234"
LABEL = "pii:account"  # a detector of no known kind is named pii:<its name>
CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams:
  - name: engine
    url: ${UPSTREAM}
routes:
  - model: "*"
    upstream: engine
policy: {anonymous: allow, default_purpose: assistant}
detectors: [{name: account, pattern: '(?<![0-9])[0-9]{24}(?![0-9])'}]
telemetry:
  exporter: otlp
  endpoint: ${OTLP}
lineage:
  store: ${STORE}
"""
USAGE = {"input_tokens": 1, "output_tokens": 1}
# the input written as the upstream writes it: the integer's digits (a double's would be another value)
INPUT = b'{"to":' + ACCOUNT.encode() + b',"memo":"rent","n":[7,1.5,-98765432109876543210]}'
TOOL_USE = b'{"type":"tool_use","id":"toolu_1","name":"pay","input":' + INPUT + b"}"
MESSAGE = (b'{"id":"msg_1","type":"message","role":"assistant","model":"m","stop_reason":"tool_use","usage":'
           + orjson.dumps(USAGE) + b',"content":[{"type":"text","text":"paying"},' + TOOL_USE + b"]}")  # fmt: skip
MESSAGE_START = {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                                                      "model": "m", "content": [], "usage": USAGE}}  # fmt: skip


def _event(data: bytes) -> bytes:
    return b"data: " + data + b"\n\n"


# a server that sends a tool use's input whole in its `content_block_start` (not as `input_json_delta`s)
STREAM = [
    _event(orjson.dumps(MESSAGE_START)),
    _event(b'{"type":"content_block_start","index":0,"content_block":' + TOOL_USE + b"}"),
    _event(b'{"type":"content_block_stop","index":0}'),
    _event(b'{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":3}}'),
    _event(b'{"type":"message_stop"}'),
]
# TGI's tool call: its arguments an object, not a string of it
CHAT = (b'{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"finish_reason":'
        b'"tool_calls","message":{"role":"assistant","content":null,"tool_calls":[{"id":"0","type":"function",'
        b'"function":{"name":"pay","arguments":' + INPUT + b"}}]}}]}")  # fmt: skip
CASES = {
    "messages-whole": ("/v1/messages", Reply([MESSAGE], framing="sized")),
    "messages-stream": ("/v1/messages", Reply(STREAM, content_type="text/event-stream")),
    "chat-whole": ("/v1/chat/completions", Reply([CHAT], framing="sized")),
}


@pytest.fixture
def setup(loop_thread: LoopThread, make_proxy: Any, otlp: OtlpReceiver, tmp_path: Path) -> Iterator[Setup]:
    upstream = RawUpstream()

    async def start() -> asyncio.Server:
        return await asyncio.start_server(upstream.serve, "127.0.0.1", 0)

    server = loop_thread.run(start())
    port = server.sockets[0].getsockname()[1]
    proxy = make_proxy(CONFIG, UPSTREAM=f"http://127.0.0.1:{port}", OTLP=f"http://127.0.0.1:{otlp.port}")
    yield Setup(upstream, proxy, otlp, loop_thread, tmp_path / "lineage.db")

    async def stop() -> None:
        server.close()

    loop_thread.run(stop())


@pytest.mark.parametrize("case", list(CASES))
def test_a_reply_integer_past_64_bits_is_scanned_with_its_digits(setup: Setup, case: str) -> None:
    path, reply = CASES[case]
    flow = f"flow-{case}"
    response, body = setup.call(path, flow, reply)
    assert response.status_code == 200 and ACCOUNT.encode() in body  # the client has every digit
    span_labels, edge_labels = setup.recorded(response, flow)
    assert LABEL in span_labels and LABEL in edge_labels


def test_a_reply_without_one_is_read_as_before(setup: Setup) -> None:
    """A double that is no integer past 64 bits (a float the upstream wrote, `1e20`) is read as orjson writes it."""
    message = MESSAGE.replace(ACCOUNT.encode(), b"1.5e20")
    response, _ = setup.call("/v1/messages", "flow-double", Reply([message], framing="sized"))
    assert response.status_code == 200
    span_labels, _ = setup.recorded(response, "flow-double")
    assert LABEL not in span_labels


def test_a_reply_read_by_pythons_json_keeps_its_digits_too() -> None:
    """A reply orjson refuses but a client reads (a lone surrogate escape: `_client_json`, Python's `json`) holds the
    integer itself, which orjson does not write: the input was left unread (TypeError out of the observer)."""
    from proxy.config.model import DetectorSpec
    from proxy.detectors import Detectors
    from proxy.flow import Outcome
    from proxy.protocols.anthropic import MessagesObserver

    detectors = Detectors([DetectorSpec("account", r"(?<![0-9])[0-9]{24}(?![0-9])")])
    outcome = Outcome(started_ns=1)
    observer = MessagesObserver(outcome, detectors, False)
    observer.body(MESSAGE.replace(b'"paying"', b'"paying \\ud800"'))
    observer.finish()
    assert outcome.output_detected == {LABEL}
