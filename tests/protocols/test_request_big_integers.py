"""An integer past 64 bits in a request body is read with its digits as written. orjson reads one as a double
(`123456789012345678901234` is `1.2345678901234568e+23`), where Python's `json`, and so vLLM and MLServer, keep
every digit, which a chat template's `tojson` prints and a backend reads: the scan read other digits than the model
did, and a number a detector names (an account number, a card inside a longer id) went unlabelled. A body holding
one is read again by Python's `json`; one without is read once, as before."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest

from proxy.protocols import load_request_json
from proxy.protocols.oip import read_rest_request
from proxy.protocols.openai import read_request
from tests.test_unsized_replies_output import CHAT, INFER, RawUpstream, Reply

ACCOUNT = 123456789012345678901234
BIG = b'{"model":"m","messages":[],"n":[123456789012345678901234,-98765432109876543210,18446744073709551616,1.5,7]}'


def test_an_integer_past_64_bits_keeps_its_digits() -> None:
    assert load_request_json(BIG)["n"] == [ACCOUNT, -98765432109876543210, 2**64, 1.5, 7]
    spaced = b'{"model": "m", "n": {"deep": [[123456789012345678901234]]}}'
    assert load_request_json(spaced)["n"] == {"deep": [[ACCOUNT]]}
    assert load_request_json(b'{"n": 1e300, "m": 18446744073709551615}') == {"n": 1e300, "m": 2**64 - 1}
    with pytest.raises(Exception, match="appears twice"):
        load_request_json(b'{"n": 123456789012345678901234, "n": 1}')


def test_a_tool_schema_number_is_scanned_with_its_digits() -> None:
    body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]})[:-1]
    body += b',"tools":[{"type":"function","function":{"name":"f","parameters":{"enum":[123456789012345678901234]}}}]}'
    assert "123456789012345678901234" in read_request("chat", body).texts


def test_an_oip_tensor_or_parameter_past_64_bits() -> None:
    body = (b'{"parameters":{"account":123456789012345678901234},"inputs":[{"name":"X","datatype":"FP64","shape":[1],'
            b'"data":[123456789012345678901234]}]}')  # fmt: skip
    request = read_rest_request("m", None, body, None)
    assert request.texts == ("123456789012345678901234",)
    assert request.digest is not None  # the tensor digested as written, not refused


CONFIG = r"""
listen: {http: 127.0.0.1:0}
upstreams:
  - name: engine
    url: ${UPSTREAM}
  - name: triton
    url: ${UPSTREAM}
    protocol: oip
routes:
  - model: iris
    upstream: triton
  - model: "*"
    upstream: engine
zones:
  - name: accounts
    labels: [pii:account]
    allow_purposes: [billing]
policy: {anonymous: allow}
detectors: [{name: account, pattern: '(?<![0-9])[0-9]{24}(?![0-9])'}]
telemetry:
  exporter: none
lineage:
  store: ${STORE}
"""


def test_through_the_proxy_an_account_number_past_64_bits_is_refused(make_proxy: Any, loop_thread: Any) -> None:
    upstream = RawUpstream()

    async def start() -> asyncio.Server:
        return await asyncio.start_server(upstream.serve, "127.0.0.1", 0)

    server = loop_thread.run(start())
    try:
        proxy = make_proxy(CONFIG, UPSTREAM=f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
        tools = b'"tools":[{"type":"function","function":{"name":"pay","parameters":{"type":"object","properties":' \
                b'{"to":{"enum":[123456789012345678901234]}}}}}]'  # fmt: skip
        chat = b'{"model":"m","messages":[{"role":"user","content":"pay"}],' + tools + b"}"
        infer = b'{"parameters":{"to":123456789012345678901234},"inputs":[{"name":"X","datatype":"FP32","shape":[1],' \
                b'"data":[1]}]}'  # fmt: skip
        for path, body, reply in (("/v1/chat/completions", chat, CHAT), ("/v2/models/iris/infer", infer, INFER)):
            upstream.reply = Reply([orjson.dumps(reply)], framing="sized")
            headers = {"content-type": "application/json", "x-purpose": "ads"}
            refused = httpx.post(f"{proxy.url}{path}", content=body, headers=headers, timeout=30)
            assert refused.status_code == 403, refused.text
            assert upstream.reply is not None  # never forwarded
            headers["x-purpose"] = "billing"
            allowed = httpx.post(f"{proxy.url}{path}", content=body, headers=headers, timeout=30)
            assert allowed.status_code == 200 and upstream.reply is None
            assert "pii:account" in allowed.headers["x-data-labels"]
    finally:

        async def stop() -> None:
            server.close()

        loop_thread.run(stop())
