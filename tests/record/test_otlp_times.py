"""A span's start and end times are written as protobuf's fixed64 (`encode_flow_span`, as `encode_span` writes them),
at every width a 64-bit time can have."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from proxy.record.otlp import SPAN_KIND_SERVER, encode_flow_span, encode_span, span_head, span_status


@given(st.sampled_from([0, 1, 0x7F, 0x80, 2**32, 1_700_000_000_000_000_000, 2**62 - 1, 2**62, 2**63, 2**64 - 1]),
       st.integers(min_value=0, max_value=2**64 - 1))  # fmt: skip
def test_span_times_are_fixed64_as_the_general_encoder_writes_them(start: int, end: int) -> None:
    flow = encode_flow_span(b"\xff" * 16, (7).to_bytes(8, "big"), None, None, span_head("chat m", SPAN_KIND_SERVER),
                            start, end, [], b"", span_status(0))  # fmt: skip
    general = encode_span(trace_id=2**128 - 1, span_id=7, parent_span_id=None, trace_state=None, name="chat m",
                          kind=SPAN_KIND_SERVER, start_ns=start, end_ns=end, attributes={})  # fmt: skip
    assert flow == general
    assert flow[flow.index(b"\x39") + 1 :][:8] == start.to_bytes(8, "little")
