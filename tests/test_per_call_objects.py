"""What every call used to make anew and now takes ready-made gives the same record: the checkpoint an OIP
upstream's metadata names (made once per model and version asked), the SHA-256 every digest starts from (a copy
of one never updated), a gRPC reply's digest (the observer's, with no second one of its text)."""

from __future__ import annotations

import hashlib

from proxy.config import DetectorSpec
from proxy.detectors import TRUNCATED, Detectors
from proxy.flow import UPSTREAM, Checkpoint, Outcome
from proxy.protocols import SHA256, OutputText, text_digest
from proxy.protocols.oip import ModelVersions
from proxy.protocols.oip_grpc import ADAPTER, MODEL_INFER, read_infer_request
from tests.protocols.test_oip_grpc import PB, raw_bytes, sha

EMAIL = Detectors([DetectorSpec("email")])


def test_a_resolved_checkpoint_is_made_once_per_model_and_version() -> None:
    served = ModelVersions({"iris": ("3", "5", "10"), "named": (), "odd\nname": ("1",)})
    latest = served.resolve("iris", None)
    assert latest == Checkpoint("iris:10", UPSTREAM)
    assert served.resolve("iris", None) is latest
    assert served.resolve("iris", "") is latest  # no version asked, however spelt: the latest
    five = served.resolve("iris", "5")
    assert five == Checkpoint("iris:5", UPSTREAM)
    assert served.resolve("iris", "5") is five
    assert served.resolve("iris", "7") is None  # not listed: never made, asked again as such
    assert served.resolve("iris", "7") is None
    assert served.resolve("iris", "5") is five
    assert served.resolve("other", None) is None
    assert served.resolve("named", None) == Checkpoint("named", UPSTREAM)
    assert served.resolve("named", "1") is None
    odd = served.resolve("odd\nname", "1")
    assert odd is not None and odd.name == "odd%0Aname:1"  # printable, as before


def test_digests_start_from_an_untouched_sha256() -> None:
    empty = hashlib.sha256().hexdigest()
    assert text_digest(["a", "b"]) == "sha256:" + hashlib.sha256(b"a\nb\n").hexdigest()
    request = PB["ModelInferRequest"](model_name="simple")
    request.inputs.add(name="IN", datatype="FP32", shape=[1])
    request.raw_input_contents.append(bytes(4))
    assert read_infer_request(request.SerializeToString()).digest == sha(bytes(4))
    assert read_infer_request(request.SerializeToString()).digest == sha(bytes(4))  # not the first's state
    assert SHA256.hexdigest() == empty
    assert text_digest(["a", "b"]) == "sha256:" + hashlib.sha256(b"a\nb\n").hexdigest()


def test_grpc_reply_digest_is_its_tensors_and_its_text_still_read() -> None:
    """The observer's text is read for detection and capture, its digest the tensors' as sent; BYTES that are
    not whole elements keep the elements before them, and the output says it was not read whole."""
    response = PB["ModelInferResponse"](model_name="echo", model_version="2", id="r-1")
    response.outputs.add(name="N", datatype="FP32", shape=[1])
    response.outputs.add(name="T", datatype="BYTES", shape=[2])
    numbers, texts = bytes(4), raw_bytes(b"mail ana@example.org") + b"\x09\x00\x00\x00cut"
    response.raw_output_contents.extend([numbers, texts])
    outcome = Outcome(started_ns=0)
    target = ADAPTER.match("POST", MODEL_INFER)
    assert target is not None
    observer = ADAPTER.observer(target, outcome, EMAIL, True)
    assert observer is not None
    observer.body(response.SerializeToString())
    observer.finish()
    assert outcome.output_digest == sha(numbers, texts)
    assert outcome.output_detected == frozenset({"pii:email", TRUNCATED})
    assert outcome.content == ("mail [pii:email]",)
    assert (outcome.response_model, outcome.response_id) == ("echo:2", "r-1")


def test_output_text_without_a_digest_of_its_own() -> None:
    """`digests=False`: the text is scanned and captured as with one, and no digest is written."""
    with_digest, without = Outcome(started_ns=0), Outcome(started_ns=0)
    for outcome, digests in ((with_digest, True), (without, False)):
        text = OutputText(outcome, EMAIL, True, digests=digests)
        text.add_pieces(["to bob@example.com", "hi"], True)
        text.add("more")
        text.end_piece()
        text.finish(EMAIL)
    assert with_digest.output_digest == text_digest(["to bob@example.com", "hi", "more"])
    assert without.output_digest is None
    assert without.output_detected == with_digest.output_detected == frozenset({"pii:email"})
    assert without.content == with_digest.content


def test_grpc_reply_of_numbers_only() -> None:
    """A reply whose tensors are numbers has no text to read: nothing found, nothing captured, its digest the
    tensors'; a stream's later message with text is read as the first one's would have been."""
    response = PB["ModelInferResponse"](model_name="m")
    response.outputs.add(name="N", datatype="FP32", shape=[1])
    response.raw_output_contents.append(bytes(4))
    target = ADAPTER.match("POST", MODEL_INFER)
    assert target is not None
    for detectors in (EMAIL, Detectors([])):
        outcome = Outcome(started_ns=0, output_detected=frozenset({"left"}))
        observer = ADAPTER.observer(target, outcome, detectors, True)
        assert observer is not None
        observer.body(response.SerializeToString())
        observer.finish()
        assert outcome.output_digest == sha(bytes(4))
        assert outcome.content == ()
        assert outcome.output_detected == (frozenset() if detectors else frozenset({"left"}))
    stream = PB["ModelStreamInferResponse"]
    worded = PB["ModelInferResponse"](model_name="m")
    worded.outputs.add(name="T", datatype="BYTES", shape=[1])
    worded.raw_output_contents.append(raw_bytes(b"to ana@example.org"))
    outcome = Outcome(started_ns=0)
    observer = ADAPTER.observer(target, outcome, EMAIL, True)
    assert observer is not None
    observer.chunk(stream(infer_response=response).SerializeToString())
    observer.chunk(stream(infer_response=worded).SerializeToString())
    observer.finish()
    assert outcome.output_digest == sha(bytes(4), raw_bytes(b"to ana@example.org"))
    assert (outcome.output_detected, outcome.content) == (frozenset({"pii:email"}), ("to [pii:email]",))
