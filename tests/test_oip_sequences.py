"""A sequence (OIP `sequence_id`) carries the labels of the requests that built it: a stateful model (Triton's
sequence batcher, implicit state) puts what the earlier requests of a sequence held into its later ones, as a
Responses API server puts a stored conversation before the new input (`previous_response_id`)."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from proxy.protocols.oip import read_rest_request
from proxy.protocols.oip_grpc import read_infer_request
from tests.protocols.test_oip_grpc import infer_request

CONFIG = """
listen:
  http: 127.0.0.1:0
  grpc: 127.0.0.1:0
upstreams:
  - name: oip
    grpc: ${OIP_GRPC}
    protocol: oip
routes:
  - model: echo
    upstream: oip
zones:
  - name: health
    labels: [health]
    allow_purposes: [care]
policy:
  anonymous: allow
telemetry:
  exporter: none
lineage:
  store: ${STORE}
"""


def _text(value: str) -> list[triton.InferInput]:
    tensor = triton.InferInput("TEXT", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([value.encode()], dtype=np.object_))
    return [tensor]


def test_a_later_request_of_a_sequence_carries_the_labels_its_start_had(faithful, make_proxy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The sequence starts with health data, for `care`; a request that goes on with it for `ads`, declaring
    nothing, is refused: the model's state holds the health data it is answered from."""
    address, log = faithful
    proxy = make_proxy(CONFIG, OIP_GRPC=address, STORE=str(tmp_path / "lineage.db"))
    client = triton.InferenceServerClient(proxy.grpc)
    started = client.infer("echo", _text("patient 7: insulin dose 12u"), sequence_id=7, sequence_start=True,
                           headers={"x-data-labels": "health", "x-purpose": "care"})  # fmt: skip
    assert started.as_numpy("TEXT") is not None
    with pytest.raises(InferenceServerException) as caught:
        client.infer("echo", _text("and what was the dose?"), sequence_id=7, sequence_end=True,
                     headers={"x-purpose": "ads"})  # fmt: skip
    assert caught.value.status() == "StatusCode.PERMISSION_DENIED"
    assert "health" in (caught.value.message() or "")
    assert len(log.read_text().splitlines()) == 1  # the later request never reached the model
    # another sequence, or the same id once ended, carries nothing of it
    client.infer("echo", _text("hello"), sequence_id=8, sequence_start=True, headers={"x-purpose": "ads"})
    assert [json.loads(line)["model"] for line in log.read_text().splitlines()] == ["echo", "echo"]


@pytest.mark.parametrize(
    ("parameters", "found"),
    [
        ({"sequence_id": 7, "sequence_start": True}, ("echo\n7", True)),
        ({"sequence_id": 7}, ("echo\n7", False)),
        ({"sequence_id": "7", "sequence_start": False}, ("echo\n7", False)),  # a string id and its number: one
        ({"sequence_id": "session-a"}, ("echo\nsession-a", False)),
        ({"sequence_id": 0, "sequence_start": True}, (None, False)),  # Triton's "no sequence"
        ({"other": 1}, (None, False)),
    ],
)
def test_a_rest_request_names_its_sequence(parameters, found) -> None:  # type: ignore[no-untyped-def]
    body = {"parameters": parameters, "inputs": [{"name": "TEXT", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}
    read = read_rest_request("echo", None, orjson.dumps(body), None)
    assert (read.sequence, read.starts) == found


def test_a_grpc_request_names_its_sequence() -> None:
    def read(**parameters: dict[str, object]) -> tuple[str | None, bool]:
        request = infer_request(model_name="echo")
        request.inputs.add(name="TEXT", datatype="BYTES", shape=[1]).contents.bytes_contents.append(b"x")
        for key, value in parameters.items():
            for kind, given in value.items():
                setattr(request.parameters[key], kind, given)
        found = read_infer_request(request.SerializeToString())
        return found.sequence, found.starts

    assert read(sequence_id={"int64_param": 7}, sequence_start={"bool_param": True}) == ("echo\n7", True)
    assert read(sequence_id={"uint64_param": 7}) == ("echo\n7", False)
    assert read(sequence_id={"string_param": "7"}) == ("echo\n7", False)
    assert read(sequence_id={"int64_param": -2}) == ("echo\n18446744073709551614", False)  # a uint64 to Triton
    assert read(sequence_id={"int64_param": 0}) == (None, False)
    assert read() == (None, False)
