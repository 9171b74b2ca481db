"""An OIP sequence the process forgot (`Runtime.sequences` is bounded: a busy proxy, or a client sending many
sequences or wide label sets, pushes the oldest out) is content the proxy cannot read: its next request is labelled
`scan:truncated`. A stream that went on with such a sequence and ended after it was forgotten wrote it back as
holding only the stream's own labels: the labels an earlier request of the sequence carried (the model's state
keeps them) were gone, and the sequence's next request was recorded, and decided, as clean."""

from __future__ import annotations

from pathlib import Path

from proxy.config import parse
from proxy.detectors import TRUNCATED
from proxy.errors import ProxyError
from proxy.exchange import Exchange
from proxy.pipeline import Pipeline
from proxy.protocols import GRPC_ADAPTERS
from proxy.protocols.oip_grpc import MODEL_INFER, MODEL_STREAM_INFER, sequence_key
from tests.harness import offline_pipeline
from tests.protocols.test_oip_grpc import PB

CONFIG = """
listen: {{http: 127.0.0.1:8080, grpc: 127.0.0.1:8081}}
upstreams: [{{name: triton, grpc: 127.0.0.1:1, protocol: oip, checkpoint: m@1}}]
routes: [{{model: "*", upstream: triton}}]
zones:
  - {{name: health, labels: [health], allow_purposes: [care]}}
  - {{name: unread, labels: [scan:truncated], allow_purposes: [care]}}
policy: {{anonymous: allow}}
lineage: {{store: {store}}}
"""
KEPT = 8  # sequences the process keeps, here


def message(sequence_id: int, start: bool = False) -> bytes:
    request = PB["ModelInferRequest"](model_name="m")
    request.inputs.add(name="A", datatype="INT32", shape=[1]).contents.int_contents.append(1)
    request.parameters["sequence_id"].int64_param = sequence_id
    if start:
        request.parameters["sequence_start"].bool_param = True
    data: bytes = request.SerializeToString()
    return data


def pipeline(tmp_path: Path) -> Pipeline:
    return offline_pipeline(parse(CONFIG.format(store=tmp_path / "lineage.db")), sequences_kept=KEPT)


def unary(pipe: Pipeline, body: bytes, headers: dict[str, str]) -> Exchange:
    """A ModelInfer call admitted (or refused) as the gRPC ingress admits it."""
    adapter = GRPC_ADAPTERS[0]
    target = adapter.match("POST", MODEL_INFER)
    assert target is not None
    ex = Exchange(pipe, adapter, target, pipe.trace({}.get))
    try:
        ex.admit(body, headers.get, (), deferred=True)
    except ProxyError:
        pass  # refused: its call and decision say why
    ex.outcome.status = 0
    return ex


def test_a_sequence_forgotten_while_a_stream_went_on_with_it_stays_unread(tmp_path: Path) -> None:
    pipe = pipeline(tmp_path)
    adapter = GRPC_ADAPTERS[0]
    target = adapter.match("POST", MODEL_STREAM_INFER)
    assert target is not None
    stream = Exchange(pipe, adapter, target, pipe.trace({}.get))
    stream.admit(message(1, start=True), {"x-purpose": "care"}.get, (), deferred=True)  # starts sequence 1, unlabelled
    # another client goes on with sequence 1, sending health data: the model's state for it holds that now
    unary(pipe, message(1), {"x-purpose": "care", "x-data-labels": "health"}).finish()
    sequence = sequence_key("m", 1)
    assert sequence is not None
    assert pipe.runtime.sequences.labels(sequence) == frozenset({"health"})
    for other in range(2, KEPT + 2):  # a busy proxy: sequence 1 is forgotten
        unary(pipe, message(other, start=True), {"x-purpose": "care"}).finish()
    assert pipe.runtime.sequences.labels(sequence) is None
    stream.outcome.status = 0
    stream.finish()  # the stream ends: what it sent and received goes into its sequences' state
    # what sequence 1 held is not known any more: its next request is content the proxy cannot read, never clean
    later = unary(pipe, message(1), {"x-purpose": "ads"})
    assert later.call is not None and later.decision is not None
    assert TRUNCATED in later.call.labels, later.call.labels
    assert later.decision.code == "purpose_denied", later.decision  # the `unread` zone's, for what it cannot read
