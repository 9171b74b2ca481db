"""What the README says of an OIP gRPC reply's `model_name`, `model_version` and `id`: one of another wire
type than a string's is ignored, as protobuf ignores it (an unknown field), and the string form of the same
field, when the reply has one, is read. Held against protobuf's own parser of the same bytes."""

from __future__ import annotations

import pytest

from proxy.flow import Outcome
from tests.protocols.test_oip_grpc import PB
from tests.test_oip_grpc_read_cost import delimited, read_reply, tag

WRONG = {"varint": b"\x05", "fixed64": b"\x01" * 8, "fixed32": b"\x01" * 4}
WIRE = {"varint": 0, "fixed64": 1, "fixed32": 5}


def meta(outcome: Outcome) -> tuple[str | None, str | None, str | None]:
    return outcome.response_model, outcome.extra.get("lineage.model.version"), outcome.response_id


@pytest.mark.parametrize("wire", list(WRONG))
def test_a_reply_field_of_another_wire_type_is_ignored_as_protobuf_ignores_it(wire: str) -> None:
    wrong = b"".join(tag(number, WIRE[wire]) + WRONG[wire] for number in (1, 2, 3))
    alone = read_reply(wrong)
    parsed = PB["ModelInferResponse"].FromString(wrong)
    assert (parsed.model_name, parsed.model_version, parsed.id) == ("", "", "")
    assert meta(alone) == (None, None, None)
    strings = delimited(1, b"iris") + delimited(2, b"3") + delimited(3, b"r-1")
    for data in (wrong + strings, strings + wrong):
        parsed = PB["ModelInferResponse"].FromString(data)
        assert (parsed.model_name, parsed.model_version, parsed.id) == ("iris", "3", "r-1")
        assert meta(read_reply(data)) == ("iris:3", "3", "r-1")
