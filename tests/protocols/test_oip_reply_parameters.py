"""An OIP reply's `parameters`, the reply's own and each output's, are read for the output's labels as the tensors
are: a runtime answers there as well as in its tensors (MLServer's `Parameters`, which take any field; Triton's Python
backend's response parameters), and the client reads them. Over gRPC an output's parameters were read (`_tensor`),
over REST not, and the reply's own over neither: an address a model gave there went unlabelled. The protocol's own
parameters (`content_type`, `headers`, a sequence's) are not read, as in a request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from proxy.protocols.oip_grpc import MODEL_INFER
from tests.protocols.test_oip_grpc import PB, infer_request
from tests.servers.real import mlserver_serving
from tests.test_unsized_replies_output import stored_output_labels

E = "alice@example.com"
# answers in its parameters: `where` says which (the reply's own, or its output's)
EXPLAIN = f"""
from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse, Parameters, ResponseOutput


class Explain(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        where = payload.inputs[0].data.root[0]
        where = where.decode() if isinstance(where, bytes) else where
        note = Parameters(content_type="np", note="write to {E}")
        plain = Parameters(content_type="np")
        output = ResponseOutput(name="score", shape=[1], datatype="FP32", data=[0.5],
                                parameters=note if where == "output" else plain)
        return InferenceResponse(model_name=self.name, outputs=[output],
                                 parameters=note if where == "reply" else None)
"""
CONFIG = """
listen:
  http: 127.0.0.1:0
  grpc: 127.0.0.1:0
upstreams:
  - name: mls
    url: ${MLS}
    grpc: ${MLS_GRPC}
    protocol: oip
routes:
  - model: "*"
    upstream: mls
policy:
  anonymous: allow
  default_purpose: support
detectors: [email]
telemetry:
  exporter: none
lineage:
  store: ${STORE}
"""


@pytest.fixture(scope="module")
def explain_mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """MLServer serving `explain` (the model above) over REST and gRPC."""
    root = tmp_path_factory.mktemp("mlserver") / "models"
    (root / "explain").mkdir(parents=True)
    (root / "explain" / "explain.py").write_text(EXPLAIN)
    settings = {"name": "explain", "implementation": "explain.Explain"}
    (root / "explain" / "model-settings.json").write_text(json.dumps(settings))
    with mlserver_serving(root, "/v2/models/explain/ready") as (http, grpc_address):
        yield http, grpc_address


def _rest(url: str, where: str, flow: str) -> str:
    body = {"inputs": [{"name": "where", "shape": [1], "datatype": "BYTES", "data": [where]}]}
    reply = httpx.post(f"{url}/v2/models/explain/infer", json=body, headers={"x-data-labels": flow}, timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.text


def _grpc(target: str, where: str, flow: str) -> str:
    request = infer_request(model_name="explain")
    request.inputs.add(name="where", datatype="BYTES", shape=[1]).contents.bytes_contents.append(where.encode())
    with grpc.insecure_channel(target) as channel:
        reply = channel.unary_unary(MODEL_INFER)(request.SerializeToString(), metadata=(("x-data-labels", flow),),
                                                 timeout=30)  # fmt: skip
    return str(PB["ModelInferResponse"].FromString(reply))


@pytest.mark.realserver
@pytest.mark.parametrize("where", ["reply", "output"])
def test_an_address_in_a_replys_parameters_labels_its_output(explain_mlserver, make_proxy, loop_thread,  # type: ignore[no-untyped-def]
                                                             tmp_path: Path, where: str) -> None:  # fmt: skip
    http, grpc_address = explain_mlserver
    assert E in _rest(http, where, "direct") and E in _grpc(grpc_address, where, "direct")  # the client reads it
    proxy = make_proxy(CONFIG, MLS=http, MLS_GRPC=grpc_address)
    assert E in _rest(proxy.url, where, "over-rest") and E in _grpc(proxy.grpc, where, "over-grpc")
    loop_thread.run(proxy.process.runtime.sinks.flush())
    stored = stored_output_labels(tmp_path / "lineage.db")
    assert (stored["over-rest"], stored["over-grpc"]) == (["over-rest", "pii:email"], ["over-grpc", "pii:email"])


def test_the_protocols_own_parameters_are_not_read() -> None:
    """`headers` (MLServer's, HTTP headers it sets) and `content_type` are the protocol's: not read; a number is."""
    import orjson

    from proxy.config.model import DetectorSpec
    from proxy.detectors import Detectors
    from proxy.flow import Outcome
    from proxy.protocols.oip import RestReplyObserver

    detectors = Detectors([DetectorSpec("email"), DetectorSpec("account", r"(?<![0-9])[0-9]{12}(?![0-9])")])
    found = []
    for parameters in ({"headers": {"x-to": E}, "content_type": E}, {"account": 123456789012}):
        outcome = Outcome(started_ns=1)
        observer = RestReplyObserver(outcome, detectors, False, None)
        output = {"name": "o", "datatype": "FP32", "shape": [1], "data": [1.0], "parameters": parameters}
        observer.body(orjson.dumps({"model_name": "m", "outputs": [output]}))
        observer.finish()
        found.append(outcome.output_detected)
    assert found == [frozenset(), {"pii:account"}]


def test_a_replys_data_labels_are_the_protocols_own_over_rest_and_grpc() -> None:
    """A reply's `data_labels` (its own, an output's) is framing, as over gRPC, beside a parameter that is read or alone:
    a request's is read as text since 2026-12-07, and over REST that read a reply's too, but only beside a parameter
    read (`aside_parameters` skips a reply whose parameters are all the protocol's)."""
    import orjson

    from proxy.config.model import DetectorSpec
    from proxy.detectors import Detectors
    from proxy.flow import Outcome
    from proxy.protocols.oip import RestReplyObserver
    from proxy.protocols.oip_grpc import ReplyObserver

    detectors = Detectors([DetectorSpec("email")])
    found = []
    for where in ("reply", "output"):
        for beside in ({}, {"note": "ok"}):
            parameters = {"data_labels": E, **beside}
            outcome = Outcome(started_ns=1)
            rest = RestReplyObserver(outcome, detectors, False, None)
            output = {"name": "o", "datatype": "FP32", "shape": [1], "data": [1.0]}
            reply = {"model_name": "m", "outputs": [output]}
            (reply if where == "reply" else output)["parameters"] = parameters
            rest.body(orjson.dumps(reply))
            rest.finish()
            found.append(("rest", where, len(parameters), outcome.output_detected))
            message = PB["ModelInferResponse"](model_name="m")
            tensor = message.outputs.add(name="o", datatype="FP32", shape=[1])
            tensor.contents.fp32_contents.append(1.0)
            for name, value in parameters.items():
                (message if where == "reply" else tensor).parameters[name].string_param = value
            outcome = Outcome(started_ns=1)
            observer = ReplyObserver(outcome, detectors, False)
            observer.body(message.SerializeToString())
            observer.finish()
            found.append(("grpc", where, len(parameters), outcome.output_detected))
    assert [case for case in found if case[3]] == []
    assert len(found) == 8
