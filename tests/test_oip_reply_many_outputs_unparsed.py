"""An OIP REST reply of more outputs than the proxy reads: a reply cannot be refused once the model ran, so its first
`MAX_STRINGS` outputs are read, the reply passed on whole, its output `scan:truncated`. orjson built every output
first, to have all but 65,536 passed over: a million tiny outputs (63 MB) held the event loop 3.1-3.3 s (CPU,
interpreted), 1.3 M of `{"data":[1]}` in the 16 MiB a reply is buffered by default 1.7-4.2 s. Their first
`MAX_STRINGS` + 1 are now found in the bytes (a match in C) and only those parsed: 0.3-0.4 s, most of it the reading
of the 65,536 that always were read."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pytest
import tritonclient.http as httpclient

from proxy.detectors import TRUNCATED
from proxy.flow import Outcome
from proxy.protocols import MAX_STRINGS, oip
from proxy.protocols.oip_generate import GenerateObserver
from tests.harness import LoopThread, ProxyHandle
from tests.ingress.test_request_json_utf16 import OIP_RAW_CONFIG
from tests.protocols.test_oip_grpc import EMAIL
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.raw_origin import proxy_in_front, request_body
from tests.test_oip_stream_many_outputs_unparsed import parsed  # noqa: F401  # (a fixture)

ADDRESS = "alice@example.com"


def _outputs(count: int) -> list[dict[str, Any]]:
    """`count` tiny outputs as a server writes them, the first holding an address."""
    tiny = [{"name": f"o{index}", "datatype": "BYTES", "shape": [1], "data": ["x"]} for index in range(count)]
    tiny[0]["data"] = [ADDRESS]
    return tiny


def _body(count: int, **fields: Any) -> bytes:
    return orjson.dumps({"model_name": "m", "model_version": "1", **fields, "outputs": _outputs(count)})


def _read(body: bytes) -> Outcome:
    outcome = Outcome(started_ns=0)
    observer = oip.RestReplyObserver(outcome, EMAIL, False, None)
    observer.body(body)
    observer.finish()
    return outcome


def test_a_reply_of_a_million_tiny_outputs_has_only_those_read_parsed(parsed: list[int]) -> None:  # noqa: F811
    cut = _read(_body(1_000_000))
    assert parsed == [MAX_STRINGS + 1]  # one past the bound, to say so (1,000,000 before)
    assert cut.output_detected == {"pii:email", TRUNCATED}  # the first read, the rest not
    assert cut.response_model == "m:1"
    parsed.clear()
    whole = _read(_body(MAX_STRINGS))  # at the bound: parsed whole, as before
    assert parsed == [MAX_STRINGS]
    assert whole.response_model == "m:1" and "pii:email" in whole.output_detected


def test_only_the_outputs_are_cut_and_the_fields_before_them_are_read() -> None:
    parameters = {"sequence_end": True, "note": {"by": ["bob@example.org"]}}
    body = _body(MAX_STRINGS + 2, id="r1", parameters=parameters).replace(b",", b" ,\n ")
    cut = orjson.loads(oip.many_values(body, after_unread=True)[0])
    assert cut["parameters"] == parameters and cut["id"] == "r1"
    assert cut["outputs"] == _outputs(MAX_STRINGS + 2)[: MAX_STRINGS + 1]
    outcome = _read(body)
    assert outcome.output_detected == {"pii:email", TRUNCATED}  # the parameters' address read beside them
    assert outcome.response_model == "m:1"


def test_a_reply_of_more_bytes_outputs_than_read_is_recorded_without_a_digest() -> None:
    """As README says, and as over gRPC: a digest of the outputs read, some of them only, would stand for the reply.
    Before 2026-12-05 a cut reply of BYTES outputs had their text's (one of numbers none), here as a whole reply and
    as an event of MLServer's `/infer_stream`."""
    whole = _read(_body(3))
    assert whole.output_digest is not None and whole.output_detected == {"pii:email"}
    cut = _read(_body(MAX_STRINGS + 1))
    assert cut.output_detected == {"pii:email", TRUNCATED}
    assert cut.output_digest is None
    outcome = Outcome(started_ns=0)
    stream = GenerateObserver(outcome, EMAIL, False)
    stream.event({"model_name": "m", "outputs": [{"name": "o", "datatype": "BYTES", "shape": [1], "data": ["hi"]}]})
    stream.event({"model_name": "m", "outputs": _outputs(MAX_STRINGS + 1)})
    stream.finish()
    assert outcome.output_detected == {"pii:email", TRUNCATED} and outcome.output_digest is None


@pytest.mark.parametrize("key", [b'"outputs"', b'"output\\u0073"', b'"\\u006futputs"'])
def test_a_reply_naming_outputs_again_after_many_is_read_as_its_client_reads_it(key: bytes) -> None:
    """JSON's last member of a name is the one a client reads (Python's `json`, tritonclient's): a second `outputs`
    after a list of too many is the reply's. Cut after the first list, its address was passed over, the record saying
    `scan:truncated` of a reply whose client read one output (before 2026-12-05 it was read so)."""
    address = b'[{"name": "o", "datatype": "BYTES", "shape": [1], "data": ["bob@example.org"]}]'
    body = _body(MAX_STRINGS + 1).replace(ADDRESS.encode(), b"x")[:-1] + b", " + key + b": " + address + b"}"
    assert len(json.loads(body)["outputs"]) == 1  # (what its client reads)
    assert oip.many_values(body, after_unread=True)[0] is body
    assert _read(body).output_detected == {"pii:email"}
    later = body.replace(key + b": " + address, b'"parameters": {"a": "\\"a\\\\"}')  # escapes, no `outputs`: cut
    assert oip.many_values(later, after_unread=True)[0] is not later


def test_a_reply_of_many_outputs_in_a_charset_is_read_as_its_client_reads_it() -> None:
    """A type naming a charset (`requests` decodes the body in it before `json.loads`) may make the rest other JSON:
    under UTF-7, `"+AG8-utputs"` is `"outputs"`, the list its client reads. Cut after the first list, its address was
    passed over (before 2026-12-05); so a reply in a charset is parsed whole, read in it too."""
    address = b'[{"name": "o", "datatype": "BYTES", "shape": [1], "data": ["bob@example.org"]}]'
    body = _body(MAX_STRINGS + 1).replace(ADDRESS.encode(), b"x")[:-1] + b', "+AG8-utputs": ' + address + b"}"
    assert len(json.loads(body.decode("utf-7"))["outputs"]) == 1  # (what its client reads)
    assert oip.many_values(body, after_unread=True)[0] is not body  # (read as UTF-8, cut)
    outcome = Outcome(started_ns=0)
    observer = oip.RestReplyObserver(outcome, EMAIL, False, None)
    observer.head(200, lambda name: "application/json; charset=utf-7" if name == "content-type" else None)
    observer.body(body)
    observer.finish()
    assert "pii:email" in outcome.output_detected


def _closed(body: bytes) -> tuple[bool, Outcome]:
    """A reply framed by its connection's close (kept as it passed, read at its end): whether it is said cut short."""
    outcome = Outcome(started_ns=0)
    observer = oip.RestReplyObserver(outcome, EMAIL, False, None)
    for at in range(0, len(body), 1 << 20):
        observer.chunk(body[at : at + (1 << 20)])
    cut = observer.cut_short()
    observer.finish()
    return cut, outcome


@pytest.mark.parametrize("after", [b"", b' , "parameters" : {"a": [1]} '])
def test_a_reply_of_many_outputs_framed_by_its_close_is_told_whole_or_cut(after: bytes) -> None:
    body = _body(MAX_STRINGS + 10)[:-1] + after + b"}\n"
    assert oip.many_values(body, after_unread=True)[0] is not body  # (its outputs past the bound unparsed)
    said_cut, outcome = _closed(body)
    assert not said_cut and outcome.output_detected == {"pii:email", TRUNCATED}
    for end in (len(body) - 2, len(body) - len(after) - 3, len(body) - 100):  # its brace, its list's end, an output's
        cut, outcome = _closed(body[:end])
        assert cut, end  # (read as a whole reply is: the JSON ends before its value does)


@pytest.mark.parametrize(
    "body",
    [
        _body(MAX_STRINGS),  # at the bound
        orjson.dumps({"outputs": [{"name": "o", "datatype": "FP32", "shape": [1 << 17], "data": [1.5] * (1 << 17)}]}),
        orjson.dumps({"outputs": [{"data": [[[1]]]}] * (MAX_STRINGS + 1)}),  # deeper than a server writes: read whole
        orjson.dumps({"model_name": "m", "results": [{"data": [1]}] * (MAX_STRINGS + 1)}),  # no `outputs`
    ],
    ids=["at-the-bound", "large-tensor", "deep-outputs", "no-outputs"],
)
def test_a_reply_not_matched_as_too_many_outputs_is_parsed_whole(body: bytes) -> None:
    assert oip.many_values(body, after_unread=True)[0] is body


MANY = _body(200_000)  # 11.6 MB: under `limits.buffer_max_bytes`, so read whole


async def _answer(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await request_body(head, reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(MANY))
    writer.write(MANY)
    await writer.drain()
    return True


def test_tritonclient_gets_a_reply_of_many_outputs_whole_and_the_record_says_it_was_not_all_read(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver
) -> None:
    spans = f"telemetry: {{exporter: otlp, endpoint: 'http://127.0.0.1:{otlp.port}'}}\n"
    with proxy_in_front(loop_thread, make_proxy, OIP_RAW_CONFIG + spans, _answer) as proxy:
        client = httpclient.InferenceServerClient(proxy.url.removeprefix("http://"), network_timeout=120)
        try:
            tensor = httpclient.InferInput("i", [1], "BYTES")
            tensor.set_data_from_numpy(np.array([b"hi"], dtype=object), binary_data=False)
            answer = client.infer("m", [tensor])
        finally:
            client.close()
    assert answer.get_response() == orjson.loads(MANY)  # passed on whole
    (span,) = otlp.wait_for(lambda found: len(found) == 1)
    labels = span.attributes["lineage.output.labels"]
    assert "pii:email" in labels and TRUNCATED in labels
    assert "lineage.output.digest" not in span.attributes  # (only some of it read)
