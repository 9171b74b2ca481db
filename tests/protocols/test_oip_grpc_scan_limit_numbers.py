"""A gRPC ModelInfer request or reply whose tensors are all numbers by datatype (no BYTES) may still hold strings past
the scan limit: `bytes_contents`, which MLServer hands the model whatever the datatype. The raw contents' step
(`_raw_strings`) is skipped for such messages (nothing in them to read as strings), and the limit is still said: the
request is `unscanned`, the reply's output labelled `scan:truncated`."""

from __future__ import annotations

from proxy.flow import Outcome
from proxy.protocols.oip_grpc import _MAX_STRINGS, ReplyObserver, read_infer_request
from tests.protocols.test_oip_grpc import EMAIL, PB

TRUNCATED = "scan:truncated"


def _request(strings: int) -> bytes:
    request = PB["ModelInferRequest"](model_name="numbers")
    request.inputs.add(name="IN", datatype="FP32", shape=[strings]).contents.bytes_contents.extend(
        b"s%d" % i for i in range(strings)
    )
    data: bytes = request.SerializeToString()
    return data


def _reply(strings: int) -> bytes:
    reply = PB["ModelInferResponse"](model_name="numbers")
    reply.outputs.add(name="OUT", datatype="INT64", shape=[strings]).contents.bytes_contents.extend(
        b"s%d" % i for i in range(strings)
    )
    data: bytes = reply.SerializeToString()
    return data


def test_a_numbers_only_request_past_the_scan_limit_is_unscanned() -> None:
    assert read_infer_request(_request(_MAX_STRINGS + 1)).unscanned
    small = read_infer_request(_request(3))
    assert not small.unscanned and small.texts == ("s0", "s1", "s2")


def test_a_numbers_only_reply_past_the_scan_limit_is_labelled_truncated() -> None:
    def labels(data: bytes) -> frozenset[str]:
        outcome = Outcome(started_ns=0)
        observer = ReplyObserver(outcome, EMAIL, False)
        observer.body(data)
        observer.finish()
        return outcome.output_detected

    assert TRUNCATED in labels(_reply(_MAX_STRINGS + 1))
    assert TRUNCATED not in labels(_reply(3))
