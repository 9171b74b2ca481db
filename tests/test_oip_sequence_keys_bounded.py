"""What a ModelStreamInfer stream keeps of the OIP sequences it went on with (`Exchange._went_on`, for its record) is
bounded in count by what the process keeps of sequences, and each key holds the model's name and the sequence's id,
both the caller's: a stream for a model named with 16 KiB, going on with a new sequence a message, kept 16 KiB a
message (64 MiB names, 65,536 sequences: far past the bytes `Runtime.sequences` keeps). A long key is kept as its
digest, and is still one key per sequence."""

from __future__ import annotations

from pathlib import Path

from proxy.config import parse
from proxy.exchange import Exchange
from proxy.pipeline import Pipeline
from proxy.protocols import GRPC_ADAPTERS
from proxy.protocols.oip_grpc import MODEL_INFER, MODEL_STREAM_INFER
from tests.harness import offline_pipeline
from tests.protocols.test_oip_grpc import PB

CONFIG = """
listen: {{http: 127.0.0.1:8080, grpc: 127.0.0.1:8081}}
upstreams: [{{name: triton, grpc: 127.0.0.1:1, protocol: oip, checkpoint: m@1}}]
routes: [{{model: "*", upstream: triton}}]
policy: {{anonymous: allow, default_purpose: assistant}}
lineage: {{store: {store}}}
"""
MODEL = "m" * 16384
SEQUENCES = 1000


def message(sequence_id: int | str, start: bool = True) -> bytes:
    request = PB["ModelInferRequest"](model_name=MODEL)
    request.inputs.add(name="A", datatype="INT32", shape=[1]).contents.int_contents.append(1)
    if isinstance(sequence_id, int):
        request.parameters["sequence_id"].int64_param = sequence_id
    else:
        request.parameters["sequence_id"].string_param = sequence_id
    request.parameters["sequence_start"].bool_param = start
    data: bytes = request.SerializeToString()
    return data


def pipeline(tmp_path: Path) -> Pipeline:
    return offline_pipeline(parse(CONFIG.format(store=tmp_path / "lineage.db")))


def exchange(pipe: Pipeline, method: str) -> Exchange:
    adapter = GRPC_ADAPTERS[0]
    target = adapter.match("POST", method)
    assert target is not None
    return Exchange(pipe, adapter, target, pipe.trace({}.get))


def test_a_streams_sequence_keys_are_bounded_in_bytes(tmp_path: Path) -> None:
    pipe = pipeline(tmp_path)
    stream = exchange(pipe, MODEL_STREAM_INFER)
    stream.admit(message(1), {}.get, (), deferred=True)
    for sequence_id in range(2, SEQUENCES + 2):
        assert stream.readmit(message(sequence_id), {}.get, pipe) is None
    kept = stream._sequences
    assert kept is not None and len(kept) == SEQUENCES + 1
    chars = sum(len(key) for key in kept)
    assert chars < 256 * (SEQUENCES + 1), f"{chars >> 20} MiB of keys kept for {SEQUENCES + 1} sequences"


def test_a_long_key_is_still_its_sequence(tmp_path: Path) -> None:
    pipe = pipeline(tmp_path)
    for sequence_id in (7, "7", "s" * 100_000):
        start = exchange(pipe, MODEL_INFER)
        start.admit(message(sequence_id), {"x-data-labels": "secret"}.get, (), deferred=True)
        start.outcome.status = 0
        start.finish()
        later = exchange(pipe, MODEL_INFER)  # goes on with it, sending no label: what the sequence held is carried
        later.admit(message(sequence_id, start=False), {}.get, (), deferred=True)
        assert later.call is not None and later.call.labels == frozenset({"secret"})
        other = exchange(pipe, MODEL_INFER)  # another sequence holds none of it: it is one the proxy did not see
        other.admit(message(f"{sequence_id}x", start=False), {}.get, (), deferred=True)
        assert other.call is not None and "secret" not in other.call.labels
