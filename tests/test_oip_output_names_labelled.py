"""A reply's output names reach its client as its data does: MLServer and KServe's model server send the names their
runtime gives its outputs (a custom runtime may name one from its input), and a datatype KServe passes through as
written. The proxy read a request's tensor names (`Request.names`) but not a reply's, so an output the real MLServer's
runtime named `alice@example.com` reached the client with the call's output recorded unlabelled: its span, its edge
and its `x-data-labels` said nothing of the address. They are now read beside the content, over REST and gRPC (unary
and each ModelStreamInfer reply), neither captured nor digested, within the scan limit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import orjson
import pytest
from tritonclient.grpc import service_pb2

from proxy.config import DetectorSpec
from proxy.detectors import TRUNCATED, Detectors
from proxy.flow import Outcome
from proxy.protocols.oip import RestReplyObserver
from proxy.protocols.oip_generate import GenerateObserver
from proxy.protocols.oip_grpc import MODEL_INFER, MODEL_STREAM_INFER, ReplyObserver
from proxy.record.store import SqliteStore
from tests.harness import ProxyHandle
from tests.protocols.test_oip_grpc import EMAIL, PB
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.real import mlserver_runtime

ADDRESS = "alice@example.com"
CONFIG = """
listen: {http: "127.0.0.1:0", grpc: "127.0.0.1:0"}
upstreams:
  - {name: mlserver, url: "${REST}", grpc: "${GRPC}", protocol: oip}
routes:
  - {model: "*", upstream: mlserver}
policy: {anonymous: allow, default_purpose: care}
zones:
  - {name: personal, labels: ["pii:email"], allow_purposes: [care]}
detectors: [email]
telemetry: {exporter: otlp, endpoint: "${OTLP}", protocol: grpc}
lineage: {store: "${STORE}"}
"""
# a runtime that names its one output from its input's two strings (`["alice", "example.com"]`: no address in the
# request), its data a number
NAMER = """
from mlserver import MLModel
from mlserver.codecs import StringCodec
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput


class Echo(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        user, domain = StringCodec.decode_input(payload.inputs[0])
        return InferenceResponse(model_name=self.name, outputs=[
            ResponseOutput(name=f"{user}@{domain}", datatype="INT32", shape=[1], data=[7])])
"""
PARTS = ["alice", "example.com"]


@pytest.fixture(scope="module")
def namer_mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    with mlserver_runtime(tmp_path_factory.mktemp("mlserver-namer"), NAMER, "namer") as addresses:
        yield addresses


def grpc_request(parts: list[str]) -> Any:
    request = service_pb2.ModelInferRequest(model_name="namer")
    tensor = request.inputs.add(name="parts", datatype="BYTES", shape=[len(parts)])
    tensor.contents.bytes_contents.extend(part.encode() for part in parts)
    return request


def output_labels(otlp: OtlpReceiver, trace_id: str, store: Path) -> tuple[list[str], list[str]]:
    """The output labels of the call's span, and of the store's edges (their union: one edge here)."""
    span = otlp.by_trace(trace_id).attributes
    kept = SqliteStore(store, readonly=True)
    try:
        edges = [row.key.output_labels for row in kept.rows()]
    finally:
        kept.close()
    return list(span.get("lineage.output.labels", [])), edges


@pytest.mark.realserver
def test_an_output_named_with_an_address_labels_the_output_of_the_real_mlserver_over_rest(
    namer_mlserver: tuple[str, str], otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle], tmp_path: Path
) -> None:
    rest, grpc_address = namer_mlserver
    body = {"inputs": [{"name": "parts", "datatype": "BYTES", "shape": [2], "data": PARTS}]}
    direct = httpx.post(f"{rest}/v2/models/namer/infer", json=body, timeout=60)
    assert direct.json()["outputs"][0]["name"] == ADDRESS  # the real MLServer sends the client the name
    proxy = make_proxy(CONFIG, wait="probed", REST=rest, GRPC=grpc_address, OTLP=f"http://127.0.0.1:{otlp.port}")
    reply = httpx.post(f"{proxy.url}/v2/models/namer/infer", json=body, timeout=60)
    assert reply.status_code == 200 and reply.json()["outputs"][0]["name"] == ADDRESS, reply.text
    assert reply.headers["x-data-labels"].split(",") == ["pii:email"], reply.headers
    span_labels, edges = output_labels(otlp, reply.headers["x-trace-id"], tmp_path / "lineage.db")
    assert span_labels == ["pii:email"] and edges == ["pii:email"], (span_labels, edges)


@pytest.mark.realserver
def test_an_output_named_with_an_address_labels_the_output_of_the_real_mlserver_over_grpc(
    namer_mlserver: tuple[str, str], otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle], tmp_path: Path
) -> None:
    rest, grpc_address = namer_mlserver
    proxy = make_proxy(CONFIG, wait="probed", REST=rest, GRPC=grpc_address, OTLP=f"http://127.0.0.1:{otlp.port}")
    read = service_pb2.ModelInferResponse.FromString
    with grpc.insecure_channel(proxy.grpc) as channel:
        infer = channel.unary_unary(MODEL_INFER, request_serializer=lambda m: m.SerializeToString(),
                                    response_deserializer=read)  # fmt: skip
        reply, call = infer.with_call(grpc_request(PARTS), timeout=60)
        assert reply.outputs[0].name == ADDRESS
        trailers = dict(call.trailing_metadata())  # (a unary call's lineage: its trailing metadata)
        assert trailers["x-data-labels"] == "pii:email", trailers
    span_labels, edges = output_labels(otlp, trailers["x-trace-id"], tmp_path / "lineage.db")
    assert span_labels == ["pii:email"] and edges == ["pii:email"], (span_labels, edges)


@pytest.mark.realserver
def test_the_real_mlservers_stream_is_read_its_output_names_too(
    namer_mlserver: tuple[str, str], otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle], tmp_path: Path
) -> None:
    """MLServer answers ModelStreamInfer with bare ModelInferResponse messages (its own proto), not Triton's
    ModelStreamInferResponse: its `model_name` was read as an error message, the stream recorded `upstream_error`,
    its outputs unread."""
    rest, grpc_address = namer_mlserver
    proxy = make_proxy(CONFIG, wait="probed", REST=rest, GRPC=grpc_address, OTLP=f"http://127.0.0.1:{otlp.port}")
    with grpc.insecure_channel(proxy.grpc) as channel:
        stream = channel.stream_stream(MODEL_STREAM_INFER, request_serializer=lambda m: m.SerializeToString(),
                                       response_deserializer=service_pb2.ModelInferResponse.FromString)  # fmt: skip
        streamed = stream(iter([grpc_request(PARTS)]), timeout=60)  # (MLServer's default runtime: one request)
        assert [[output.name for output in reply.outputs] for reply in streamed] == [[ADDRESS]]
        assert streamed.code() == grpc.StatusCode.OK
        trace_id = dict(streamed.initial_metadata())["x-trace-id"]
    span = otlp.by_trace(trace_id).attributes
    assert "error.type" not in span and span["lineage.output.digest"].startswith("sha256:"), span
    span_labels, edges = output_labels(otlp, trace_id, tmp_path / "lineage.db")
    assert span_labels == ["pii:email"] and edges == ["pii:email"], (span_labels, edges)


# a runtime whose stream answers each request with a reply holding no output (as a runtime acknowledges a request, or
# ends a generation), then one whose output it names as NAMER does
ACKNOWLEDGER = (
    NAMER
    + """
    async def predict_stream(self, payloads):
        async for payload in payloads:
            yield InferenceResponse(model_name=self.name, outputs=[])
            yield await self.predict(payload)
"""
)


@pytest.mark.realserver
def test_the_real_mlservers_stream_reply_without_outputs_is_no_error(
    otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle], tmp_path: Path
) -> None:
    """MLServer's reply without outputs, sent to a client that gave no request id, holds its model's name alone: a
    field 1, as Triton's error message is. It was read as one, the stream recorded `upstream_error` (the model's name
    its message); it is told by naming the call's model, and the stream's outputs after it are read as ever."""
    with mlserver_runtime(tmp_path / "mlserver", ACKNOWLEDGER, "namer") as (rest, grpc_address):
        proxy = make_proxy(CONFIG, wait="probed", REST=rest, GRPC=grpc_address, OTLP=f"http://127.0.0.1:{otlp.port}")
        with grpc.insecure_channel(proxy.grpc) as channel:
            stream = channel.stream_stream(MODEL_STREAM_INFER, request_serializer=lambda m: m.SerializeToString(),
                                           response_deserializer=service_pb2.ModelInferResponse.FromString)  # fmt: skip
            streamed = stream(iter([grpc_request(PARTS)]), timeout=60)
            replies = list(streamed)
            assert streamed.code() == grpc.StatusCode.OK
            trace_id = dict(streamed.initial_metadata())["x-trace-id"]
    assert [reply.SerializeToString() for reply in replies[:1]] == [b"\n\x05namer"]  # its model's name, no more
    assert [[output.name for output in reply.outputs] for reply in replies] == [[], [ADDRESS]]
    span = otlp.by_trace(trace_id).attributes
    assert "error.type" not in span and span["lineage.output.digest"].startswith("sha256:"), span
    span_labels, edges = output_labels(otlp, trace_id, tmp_path / "lineage.db")
    assert span_labels == ["pii:email"] and edges == ["pii:email"], (span_labels, edges)


def test_a_stream_message_naming_the_calls_model_alone_is_mlservers_and_any_output_is_read() -> None:
    """Field 1 alone is MLServer's reply when it names the call's model (`ReplyObserver.model`), else Triton's error;
    an `infer_response` beside it, whichever it is taken for, is read (an address in it labels the output)."""
    inner = PB["ModelInferResponse"](model_name="namer")
    inner.outputs.add(name="OUTPUT0", datatype="BYTES", shape=[1]).contents.bytes_contents.append(b"bob@example.org")
    for model, error in (("namer", None), ("simple", "namer")):
        outcome = Outcome(started_ns=1)
        observer = ReplyObserver(outcome, EMAIL, False)
        observer.model = model
        assert observer.stream_message(PB["ModelInferResponse"](model_name="namer").SerializeToString()) == error
        inside = PB["ModelStreamInferResponse"](error_message="namer", infer_response=inner).SerializeToString()
        assert observer.stream_message(inside) == error
        observer.finish()
        assert outcome.error_type == (error and "upstream_error") and outcome.output_detected == {"pii:email"}


# a runtime whose stream names an output `secret`, then one `project`, a reply each (a call's input holds neither: its
# labels are its output's too)
SPANNER = (
    NAMER
    + """
    async def predict_stream(self, payloads):
        async for payload in payloads:
            for name in ("secret", "project"):
                yield InferenceResponse(model_name=self.name, outputs=[
                    ResponseOutput(name=name, datatype="INT32", shape=[1], data=[7])])
"""
)
PROJECT = CONFIG.replace('labels: ["pii:email"]', 'labels: ["pii:proj"]').replace(
    "detectors: [email]", 'detectors: [{name: proj, pattern: "secret\\\\s+project"}]'
)


@pytest.mark.realserver
def test_the_real_mlservers_rest_stream_is_read_its_names_as_one_text(
    otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle], tmp_path: Path
) -> None:
    """MLServer's `/infer_stream` names an output `secret`, then one `project`: one text of the stream's names, as over
    gRPC, where each event's alone found nothing and was passed over (the output unlabelled)."""
    body = {"inputs": [{"name": "parts", "datatype": "BYTES", "shape": [2], "data": PARTS}]}
    with mlserver_runtime(tmp_path / "mlserver", SPANNER, "namer") as (rest, grpc_address):
        proxy = make_proxy(PROJECT, wait="probed", REST=rest, GRPC=grpc_address, OTLP=f"http://127.0.0.1:{otlp.port}")
        with httpx.stream("POST", f"{proxy.url}/v2/models/namer/infer_stream", json=body, timeout=60) as reply:
            events = [orjson.loads(line[6:]) for line in reply.iter_lines() if line.startswith("data: ")]
        assert reply.status_code == 200 and [[o["name"] for o in e["outputs"]] for e in events] == [
            ["secret"],
            ["project"],
        ]
        with grpc.insecure_channel(proxy.grpc) as channel:
            stream = channel.stream_stream(MODEL_STREAM_INFER, request_serializer=lambda m: m.SerializeToString(),
                                           response_deserializer=service_pb2.ModelInferResponse.FromString)  # fmt: skip
            streamed = stream(iter([grpc_request(PARTS)]), timeout=60)
            assert [[output.name for output in message.outputs] for message in streamed] == [["secret"], ["project"]]
            grpc_trace = dict(streamed.initial_metadata())["x-trace-id"]
    for trace_id in (reply.headers["x-trace-id"], grpc_trace):
        span = otlp.by_trace(trace_id).attributes
        assert "error.type" not in span and span.get("lineage.output.labels") == ["pii:proj"], (trace_id, span)


def rest_reply(outputs: list[dict[str, Any]], detectors: Detectors = EMAIL) -> Outcome:
    outcome = Outcome(started_ns=1)
    observer = RestReplyObserver(outcome, detectors, True, None)
    observer.body(orjson.dumps({"model_name": "m", "outputs": outputs}))
    observer.finish()
    return outcome


def grpc_reply(names: list[tuple[str, str]], detectors: Detectors = EMAIL) -> Outcome:
    reply = PB["ModelInferResponse"](model_name="m")
    for name, datatype in names:
        reply.outputs.add(name=name, datatype=datatype, shape=[1]).contents.bytes_contents.append(b"seven")
    outcome = Outcome(started_ns=1)
    observer = ReplyObserver(outcome, detectors, True)
    observer.body(reply.SerializeToString())
    observer.finish()
    return outcome


def test_output_names_and_datatypes_are_read_beside_the_content_over_rest_and_grpc() -> None:
    def output(name: str, datatype: str = "BYTES") -> dict[str, Any]:
        return {"name": name, "datatype": datatype, "shape": [1], "data": ["seven"]}

    for read in (lambda n, d: rest_reply([output(n, d)]), lambda n, d: grpc_reply([(n, d)])):
        plain, named, typed = read("OUTPUT0", "BYTES"), read(ADDRESS, "BYTES"), read("OUTPUT0", ADDRESS)
        assert plain.output_detected == frozenset()
        assert named.output_detected == typed.output_detected == {"pii:email"}
        # neither the content nor its digest: the output's own
        assert named.content == typed.content == plain.content == ("seven",)
        assert named.output_digest == typed.output_digest == plain.output_digest is not None


def test_output_names_past_the_scan_limit_say_so() -> None:
    short = Detectors([DetectorSpec("email")], max_chars=12)  # "OUTPUT0" and the data fit; an address past it does not
    rest = rest_reply([{"name": "x" * 20 + ADDRESS, "datatype": "INT32", "shape": [1], "data": [7]}], short)
    over_grpc = grpc_reply([("x" * 20 + ADDRESS, "BYTES")], short)
    assert rest.output_detected == over_grpc.output_detected == {TRUNCATED}
    assert grpc_reply([("OUTPUT0", "BYTES")], short).output_detected == frozenset()


def test_output_names_of_a_stream_are_read_each_messages_apart() -> None:
    def streamed(*names: str) -> Outcome:
        outcome = Outcome(started_ns=1)
        observer = ReplyObserver(outcome, EMAIL, False)
        for name in names:
            message = PB["ModelStreamInferResponse"]()
            message.infer_response.model_name = "m"
            message.infer_response.outputs.add(name=name, datatype="FP32", shape=[1]).contents.fp32_contents.append(1)
            observer.stream_message(message.SerializeToString())
        observer.finish()
        return outcome

    assert streamed("OUTPUT0", ADDRESS, "OUTPUT0").output_detected == {"pii:email"}
    assert streamed("OUTPUT0", "OUTPUT0").output_detected == frozenset()
    assert streamed("alice@exam", "ple.com").output_detected == frozenset()  # two names, not one


def test_a_streams_names_are_read_as_one_text_though_the_first_found_nothing() -> None:
    """A stream's first names, in which the detectors found nothing (remembered: `Detectors.finds_nothing`), are read
    with a later message's, a line apart, as they were before they could be passed over: a pattern spanning lines
    (`secret\\s+project`) finds what neither name holds alone. Passed over, `secret` then `project` went unlabelled."""
    detectors = Detectors([DetectorSpec(name="proj", pattern=r"secret\s+project")])
    assert detectors.scan_output("secret\nproject") == {"pii:proj"}
    for _ in range(2):  # the memo cold, then warm
        outcome = Outcome(started_ns=1)
        observer = ReplyObserver(outcome, detectors, False)
        for name in ("secret", "project", "OUTPUT0"):
            message = PB["ModelInferResponse"](model_name="m", id="r")
            message.outputs.add(name=name, datatype="FP32", shape=[1]).contents.fp32_contents.append(1.0)
            observer.stream_message(message.SerializeToString())
        observer.finish()
        assert outcome.output_detected == {"pii:proj"}


def test_a_rest_streams_names_are_read_as_one_text_though_the_first_found_nothing() -> None:
    """So too over REST: MLServer's `/infer_stream` events (inference responses) and Triton's `/generate_stream` events
    (an output a key), each event's names a line apart from the last's. Checked by each event alone, `secret` then
    `project` were both passed over, as found nothing in before, the output unlabelled."""
    detectors = Detectors([DetectorSpec(name="proj", pattern=r"secret\s+project")])

    def tensors(name: str) -> dict[str, Any]:
        return {"model_name": "m", "outputs": [{"name": name, "datatype": "FP32", "shape": [1], "data": [1.0]}]}

    def generated(name: str) -> dict[str, Any]:
        return {"model_name": "m", name: "x"}  # (a generate response's output: a key, its value the output's text)

    for event in (tensors, generated):
        for names, found in ((("secret", "project", "OUTPUT0"), {"pii:proj"}), (("secret", "OUTPUT0"), set())):
            for _ in range(2):  # the memo cold, then warm
                outcome = Outcome(started_ns=1)
                observer = GenerateObserver(outcome, detectors, False)
                observer.head(200, {"content-type": "text/event-stream"}.get)
                for name in names:
                    observer.chunk(b"data: " + orjson.dumps(event(name)) + b"\n\n")
                observer.finish()
                assert outcome.output_detected == found, (event, names)


@pytest.mark.interpreted  # (it counts the scans by patching one: the module interpreted)
def test_names_the_detectors_found_nothing_in_are_not_read_again(monkeypatch: pytest.MonkeyPatch) -> None:
    detectors = Detectors([DetectorSpec("email")])
    scanned: list[str] = []
    scan = detectors.scan_output
    monkeypatch.setattr(detectors, "scan_output", lambda text: scanned.append(text) or scan(text))
    numbers = PB["ModelInferResponse"](model_name="m")
    numbers.outputs.add(name="OUTPUT0", datatype="FP32", shape=[1]).contents.fp32_contents.append(1.0)
    for _ in range(3):  # a model's replies: the same names on every call, and no text
        rest = rest_reply([{"name": "OUTPUT0", "datatype": "FP32", "shape": [1], "data": [1.0]}], detectors)
        outcome = Outcome(started_ns=1)
        observer = ReplyObserver(outcome, detectors, False)
        observer.body(numbers.SerializeToString())
        observer.finish()
        assert rest.output_detected == outcome.output_detected == frozenset()
    assert scanned == ["OUTPUT0"]  # read once, for every call after it
    assert rest_reply([{"name": ADDRESS, "datatype": "FP32", "shape": [1], "data": [1.0]}], detectors).output_detected
    assert rest_reply([{"name": ADDRESS, "datatype": "FP32", "shape": [1], "data": [1.0]}], detectors).output_detected


def test_a_bare_model_infer_response_on_a_stream_is_read_as_mlserver_sends_it() -> None:
    bare = PB["ModelInferResponse"](model_name="namer", model_version="1", id="r")
    bare.outputs.add(name=ADDRESS, datatype="BYTES", shape=[1]).contents.bytes_contents.append(b"bob@example.org")
    triton = PB["ModelStreamInferResponse"](error_message="namer")  # Triton's: an error, read as one
    outcome = Outcome(started_ns=1)
    observer = ReplyObserver(outcome, EMAIL, False)
    assert observer.stream_message(bare.SerializeToString()) is None
    assert observer.stream_message(triton.SerializeToString()) == "namer"
    observer.finish()
    assert outcome.response_model == "namer:1" and outcome.output_digest is not None
    assert outcome.output_detected == {"pii:email"} and outcome.error_type == "upstream_error"


def test_a_triton_reply_with_a_field_of_a_bare_one_beside_is_still_read() -> None:
    """A field 3-6 beside a ModelStreamInferResponse's `infer_response` (unknown to Triton's proto, which its client
    skips, reading the `infer_response`) made the message read as a bare ModelInferResponse: the `infer_response`
    taken for a model_version string, its outputs (an address here) unread, the output's digest that of nothing."""
    inner = PB["ModelInferResponse"](model_name="m", id="x")
    inner.outputs.add(name="OUTPUT0", datatype="BYTES", shape=[1]).contents.bytes_contents.append(b"bob@example.org")
    triton = PB["ModelStreamInferResponse"](infer_response=inner).SerializeToString()
    for beside in (bytes([5 << 3 | 2, 0]), bytes([3 << 3 | 2, 1]) + b"z"):  # an empty output; an id
        read = PB["ModelStreamInferResponse"].FromString(triton + beside)  # as Triton's client reads it
        assert list(read.infer_response.outputs[0].contents.bytes_contents) == [b"bob@example.org"]
        outcome = Outcome(started_ns=1)
        observer = ReplyObserver(outcome, EMAIL, False)
        assert observer.stream_message(triton + beside) is None
        observer.finish()
        assert outcome.output_detected == {"pii:email"} and outcome.response_model == "m", outcome


def test_a_bare_replys_version_is_not_read_as_a_triton_reply() -> None:
    """The bare reply's model_version (its field 2) is read as Triton's `infer_response` only where it is a message's
    fields: `1` is not, and reads as nothing (not `scan:truncated`)."""
    bare = PB["ModelInferResponse"](model_name="namer", model_version="1", id="r")
    bare.outputs.add(name="OUTPUT0", datatype="FP32", shape=[1]).contents.fp32_contents.append(1.0)
    outcome = Outcome(started_ns=1)
    observer = ReplyObserver(outcome, EMAIL, False)
    assert observer.stream_message(bare.SerializeToString()) is None
    observer.finish()
    assert not outcome.output_detected and not outcome.error_type and outcome.response_model == "namer:1", outcome
