"""A gRPC caller's `x-forwarded-for` reaches the upstream with the peer's address appended (as over REST), and
MLServer hands it to the model with the rest of the metadata (`parameters.headers`). Over REST the caller's
`X-Forwarded-For` is read with the request's other fields; over gRPC it was not (the proxy keeps it apart to append
to it, `_Received.callers`), so an address written there reached the model for a purpose its zone forbids."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.harness import ProxyHandle
from tests.test_oip_header_fields_reach_model import ADDRESS, CONFIG, echo_mlserver

__all__ = ["echo_mlserver"]  # (the fixture, shared)


@pytest.mark.realserver
def test_a_grpc_callers_forwarded_for_is_read(
    echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    proxy = make_proxy(CONFIG, wait="probed", REST=echo_mlserver[0], GRPC=echo_mlserver[1])
    client = grpcclient.InferenceServerClient(proxy.grpc)
    features = grpcclient.InferInput("x", [1], "FP32")
    features.set_data_from_numpy(np.array([1.0], dtype=np.float32))
    allowed = client.infer("echo", [features], headers={"x-forwarded-for": ADDRESS})  # for a purpose the zone allows
    assert ADDRESS in json.loads(allowed.as_numpy("headers")[0])["x-forwarded-for"]  # what the model was handed
    with pytest.raises(InferenceServerException) as refused:
        client.infer("echo", [features], headers={"x-forwarded-for": ADDRESS, "x-purpose": "ads"})
    assert refused.value.status() == "StatusCode.PERMISSION_DENIED", refused.value
    # the peer's own address, which the proxy appends, is not the caller's data: a call without one goes on
    assert client.infer("echo", [features], headers={"x-purpose": "ads"}).as_numpy("headers") is not None
