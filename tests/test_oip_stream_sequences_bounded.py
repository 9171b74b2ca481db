"""A ModelStreamInfer stream may go on with any number of OIP sequences (a client multiplexing its sessions on one
stream, each with its own `sequence_id`): what the stream keeps of them for its record (`Exchange._went_on`, the
sequences its output is carried into) is found by key and bounded by what the process keeps of sequences
(`Runtime.sequences`). Looked up and copied as a tuple for each message, a stream's work grew with the square of
its sequences (40,000 took 20 s of the event loop) and its memory with every one."""

from __future__ import annotations

from pathlib import Path

import pytest

import proxy.protocols.oip_grpc as oip_grpc
from proxy.config import parse
from proxy.exchange import Exchange
from proxy.pipeline import Pipeline
from proxy.protocols import GRPC_ADAPTERS
from tests.harness import offline_pipeline
from tests.protocols.test_oip_grpc import PB

# they count what is compared by replacing `sequence_key` (tests/conftest.py: run with the modules interpreted)
pytestmark = pytest.mark.interpreted

CONFIG = """
listen: {{http: 127.0.0.1:8080, grpc: 127.0.0.1:8081}}
upstreams: [{{name: triton, grpc: 127.0.0.1:1, protocol: oip, checkpoint: m@1}}]
routes: [{{model: "*", upstream: triton}}]
policy: {{anonymous: allow, default_purpose: assistant}}
lineage: {{store: {store}}}
"""
SEQUENCES = 3000
KEPT = 64  # sequences the process keeps, here


class Key(str):
    """A sequence's key that counts how often it is compared, and how many are alive."""

    compared = 0
    alive = 0

    def __new__(cls, value: str) -> Key:
        Key.alive += 1
        return super().__new__(cls, value)

    def __del__(self) -> None:
        Key.alive -= 1

    def __eq__(self, other: object) -> bool:
        Key.compared += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def message(sequence_id: int) -> bytes:
    request = PB["ModelInferRequest"](model_name="m")
    request.inputs.add(name="A", datatype="INT32", shape=[1]).contents.int_contents.append(1)
    request.parameters["sequence_id"].int64_param = sequence_id
    request.parameters["sequence_start"].bool_param = True
    data: bytes = request.SerializeToString()
    return data


@pytest.fixture
def stream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Exchange, Pipeline]:
    keyed = oip_grpc.sequence_key

    def counted(model: str, given: object) -> str | None:
        key = keyed(model, given)
        return None if key is None else Key(key)

    monkeypatch.setattr(oip_grpc, "sequence_key", counted)
    Key.compared = Key.alive = 0
    pipe = offline_pipeline(parse(CONFIG.format(store=tmp_path / "lineage.db")), sequences_kept=KEPT)
    adapter = GRPC_ADAPTERS[0]
    target = adapter.match("POST", oip_grpc.MODEL_STREAM_INFER)
    assert target is not None
    ex = Exchange(pipe, adapter, target, pipe.trace({}.get))
    ex.admit(message(1), {}.get, (), deferred=True)
    return ex, pipe


def test_a_streams_sequences_are_found_by_key(stream: tuple[Exchange, Pipeline]) -> None:
    ex, pipe = stream
    for sequence_id in range(2, SEQUENCES + 2):
        assert ex.readmit(message(sequence_id), {}.get, pipe) is None
    # by key: a comparison or two a message (a hash's match); looked up in a tuple, one for each sequence before it
    assert Key.compared < 4 * SEQUENCES, f"{Key.compared} comparisons for {SEQUENCES} sequences"


def test_what_a_stream_keeps_of_its_sequences_is_bounded_and_its_output_is_carried_into_the_latest(
    stream: tuple[Exchange, Pipeline],
) -> None:
    ex, pipe = stream
    for sequence_id in range(2, SEQUENCES + 2):
        assert ex.readmit(message(sequence_id), {}.get, pipe) is None
    # the process keeps KEPT, the stream as many more at most (and a few a message made and dropped meanwhile)
    assert Key.alive <= 2 * KEPT + 8, f"{Key.alive} sequence keys kept for {SEQUENCES} sequences"
    ex.outcome.output_detected = frozenset({"pii:email"})  # what its output held, carried into its sequences
    ex.outcome.status = 0
    ex.finish()
    latest = oip_grpc.sequence_key("m", SEQUENCES + 1)
    assert latest is not None
    assert pipe.runtime.sequences.labels(latest) == frozenset({"pii:email"})
