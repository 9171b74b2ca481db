"""An OIP request's `id` reaches the model's runtime: MLServer hands `payload.id` to it (and copies it into the `Ce-Id`
and `Ce-Requestid` headers it hands on too), Triton hands the request id to its backend. The proxy does not read it, so
`{"id": "alice@example.com", ...}` reached the real MLServer's runtime for a purpose the zone of that address forbids
(shown with an echo runtime: `payload.id == "alice@example.com"` for `x-purpose: ads`). Not fixed yet: reading it
changes the texts of many reader tests (see the smuggle helper's report); this test holds the defect until it is."""

from __future__ import annotations

import orjson
import pytest

from proxy.protocols.oip import read_rest_request
from proxy.protocols.oip_grpc import read_infer_request
from tests.protocols.test_oip_grpc import infer_request

ADDRESS = "alice@example.com"


@pytest.mark.xfail(strict=True, reason="the OIP request id reaches MLServer's runtime unread (not fixed yet)")
def test_the_request_id_is_read_over_rest_and_grpc() -> None:
    body = {"id": ADDRESS, "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}]}
    assert ADDRESS in read_rest_request("m", None, orjson.dumps(body), None).texts
    request = infer_request(model_name="m", id=ADDRESS)
    request.inputs.add(name="x", datatype="FP32", shape=[1]).contents.fp32_contents.append(1.0)
    assert ADDRESS in read_infer_request(request.SerializeToString()).texts
