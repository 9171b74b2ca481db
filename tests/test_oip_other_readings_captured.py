"""An OIP BYTES element that is not UTF-8 is read in other charsets too (Latin-1, or holding NULs UTF-16/32:
`oip.not_utf8_element`). Those readings were texts of the request beside the element's U+FFFD reading, so:

- with `capture_content`, a span held both: `write to j\ufffdrg@ex\ufffdmple.de` unmasked beside its Latin-1
  reading masked, `write to [pii:email]`, and the readings of an element holding no value (CJK-looking UTF-16 ones
  too) were captured and counted in the call's characters (`Call.content_chars`) as texts of their own;
- they counted against the 10,000 texts a gRPC request is read to: 6,000 Latin-1 `bytes_contents` elements were
  `scan:truncated`, ~1,000 of them unread (all 6,000 were read before the readings were added).

The other readings are now read beside the texts (`Request.decoded`), as text with JSON escapes decoded is: scanned,
never captured nor counted; a value found in them withholds the call's captured content."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from proxy.config import DetectorSpec
from proxy.detectors import TRUNCATED, Detectors
from proxy.flow import Outcome
from proxy.protocols.oip import RestReplyObserver
from proxy.protocols.oip_grpc import read_infer_request
from tests.ingress.grpc_proxied import traced
from tests.protocols.test_oip_grpc import infer_request
from tests.servers.otlp_receiver import OtlpReceiver
from tests.test_oip_latin1_elements import ZONED

CAPTURED = ZONED.replace(
    "telemetry:\n  exporter: none\n",
    "telemetry:\n  exporter: otlp\n  endpoint: ${OTLP}\n  capture_content: true\n",
)
WITHHELD = "[withheld: a detected value is read in a charset other than UTF-8]"
SENTENCE = "write to jörg@exämple.de"
PROSE = "Grüße aus Köln. " * 2500  # 40,000 characters holding no value


def _elements(*values: bytes) -> list[triton.InferInput]:
    tensor = triton.InferInput("TEXT", [len(values)], "BYTES")
    tensor.set_data_from_numpy(np.array(list(values), dtype=np.object_))
    return [tensor]


def _captured(otlp: OtlpReceiver, trace_id: str) -> list[str]:
    """The parts of the call's captured input (`gen_ai.input.messages`)."""
    messages = orjson.loads(otlp.by_trace(trace_id).attributes["gen_ai.input.messages"])
    return [part["content"] for part in messages[0]["parts"]]


def _client(faithful, make_proxy, otlp) -> triton.InferenceServerClient:  # type: ignore[no-untyped-def]
    assert "exporter: otlp" in CAPTURED
    address, _ = faithful
    proxy = make_proxy(CAPTURED, OIP_GRPC=address, OTLP=f"http://127.0.0.1:{otlp.port}")
    return triton.InferenceServerClient(proxy.grpc)


def test_an_address_only_another_reading_holds_withholds_the_content(faithful, make_proxy, otlp) -> None:  # type: ignore[no-untyped-def]
    """An address only a reading in another charset holds: the content withheld, not captured half masked."""
    client = _client(faithful, make_proxy, otlp)
    for n, value in enumerate((SENTENCE.encode("latin-1"), SENTENCE.encode("utf-16"), SENTENCE.encode("utf-32-be"))):
        trace_id, parent = traced(n, 0x0E1A0)
        client.infer("echo", _elements(value), headers={"x-purpose": "care", "traceparent": parent})
        assert _captured(otlp, trace_id) == [WITHHELD], value


def test_an_elements_other_readings_are_neither_captured_nor_counted(faithful, make_proxy, otlp) -> None:  # type: ignore[no-untyped-def]
    """An element holding no value: captured once, as read replaced (its other readings, CJK-looking UTF-16 in the
    other byte order too, neither captured nor counted in the call's characters)."""
    client = _client(faithful, make_proxy, otlp)
    for n, value in enumerate((PROSE.encode("latin-1"), PROSE[:4000].encode("utf-16-le")), start=3):
        trace_id, parent = traced(n, 0x0E1A0)
        client.infer("echo", _elements(value), headers={"x-purpose": "care", "traceparent": parent})
        parts = _captured(otlp, trace_id)
        assert len(parts) == 1, [part[:40] for part in parts]
        replaced = value.decode("utf-8", "replace")
        kept, _, cut = parts[0].rpartition("...[")
        if cut:  # (the span's value bound: the characters cut are the element's left out, no more)
            assert replaced.startswith(kept)
            assert len(kept) + int(cut.removesuffix(" characters cut]").replace(",", "")) == len(replaced)
        else:
            assert parts[0] == replaced


def test_many_latin1_elements_are_read_to_the_last() -> None:
    request = infer_request(model_name="echo")
    elements = [f"Grüße {index}".encode("latin-1") for index in range(6000)]
    elements[-1] = b"an " + SENTENCE.encode("latin-1")
    request.inputs.add(name="TEXT", datatype="BYTES", shape=[6000]).contents.bytes_contents.extend(elements)
    read = read_infer_request(request.SerializeToString())
    assert not read.unscanned  # all read (scan:truncated after ~5,000 before)
    assert len(read.texts) == 6000 and len(read.decoded) == 6000
    email = Detectors([DetectorSpec("email")])
    assert email.reading().scan_all(read.texts + read.decoded) - {TRUNCATED} == frozenset({"pii:email"})


def test_many_latin1_elements_through_the_proxy(faithful, make_proxy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    address, log = faithful
    proxy = make_proxy(ZONED, OIP_GRPC=address, STORE=str(tmp_path / "lineage.db"))
    client = triton.InferenceServerClient(proxy.grpc)
    elements = [f"Grüße {index}".encode("latin-1") for index in range(6000)]
    elements[-1] = b"an " + SENTENCE.encode("latin-1")
    with pytest.raises(InferenceServerException) as caught:
        client.infer("echo", _elements(*elements), headers={"x-purpose": "ads"})
    assert caught.value.status() == "StatusCode.PERMISSION_DENIED", caught.value
    assert "pii:email" in (caught.value.message() or ""), caught.value.message()
    assert "scan:truncated" not in (caught.value.message() or ""), caught.value.message()
    plain = client.infer("echo", _elements(*elements[:-1]), headers={"x-purpose": "ads"})  # all read, none held
    assert len(plain.as_numpy("TEXT")) == 5999
    assert log.read_text().count("\n") == 1


def _output(otlp: OtlpReceiver, trace_id: str) -> str:
    """The call's captured output (`gen_ai.output.messages`), its one part."""
    messages = orjson.loads(otlp.by_trace(trace_id).attributes["gen_ai.output.messages"])
    content: str = messages[0]["parts"][0]["content"]
    return content


def test_an_output_elements_other_readings_are_not_captured(faithful, make_proxy, otlp) -> None:  # type: ignore[no-untyped-def]
    """The model's reply (here the element echoed): its elements' other readings were pieces of the captured output,
    run into the next (`…ex\ufffdmple.dewrite to jörg@exämple.de…`), the address captured unmasked though the output
    was labelled `pii:email`. They are read beside it now: the output is withheld, or captured once as read replaced."""
    client = _client(faithful, make_proxy, otlp)
    for n, value in enumerate((SENTENCE.encode("latin-1"), SENTENCE.encode("utf-16"))):
        trace_id, parent = traced(n, 0x0E1C0)
        client.infer("echo", _elements(value), headers={"x-purpose": "care", "traceparent": parent})
        span = otlp.by_trace(trace_id)
        assert "pii:email" in span.attributes["lineage.output.labels"]
        assert _output(otlp, trace_id) == WITHHELD, value
    value = "Grüße aus Köln".encode("latin-1")
    trace_id, parent = traced(2, 0x0E1C0)
    client.infer("echo", _elements(value), headers={"x-purpose": "care", "traceparent": parent})
    assert _output(otlp, trace_id).startswith(value.decode("utf-8", "replace"))
    assert "Grüße" not in _output(otlp, trace_id)


def test_a_rest_replys_other_readings_are_not_captured() -> None:
    """The same over REST (a binary output, as tritonclient.http asks for): the element's Latin-1 reading was a
    piece of the output, the address captured unmasked; now it is read beside it, the output withheld."""
    email = Detectors([DetectorSpec("email")])
    for value, content in ((SENTENCE.encode("latin-1"), WITHHELD), (b"Gr\xfc\xdfe", "Gr\ufffd\ufffde")):
        element = len(value).to_bytes(4, "little") + value
        head = orjson.dumps({"model_name": "echo", "outputs": [{"name": "TEXT", "datatype": "BYTES", "shape": [1],
                             "parameters": {"binary_data_size": len(element)}}]})  # fmt: skip
        outcome = Outcome(started_ns=0)
        observer = RestReplyObserver(outcome, email, True, str(len(head)))
        observer.body(head + element)
        observer.finish()
        assert outcome.content == (content,)
        assert ("pii:email" in outcome.output_detected) is (content == WITHHELD)


def test_a_value_both_readings_hold_is_masked_not_withheld(faithful, make_proxy, otlp) -> None:  # type: ignore[no-untyped-def]
    """An ASCII address with one stray byte beside it: the element's U+FFFD reading holds the address as its Latin-1
    reading does, so masking the captured text hides it; the whole input and output were withheld all the same. Only
    a value that stands in the other reading alone withholds them now (`jörg@exämple.de` beside it still does)."""
    client = _client(faithful, make_proxy, otlp)
    value = b"write to bob@example.org \xff"
    trace_id, parent = traced(1, 0x0E1D0)
    client.infer("echo", _elements(value), headers={"x-purpose": "care", "traceparent": parent})
    span = otlp.by_trace(trace_id)
    assert "pii:email" in span.attributes["lineage.input.labels"]
    assert "pii:email" in span.attributes["lineage.output.labels"]
    assert _captured(otlp, trace_id) == ["write to [pii:email] \ufffd"]  # before: [WITHHELD]
    assert _output(otlp, trace_id).startswith("write to [pii:email] \ufffd")  # before: WITHHELD (the echo's output)
    both = b"write to bob@example.org and " + SENTENCE.encode("latin-1")
    trace_id, parent = traced(2, 0x0E1D0)
    client.infer("echo", _elements(both), headers={"x-purpose": "care", "traceparent": parent})
    assert _captured(otlp, trace_id) == [WITHHELD]
    assert _output(otlp, trace_id) == WITHHELD
