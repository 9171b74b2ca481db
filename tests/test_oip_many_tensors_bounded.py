"""An OIP inference request of many tiny tensors: each tensor was read in Python six times over (its labels, its
binary section's size twice, its data for the digest and for text, its parameters, whether it is in shared memory),
whatever the scan limits, so `POST /v2/models/{m}/infer` with 278,000 one-element inputs (16 MB) held the event loop
1.4-2.5 s. Past `MAX_STRINGS` tensors (inputs and requested outputs) a request is now refused (413
`request_too_large`), as a body of too many JSON objects is: a tensor cannot be left unread and passed on, as its binary
bytes, its shared-memory region and its `data_labels` decide what the rest of the call is. A request's `parameters`
are read no further than the scan limit (they were walked whole: 1.3 M of them, 1.2 s), past it `scan:truncated`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import numpy as np
import orjson
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from proxy.detectors import TRUNCATED
from proxy.errors import RequestTooLarge
from proxy.flow import Outcome
from proxy.logs import ACCESS
from proxy.protocols import MAX_STRINGS, oip, oip_grpc
from proxy.protocols.oip import read_rest_request
from proxy.protocols.oip_grpc import read_infer_request
from tests.harness import LoopThread, ProxyHandle, serving
from tests.ingress.grpc_proxied import Answering, recorded, traced, triton_client
from tests.ingress.test_grpc_streams import CONFIG as GRPC_CONFIG
from tests.protocols.test_oip_grpc import EMAIL, PB, infer_request
from tests.servers.otlp_receiver import OtlpReceiver
from tests.test_oip_rest_error_shape import CONFIG, oip_server

BIG_CONFIG = CONFIG.replace("max_body_bytes: 4096", "max_body_bytes: 33554432")


def _tiny(count: int) -> list[dict[str, Any]]:
    return [{"name": "i", "shape": [1], "datatype": "INT32", "data": [1]} for _ in range(count)]


def _body(inputs: int, outputs: int = 0) -> bytes:
    return orjson.dumps({"inputs": _tiny(inputs), "outputs": [{"name": "o"}] * outputs})


# the tests that count a compiled module's calls by patching it: run with those modules interpreted (CI runs them
# so beside the compiled suite); compiled, a call within a module does not go through the patched name
INTERPRETED = pytest.mark.interpreted


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


@INTERPRETED
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


@INTERPRETED
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


@INTERPRETED
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


def _counting(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[int]:
    """Each call of `module.name` counted (a list of ones: its length)."""
    calls: list[int] = []
    counted = getattr(module, name)

    def counting(*args: Any) -> Any:
        calls.append(1)
        return counted(*args)

    monkeypatch.setattr(module, name, counting)
    return calls


def _tensor_parameters(request: Any, count: int, start: int = 0) -> None:
    for index in range(start, start + count):
        request.inputs[0].parameters[f"t{index}"].int64_param = index


@INTERPRETED
def test_a_tensors_parameters_count_with_the_requests_and_past_the_bound_are_refused_unread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """200,000 parameters on one input were read whole (1.7-1.9 s), where the request's own were refused past 65,536."""
    read = _counting(monkeypatch, oip_grpc, "_parameter")
    many = infer_request(model_name="m")
    many.inputs.add(name="i", datatype="INT32", shape=[1]).contents.int_contents.append(1)
    _tensor_parameters(many, 2 * MAX_STRINGS)
    with pytest.raises(RequestTooLarge, match="over 65,536 parameters"):
        read_infer_request(many.SerializeToString())
    assert len(read) == MAX_STRINGS  # read no further (131,072 before, and the call passed on)
    # the request's, its tensors' and its requested outputs' together: at the bound read, past it refused
    split = infer_request(model_name="m")
    split.inputs.add(name="i", datatype="INT32", shape=[1]).contents.int_contents.append(1)
    _tensor_parameters(split, MAX_STRINGS // 2)
    for index in range(MAX_STRINGS // 4):
        split.parameters[f"p{index}"].int64_param = index
    output = split.outputs.add(name="o")
    for index in range(MAX_STRINGS // 4):
        output.parameters[f"o{index}"].int64_param = index
    assert read_infer_request(split.SerializeToString()).unscanned  # read, past the scan limit
    output.parameters["one-more"].int64_param = 1
    with pytest.raises(RequestTooLarge, match="over 65,536 parameters"):
        read_infer_request(split.SerializeToString())


def test_a_model_infer_requests_parameter_texts_stop_at_the_scan_limit() -> None:
    """Past the scan limit a request parameter's text was appended all the same (65,536 of them), where REST's stop."""
    for place in ("request", "tensor", "output"):
        request = infer_request(model_name="m")
        request.inputs.add(name="i", datatype="INT32", shape=[1]).contents.int_contents.append(1)
        request.outputs.add(name="o")
        parameters = {"request": request.parameters, "tensor": request.inputs[0].parameters,
                      "output": request.outputs[0].parameters}[place]  # fmt: skip
        for index in range(3 * oip_grpc._MAX_STRINGS):
            parameters[f"p{index}"].string_param = f"text {index}"
        parameters["data_labels"].string_param = "read-after-the-rest"  # labels past the limit: read all the same
        read = read_infer_request(request.SerializeToString())
        assert read.unscanned, place  # scan:truncated
        assert len(read.texts) <= oip_grpc._MAX_STRINGS, (place, len(read.texts))  # 30,000 before
        if place != "output":  # (a requested output's `data_labels` are no input's)
            assert read.labels == ("read-after-the-rest",), place


def _reply(outputs: int, named: bool = False) -> bytes:
    reply = PB["ModelInferResponse"](model_name="m")
    for _ in range(outputs):
        reply.outputs.add(name="o" if named else "", datatype="INT32", shape=[1]).contents.int_contents.append(1)
    return bytes(reply.SerializeToString())


def _grpc_read(body: bytes) -> Outcome:
    outcome = Outcome(started_ns=0)
    observer = oip_grpc.ReplyObserver(outcome, EMAIL, False)
    observer.body(body)
    observer.finish()
    return outcome


@INTERPRETED
def test_a_model_infer_reply_of_more_outputs_than_read_is_read_no_further_and_said_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reply of a million tiny outputs was read whole in Python (7 s); a reply cannot be refused once the model ran."""
    walked = _counting(monkeypatch, oip_grpc, "_tensor")
    whole = _grpc_read(_reply(MAX_STRINGS))  # at the bound: read
    assert TRUNCATED not in whole.output_detected and whole.output_digest is not None
    walked.clear()
    cut = _grpc_read(_reply(2 * MAX_STRINGS))
    assert len(walked) == MAX_STRINGS  # read no further (131,072 before)
    assert TRUNCATED in cut.output_detected
    assert cut.output_digest is None  # (of some of the outputs only, it would stand for the reply)
    assert cut.response_model == "m"


@INTERPRETED
def test_a_model_infer_replys_parameters_are_read_no_further_than_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    read = _counting(monkeypatch, oip_grpc, "_parameter")
    reply = PB["ModelInferResponse"](model_name="m")
    output = reply.outputs.add(name="o", datatype="INT32", shape=[1])
    for index in range(MAX_STRINGS):
        output.parameters[f"o{index}"].int64_param = index
        reply.parameters[f"r{index}"].int64_param = index
    outcome = _grpc_read(reply.SerializeToString())
    assert len(read) == MAX_STRINGS  # the output's and the reply's together (131,072 before)
    assert TRUNCATED in outcome.output_detected and outcome.output_digest is None


@INTERPRETED
def test_a_rest_reply_of_more_outputs_than_read_is_read_no_further_and_said_so(monkeypatch: pytest.MonkeyPatch) -> None:
    dumped = _counting(monkeypatch, oip, "_data_json")

    def read(outputs: int) -> Outcome:
        outcome = Outcome(started_ns=0)
        observer = oip.RestReplyObserver(outcome, EMAIL, False, None)
        tensors = [{"name": "", "shape": [1], "datatype": "INT32", "data": [1]}] * outputs
        observer.body(orjson.dumps({"model_name": "m", "outputs": tensors}))
        observer.finish()
        return outcome

    whole = read(MAX_STRINGS)  # at the bound: read
    assert TRUNCATED not in whole.output_detected and whole.output_digest is not None
    dumped.clear()
    cut = read(2 * MAX_STRINGS)
    assert len(dumped) == MAX_STRINGS  # read no further (131,072 before)
    assert TRUNCATED in cut.output_detected and cut.output_digest is None
    assert cut.response_model == "m"


ZONE = """detectors: [email]
zones:
  - name: personal
    labels: [pii:email, scan:truncated]
    allow_purposes: [assistant]
"""
MANY_CONFIG = GRPC_CONFIG + ZONE


@pytest.fixture
def many_outputs(loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any) -> Iterator[tuple[Any, Answering]]:
    """A model answering with twice `MAX_STRINGS` outputs, unnamed (its names are not what is past a limit)."""
    upstream = Answering(_reply(2 * MAX_STRINGS))
    with triton_client(loop_thread, otlp, make_proxy, MANY_CONFIG, upstream) as client:
        yield client, upstream


def _one_input() -> Any:
    tensor = grpcclient.InferInput("i", [1], "INT32")
    tensor.set_data_from_numpy(np.ones(1, dtype=np.int32))
    return tensor


def test_through_a_proxy_a_tensors_many_parameters_are_refused_and_recorded(
    many_outputs: tuple[Any, Answering], otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    client, upstream = many_outputs
    tensor = _one_input()
    for index in range(MAX_STRINGS + 1):  # on the input, none on the request
        tensor._get_tensor().parameters[f"t{index}"].int64_param = index
    trace_id, parent = traced(0, 0x0A1F_0000)
    with pytest.raises(InferenceServerException) as refused:
        client.infer("m", [tensor], headers={"traceparent": parent})
    assert refused.value.status() == "StatusCode.RESOURCE_EXHAUSTED", refused.value
    assert "an inference request of over 65,536 parameters" in refused.value.message()
    assert upstream.reached == 0
    span, line = recorded(otlp, caplog, trace_id)
    assert span.attributes["error.type"] == "request_too_large" and "65,536 parameters" in span.status_message
    assert line.status == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]


def test_through_a_proxy_a_reply_of_many_outputs_is_passed_on_whole_and_said_unread(
    many_outputs: tuple[Any, Answering], otlp: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    client, upstream = many_outputs
    trace_id, parent = traced(1, 0x0A1F_0000)
    answer = client.infer("m", [_one_input()], headers={"traceparent": parent})
    assert len(answer.get_response().outputs) == 2 * MAX_STRINGS  # passed on whole
    span, line = recorded(otlp, caplog, trace_id)
    assert line.status == 0 and "scan:truncated" in span.attributes["lineage.output.labels"]
    assert "lineage.output.digest" not in span.attributes  # (a digest of some of them would stand for the reply)


@INTERPRETED
def test_raw_contents_past_the_bound_are_refused_in_a_request_and_read_no_further_in_a_reply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A million empty `raw_input_contents` (2 MB) were each read in Python, 3.4 s, and the call passed on; a reply's
    `raw_output_contents` likewise. One belongs to each tensor: more than the tensors a request may hold are none's."""
    request = infer_request(model_name="m")
    request.inputs.add(name="i", datatype="INT32", shape=[1])
    request.raw_input_contents.extend([b""] * MAX_STRINGS)
    assert read_infer_request(request.SerializeToString()).digest is not None  # at the bound: read
    request.raw_input_contents.append(b"")
    with pytest.raises(RequestTooLarge, match="over 65,536 raw contents"):
        read_infer_request(request.SerializeToString())
    matched: list[int] = []
    raw_strings = oip_grpc._raw_strings

    def counted(raws: list[memoryview], *args: Any) -> bool:
        matched.append(len(raws))
        return raw_strings(raws, *args)

    monkeypatch.setattr(oip_grpc, "_raw_strings", counted)
    reply = PB["ModelInferResponse"](model_name="m")
    reply.raw_output_contents.extend([b"\x01\x00\x00\x00"] * (2 * MAX_STRINGS))
    outcome = _grpc_read(reply.SerializeToString())
    assert matched == [MAX_STRINGS]  # read no further ([131,072] before)
    assert TRUNCATED in outcome.output_detected and outcome.output_digest is None
    assert outcome.response_model == "m"


def test_a_rest_replys_parameters_are_read_no_further_than_the_bound_across_its_outputs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each output's parameters were bounded alone (the scan limit), not the reply's: 250 outputs of 10,000 each (21 MB)
    took 1 s of Python beyond the parse."""
    read: list[int] = []
    strings = oip.parameter_strings

    def counted(parameters: dict[str, Any], out: list[str], *args: Any) -> bool:
        whole = strings(parameters, out, *args)
        read.append(len(out))
        return whole

    monkeypatch.setattr(oip, "parameter_strings", counted)
    parameters = {f"p{index}": index for index in range(oip._MAX_SCAN_STRINGS)}
    tensors = [{"name": "", "shape": [1], "datatype": "INT32", "data": [1], "parameters": parameters}] * 100
    outcome = Outcome(started_ns=0)
    observer = oip.RestReplyObserver(outcome, EMAIL, False, None)
    observer.body(orjson.dumps({"model_name": "m", "outputs": tensors}))
    observer.finish()
    assert TRUNCATED in outcome.output_detected
    assert sum(read) <= MAX_STRINGS + oip._MAX_SCAN_STRINGS, sum(read)  # 1,000,000 before
