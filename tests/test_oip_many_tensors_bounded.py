"""An OIP inference request of many tiny tensors: each tensor was read in Python six times over (its labels, its
binary section's size twice, its data for the digest and for text, its parameters, whether it is in shared memory),
whatever the scan limits, so `POST /v2/models/{m}/infer` with 278,000 one-element inputs (16 MB) held the event loop
1.4-2.5 s. Past `MAX_STRINGS` tensors (inputs and requested outputs) a request is now refused (413
`request_too_large`), as a body of too many JSON objects is: a tensor cannot be left unread and passed on, as its binary
bytes, its shared-memory region and its `data_labels` decide what the rest of the call is. A request's `parameters`
are read no further than the scan limit (they were walked whole: 1.3 M of them, 1.2 s), past it `scan:truncated`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from proxy.errors import RequestTooLarge
from proxy.protocols import MAX_STRINGS, oip, oip_grpc
from proxy.protocols.oip import read_rest_request
from proxy.protocols.oip_grpc import read_infer_request
from tests.harness import LoopThread, ProxyHandle, serving
from tests.protocols.test_oip_grpc import infer_request
from tests.test_oip_rest_error_shape import CONFIG, oip_server

BIG_CONFIG = CONFIG.replace("max_body_bytes: 4096", "max_body_bytes: 33554432")


def _tiny(count: int) -> list[dict[str, Any]]:
    return [{"name": "i", "shape": [1], "datatype": "INT32", "data": [1]} for _ in range(count)]


def _body(inputs: int, outputs: int = 0) -> bytes:
    return orjson.dumps({"inputs": _tiny(inputs), "outputs": [{"name": "o"}] * outputs})


def test_tritonclient_sending_more_tensors_than_the_proxy_reads_is_refused_before_the_upstream(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle]
) -> None:
    reached: list[str] = []
    with serving(loop_thread, oip_server(reached)) as url:
        proxy = make_proxy(BIG_CONFIG, UPSTREAM=url)
        client = httpclient.InferenceServerClient(proxy.url.removeprefix("http://"), network_timeout=120)
        try:
            inputs = []
            for index in range(MAX_STRINGS + 1):
                tensor = httpclient.InferInput(f"i{index}", [1], "INT32")
                tensor.set_data_from_numpy(np.ones(1, dtype=np.int32), binary_data=False)
                inputs.append(tensor)
            with pytest.raises(InferenceServerException) as refused:
                client.infer("m", inputs, headers={"x-purpose": "assistant"})
            assert refused.value.status() == "413", refused.value
            assert "an inference request of over 65,536 tensors" in refused.value.message()
            client.infer("m", inputs[:2], headers={"x-purpose": "assistant"})  # a few: as ever
        finally:
            client.close()
    assert reached == ["/v2/models/m/infer"]  # the few only


def test_inputs_and_requested_outputs_are_counted_together() -> None:
    assert len(read_rest_request("m", None, _body(MAX_STRINGS - 1, 1), None).names) > 0  # at the limit: read
    with pytest.raises(RequestTooLarge, match="over 65,536 tensors"):
        read_rest_request("m", None, _body(MAX_STRINGS, 1), None)


def test_each_tensors_binary_size_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    counted = oip._binary_size

    def binary_size(tensor: dict[str, Any]) -> int | None:
        calls.append(tensor)
        return counted(tensor)

    monkeypatch.setattr(oip, "_binary_size", binary_size)
    request = read_rest_request("m", None, _body(1_000), None)
    assert len(calls) == 1_000  # (twice a tensor before)
    assert request.digest is not None


def test_a_requests_parameters_are_read_no_further_than_the_scan_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    names: list[str] = []
    added = oip.add_name

    def add_name(name: str, into: list[str]) -> bool:
        names.append(name)
        return added(name, into)

    monkeypatch.setattr(oip, "add_name", add_name)
    parameters = {f"p{index}": index for index in range(50_000)}
    body = orjson.dumps({"inputs": _tiny(1), "parameters": parameters})
    request = read_rest_request("m", None, body, None)
    assert request.unscanned  # scan:truncated
    assert len(request.texts) <= oip._MAX_SCAN_STRINGS and len(request.names) <= oip._MAX_SCAN_STRINGS
    # the names up to the limit, the parameter past it, the input's name (50,001 before: every parameter walked)
    assert len(names) == oip._MAX_SCAN_STRINGS + 2


def _grpc_body(inputs: int, outputs: int = 0, parameters: int = 0) -> bytes:
    request = infer_request(model_name="m")
    for _ in range(inputs):
        request.inputs.add(name="i", datatype="INT32", shape=[1]).contents.int_contents.append(1)
    for _ in range(outputs):
        request.outputs.add(name="o")
    for index in range(parameters):
        request.parameters[f"p{index}"].int64_param = index
    return bytes(request.SerializeToString())


def test_a_model_infer_request_of_more_tensors_than_read_is_refused_unwalked(monkeypatch: pytest.MonkeyPatch) -> None:
    walked: list[int] = []
    tensor = oip_grpc._tensor

    def counted(*args: Any) -> tuple[str, bool, bool, bool]:
        walked.append(1)
        return tensor(*args)

    monkeypatch.setattr(oip_grpc, "_tensor", counted)
    assert read_infer_request(_grpc_body(MAX_STRINGS - 1, 1)).digest is not None  # at the limit: read
    walked.clear()
    with pytest.raises(RequestTooLarge, match="over 65,536 tensors"):
        read_infer_request(_grpc_body(2 * MAX_STRINGS))
    assert len(walked) == MAX_STRINGS  # read no further (131,072 before, and the call passed on)
    with pytest.raises(RequestTooLarge, match="over 65,536 tensors"):
        read_infer_request(_grpc_body(MAX_STRINGS, 1))


def test_a_model_infer_request_of_more_parameters_than_read_is_refused() -> None:
    assert read_infer_request(_grpc_body(1, parameters=MAX_STRINGS)).unscanned  # read, past the scan limit
    with pytest.raises(RequestTooLarge, match="over 65,536 parameters"):
        read_infer_request(_grpc_body(1, parameters=MAX_STRINGS + 1))
