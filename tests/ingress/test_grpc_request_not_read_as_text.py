"""A gRPC request is protobuf, never JSON text: one the proxy refuses is refused, never read again as UTF-16 text written
in UTF-8 (`request_json_as_utf8`, which is for JSON bodies only). It was read so (`Exchange.admit` read again any body
its adapter refused), and protobuf bytes with a zero second byte are UTF-16 to `json.detect_encoding`: a
ModelInferRequest holding an address in a BYTES input, with a `data_labels` parameter that is no string_param (the proxy
refuses it; Triton and MLServer take any parameter), read again as text gave another message (built below): another
model's, holding nothing. It was allowed for a purpose the address's zone forbids, and the server ran the message as
sent, its model handed the address (the faithful server's `echo` answered it back)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from tritonclient.grpc import service_pb2 as pb

from proxy.protocols import request_json_as_utf8
from proxy.protocols.oip_grpc import MODEL_INFER, read_infer_request
from tests.harness import ProxyHandle

ADDRESS = "alice@example.com"
TEXT_MODEL = "zzzzzzzzzz"  # the model its bytes name when read as text (10 of 'z': each `7a 00`, an empty field 15)
CONFIG = """
listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}
upstreams: [{name: oip, grpc: "${OIP_GRPC}", protocol: oip, checkpoint: "any@1"}]
routes: [{model: "*", upstream: oip}]
policy: {anonymous: allow, default_purpose: care}
zones: [{name: personal, labels: [pii:email], allow_purposes: [care]}]
detectors: [email]
lineage: {store: "${STORE}"}
"""


def two_readings(model: str, text: str) -> bytes:
    """A ModelInferRequest for `model` with `text` in a BYTES input and a `data_labels` int64_param, whose bytes read as
    UTF-16-LE text and written in UTF-8 are another ModelInferRequest, for TEXT_MODEL, holding nothing: the first
    `0a 00` (model_name "") makes the bytes UTF-16-LE to `json.detect_encoding`; `0a 00` then is a model_name of 10 bytes
    as text (`0a 0a`), the ten `7a 00` its 'z's; the next `7a 00 7a 00` ("zz") an unknown field 15 of 0x7a bytes as
    text, which holds the request (as text) and 'z's to fill it. As protobuf, every `7a 00` is an empty field 15."""
    request = pb.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name="TEXT", datatype="BYTES", shape=[1])
    tensor.contents.bytes_contents.append(text.encode())
    request.parameters["data_labels"].int64_param = 1
    inner = request.SerializeToString()
    assert len(inner) % 2 == 0, "an odd length is no UTF-16: pick another model name"
    as_text = len(inner.decode("utf-16-le", "surrogatepass").encode("utf-8", "surrogatepass"))
    assert as_text <= 0x7A
    head = "\n\n" + "z" * len(TEXT_MODEL) + "zz"
    return head.encode("utf-16-le") + inner + ("z" * (0x7A - as_text)).encode("utf-16-le")


def test_the_two_readings_are_what_they_are_said_to_be() -> None:
    body = two_readings("echo", ADDRESS)
    request = pb.ModelInferRequest.FromString(body)  # as a server reads it
    assert (request.model_name, list(request.inputs[0].contents.bytes_contents)) == ("echo", [ADDRESS.encode()])
    as_text = request_json_as_utf8(body)
    assert as_text is not None
    assert (read_infer_request(as_text).model, read_infer_request(as_text).texts) == (TEXT_MODEL, ())


def infer(proxy: ProxyHandle, body: bytes, purpose: str) -> Any:
    with grpc.insecure_channel(proxy.grpc) as channel:
        call = channel.unary_unary(MODEL_INFER)  # the bytes as they are, no serializer
        return pb.ModelInferResponse.FromString(call(body, metadata=(("x-purpose", purpose),), timeout=30))


def test_protobuf_the_proxy_refuses_is_not_read_again_as_utf16_text(
    faithful: tuple[str, Path], make_proxy: Callable[..., ProxyHandle]
) -> None:
    address, log = faithful
    proxy = make_proxy(CONFIG, OIP_GRPC=address)
    body = two_readings("echo", ADDRESS)
    with pytest.raises(grpc.RpcError) as refused:
        infer(proxy, body, "ads")  # before: allowed, the faithful `echo` answering the address back
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value
    assert "'data_labels' must be a string_param" in str(refused.value.details())
    assert [json.loads(line)["model"] for line in log.read_text().splitlines()] == []  # nothing reached the server
