"""Numbers in an OIP request's `parameters` are read as decimal text: a backend reads its request's and its tensors'
parameters (Triton's Python backend, MLServer runtimes), numbers as well as strings, so a card number or a social
security number sent as one (REST's JSON number, gRPC's int64_param, uint64_param or double_param) reaches the
model as surely as one sent as a string. Unread, it went unlabelled: forwarded for a purpose the zone of such data
refuses. A tensor's numbers are its data, not text, and stay unread; framing parameters stay framing."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import orjson
import pytest
import tritonclient.grpc as triton

from proxy.protocols.oip import read_rest_request
from proxy.protocols.oip_grpc import read_infer_request
from tests.protocols.test_oip_grpc import infer_request
from tests.test_oip_grpc_varint_values import entry
from tests.test_unsized_replies_output import INFER, RawUpstream, Reply

CARD, SSN = 4111111111111111, 123456789
CONFIG = r"""
listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}
upstreams:
  - name: grpc
    grpc: ${OIP_GRPC}
    protocol: oip
  - name: rest
    url: ${UPSTREAM}
    protocol: oip
routes:
  - model: echo
    upstream: grpc
  - model: iris
    upstream: rest
zones:
  - name: personal
    labels: [pii:credit_card, pii:ssn]
    allow_purposes: [care]
policy: {anonymous: allow}
detectors: [credit_card, {name: ssn, pattern: '(?<![0-9])[0-9]{9}(?![0-9])'}]
telemetry:
  exporter: none
lineage:
  store: ${STORE}
"""


def rest(parameters: dict[str, Any], tensor: dict[str, Any] | None = None) -> tuple[str, ...]:
    body = {"parameters": parameters, "inputs": [{"name": "X", "datatype": "FP32", "shape": [1], "data": [CARD],
                                                   "parameters": tensor or {}}]}  # fmt: skip
    return read_rest_request("m", None, orjson.dumps(body), None).texts


def test_rest_parameter_numbers_are_read_as_decimal_text() -> None:
    assert rest({"card": CARD}) == ("4111111111111111",)
    assert rest({"ssn": SSN, "ratio": 0.25, "flag": True}) == ("123456789", "0.25")  # (a boolean is no number)
    assert rest({"card": float(CARD)}) == ("4111111111111111",)  # a double holding an integer: its digits
    assert rest({"ids": [SSN, {"card": CARD}]}) == ("123456789", "card", "4111111111111111")
    assert rest({}, {"card": CARD}) == ("4111111111111111",)  # a tensor's own parameters
    # framing stays framing, and a tensor's data is not text
    assert rest({"priority": 4111111111111111, "timeout": 123456789, "sequence_id": 123456789}) == ()
    assert rest({}, {"content_type": 123456789, "shared_memory_byte_size": CARD}) == ()


def test_grpc_parameter_numbers_are_read_as_decimal_text() -> None:
    request = infer_request(model_name="m")
    request.parameters["card"].int64_param = CARD
    request.parameters["negative"].int64_param = -SSN
    request.parameters["ssn"].uint64_param = SSN
    request.parameters["double"].double_param = float(CARD)
    request.parameters["ratio"].double_param = 0.25
    request.parameters["flag"].bool_param = True
    request.parameters["priority"].uint64_param = SSN  # framing
    tensor = request.inputs.add(name="X", datatype="INT64", shape=[1])
    tensor.contents.int64_contents.append(CARD)  # data, not text
    tensor.parameters["card"].int64_param = CARD
    assert sorted(read_infer_request(request.SerializeToString()).texts) == sorted(
        ["4111111111111111", "-123456789", "123456789", "4111111111111111", "0.25", "4111111111111111"]
    )


def test_grpc_the_last_value_of_a_parameter_is_read_as_protobuf_keeps_it() -> None:
    base = infer_request(model_name="m").SerializeToString()
    double = b"\x21" + struct.pack("<d", float(CARD))
    assert read_infer_request(base + entry("p", double + b"\x08\x01")).texts == ()  # then a bool: the bool
    assert read_infer_request(base + entry("p", b"\x08\x01" + double)).texts == ("4111111111111111",)
    assert read_infer_request(base + entry("p", double + b"\x1a\x02ok")).texts == ("ok",)  # then a string
    assert read_infer_request(base + entry("p", b"\x21" + struct.pack("<d", float("nan")))).texts == ()


@pytest.fixture
def proxied(faithful: tuple[str, Path], make_proxy: Any, loop_thread: Any) -> Iterator[tuple[Any, RawUpstream, Path]]:
    address, log = faithful
    upstream = RawUpstream()

    async def start() -> asyncio.Server:
        return await asyncio.start_server(upstream.serve, "127.0.0.1", 0)

    server = loop_thread.run(start())
    port = server.sockets[0].getsockname()[1]
    proxy = make_proxy(CONFIG, OIP_GRPC=address, UPSTREAM=f"http://127.0.0.1:{port}")
    yield proxy, upstream, log

    async def stop() -> None:
        server.close()

    loop_thread.run(stop())


@pytest.mark.parametrize("value", [CARD, SSN, float(CARD)], ids=["card", "ssn", "card-double"])
def test_through_the_proxy_a_number_parameter_is_refused_where_its_zone_refuses(proxied: Any, value: Any) -> None:
    proxy, upstream, log = proxied
    url = f"{proxy.url}/v2/models/iris/infer"
    body = {"parameters": {"account": value}, "inputs": [{"name": "X", "datatype": "FP32", "shape": [1], "data": [1]}]}
    upstream.reply = Reply([orjson.dumps(INFER)], framing="sized")
    refused = httpx.post(url, json=body, headers={"x-purpose": "ads"}, timeout=30)
    assert refused.status_code == 403, refused.text
    assert upstream.reply is not None  # never forwarded
    allowed = httpx.post(url, json=body, headers={"x-purpose": "care"}, timeout=30)
    assert allowed.status_code == 200 and upstream.reply is None

    client = triton.InferenceServerClient(proxy.grpc)
    text = triton.InferInput("TEXT", [1], "BYTES")
    text.set_data_from_numpy(np.array([b"what is on file?"], dtype=np.object_))
    request = infer_request(model_name="echo")
    request.inputs.add(name="TEXT", datatype="BYTES", shape=[1]).contents.bytes_contents.append(b"what is on file?")
    if isinstance(value, float):
        request.parameters["account"].double_param = value
    else:
        request.parameters["account"].int64_param = value
    with grpc.insecure_channel(proxy.grpc) as channel, pytest.raises(grpc.RpcError) as caught:
        channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")(
            request.SerializeToString(), metadata=(("x-purpose", "ads"),), timeout=10
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED, caught.value.details()
    assert [json.loads(line)["model"] for line in log.read_text().splitlines()] == []  # it never reached it
    if isinstance(value, float):  # (tritonclient sends no double parameter)
        with grpc.insecure_channel(proxy.grpc) as channel:
            channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")(
                request.SerializeToString(), metadata=(("x-purpose", "care"),), timeout=10
            )
    else:
        client.infer("echo", [text], parameters={"account": value}, headers={"x-purpose": "care"})
    assert [json.loads(line)["model"] for line in log.read_text().splitlines()] == ["echo"]
