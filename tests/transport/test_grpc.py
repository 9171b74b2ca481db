"""The gRPC sidecar with the real tritonclient: MLServer behind it (real), and a faithful OIP server
in its own process for the fault cases."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.conftest import KEYS, sha
from tests.harness import dead_port
from tests.servers.real import faithful_oip

CONFIG = f"""
listen:
  http: 127.0.0.1:0
  grpc: 127.0.0.1:0
upstreams:
  - name: oip
    grpc: ${{OIP_GRPC}}
    protocol: oip
    timeout_s: ${{TIMEOUT:-30}}
  - name: oip-rest
    url: ${{OIP_HTTP:-http://127.0.0.1:1}}
    protocol: oip
routes:
  - model: simple          # named: its metadata is fetched at start (others when first seen)
    upstream: oip
  - model: iris-rest
    upstream: oip-rest
  - model: "*"
    upstream: ${{ROUTE:-oip}}
callers:
  - name: lab
    api_key_sha256: {sha(KEYS["ops"])}
    purposes: [evaluation, assistant]
    default_purpose: evaluation
zones:
  - name: health
    labels: [health]
    allow_purposes: [assistant]
telemetry:
  exporter: otlp
  endpoint: ${{OTLP}}
lineage:
  store: ${{STORE}}
"""
AUTH = {"authorization": f"Bearer {KEYS['ops']}"}
IRIS = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)


@pytest.fixture(scope="module")
def faithful(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    with faithful_oip(tmp_path_factory.mktemp("oip")) as server:
        yield server


def requests_seen(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def simple_inputs(a: list[int], b: list[int]) -> list[grpcclient.InferInput]:
    inputs = []
    for name, values in (("A", a), ("B", b)):
        tensor = grpcclient.InferInput(name, [1, len(values)], "INT32")
        tensor.set_data_from_numpy(np.array([values], dtype=np.int32))
        inputs.append(tensor)
    return inputs


@pytest.fixture
def proxied(faithful, otlp, make_proxy):  # type: ignore[no-untyped-def]
    address, log = faithful
    proxy = make_proxy(CONFIG, wait="probed", OIP_GRPC=address, OTLP=f"http://127.0.0.1:{otlp.port}",
                       OIP_HTTP=f"http://127.0.0.1:{dead_port()}")  # fmt: skip
    return proxy, grpcclient.InferenceServerClient(proxy.grpc), log, otlp


def test_unary_infer_with_lineage_metadata_and_span(proxied) -> None:  # type: ignore[no-untyped-def]
    proxy, client, log, otlp = proxied
    before = len(requests_seen(log))
    result = client.infer("simple", simple_inputs([1, 2, 3], [10, 20, 30]), headers=AUTH)
    assert result.as_numpy("SUM").tolist() == [[11, 22, 33]]
    response = result.get_response()
    assert (response.model_name, response.model_version) == ("simple", "2")
    seen = requests_seen(log)[before:]
    assert len(seen) == 1 and "authorization" not in seen[0]["metadata"]  # the caller's key stays at the proxy
    trace_id = seen[0]["metadata"]["traceparent"].split("-")[1]
    span = otlp.by_trace(trace_id)
    assert span.name == "infer simple"
    a = span.attributes
    assert a["lineage.checkpoint"] == "simple:2" and a["lineage.checkpoint.source"] == "upstream"
    assert a["lineage.purpose"] == "evaluation" and a["lineage.caller"] == "lab"
    assert a["rpc.method"] == "ModelInfer" and a["rpc.grpc.status_code"] == 0
    assert a["lineage.input.digest"].startswith("sha256:") and a["lineage.output.digest"].startswith("sha256:")
    assert a["server.address"] == "127.0.0.1"


LINEAGE_KEYS = ("x-lineage-checkpoint", "x-lineage-decision", "x-lineage-upstream", "x-data-labels", "x-trace-id")


def test_trailing_metadata_carries_lineage(proxied) -> None:  # type: ignore[no-untyped-def]
    """A unary call's lineage is trailing metadata (sent with the reply and the status in one batch);
    tritonclient hides a call's metadata, so read it with a raw grpc call."""
    import grpc

    proxy, _, _, _ = proxied
    request = grpcclient.service_pb2.ModelInferRequest(model_name="echo", model_version="1")
    tensor = request.inputs.add(name="TEXT", datatype="BYTES", shape=[1])
    tensor.contents.bytes_contents.append(b"write to ana@example.org")
    request.parameters["data_labels"].string_param = "campaign-7"
    with grpc.insecure_channel(proxy.grpc) as channel:
        stub = grpcclient.service_pb2_grpc.GRPCInferenceServiceStub(channel)
        reply, call = stub.ModelInfer.with_call(request, metadata=tuple(AUTH.items()))
    md = dict(call.trailing_metadata())
    assert md["x-lineage-checkpoint"] == "echo:1"
    assert md["x-lineage-decision"] == "allow"
    assert md["x-lineage-upstream"] == "oip"
    assert md["x-data-labels"] == "campaign-7"
    assert len(md["x-trace-id"]) == 32
    initial = dict(call.initial_metadata())
    assert initial["x-upstream"] == "faithful"  # the upstream's own initial metadata is passed on, as such
    assert not set(LINEAGE_KEYS) & set(initial)  # and the lineage is not (also) there
    assert reply.outputs[0].contents.bytes_contents == [b"write to ana@example.org"]


def test_denials_over_grpc(proxied) -> None:  # type: ignore[no-untyped-def]
    proxy, client, log, otlp = proxied
    before = len(requests_seen(log))
    with pytest.raises(InferenceServerException) as caught:
        client.infer("simple", simple_inputs([1], [2]), headers={**AUTH, "x-data-labels": "health"})
    assert caught.value.status() == "StatusCode.PERMISSION_DENIED"
    assert "zone health allows: assistant" in caught.value.message()
    with pytest.raises(InferenceServerException) as anonymous:
        client.infer("simple", simple_inputs([1], [2]))
    assert anonymous.value.status() == "StatusCode.UNAUTHENTICATED"
    assert "missing API key" in anonymous.value.message()
    with pytest.raises(InferenceServerException) as bad:
        client.infer("simple", simple_inputs([1], [2]), headers={**AUTH, "x-data-labels": "NOT OK"})
    assert bad.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert requests_seen(log)[before:] == []  # nothing reached the upstream
    denied = otlp.wait_for(lambda spans: any(s.attributes.get("lineage.decision") == "deny" for s in spans))
    assert any(s.attributes.get("error.type") == "purpose_denied" for s in denied)


def test_metadata_calls_pass_through_and_an_unknown_method_is_refused_under_zones(proxied) -> None:  # type: ignore[no-untyped-def]
    """Health and metadata RPCs carry no data; any other method (Triton's repository loads, shared-memory
    registration, trace settings, or a service of its own) is opaque: the proxy does not read its messages,
    so with zones configured it is refused (`policy.passthrough: auto`), as a path no adapter reads is."""
    import grpc

    proxy, client, _, otlp = proxied
    assert client.is_server_live(headers=AUTH) and client.is_server_ready(headers=AUTH)
    assert client.is_model_ready("simple", headers=AUTH)
    assert client.get_server_metadata(headers=AUTH).name == "faithful-oip"
    assert list(client.get_model_metadata("simple", headers=AUTH).versions) == ["1", "2"]
    with grpc.insecure_channel(proxy.grpc) as channel:
        live = channel.unary_unary("/inference.GRPCInferenceService/ServerLive")
        _, call = live.with_call(b"", metadata=tuple(AUTH.items()), timeout=10)
        assert len(dict(call.trailing_metadata())["x-trace-id"]) == 32  # a data-free RPC's trace, as a trailer
        assert not set(LINEAGE_KEYS) & set(dict(call.initial_metadata()))
        reverse = channel.unary_unary("/test.Extra/Reverse")
        with pytest.raises(grpc.RpcError) as refused:
            reverse(b"lineage", metadata=tuple(AUTH.items()))
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "policy.passthrough" in refused.value.details()
        md = dict(refused.value.trailing_metadata())
        assert md["x-lineage-decision"] == "deny"
        span = otlp.by_trace(md["x-trace-id"])
        assert span.attributes["rpc.method"] == "/test.Extra/Reverse"
        assert span.attributes["error.type"] == "endpoint_denied"
        with pytest.raises(grpc.RpcError) as caught:
            reverse(b"x")
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_an_unknown_method_forwarded_by_policy_is_decided_on_its_metadata(faithful, otlp, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """`policy.passthrough: forward`: the method goes through, decided like any call on what its metadata
    declares (purpose, labels), and recorded as such."""
    import grpc

    address, _ = faithful
    proxy = make_proxy(CONFIG + "policy:\n  passthrough: forward\n", wait="probed", OIP_GRPC=address,
                       OTLP=f"http://127.0.0.1:{otlp.port}")  # fmt: skip
    with grpc.insecure_channel(proxy.grpc) as channel:
        reverse = channel.unary_unary("/test.Extra/Reverse")
        reply, call = reverse.with_call(b"lineage", metadata=(*AUTH.items(), ("x-data-labels", "campaign-7")))
        assert reply == b"egaenil"
        with pytest.raises(grpc.RpcError) as denied:  # the zone's purposes still hold for what it declares
            reverse(b"x", metadata=(*AUTH.items(), ("x-data-labels", "health")))
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "zone health allows: assistant" in denied.value.details()
    span = otlp.by_trace(dict(call.trailing_metadata())["x-trace-id"])
    assert span.attributes["lineage.input.labels"] == ["campaign-7"]
    assert span.attributes["lineage.decision"] == "allow" and span.attributes["lineage.purpose"] == "evaluation"


def test_an_unknown_method_goes_where_grpc_is_served_when_no_zone_says_otherwise(faithful, otlp, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """A common setup: '*' routes to an HTTP server (vLLM), Triton serves named models over gRPC. An opaque
    gRPC method (tritonclient's load_model, say) goes to the gRPC upstream when no zone is involved, and
    the record names that upstream; with zones involved, where the data may go is theirs to say."""
    import grpc

    address, _ = faithful
    pinned = CONFIG.replace("    url: ${OIP_HTTP:-http://127.0.0.1:1}\n", "    url: ${OIP_HTTP:-http://127.0.0.1:1}\n"
                                                                         "    checkpoint: vllm-pinned@abc\n")  # fmt: skip
    assert pinned != CONFIG
    proxy = make_proxy(pinned + "policy:\n  passthrough: forward\n", wait="probed", OIP_GRPC=address, ROUTE="oip-rest",
                       OIP_HTTP=f"http://127.0.0.1:{dead_port()}", OTLP=f"http://127.0.0.1:{otlp.port}")  # fmt: skip
    with grpc.insecure_channel(proxy.grpc) as channel:
        reverse = channel.unary_unary("/test.Extra/Reverse")
        reply, call = reverse.with_call(b"lineage", metadata=tuple(AUTH.items()), timeout=10)
        trailers = dict(call.trailing_metadata())
        assert reply == b"egaenil" and trailers["x-lineage-upstream"] == "oip"
        assert trailers.get("x-lineage-checkpoint") != "vllm-pinned@abc"  # the HTTP upstream's pin is not this call's
        with pytest.raises(grpc.RpcError) as zoned:
            reverse(b"x", metadata=(*AUTH.items(), ("x-purpose", "assistant"), ("x-data-labels", "health")), timeout=10)
    assert zoned.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "speaks HTTP only, and this call's zones (health)" in zoned.value.details()


def test_streamed_inference(proxied) -> None:  # type: ignore[no-untyped-def]
    import queue

    proxy, client, log, _ = proxied
    results: queue.Queue[object] = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put(error or result), headers=AUTH)
    for i in range(3):
        client.async_stream_infer("simple", simple_inputs([i], [100]))
    got = [results.get(timeout=10) for _ in range(3)]
    client.stop_stream()
    assert [r.as_numpy("SUM").tolist() for r in got] == [[[100]], [[101]], [[102]]]  # type: ignore[attr-defined]


def test_a_streams_lineage_is_initial_metadata(proxied) -> None:  # type: ignore[no-untyped-def]
    """A ModelStreamInfer stream's lineage comes before its first reply, as initial metadata."""
    import grpc

    proxy, _, _, _ = proxied
    with grpc.insecure_channel(proxy.grpc) as channel:
        call = channel.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer")(
            iter([_infer_request("simple")]), metadata=tuple(AUTH.items()), timeout=10
        )
        assert len(list(call)) == 1
        initial = dict(call.initial_metadata())
    assert initial["x-lineage-decision"] == "allow" and initial["x-lineage-checkpoint"] == "simple:2"
    assert len(initial["x-trace-id"]) == 32


def test_stream_denied_when_a_later_message_adds_a_forbidden_label(proxied) -> None:  # type: ignore[no-untyped-def]
    import queue

    proxy, client, log, _ = proxied
    results: queue.Queue[object] = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put(error or result), headers=AUTH)
    client.async_stream_infer("simple", simple_inputs([1], [1]))
    first = results.get(timeout=10)
    assert first.as_numpy("SUM").tolist() == [[2]]  # type: ignore[attr-defined]
    client.async_stream_infer("simple", simple_inputs([1], [1]), parameters={"data_labels": "health"})
    error = results.get(timeout=10)
    client.stop_stream()
    assert isinstance(error, InferenceServerException)
    assert "PERMISSION_DENIED" in str(error.status()) and "zone health" in error.message()


def test_a_streams_later_message_is_decided_by_a_reload_that_tightened_its_zone(  # type: ignore[no-untyped-def]
    proxied, faithful, monkeypatch, tmp_path, loop_thread
) -> None:
    """A stream lasts as long as its client wants: a later message with the labels it opened with is
    decided again once a reload changed the policy (it went on under the old one, recorded `allow`)."""
    import queue

    proxy, client, _, otlp = proxied
    results: queue.Queue[object] = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put(error or result),
                        headers={**AUTH, "x-purpose": "assistant"})  # fmt: skip
    client.async_stream_infer("simple", simple_inputs([1], [1]), parameters={"data_labels": "health"})
    assert results.get(timeout=10).as_numpy("SUM").tolist() == [[2]]  # type: ignore[attr-defined]
    for name, value in (("OIP_GRPC", faithful[0]), ("OTLP", f"http://127.0.0.1:{otlp.port}"),
                        ("STORE", str(tmp_path / "lineage.db"))):  # fmt: skip
        monkeypatch.setenv(name, value)
    tightened = tmp_path / "tightened.yaml"
    tightened.write_text(CONFIG.replace("allow_purposes: [assistant]", "allow_purposes: [safety-review]"))

    async def reload() -> bool:
        return bool(proxy.process.reload(str(tightened)))

    assert loop_thread.run(reload())
    client.async_stream_infer("simple", simple_inputs([1], [1]), parameters={"data_labels": "health"})
    error = results.get(timeout=10)
    client.stop_stream()
    assert isinstance(error, InferenceServerException)
    assert "PERMISSION_DENIED" in str(error.status()) and "zone health" in error.message()


def test_a_reload_of_max_body_bytes_applies_to_grpc_and_spares_calls_in_flight(  # type: ignore[no-untyped-def]
    proxied, faithful, monkeypatch, tmp_path, loop_thread
) -> None:
    """limits.max_body_bytes was fixed when the gRPC listener started (a reload only warned): the listener now
    takes a new server on its port. A stream open on the old one goes on until its client ends it."""
    import queue

    import grpc
    from tritonclient.grpc import service_pb2

    proxy, client, _, otlp = proxied
    results: queue.Queue[object] = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put(error or result), headers=AUTH)
    client.async_stream_infer("simple", simple_inputs([1], [1]))
    assert results.get(timeout=10).as_numpy("SUM").tolist() == [[2]]  # type: ignore[attr-defined]
    for name, value in (("OIP_GRPC", faithful[0]), ("OTLP", f"http://127.0.0.1:{otlp.port}"),
                        ("STORE", str(tmp_path / "lineage.db"))):  # fmt: skip
        monkeypatch.setenv(name, value)
    smaller = tmp_path / "smaller.yaml"
    smaller.write_text(CONFIG + "limits:\n  max_body_bytes: 4096\n")

    async def reload() -> bool:
        done = bool(proxy.process.reload(str(smaller)))
        await proxy.process.settled()
        return done

    assert loop_thread.run(reload())
    client.async_stream_infer("simple", simple_inputs([2], [2]))  # the stream from before the reload goes on
    assert results.get(timeout=10).as_numpy("SUM").tolist() == [[4]]  # type: ignore[attr-defined]
    client.stop_stream()
    request = service_pb2.ModelInferRequest(model_name="simple")
    request.inputs.add(name="A", datatype="INT32", shape=[1, 2000])
    request.raw_input_contents.append(bytes(8000))
    with grpc.insecure_channel(proxy.grpc) as channel:
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        with pytest.raises(grpc.RpcError) as refused:
            infer(request.SerializeToString(), metadata=tuple(AUTH.items()), timeout=10)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert infer(_infer_request("simple"), metadata=tuple(AUTH.items()), timeout=10)


def test_health_and_metadata_calls_are_recorded_without_an_edge(proxied) -> None:  # type: ignore[no-untyped-def]
    """They carry no data but are calls: a span and an access line each (they had none), no lineage edge."""
    import grpc
    from tritonclient.grpc import service_pb2

    proxy, _, _, otlp = proxied
    with grpc.insecure_channel(proxy.grpc) as channel:
        live = channel.unary_unary("/inference.GRPCInferenceService/ServerLive",
                                   request_serializer=service_pb2.ServerLiveRequest.SerializeToString,
                                   response_deserializer=service_pb2.ServerLiveResponse.FromString)  # fmt: skip
        reply, call = live.with_call(service_pb2.ServerLiveRequest(), metadata=tuple(AUTH.items()))
    assert reply.live
    span = otlp.by_trace(dict(call.trailing_metadata())["x-trace-id"])
    assert span.attributes["rpc.method"] == "ServerLive" and span.attributes["rpc.grpc.status_code"] == 0
    assert span.attributes["lineage.caller"] == "lab" and span.attributes["lineage.decision"] == "allow"


def test_fifty_megabyte_tensor_arrives_intact(proxied) -> None:  # type: ignore[no-untyped-def]
    proxy, client, _, _ = proxied
    payload = np.random.default_rng(7).bytes(50 * 1024 * 1024)
    tensor = grpcclient.InferInput("BLOB", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([payload], dtype=np.object_))
    result = client.infer("echo", [tensor], headers=AUTH)
    raw = tensor._get_content()  # the length-prefixed bytes tritonclient put on the wire
    assert result.as_numpy("SHA256")[0].decode() == hashlib.sha256(raw).hexdigest()


def test_upstream_down_is_unavailable(make_proxy, otlp) -> None:  # type: ignore[no-untyped-def]
    proxy = make_proxy(CONFIG, wait="probed", OIP_GRPC=f"127.0.0.1:{dead_port()}", OTLP=f"http://127.0.0.1:{otlp.port}")
    client = grpcclient.InferenceServerClient(proxy.grpc)
    with pytest.raises(InferenceServerException) as caught:
        client.infer("simple", simple_inputs([1], [2]), headers=AUTH)
    assert caught.value.status() == "StatusCode.UNAVAILABLE"
    assert "upstream 'oip' is unavailable" in caught.value.message()


def test_deadline_exceeded(faithful, make_proxy, otlp) -> None:  # type: ignore[no-untyped-def]
    address, _ = faithful
    proxy = make_proxy(CONFIG, wait="probed", OIP_GRPC=address, TIMEOUT="0.3", OTLP=f"http://127.0.0.1:{otlp.port}")
    client = grpcclient.InferenceServerClient(proxy.grpc)
    with pytest.raises(InferenceServerException) as caught:
        client.infer("slow", simple_inputs([1], [2]), headers=AUTH)
    assert caught.value.status() == "StatusCode.DEADLINE_EXCEEDED"
    assert "did not answer in time" in caught.value.message()
    assert client.infer("simple", simple_inputs([1], [2]), headers=AUTH).as_numpy("SUM").tolist() == [[3]]


def test_a_call_cut_off_by_the_clients_own_deadline_is_recorded_as_such(proxied) -> None:  # type: ignore[no-untyped-def]
    """grpc tells the client DEADLINE_EXCEEDED; the record says so too (it said the client had left)."""
    import grpc

    proxy, _, _, otlp = proxied
    with grpc.insecure_channel(proxy.grpc) as channel:
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        with pytest.raises(grpc.RpcError) as caught:
            infer(_infer_request("slow"), metadata=(*AUTH.items(), ("traceparent", TRACEPARENT)), timeout=0.3)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    span = otlp.by_trace(TRACEPARENT.split("-")[1])
    # the deadline is passed on, so either the client's expiry cancels the call first, or the forwarded call's
    # (the upstream did not answer in time): never "the client left"
    assert span.attributes["error.type"] in ("deadline_exceeded", "upstream_timeout")
    assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_generated_code_matches_tritonclients_wire_format() -> None:
    """Our .proto and Triton's agree field for field (checked in a separate process: the two
    copies of `inference.*` cannot share protobuf's default pool)."""
    script = """
import json
from proxy.oip import grpc_predict_v2_pb2 as ours
def shape(module):
    out = {}
    for name, message in module.DESCRIPTOR.message_types_by_name.items():
        out[name] = sorted((f.name, f.number, f.type, f.is_repeated) for f in message.fields)
        for nested in message.nested_types:
            out[name + "." + nested.name] = sorted((f.name, f.number, f.type, f.is_repeated) for f in nested.fields)
    methods = {m.name: (m.input_type.name, m.output_type.name, m.client_streaming, m.server_streaming)
               for m in module.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods}
    return out, methods
print(json.dumps(shape(ours)))
"""
    ours_messages, ours_methods = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True,
                                                            text=True, check=True).stdout)  # fmt: skip
    theirs = grpcclient.service_pb2.DESCRIPTOR
    for name, fields in ours_messages.items():
        top, _, nested = name.partition(".")
        message = theirs.message_types_by_name[top]
        if nested:
            message = message.nested_types_by_name[nested]
        assert sorted([f.name, f.number, f.type, f.is_repeated] for f in message.fields) == fields, name
    service = theirs.services_by_name["GRPCInferenceService"].methods_by_name
    for method, (request, reply, client_stream, server_stream) in ours_methods.items():
        theirs_method = service[method]
        assert (theirs_method.input_type.name, theirs_method.output_type.name) == (request, reply)
        assert (theirs_method.client_streaming, theirs_method.server_streaming) == (client_stream, server_stream)


# -- the real OIP server: MLServer ------------------------------------------------------------------


@pytest.mark.realserver
def test_mlserver_grpc_and_rest_through_the_proxy(iris_mlserver, make_proxy, otlp) -> None:  # type: ignore[no-untyped-def]
    http_url, grpc_address = iris_mlserver
    proxy = make_proxy(CONFIG, OIP_GRPC=grpc_address, OIP_HTTP=http_url, OTLP=f"http://127.0.0.1:{otlp.port}")

    def grpc_infer(target: str, headers: dict[str, str] | None) -> np.ndarray:
        tensor = grpcclient.InferInput("predict", list(IRIS.shape), "FP32")
        tensor.set_data_from_numpy(IRIS)
        return grpcclient.InferenceServerClient(target).infer("iris", [tensor], headers=headers).as_numpy("predict")

    direct = grpc_infer(grpc_address, None)
    via = grpc_infer(proxy.grpc, AUTH)
    assert via.tolist() == direct.tolist() and direct.ravel().tolist() == [0, 2]
    client = grpcclient.InferenceServerClient(proxy.grpc)
    assert client.is_model_ready("iris", headers=AUTH)
    assert list(client.get_model_metadata("iris", headers=AUTH).versions) == ["1"]

    def rest_infer(
        base: str, model: str, headers: dict[str, str] | None, compression: str | None = None
    ) -> tuple[np.ndarray, dict[str, str]]:
        tensor = httpclient.InferInput("predict", list(IRIS.shape), "FP32")
        tensor.set_data_from_numpy(IRIS, binary_data=False)
        client = httpclient.InferenceServerClient(base.removeprefix("http://"))
        # a copy: tritonclient adds its Content-Encoding to the dict it is given (AUTH, shared by the gRPC tests)
        result = client.infer(model, [tensor], headers=dict(headers or {}), request_compression_algorithm=compression)
        return result.as_numpy("predict"), {}

    direct_rest, _ = rest_infer(http_url, "iris", None)
    assert direct_rest.ravel().tolist() == [0, 2]
    # the REST route sends model "iris-rest"... MLServer serves "iris": route the real name instead
    proxy_rest = make_proxy(CONFIG.replace("model: iris-rest", "model: iris"), OIP_GRPC=grpc_address, OIP_HTTP=http_url,
                            OTLP=f"http://127.0.0.1:{otlp.port}")  # fmt: skip
    via_rest, _ = rest_infer(proxy_rest.url, "iris", AUTH)
    assert via_rest.tolist() == direct_rest.tolist()
    # tritonclient's request compression: read by the proxy, forwarded compressed, served by MLServer
    via_gzip, _ = rest_infer(proxy_rest.url, "iris", AUTH, compression="gzip")
    assert via_gzip.tolist() == direct_rest.tolist()
    spans = otlp.wait_for(lambda s: sum(x.name == "infer iris" for x in s) >= 3)
    checkpoints = {s.attributes["lineage.checkpoint"] for s in spans if s.name == "infer iris"}
    assert checkpoints == {"iris:1"}


def _infer_request(model: str, labels: str | None = None, garbage: bool = False) -> bytes:
    from tritonclient.grpc import service_pb2

    request = service_pb2.ModelInferRequest(model_name=model)
    for name in ("A", "B"):
        tensor = request.inputs.add(name=name, datatype="INT32", shape=[1, 1])
        tensor.contents.int_contents.append(1)
    if labels is not None:
        request.parameters["data_labels"].string_param = labels
    data: bytes = request.SerializeToString()
    return data + b"\xff\xff" if garbage else data


def _stream(proxy, messages: list[bytes], metadata: tuple[tuple[str, str], ...]) -> tuple[list[bytes], object]:  # type: ignore[no-untyped-def]
    import grpc

    with grpc.insecure_channel(proxy.grpc) as channel:
        call = channel.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer")(
            iter(messages), metadata=metadata, timeout=10
        )
        got: list[bytes] = []
        try:
            for reply in call:
                got.append(reply)
        except grpc.RpcError as exc:
            return got, exc
        return got, None


def test_repeated_label_metadata_adds_labels(proxied) -> None:  # type: ignore[no-untyped-def]
    import grpc

    proxy, client, log, _ = proxied
    before = len(requests_seen(log))
    with grpc.insecure_channel(proxy.grpc) as channel:
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        with pytest.raises(grpc.RpcError) as caught:
            infer(_infer_request("simple"), timeout=10, metadata=(*AUTH.items(), ("x-purpose", "evaluation"),
                                                                  ("x-data-labels", "public"), ("x-data-labels", "health")))  # fmt: skip
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED and "zone health" in caught.value.details()
        trailers = dict(caught.value.trailing_metadata())  # a refusal's lineage: trailing metadata too
        assert trailers["x-lineage-decision"] == "deny" and len(trailers["x-trace-id"]) == 32
        assert "x-lineage-upstream" not in trailers  # refused: it reached no upstream
        with pytest.raises(grpc.RpcError) as twice:
            infer(_infer_request("simple"), timeout=10,
                  metadata=(*AUTH.items(), ("x-purpose", "assistant"), ("x-purpose", "evaluation")))  # fmt: skip
        assert (
            twice.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "one purpose per call" in twice.value.details()
        )
    assert requests_seen(log)[before:] == []


def test_a_stream_cannot_switch_models(proxied) -> None:  # type: ignore[no-untyped-def]
    import grpc

    proxy, _, log, _ = proxied
    got, exc = _stream(proxy, [_infer_request("simple"), _infer_request("echo")], tuple(AUTH.items()))
    assert isinstance(exc, grpc.RpcError) and exc.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "a stream serves one model" in exc.details()
    assert [json.loads(line)["model"] for line in log.read_text().splitlines()][-1:] != ["echo"]


def test_tritonclient_sees_why_a_stream_cannot_switch_models(proxied) -> None:  # type: ignore[no-untyped-def]
    """Deliberate (README, gRPC): a ModelStreamInfer stream is one call, decided and recorded for the model its
    first message names; a message naming another model ends it, INVALID_ARGUMENT, with a message that says why
    and what to do (it said only that "a stream serves one model")."""
    import queue

    _, client, log, otlp = proxied
    results: queue.Queue[object] = queue.Queue()
    client.start_stream(callback=lambda result, error: results.put(error or result), headers=AUTH)
    client.async_stream_infer("simple", simple_inputs([1], [1]))
    assert results.get(timeout=10).as_numpy("SUM").tolist() == [[2]]  # type: ignore[attr-defined]
    text = grpcclient.InferInput("TEXT", [1], "BYTES")
    text.set_data_from_numpy(np.array([b"hello"], dtype=np.object_))
    client.async_stream_infer("echo", [text])
    error = results.get(timeout=10)
    client.stop_stream()
    assert isinstance(error, InferenceServerException) and "INVALID_ARGUMENT" in str(error.status())
    message = error.message()
    assert message.startswith("a stream serves one model: this message names 'echo', the stream was opened for "
                              "'simple'"), message  # fmt: skip
    assert "decides and records a stream as one call" in message and "open a stream for each model" in message
    seen = requests_seen(log)[-1]
    assert seen["model"] == "simple"  # the message naming `echo` reached no upstream
    span = otlp.by_trace(str(seen["metadata"]["traceparent"]).split("-")[1])  # type: ignore[index]
    assert span.attributes["error.type"] == "invalid_request"  # the stream's record: the call as forwarded


def test_a_stream_cannot_switch_model_versions(proxied) -> None:  # type: ignore[no-untyped-def]
    """The call is decided and recorded for one checkpoint: a later message naming another version of
    the same model is refused, as one naming another model is."""
    import grpc
    from tritonclient.grpc import service_pb2

    proxy, _, log, _ = proxied

    def versioned(version: str) -> bytes:
        request = service_pb2.ModelInferRequest.FromString(_infer_request("simple"))
        request.model_version = version
        return bytes(request.SerializeToString())

    before = len(requests_seen(log))
    got, exc = _stream(proxy, [versioned("1"), versioned("2")], tuple(AUTH.items()))
    assert isinstance(exc, grpc.RpcError) and exc.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'simple version 2', the stream was opened for 'simple version 1'" in exc.details()
    assert "2" not in [r["version"] for r in requests_seen(log)[before:]]  # (the first may be cut off too)


def test_a_stream_refused_for_a_long_model_name_is_told_why(proxied) -> None:  # type: ignore[no-untyped-def]
    """The refusal of a later message naming another model echoed the name whole: one of 100,000 characters made a
    status message past grpc's metadata limit, and the client got RESOURCE_EXHAUSTED ("Stream removed") in place of
    the refusal. The name is quoted by its start, a digest and its length, as a refusal names a model elsewhere."""
    import grpc

    proxy, _, log, _ = proxied
    before = len(requests_seen(log))
    got, exc = _stream_in_turn(proxy, [_infer_request("simple"), _infer_request("x" * 100_000)], tuple(AUTH.items()))
    assert len(got) == 1 and len(requests_seen(log)[before:]) == 1  # the refused message never reached the model
    assert isinstance(exc, grpc.RpcError) and exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc
    details = exc.details()
    assert details.startswith("a stream serves one model: this message names 'xxx"), details[:200]
    assert "(100000 characters)" in details and len(details) < 2048, len(details)


def _stream_in_turn(proxy, messages: list[bytes], metadata: tuple[tuple[str, str], ...]) -> tuple[list[bytes], Any]:  # type: ignore[no-untyped-def]
    """A stream whose next message goes only once the last one has its reply: what reached the model is
    then known exactly (each message answered before the next is read)."""
    import queue

    import grpc

    answered: queue.Queue[None] = queue.Queue()

    def in_turn() -> Iterator[bytes]:
        for index, message in enumerate(messages):
            if index:
                answered.get(timeout=10)
            yield message

    with grpc.insecure_channel(proxy.grpc) as channel:
        call = channel.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer")(
            in_turn(), metadata=metadata, timeout=10
        )
        got: list[bytes] = []
        try:
            for reply in call:
                got.append(reply)
                answered.put(None)
        except grpc.RpcError as exc:
            return got, exc
        return got, None


def test_a_stream_denied_partway_records_what_flowed_and_what_was_refused(proxied) -> None:  # type: ignore[no-untyped-def]
    """Two records: the call as forwarded (allowed, with the labels that reached the model and its
    outputs), and the refused message as a denied call in the same trace, whose denial ends the stream."""
    import grpc

    proxy, _, log, otlp = proxied
    before = len(requests_seen(log))
    got, exc = _stream_in_turn(proxy, [_infer_request("simple", labels="campaign-7"),
                                       _infer_request("simple", labels="health")], tuple(AUTH.items()))  # fmt: skip
    assert len(got) == 1 and len(requests_seen(log)[before:]) == 1  # the refused message never reached the model
    assert isinstance(exc, grpc.RpcError) and exc.code() == grpc.StatusCode.PERMISSION_DENIED
    trailers = dict(exc.trailing_metadata())
    assert trailers["x-lineage-decision"] == "deny" and trailers["x-data-labels"] == "campaign-7,health"
    spans = otlp.wait_for(lambda spans: sum(s.trace_id == trailers["x-trace-id"] for s in spans) == 2)
    flowed, refused = sorted((s for s in spans if s.trace_id == trailers["x-trace-id"]),
                             key=lambda s: s.attributes["lineage.decision"])  # fmt: skip
    assert flowed.attributes["lineage.decision"] == "allow"
    assert flowed.attributes["lineage.input.labels"] == ["campaign-7"]
    assert flowed.attributes["lineage.checkpoint"] == "simple:2"
    assert flowed.attributes["error.type"] == "purpose_denied"  # what ended it
    assert refused.attributes["lineage.decision"] == "deny"
    assert refused.attributes["lineage.input.labels"] == ["campaign-7", "health"]
    assert refused.span_id != flowed.span_id and refused.parent_span_id == flowed.parent_span_id


def test_a_later_message_with_tensors_in_shared_memory_ends_the_stream(proxied) -> None:  # type: ignore[no-untyped-def]
    """Opaque partway, as on a first message: refused while zones are configured, never forwarded."""
    import grpc
    from tritonclient.grpc import service_pb2

    proxy, _, log, _ = proxied
    shared = service_pb2.ModelInferRequest.FromString(_infer_request("simple"))
    shared.inputs[0].parameters["shared_memory_region"].string_param = "r0"
    before = len(requests_seen(log))
    got, exc = _stream_in_turn(proxy, [_infer_request("simple"), shared.SerializeToString()], tuple(AUTH.items()))
    assert len(got) == 1 and len(requests_seen(log)[before:]) == 1
    assert isinstance(exc, grpc.RpcError) and exc.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "tensors in shared memory" in exc.details()


def test_a_stream_whose_later_labels_need_another_region_ends(faithful, otlp, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """A zone that sends its data to another upstream (a reroute) cannot move a stream already open on
    this one: the message is refused, where it used to go on to the wrong region, recorded as allowed."""
    import grpc

    address, log = faithful
    config = CONFIG.replace(
        "  - name: oip-rest\n", "  - name: oip-eu\n    grpc: ${OIP_GRPC}\n    protocol: oip\n    region: eu\n  - name: oip-rest\n"
    ).replace("    protocol: oip\n    timeout_s:", "    protocol: oip\n    region: us\n    timeout_s:").replace(
        "zones:\n", "zones:\n  - name: eu-only\n    labels: [eu-data]\n    allow_purposes: [evaluation]\n"
        "    regions: [eu]\n    on_deny: reroute:oip-eu\n",
    )  # fmt: skip
    proxy = make_proxy(config, wait="probed", OIP_GRPC=address, OTLP=f"http://127.0.0.1:{otlp.port}")
    before = len(requests_seen(log))
    got, exc = _stream_in_turn(proxy, [_infer_request("simple"), _infer_request("simple", labels="eu-data")],
                               tuple(AUTH.items()))  # fmt: skip
    assert len(got) == 1 and len(requests_seen(log)[before:]) == 1
    assert isinstance(exc, grpc.RpcError) and exc.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "cannot move partway to 'oip-eu'" in exc.details()
    with grpc.insecure_channel(proxy.grpc) as channel:  # a new call with that label is rerouted, as ever
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        _, call = infer.with_call(_infer_request("simple", labels="eu-data"), metadata=tuple(AUTH.items()), timeout=10)
    assert dict(call.trailing_metadata())["x-lineage-upstream"] == "oip-eu"


def test_tensors_in_shared_memory_are_refused_under_zones(proxied) -> None:  # type: ignore[no-untyped-def]
    """Their data is in a region the proxy cannot read: the call is opaque (policy.passthrough)."""
    import grpc
    from tritonclient.grpc import service_pb2

    proxy, _, log, _ = proxied
    request = service_pb2.ModelInferRequest(model_name="echo")
    tensor = request.inputs.add(name="TEXT", datatype="BYTES", shape=[1])
    tensor.parameters["shared_memory_region"].string_param = "r0"
    tensor.parameters["shared_memory_byte_size"].int64_param = 64
    before = len(requests_seen(log))
    with grpc.insecure_channel(proxy.grpc) as channel:
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        with pytest.raises(grpc.RpcError) as refused:
            infer(request.SerializeToString(), metadata=tuple(AUTH.items()), timeout=10)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "tensors in shared memory" in refused.value.details()
    assert requests_seen(log)[before:] == []


def test_a_request_over_max_body_bytes_is_resource_exhausted(faithful, otlp, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """limits.max_body_bytes holds on gRPC too, for a compressed message once decompressed: grpc refuses
    it before it is held whole, and it never reaches the upstream."""
    import grpc
    from tritonclient.grpc import service_pb2

    address, log = faithful
    proxy = make_proxy(CONFIG + "limits:\n  max_body_bytes: 4096\n", wait="probed", OIP_GRPC=address,
                       OTLP=f"http://127.0.0.1:{otlp.port}")  # fmt: skip
    request = service_pb2.ModelInferRequest(model_name="simple")
    request.inputs.add(name="A", datatype="INT32", shape=[1, 2000])
    request.raw_input_contents.append(bytes(8000))
    before = len(requests_seen(log))
    with grpc.insecure_channel(proxy.grpc) as channel:
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        for compression in (None, grpc.Compression.Gzip):  # 8 KB of zeros: a few dozen bytes gzipped
            with pytest.raises(grpc.RpcError) as refused:
                infer(request.SerializeToString(), metadata=tuple(AUTH.items()), timeout=10, compression=compression)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert infer(_infer_request("simple"), metadata=tuple(AUTH.items()), timeout=10)  # small calls go on
    assert len(requests_seen(log)[before:]) == 1


def test_a_malformed_later_message_ends_the_stream_at_once(proxied) -> None:  # type: ignore[no-untyped-def]
    import grpc

    proxy, _, _, _ = proxied
    got, exc = _stream(proxy, [_infer_request("simple"), _infer_request("simple", garbage=True)], tuple(AUTH.items()))
    assert isinstance(exc, grpc.RpcError) and exc.code() == grpc.StatusCode.INVALID_ARGUMENT  # not DEADLINE_EXCEEDED
    assert "not a valid protobuf message" in exc.details()


def test_malformed_protobuf_and_huge_metadata_are_clear_errors(proxied) -> None:  # type: ignore[no-untyped-def]
    """Fuzzed ModelInfer bodies: every one is answered INVALID_ARGUMENT (or served, when it happens to be
    a valid message), never a crash; huge metadata is refused by the transport; the proxy keeps serving."""
    import random

    import grpc

    proxy, client, log, _ = proxied
    rng = random.Random(7)
    valid = _infer_request("simple")
    with grpc.insecure_channel(proxy.grpc) as channel:
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        codes = set()
        for _ in range(150):
            body = bytearray(valid)
            for _ in range(rng.randint(1, 6)):  # flip, cut or insert bytes
                at = rng.randrange(len(body))
                choice = rng.random()
                if choice < 0.5:
                    body[at] = rng.randrange(256)
                elif choice < 0.75:
                    del body[at:]
                    body += b"\x0a"
                else:
                    body[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            seen = len(requests_seen(log))
            try:
                infer(bytes(body), metadata=tuple(AUTH.items()), timeout=10)
                codes.add("OK")
            except grpc.RpcError as exc:
                codes.add(exc.code().name)
                if len(requests_seen(log)) > seen:
                    continue  # a valid message the upstream parsed and answered as it saw fit
                # refused by the proxy: the documented code, never a crash, and never a message the
                # proxy read one way while the upstream's protobuf parser refuses it
                assert exc.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND), exc.details()
        assert "INVALID_ARGUMENT" in codes
        with pytest.raises(grpc.RpcError) as huge:
            infer(valid, metadata=(*AUTH.items(), ("x-data-labels", "a" * 2_000_000)), timeout=10)
        assert huge.value.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INTERNAL,
                                     grpc.StatusCode.INVALID_ARGUMENT)  # fmt: skip
    assert client.infer("simple", simple_inputs([1], [2]), headers=AUTH).as_numpy("SUM").tolist() == [[3]]
