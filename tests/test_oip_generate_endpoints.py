"""Triton's generate extension (`/v2/models/{m}/generate`, `/generate_stream`) and MLServer's streamed inference
(`/infer_stream`, and its `/generate_stream` alias) are read as `/infer` is: labels from every field, purpose checks,
the checkpoint, output labels from the reply or each event as it passes (never held back). Before 2026-12-04 no adapter
read them: with zones configured they were refused, 403 `endpoint_denied` (`policy.passthrough: auto`), so Triton's
LLM users (TensorRT-LLM, its vLLM backend) could not use the proxy's purpose checks at all."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.errors import InvalidRequest
from proxy.flow import Outcome
from proxy.protocols import HTTP_ADAPTERS
from proxy.protocols.oip_generate import ADAPTER, GenerateObserver, read_request
from proxy.record.store import SqliteStore
from tests.harness import LoopThread, ProxyHandle, proxy_error, serving
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.real import mlserver_runtime
from tests.servers.triton_generate import MANY, MODEL, TritonGenerate
from tests.test_refusals_recorded import AccessLines, access_lines

CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: triton, url: "${UPSTREAM}", protocol: oip}
routes:
  - {model: "*", upstream: triton}
policy: {anonymous: allow, default_purpose: care}
zones:
  - {name: personal, labels: ["pii:email"], allow_purposes: [care]}
detectors: [email]
telemetry: {exporter: otlp, endpoint: "${OTLP}", protocol: grpc}
logging: {access: true}
lineage: {store: "${STORE}"}
"""
ADDRESS = "alice@example.com"
EMAIL = Detectors([DetectorSpec("email")])


@pytest.fixture
def triton(loop_thread: LoopThread) -> Iterator[tuple[TritonGenerate, str]]:
    server = TritonGenerate()
    with serving(loop_thread, server.app()) as url:
        yield server, url


@pytest.fixture
def access() -> Iterator[AccessLines]:
    yield from access_lines()


@pytest.fixture
def proxy(
    triton: tuple[TritonGenerate, str], otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]
) -> ProxyHandle:
    return make_proxy(CONFIG, wait="probed", UPSTREAM=triton[1], OTLP=f"http://127.0.0.1:{otlp.port}")


def edges(store: Path) -> list[tuple[str, str, str, str]]:
    kept = SqliteStore(store, readonly=True)
    try:
        return [(r.key.input_labels, r.key.checkpoint, r.key.output_labels, r.key.decision) for r in kept.rows()]
    finally:
        kept.close()


# a forbidden address wherever Triton's generate reads one: the text input, a field of another input or parameter, a
# field's name, one of `parameters`, a list's element; a `data_labels` field beside `parameters`, which Triton hands the
# model as any field (only `parameters.data_labels` is the labels)
FORBIDDEN = {
    "text_input": {"text_input": f"write to {ADDRESS}"},
    "data_labels field": {"text_input": "hi", "data_labels": ADDRESS},
    "field": {"text_input": "hi", "bad_words": ["x", ADDRESS]},
    "field name": {"text_input": "hi", ADDRESS: 1},
    "parameter": {"text_input": "hi", "parameters": {"stop": ADDRESS, "temperature": 0}},
    "labels parameter": {"text_input": "hi", "parameters": {"data_labels": "pii:email"}},
}


@pytest.mark.parametrize("how", ["generate", "generate_stream"])
@pytest.mark.parametrize("body", list(FORBIDDEN.values()), ids=list(FORBIDDEN))
def test_a_forbidden_generate_request_is_refused_and_never_forwarded(
    triton: tuple[TritonGenerate, str], proxy: ProxyHandle, otlp: OtlpReceiver, access: AccessLines,
    body: dict[str, Any], how: str,
) -> None:  # fmt: skip
    server, _ = triton
    reply = httpx.post(f"{proxy.url}/v2/models/{MODEL}/{how}", json=body, headers={"x-purpose": "ads"}, timeout=30)
    assert reply.status_code == 403, reply.text
    assert proxy_error(reply)["code"] == "purpose_denied", reply.text
    assert server.received == []  # nothing reached the model
    span = otlp.by_trace(reply.headers["x-trace-id"]).attributes
    assert span["lineage.decision"] == "deny" and span["lineage.input.labels"] == ["pii:email"], span
    line = access.of(reply.headers["x-trace-id"])
    assert (line.decision, line.operation, line.status) == ("deny", "generate", 403)  # type: ignore[attr-defined]


def test_an_allowed_generate_call_is_recorded_with_its_input_and_output_labels(
    triton: tuple[TritonGenerate, str], proxy: ProxyHandle, otlp: OtlpReceiver, access: AccessLines, tmp_path: Path
) -> None:
    """The reply's `text_output` holds an address the request does not (the model joins `alice` and `example.com`):
    its output labels are the reply's; the request's `data_labels` are its input's."""
    server, _ = triton
    body = {"text_input": "alice example.com", "max_tokens": 8, "parameters": {"data_labels": "campaign-7"}}
    reply = httpx.post(f"{proxy.url}/v2/models/{MODEL}/versions/1/generate", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"model_name": MODEL, "model_version": "1", "text_output": ADDRESS}
    assert [path for path, _ in server.received] == [f"/v2/models/{MODEL}/versions/1/generate"]
    assert orjson.loads(server.received[0][1]) == body  # forwarded as it came
    assert reply.headers["x-data-labels"].split(",") == ["campaign-7", "pii:email"]
    span = otlp.by_trace(reply.headers["x-trace-id"]).attributes
    assert span["lineage.input.labels"] == ["campaign-7"], span
    assert span["lineage.output.labels"] == ["campaign-7", "pii:email"], span
    assert span["lineage.checkpoint"] == f"{MODEL}:1" and span["lineage.protocol"] == "oip", span
    assert span["gen_ai.operation.name"] == "generate", span
    line = access.of(reply.headers["x-trace-id"])
    assert (line.decision, line.checkpoint, line.status) == ("allow", f"{MODEL}:1", 200)  # type: ignore[attr-defined]
    assert edges(tmp_path / "lineage.db") == [("campaign-7", f"{MODEL}:1", "campaign-7,pii:email", "allow")]


def test_a_generate_stream_passes_each_event_on_as_it_comes_and_reads_them_as_one_text(
    triton: tuple[TritonGenerate, str], proxy: ProxyHandle, otlp: OtlpReceiver, loop_thread: LoopThread,
    tmp_path: Path,
) -> None:  # fmt: skip
    """Each event reaches the client while the upstream holds the next one (`__gated__`), and the address the model
    streams over three events (`alice`, `@`, `example.com`) labels the output."""
    server, _ = triton
    body = {"text_input": "__gated__ alice example.com"}
    got: list[dict[str, Any]] = []
    with httpx.stream("POST", f"{proxy.url}/v2/models/{MODEL}/generate_stream", json=body, timeout=30) as reply:
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream")
        trace_id = reply.headers["x-trace-id"]
        for line in reply.iter_lines():
            if not line.startswith("data: "):
                continue
            got.append(orjson.loads(line[6:]))
            if len(got) < 3:
                server.release(loop_thread.loop)  # the next event is sent only once this one reached the client
    assert [event["text_output"] for event in got] == ["alice", "@", "example.com"]
    span = otlp.by_trace(trace_id).attributes
    assert span["lineage.output.labels"] == ["pii:email"] and "error.type" not in span, span
    assert span["lineage.checkpoint"] == f"{MODEL}:1", span
    assert edges(tmp_path / "lineage.db") == [("", f"{MODEL}:1", "pii:email", "allow")]


def test_an_error_event_in_a_generate_stream_is_recorded_as_the_upstreams_error(
    proxy: ProxyHandle, otlp: OtlpReceiver
) -> None:
    with httpx.stream("POST", f"{proxy.url}/v2/models/{MODEL}/generate_stream",
                      json={"text_input": "__error__ alice example.com"}, timeout=30) as reply:  # fmt: skip
        text = reply.read().decode()
    assert reply.status_code == 200 and '"error"' in text, text
    span = otlp.by_trace(reply.headers["x-trace-id"]).attributes
    assert span["error.type"] == "upstream_error", span


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"text_input": "a", "text_input": "b"}'])
@pytest.mark.parametrize("how", ["generate", "generate_stream", "infer_stream"])
def test_a_malformed_body_is_refused_400_and_never_forwarded(
    triton: tuple[TritonGenerate, str], proxy: ProxyHandle, body: bytes, how: str
) -> None:
    reply = httpx.post(f"{proxy.url}/v2/models/{MODEL}/{how}", content=body, timeout=30)
    assert reply.status_code == 400 and proxy_error(reply)["code"] == "invalid_request", reply.text
    assert triton[0].received == []


def test_a_generate_body_holding_tensors_and_other_fields_is_refused() -> None:
    """MLServer reads such a body as the inference request, dropping `text_input`; Triton's generate reads every
    field: which one reads it the proxy cannot tell, so it is refused, not read as one of them."""
    adapter = next(a for a in HTTP_ADAPTERS if a.match("POST", "/v2/models/m/generate"))  # (as the ingress picks)
    assert adapter is ADAPTER
    target = adapter.match("POST", "/v2/models/m/generate")
    assert target is not None
    tensors = [{"name": "prompt", "datatype": "BYTES", "shape": [1], "data": ["hi"]}]
    assert read_request(target, orjson.dumps({"inputs": tensors}), None).texts == ("hi",)
    with pytest.raises(InvalidRequest, match="text_input"):
        read_request(target, orjson.dumps({"inputs": tensors, "text_input": ADDRESS}), None)


def observed(pieces: list[bytes], content_type: str = "text/event-stream", detectors: Detectors = EMAIL) -> Outcome:
    outcome = Outcome(started_ns=1)
    observer = GenerateObserver(outcome, detectors, True)
    observer.head(200, {"content-type": content_type}.get)
    for piece in pieces:
        observer.chunk(piece)
    observer.finish()
    return outcome


def test_events_are_read_however_their_bytes_are_split() -> None:
    events = b"".join(b'data: {"model_name":"m","model_version":"1","text_output":"%s"}\n\n' % t
                      for t in (b"alice", b"@", b"example.com"))  # fmt: skip
    whole = observed([events])
    for at in range(1, len(events)):
        split = observed([events[:at], events[at:]])
        assert split.output_detected == whole.output_detected == {"pii:email"}, at
        assert split.output_digest == whole.output_digest and split.content == whole.content == ("[pii:email]",)
    assert whole.response_model == "m:1" and whole.first_token_ns
    assert not observed([b'data: {"model_name":"m","model_version":"1"}\n\n']).first_token_ns  # no output yet


CARD = "4111 1111 1111 1111"
CARDS = Detectors([DetectorSpec("credit_card")])
TOKENS = ["4111", " 1111", " 1111", " 1111"]  # the card, a group an event
REASONS = ["None", "None", "None", "length"]  # vLLM's backend's `finish_reason` in each event (`str(None)` until done)


def test_each_streamed_output_runs_together_apart_from_the_others() -> None:
    """vLLM's Triton backend sends `finish_reason` (`return_finish_reason: true`) in every event beside the token:
    run into the content, a card streamed a group an event read `4111None 1111None...`, no card. Each output is a text
    of its own over the events: the content's, and beside it each other's."""
    generated = b"".join(b"data: " + orjson.dumps({"model_name": "m", "text_output": token, "finish_reason": reason})
                         + b"\n\n" for token, reason in zip(TOKENS, REASONS, strict=True))  # fmt: skip
    for at in range(len(generated)):  # (0: whole) the same however the bytes are split
        outcome = observed([generated[:at], generated[at:]], detectors=CARDS)
        assert outcome.output_detected == {"pii:credit_card"}, at
        assert outcome.content == ("[pii:credit_card]",), at  # the content: the card alone, no finish reason between
    # the other output's text is read, run together too: a card in it is found
    beside = b"".join(b"data: " + orjson.dumps({"text_output": "x", "note": token}) + b"\n\n" for token in TOKENS)
    assert observed([beside], detectors=CARDS).output_detected == {"pii:credit_card"}


def test_each_streamed_tensor_runs_together_apart_from_the_others() -> None:
    """So too with MLServer's streamed inference responses: each output tensor a text of its own over the events."""

    def tensors(token: str, reason: str) -> bytes:
        outputs = [{"name": name, "datatype": "BYTES", "shape": [1], "data": [value]}
                   for name, value in (("output", token), ("finish_reason", reason))]  # fmt: skip
        return b"data: " + orjson.dumps({"model_name": "m", "outputs": outputs}) + b"\n\n"

    outcome = observed([b"".join(map(tensors, TOKENS, REASONS))], detectors=CARDS)
    assert outcome.output_detected == {"pii:credit_card"}
    assert outcome.content == ("[pii:credit_card]",)  # the content: the card alone, no finish reason between


def test_a_generate_output_named_outputs_is_read() -> None:
    """A Triton model's output named `outputs` (its strings, a list of them) is a generate response's output, not an
    inference response's tensors: read, not dropped as no tensor."""
    reply = {"model_name": "m", "model_version": "1", "outputs": [ADDRESS, "x"]}
    assert observed([orjson.dumps(reply)], "application/json").output_detected == {"pii:email"}
    event = b"data: " + orjson.dumps(reply) + b"\n\n"
    assert observed([event]).output_detected == {"pii:email"}


def test_mlservers_inference_response_events_are_read_as_one_text() -> None:
    def event(token: str) -> bytes:
        reply = {"model_name": "m", "outputs": [{"name": "output", "datatype": "BYTES", "shape": [1], "data": [token]}]}
        return b"data: " + orjson.dumps(reply) + b"\n\n"

    outcome = observed([event("alice"), event("@exam"), event("ple.com")])
    assert outcome.output_detected == {"pii:email"} and outcome.response_model == "m"
    assert not outcome.error_type


def test_a_whole_generate_reply_and_its_error_are_read() -> None:
    reply = orjson.dumps({"model_name": "m", "model_version": "2", "text_output": ADDRESS, "cum_log_probs": -1.5})
    outcome = observed([reply], "application/json")
    assert outcome.output_detected == {"pii:email"} and outcome.response_model == "m:2"
    outcome = Outcome(started_ns=1)
    observer = GenerateObserver(outcome, EMAIL, True)
    observer.head(400, {"content-type": "application/json"}.get)
    observer.body(orjson.dumps({"error": f"unknown user {ADDRESS}"}))
    observer.finish()
    assert outcome.output_detected == {"pii:email"}  # what the client is shown is read


# MLServer's own streamed inference: a runtime whose `predict_stream` writes each call's input to a file (what reached
# it), then streams `alice`, `@`, `example.com` an event each, the second only once the test writes the go-file
STREAMER = """
import asyncio
from pathlib import Path

from mlserver import MLModel
from mlserver.codecs import StringCodec
from mlserver.types import InferenceResponse

SEEN = Path(__file__).with_name("seen.txt")
GO = Path(__file__).with_name("go")


class Echo(MLModel):
    async def load(self) -> bool:
        return True

    async def predict_stream(self, payloads):
        async for payload in payloads:
            with SEEN.open("a") as seen:
                seen.write(repr(StringCodec.decode_input(payload.inputs[0])) + "\\n")
            for at, token in enumerate(["alice", "@", "example.com"]):
                while at == 1 and not GO.exists():  # the model's own wait: the test lets it go on
                    await asyncio.sleep(0.01)
                output = StringCodec.encode_output("output", [token])
                yield InferenceResponse(model_name=self.name, outputs=[output])
"""


@pytest.fixture(scope="module")
def streamer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    workdir = tmp_path_factory.mktemp("mlserver-streamer")
    with mlserver_runtime(workdir, STREAMER, "streamer") as (rest, _):
        yield rest, workdir / "models" / "streamer"


MLSERVER_CONFIG = CONFIG.replace("triton", "mlserver")


def prompt(text: str) -> dict[str, Any]:
    return {"inputs": [{"name": "prompt", "datatype": "BYTES", "shape": [1], "data": [text]}]}


@pytest.mark.realserver
@pytest.mark.parametrize("how", ["infer_stream", "generate_stream"])
def test_the_real_mlservers_stream_is_checked_read_and_passed_on_event_by_event(
    streamer: tuple[str, Path], otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle], tmp_path: Path,
    how: str,
) -> None:  # fmt: skip
    rest, model_dir = streamer
    seen, go = model_dir / "seen.txt", model_dir / "go"
    go.unlink(missing_ok=True)
    seen.unlink(missing_ok=True)
    proxy = make_proxy(MLSERVER_CONFIG, wait="probed", UPSTREAM=rest, OTLP=f"http://127.0.0.1:{otlp.port}")
    url = f"{proxy.url}/v2/models/streamer/{how}"
    refused = httpx.post(url, json=prompt(f"mail {ADDRESS}"), headers={"x-purpose": "ads"}, timeout=30)
    assert refused.status_code == 403 and proxy_error(refused)["code"] == "purpose_denied", refused.text
    assert not seen.exists()  # the model was handed nothing
    tokens: list[str] = []
    with httpx.stream("POST", url, json=prompt("hello"), timeout=60) as reply:
        assert reply.status_code == 200, reply.read()
        trace_id = reply.headers["x-trace-id"]
        for line in reply.iter_lines():
            if line.startswith("data: "):
                tokens.append(orjson.loads(line[6:])["outputs"][0]["data"][0])
                go.touch()  # the model goes on only once its first event reached the client through the proxy
    assert tokens == ["alice", "@", "example.com"]
    assert seen.read_text() == "['hello']\n"
    span = otlp.by_trace(trace_id).attributes
    assert span["lineage.output.labels"] == ["pii:email"] and "error.type" not in span, span
    assert span["lineage.checkpoint"] == "streamer" and span["lineage.protocol"] == "oip", span
    assert edges(tmp_path / "lineage.db")[-1] == ("", "streamer", "pii:email", "allow")


def test_tritons_200_error_to_a_generate_is_recorded_as_the_upstreams_error(
    proxy: ProxyHandle, otlp: OtlpReceiver, access: AccessLines, tmp_path: Path
) -> None:
    """Triton answers `/generate` for a model that sent more than one response (a decoupled one) 200 and `{"error":
    ...}`: its status goes out with the first response, the error after. Before, the call was recorded as one that
    ended well (no `error.type`, no code in the access line)."""
    reply = httpx.post(f"{proxy.url}/v2/models/{MODEL}/versions/1/generate", json={"text_input": "__many__ hi"},
                       timeout=30)  # fmt: skip
    assert reply.status_code == 200 and reply.json() == {"error": MANY}, reply.text
    span = otlp.by_trace(reply.headers["x-trace-id"]).attributes
    assert span["error.type"] == "upstream_error", span
    line = access.of(reply.headers["x-trace-id"])
    assert (line.status, line.code) == (200, "upstream_error")  # type: ignore[attr-defined]
    assert [(inputs, outputs, decision) for inputs, _, outputs, decision in edges(tmp_path / "lineage.db")] == [
        ("", "", "allow")
    ]
