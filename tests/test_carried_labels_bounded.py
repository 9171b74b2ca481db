"""A call's labels are bounded however it builds on earlier ones: what an OIP sequence's earlier requests held, a
stored reply it goes on from (`previous_response_id`), a stream's earlier messages. Each request may send 64 labels;
carried forward without a bound, a client sending 64 new ones a request made every call's record hold them all: 400
requests of one sequence (64 labels of ~105 characters each) wrote 556 MB of input labels into the edges table and
grew the lineage store to 3.3 GB, each row larger than the last (the growth is the square of the calls), and every
call's decision and reply head grew with it. Past `MAX_CALL_LABELS` the call is refused (400, INVALID_ARGUMENT),
nothing forwarded: the caller starts a new sequence, conversation or stream."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from proxy.config import parse
from proxy.errors import InvalidRequest, ProxyError
from proxy.exchange import Exchange
from proxy.protocols import GRPC_ADAPTERS
from proxy.protocols.oip_grpc import MODEL_STREAM_INFER
from proxy.protocols.openai import Adapter as OpenAI
from tests.harness import offline_pipeline
from tests.protocols.test_oip_grpc import PB
from tests.test_oip_sequences import CONFIG as SEQUENCES_CONFIG

BOUND = 256  # 4 requests' worth of 64 labels
OFFLINE = """
listen: {{http: 127.0.0.1:8080, grpc: 127.0.0.1:8081}}
upstreams:
  - {{name: triton, grpc: 127.0.0.1:1, protocol: oip, checkpoint: m@1}}
  - {{name: u, url: http://127.0.0.1:1, protocol: openai, checkpoint: org/weights-7b}}
routes: [{{model: "m", upstream: u}}, {{model: "*", upstream: triton}}]
policy: {{anonymous: allow, default_purpose: assistant}}
lineage: {{store: {store}}}
"""


def new_labels(request: int) -> str:
    """64 labels no earlier request sent (of ~105 characters: a label may have 128)."""
    return ",".join(f"r{request}-{n}-" + "x" * 100 for n in range(64))


def _text(value: str) -> list[triton.InferInput]:
    tensor = triton.InferInput("TEXT", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([value.encode()], dtype=np.object_))
    return [tensor]


def test_an_oip_sequence_carries_a_bounded_label_set(faithful: Any, make_proxy: Any, tmp_path: Path) -> None:
    address, log = faithful
    store = tmp_path / "lineage.db"
    proxy = make_proxy(SEQUENCES_CONFIG, OIP_GRPC=address, STORE=str(store))
    # its reply's x-data-labels names every label: a client reads more metadata than grpc's default 8 KiB here
    big = 1 << 24
    client = triton.InferenceServerClient(
        proxy.grpc, channel_args=[("grpc.max_metadata_size", big), ("grpc.absolute_max_metadata_size", big)]
    )
    for request in range(BOUND // 64):  # 256 labels: served
        client.infer("echo", _text("hi"), sequence_id=7, sequence_start=request == 0,
                     headers={"x-data-labels": new_labels(request), "x-purpose": "care"})  # fmt: skip
    served = len(log.read_text().splitlines())
    assert served == BOUND // 64
    with pytest.raises(InferenceServerException) as caught:  # 64 more: 320, past the bound
        client.infer("echo", _text("hi"), sequence_id=7,
                     headers={"x-data-labels": new_labels(BOUND // 64), "x-purpose": "care"})  # fmt: skip
    assert caught.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert len(log.read_text().splitlines()) == served  # never forwarded
    client.close()
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT input_labels FROM edges").fetchall()
    assert max(len(labels.split(",")) for (labels,) in rows) <= BOUND


def test_a_stream_carries_a_bounded_label_set(tmp_path: Path) -> None:
    pipe = offline_pipeline(parse(OFFLINE.format(store=tmp_path / "lineage.db")))
    adapter = GRPC_ADAPTERS[0]
    target = adapter.match("POST", MODEL_STREAM_INFER)
    assert target is not None
    ex = Exchange(pipe, adapter, target, pipe.trace({}.get))
    request = PB["ModelInferRequest"](model_name="echo")
    request.inputs.add(name="A", datatype="INT32", shape=[1]).contents.int_contents.append(1)
    message = request.SerializeToString()
    ex.admit(message, {"x-data-labels": new_labels(0)}.get, (), deferred=True)
    refused: ProxyError | None = None
    for n in range(1, 8):
        try:
            refused = ex.readmit(message, {"x-data-labels": new_labels(n)}.get, pipe)
        except InvalidRequest as exc:
            refused = exc
        assert ex.call is not None
        held = len(ex.call.labels)
        assert held <= BOUND, f"a stream's call holds {held} labels"
        if refused is not None:
            break
    assert isinstance(refused, InvalidRequest), "a stream's messages carried 512 labels and went on"


def test_a_stored_reply_carries_a_bounded_label_set(tmp_path: Path) -> None:
    pipe = offline_pipeline(parse(OFFLINE.format(store=tmp_path / "lineage.db")))
    # what a chain of replies, each built on the one before with 64 new labels, came to
    pipe.runtime.stored.remember("resp_1", frozenset(",".join(new_labels(n) for n in range(4)).split(",")))
    adapter = OpenAI()
    target = adapter.match("POST", "/v1/responses")
    assert target is not None
    ex = Exchange(pipe, adapter, target, pipe.trace({}.get))
    body = orjson.dumps({"model": "m", "input": "go on", "previous_response_id": "resp_1"})
    with pytest.raises(InvalidRequest):
        ex.admit(body, {"x-data-labels": new_labels(4)}.get, ())
