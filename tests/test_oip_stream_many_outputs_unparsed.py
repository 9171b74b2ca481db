"""An MLServer `/infer_stream` (or `/generate_stream`, `/generate`) reply of more outputs than the proxy reads, an SSE
event or one JSON object, is read in its first `MAX_STRINGS` + 1 outputs (`oip.many_values`), as `/infer`'s is: passed
on whole, its output `scan:truncated`, no digest. Until 2026-12-05 `GenerateObserver` parsed each whole: a million tiny
outputs 3.25 s as one object, 3.61 s as one event (interpreted), on the event loop. Counted here in outputs parsed."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import httpx
import orjson
import pytest

from proxy.detectors import TRUNCATED
from proxy.flow import Outcome
from proxy.protocols import MAX_STRINGS, oip_generate
from proxy.protocols.oip_generate import GenerateObserver
from tests.harness import LoopThread, ProxyHandle
from tests.protocols.test_oip_grpc import EMAIL
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.raw_origin import proxy_in_front, request_body
from tests.servers.real import mlserver_runtime

ADDRESS = "alice@example.com"
COUNT = 200_000  # (11.6 MB: an event under `sse.MAX_LINE`, a reply under `limits.buffer_max_bytes`)


def _outputs(count: int) -> list[Any]:
    """`count` tiny outputs as a server writes them, the first holding an address."""
    tiny: list[Any] = [
        {"name": f"o{index}", "datatype": "BYTES", "shape": [1], "data": ["x"]} for index in range(count)
    ]
    tiny[0]["data"] = [ADDRESS]
    return tiny


def _body(outputs: list[Any], **fields: Any) -> bytes:
    return orjson.dumps({"model_name": "m", "model_version": "1", **fields, "outputs": outputs})


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of outputs each JSON text parsed held (orjson's and Python's `json`'s values: compiled modules look
    both up at each call, so they are counted compiled too)."""
    counts: list[int] = []
    orjson_loads, json_loads = orjson.loads, json.loads

    def counted(value: Any) -> Any:
        if type(value) is dict and type(value.get("outputs")) is list:
            counts.append(len(value["outputs"]))
        return value

    monkeypatch.setattr(orjson, "loads", lambda data: counted(orjson_loads(data)))
    monkeypatch.setattr(json, "loads", lambda text, **kw: counted(json_loads(text, **kw)))
    return counts


def _whole(body: bytes, content_type: str = "application/json") -> Outcome:
    outcome = Outcome(started_ns=1)
    observer = GenerateObserver(outcome, EMAIL, False)
    observer.head(200, {"content-type": content_type}.get)
    observer.body(body)
    observer.finish()
    return outcome


def _streamed(*events: bytes) -> Outcome:
    outcome = Outcome(started_ns=1)
    observer = GenerateObserver(outcome, EMAIL, False)
    observer.head(200, {"content-type": "text/event-stream"}.get)
    for event in events:
        observer.chunk(b"data: " + event + b"\n\n")
    observer.finish()
    return outcome


ORDINARY = _body([{"name": "o", "datatype": "BYTES", "shape": [1], "data": ["hi"]}])


def test_a_reply_or_event_of_many_tiny_outputs_has_only_those_read_parsed(parsed: list[int]) -> None:
    many = _body(_outputs(COUNT))
    whole = _whole(many)
    assert parsed == [MAX_STRINGS + 1]  # one past the bound, to say so (200,000 before)
    assert whole.output_detected == {"pii:email", TRUNCATED} and whole.output_digest is None
    assert whole.response_model == "m:1"
    parsed.clear()
    stream = _streamed(ORDINARY, many, ORDINARY.replace(b"hi", b"bob@example.org"))
    assert parsed == [1, MAX_STRINGS + 1, 1]  # the events after it read as before
    assert stream.output_detected == {"pii:email", TRUNCATED} and stream.output_digest is None
    parsed.clear()
    joined = _streamed(many.replace(b"},{", b"},\ndata: {", 2))  # (an event in `data:` lines, joined by LF)
    assert parsed == [MAX_STRINGS + 1] and joined.output_detected == {"pii:email", TRUNCATED}
    parsed.clear()
    at_the_bound = _whole(_body(_outputs(MAX_STRINGS)))  # parsed whole, as before
    assert parsed == [MAX_STRINGS] and "pii:email" in at_the_bound.output_detected


LATER = b'[{"name": "o", "datatype": "BYTES", "shape": [1], "data": ["bob@example.org"]}]'
HIDDEN = _outputs(MAX_STRINGS + 1)
HIDDEN[0]["data"] = ["x"]


@pytest.mark.interpreted
@pytest.mark.parametrize(
    "body",
    [
        # `outputs` again after them (so written, or with a `\u` escape): the last of a name is the one its client reads
        _body(HIDDEN)[:-1] + b', "outputs": ' + LATER + b"}",
        _body(HIDDEN)[:-1] + b', "output\\u0073": ' + LATER + b"}",
        # an output among them that is no object: the list is a generate reply's field, every string of it read
        _body([*HIDDEN[:10], "bob@example.org", *HIDDEN[10:]]),
    ],
    ids=["outputs-again", "escaped-outputs-again", "string-among"],
)
def test_a_reply_or_event_its_client_reads_otherwise_is_parsed_whole(
    body: bytes, parsed: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    outputs = len(json.loads(body)["outputs"])  # (what its client reads)
    parsed.clear()
    whole, stream = _whole(body), _streamed(body)
    # parsed whole, as before (a string among the first ones: once their cut was read, 65,537 outputs, no tensors)
    assert parsed.count(outputs) == 2 and len(parsed) <= 4
    # and recorded as when every reply was parsed whole (before 2026-12-05)
    monkeypatch.setattr(oip_generate, "many_values", lambda head, **_: (head, 0, -1))  # (none cut)
    assert (whole.output_detected, whole.output_digest) == (_whole(body).output_detected, _whole(body).output_digest)
    assert stream.output_detected == _streamed(body).output_detected
    if outputs == 1:  # (its one output's address read)
        assert "pii:email" in whole.output_detected and "pii:email" in stream.output_detected


def test_a_whole_reply_in_a_charset_is_read_in_it() -> None:
    """Its type names UTF-7: its client (`requests`' `.json()`) reads `+AG8-utputs` as `outputs`, the list it reads."""
    body = _body(HIDDEN)[:-1] + b', "+AG8-utputs": ' + LATER + b"}"
    outcome = _whole(body, "application/json; charset=utf-7")
    assert "pii:email" in outcome.output_detected, outcome.output_detected


def test_a_whole_reply_framed_by_its_close_and_cut_in_its_outputs_is_told_cut_short(parsed: list[int]) -> None:
    """A reply passed on as it arrives, kept to be read whole at its end: one whose JSON breaks off past its first
    outputs is cut short (its connection closed early), told by its JSON as before, not read as a whole one cut."""
    many = _body(_outputs(COUNT))
    for body, cut in ((many[:-1000], True), (many, False)):
        outcome = Outcome(started_ns=1)
        observer = GenerateObserver(outcome, EMAIL, False)
        observer.head(200, {"content-type": "application/json"}.get)
        for at in range(0, len(body), 1 << 20):
            observer.chunk(body[at : at + (1 << 20)])
        assert observer.cut_short() is cut
        observer.finish()
        assert TRUNCATED in outcome.output_detected
    assert parsed == [MAX_STRINGS + 1]  # (the whole one's: the cut one's JSON read whole, none)


CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: mlserver, url: "${UPSTREAM}", protocol: oip, checkpoint: "m@1"}]
routes: [{model: m, upstream: mlserver}]
policy: {anonymous: allow, default_purpose: assistant}
detectors: [email]
lineage: {store: "${STORE}"}
"""
PROMPT = {"inputs": [{"name": "prompt", "datatype": "BYTES", "shape": [1], "data": ["hi"]}]}
EVENT = b"data: " + _body(_outputs(COUNT)) + b"\n\n"


async def _answer(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await request_body(head, reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
    for at in range(0, len(EVENT), 1 << 20):
        piece = EVENT[at : at + (1 << 20)]
        writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    return True


@pytest.fixture
def proxied(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver
) -> Iterator[ProxyHandle]:
    spans = f"telemetry: {{exporter: otlp, endpoint: 'http://127.0.0.1:{otlp.port}'}}\n"
    with proxy_in_front(loop_thread, make_proxy, CONFIG + spans, _answer) as proxy:
        yield proxy


def test_an_infer_stream_event_of_many_outputs_is_passed_on_whole_and_said_not_all_read(
    proxied: ProxyHandle, otlp: OtlpReceiver, parsed: list[int]
) -> None:
    with httpx.stream("POST", f"{proxied.url}/v2/models/m/infer_stream", json=PROMPT, timeout=120) as reply:
        assert reply.status_code == 200
        received = reply.read()
    assert received == EVENT  # passed on whole, unchanged
    (span,) = otlp.wait_for(lambda found: len(found) == 1)
    labels = span.attributes["lineage.output.labels"]
    assert "pii:email" in labels and TRUNCATED in labels
    assert "lineage.output.digest" not in span.attributes  # (only some of it read)
    assert parsed == [MAX_STRINGS + 1]  # (200,000 before)


# a real MLServer runtime whose `predict_stream` answers one event of `MAX_STRINGS` + 2 tiny outputs, the first holding
# an address, then one ordinary event
MANY_STREAMER = """
from mlserver import MLModel
from mlserver.codecs import StringCodec
from mlserver.types import InferenceResponse


class Echo(MLModel):  # (the class `mlserver_runtime` loads)
    async def load(self) -> bool:
        return True

    async def predict_stream(self, payloads):
        async for payload in payloads:
            outputs = [StringCodec.encode_output(f"o{at}", ["x"]) for at in range(MANY)]
            outputs[0] = StringCodec.encode_output("o0", ["alice@example.com"])
            yield InferenceResponse(model_name=self.name, outputs=outputs)
            yield InferenceResponse(model_name=self.name, outputs=[StringCodec.encode_output("o", ["done"])])
""".replace("MANY", str(MAX_STRINGS + 2))
REAL_CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams: [{name: mlserver, url: "${UPSTREAM}", protocol: oip}]
routes: [{model: "*", upstream: mlserver}]
policy: {anonymous: allow, default_purpose: assistant}
detectors: [email]
telemetry: {exporter: otlp, endpoint: "${OTLP}", protocol: grpc}
lineage: {store: "${STORE}"}
"""


_UUID: Final = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _events(body: bytes) -> list[Any]:
    """An event stream's events, each response's own ids (a UUID: `id`, `Ce-Id`, `Ce-Requestid`) written `ID`."""
    return [orjson.loads(line[6:]) for line in _UUID.sub(b"ID", body).splitlines() if line.startswith(b"data: ")]


@pytest.mark.realserver
def test_the_real_mlservers_event_of_many_outputs_is_passed_on_whole_and_said_not_all_read(
    tmp_path: Path, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle], parsed: list[int]
) -> None:
    with mlserver_runtime(tmp_path / "mlserver", MANY_STREAMER, "many") as (rest, _):
        direct = httpx.post(f"{rest}/v2/models/many/infer_stream", json=PROMPT, timeout=120).content
        proxy = make_proxy(REAL_CONFIG, wait="probed", UPSTREAM=rest, OTLP=f"http://127.0.0.1:{otlp.port}")
        with httpx.stream("POST", f"{proxy.url}/v2/models/many/infer_stream", json=PROMPT, timeout=120) as reply:
            assert reply.status_code == 200, reply.read()
            trace_id = reply.headers["x-trace-id"]
            received = reply.read()
    span = otlp.by_trace(trace_id).attributes
    # (65,538 and 1 before; the model's metadata, which declares no outputs, `[]`, is parsed too)
    assert [count for count in parsed if count] == [MAX_STRINGS + 1, 1]
    # passed on whole, unchanged: MLServer's bytes as it sends them without the proxy, but each response's own ids
    assert _UUID.sub(b"ID", received) == _UUID.sub(b"ID", direct)
    assert [len(event["outputs"]) for event in _events(received)] == [MAX_STRINGS + 2, 1]
    assert "pii:email" in span["lineage.output.labels"] and TRUNCATED in span["lineage.output.labels"], span
    assert "lineage.output.digest" not in span and "error.type" not in span, span
