"""Text Generation Inference's native API (`/generate`, `/generate_stream`, and `/`, the compat route huggingface_hub's
`InferenceClient.text_generation` posts to) is read as llama.cpp's native endpoints are: labels from `inputs`,
`parameters.stop`, `parameters.grammar` and any field the caller adds, purpose checks, the checkpoint TGI's `/info`
names (with the LoRA adapter a call's `adapter_id` names), output labels from the reply or each event as it passes
(never held back). Before 2026-12-04 no adapter read them: with zones configured they were refused, 403
`endpoint_denied` (`policy.passthrough: auto`), so TGI's native users could not use the proxy's purpose checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.flow import Outcome
from proxy.protocols import HTTP_ADAPTERS
from proxy.protocols.tgi import ADAPTER, TgiObserver
from tests.harness import LoopThread, ProxyHandle, proxy_error, serving
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.tgi import CHECKPOINT, Tgi
from tests.test_oip_generate_endpoints import edges
from tests.test_refusals_recorded import AccessLines, access_lines

CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: tgi, url: "${UPSTREAM}", protocol: openai}
routes:
  - {model: "*", upstream: tgi}
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
def tgi(loop_thread: LoopThread) -> Iterator[Tgi]:
    server = Tgi()
    with serving(loop_thread, server.app()) as url:
        server.url = url
        yield server


@pytest.fixture
def access() -> Iterator[AccessLines]:
    yield from access_lines()


@pytest.fixture
def proxy(tgi: Tgi, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]) -> ProxyHandle:
    return make_proxy(CONFIG, wait="probed", UPSTREAM=tgi.url, OTLP=f"http://127.0.0.1:{otlp.port}")


# a forbidden address wherever TGI hands one to the model: its inputs, a stop sequence, the grammar the output is held
# to (a JSON schema's enum, a regular expression), a field the caller added (which TGI drops: read all the same)
FORBIDDEN = {
    "inputs": {"inputs": f"write to {ADDRESS}"},
    "stop": {"inputs": "hi", "parameters": {"stop": [ADDRESS], "max_new_tokens": 4}},
    "json grammar": {"inputs": "hi", "parameters": {"grammar": {"type": "json", "value": {"enum": [ADDRESS]}}}},
    "regex grammar": {
        "inputs": "hi",
        "parameters": {"grammar": {"type": "regex", "value": "(alice@example.com|none)"}},
    },
    "field": {"inputs": "hi", "context": {"note": ADDRESS}},
}
# path, and the compat route's `stream`
ROUTES = {"generate": ("/generate", None), "generate_stream": ("/generate_stream", None), "compat": ("/", False),
          "compat stream": ("/", True)}  # fmt: skip


@pytest.mark.parametrize("route", list(ROUTES.values()), ids=list(ROUTES))
@pytest.mark.parametrize("body", list(FORBIDDEN.values()), ids=list(FORBIDDEN))
def test_a_forbidden_call_is_refused_and_never_forwarded(
    tgi: Tgi, proxy: ProxyHandle, otlp: OtlpReceiver, access: AccessLines, body: dict[str, Any],
    route: tuple[str, bool | None],
) -> None:  # fmt: skip
    path, stream = route
    sent = body if stream is None else {**body, "stream": stream}
    reply = httpx.post(f"{proxy.url}{path}", json=sent, headers={"x-purpose": "ads"}, timeout=30)
    assert reply.status_code == 403, reply.text
    assert proxy_error(reply)["code"] == "purpose_denied", reply.text
    assert tgi.received == []  # nothing reached the model
    span = otlp.by_trace(reply.headers["x-trace-id"]).attributes
    # (a regular expression is a program: what it writes is unread, `scan:truncated`, `test_grammar_own_unread`)
    unread = ["scan:truncated"] if body.get("parameters", {}).get("grammar", {}).get("type") == "regex" else []
    assert span["lineage.decision"] == "deny" and span["lineage.input.labels"] == ["pii:email", *unread], span
    line = access.of(reply.headers["x-trace-id"])
    assert (line.decision, line.operation, line.status) == ("deny", "generate", 403)  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", ["/generate", "/"])
def test_an_allowed_call_is_recorded_with_its_input_and_output_labels_and_checkpoint(
    tgi: Tgi, proxy: ProxyHandle, otlp: OtlpReceiver, access: AccessLines, tmp_path: Path, path: str
) -> None:
    """The reply's `generated_text` holds an address the request does not (the model joins `alice` and
    `example.com`): its output labels are the reply's; the caller's `x-data-labels` are its input's. The compat
    route's reply is a list of one."""
    body = {"inputs": "alice example.com", "parameters": {"max_new_tokens": 8, "temperature": 0.5}}
    reply = httpx.post(f"{proxy.url}{path}", json=body, headers={"x-data-labels": "campaign-7"}, timeout=30)
    assert reply.status_code == 200, reply.text
    assert reply.json() == ({"generated_text": ADDRESS} if path == "/generate" else [{"generated_text": ADDRESS}])
    assert [(at, orjson.loads(sent)) for at, sent in tgi.received] == [(path, body)]  # forwarded as it came
    assert reply.headers["x-data-labels"].split(",") == ["campaign-7", "pii:email"]
    span = otlp.by_trace(reply.headers["x-trace-id"]).attributes
    assert span["lineage.input.labels"] == ["campaign-7"], span
    assert span["lineage.output.labels"] == ["campaign-7", "pii:email"], span
    assert span["lineage.checkpoint"] == CHECKPOINT and span["gen_ai.provider.name"] == "tgi", span
    assert span["gen_ai.operation.name"] == "generate" and span["gen_ai.request.max_tokens"] == 8, span
    line = access.of(reply.headers["x-trace-id"])
    assert (line.decision, line.checkpoint, line.status) == ("allow", CHECKPOINT, 200)  # type: ignore[attr-defined]
    assert edges(tmp_path / "lineage.db") == [("campaign-7", CHECKPOINT, "campaign-7,pii:email", "allow")]


def test_a_best_of_sequence_labels_the_output(proxy: ProxyHandle, otlp: OtlpReceiver) -> None:
    """`details.best_of_sequences[].generated_text` is text the model wrote that the client has beside the content
    (`alice.example.com` here, no address; the content, the address): read beside it, so its labels are the output's."""
    body = {"inputs": "bob example.org", "parameters": {"best_of": 2, "details": True, "do_sample": True}}
    reply = httpx.post(f"{proxy.url}/generate", json=body, timeout=30)
    assert reply.status_code == 200 and reply.json()["details"]["best_of_sequences"], reply.text
    span = otlp.by_trace(reply.headers["x-trace-id"]).attributes
    assert span["lineage.output.labels"] == ["pii:email"], span
    assert span["gen_ai.response.finish_reasons"] == ["length"], span


def test_a_call_naming_a_lora_adapter_is_recorded_with_it(proxy: ProxyHandle, otlp: OtlpReceiver) -> None:
    body = {"inputs": "hi", "parameters": {"adapter_id": "predibase/customer_support"}}
    reply = httpx.post(f"{proxy.url}/generate", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    span = otlp.by_trace(reply.headers["x-trace-id"]).attributes
    assert span["lineage.checkpoint"] == f"{CHECKPOINT}+lora:predibase/customer_support", span


@pytest.mark.parametrize("route", [("/generate_stream", None), ("/", True)], ids=["generate_stream", "compat"])
def test_a_stream_passes_each_event_on_as_it_comes_and_reads_them_as_one_text(
    tgi: Tgi, proxy: ProxyHandle, otlp: OtlpReceiver, loop_thread: LoopThread, tmp_path: Path,
    route: tuple[str, bool | None],
) -> None:  # fmt: skip
    """Each event reaches the client while the upstream holds the next one (`__gated__`), and the address the model
    streams over three tokens (`alice`, `@`, `example.com`) labels the output."""
    path, stream = route
    body: dict[str, Any] = {"inputs": "__gated__ alice example.com"}
    if stream is not None:
        body["stream"] = stream
    got: list[dict[str, Any]] = []
    with httpx.stream("POST", f"{proxy.url}{path}", json=body, timeout=30) as reply:
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream")
        trace_id = reply.headers["x-trace-id"]
        for line in reply.iter_lines():
            if not line.startswith("data:"):
                continue
            got.append(orjson.loads(line[5:]))
            if len(got) < 3:
                tgi.release(loop_thread.loop)  # the next event is sent only once this one reached the client
    assert [event["token"]["text"] for event in got] == ["alice", "@", "example.com"]
    span = otlp.by_trace(trace_id).attributes
    assert span["lineage.output.labels"] == ["pii:email"] and "error.type" not in span, span
    assert span["lineage.checkpoint"] == CHECKPOINT and span["gen_ai.response.finish_reasons"] == ["eos_token"], span
    assert edges(tmp_path / "lineage.db") == [("", CHECKPOINT, "pii:email", "allow")]


def test_an_error_event_in_a_stream_is_recorded_as_the_upstreams_error(proxy: ProxyHandle, otlp: OtlpReceiver) -> None:
    with httpx.stream("POST", f"{proxy.url}/generate_stream", json={"inputs": "__error__ alice example.com"},
                      timeout=30) as reply:  # fmt: skip
        text = reply.read().decode()
    assert reply.status_code == 200 and '"error_type"' in text, text
    span = otlp.by_trace(reply.headers["x-trace-id"]).attributes
    assert span["error.type"] == "upstream_error", span


def test_a_malformed_body_is_refused_and_never_forwarded(tgi: Tgi, proxy: ProxyHandle) -> None:
    """A body that is not TGI's is another server's on its paths, data the proxy does not read, refused as such while
    zones are configured (`test_tgi_native_shared_paths`); a TGI body naming a model that is no string, 400."""
    for body in (b"not json", b"[1, 2]", b'{"inputs": "a", "inputs": "b"}', b'{"inputs": 1}'):
        reply = httpx.post(f"{proxy.url}/generate", content=body, timeout=30)
        assert reply.status_code == 403 and proxy_error(reply)["code"] == "endpoint_denied", reply.text
    reply = httpx.post(f"{proxy.url}/generate", content=b'{"inputs": "a", "model": 1}', timeout=30)
    assert reply.status_code == 400 and proxy_error(reply)["code"] == "invalid_request", reply.text
    assert tgi.received == []


def test_a_call_naming_no_model_is_refused_while_a_route_limits_purposes(
    tgi: Tgi, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """As llama.cpp's native endpoints: TGI runs whichever model it serves, which a route naming it may limit."""
    limited = CONFIG.replace('  - {model: "*", upstream: tgi}',
                             '  - {model: "bigscience/bloom-560m", upstream: tgi, purposes: [care]}\n'
                             '  - {model: "*", upstream: tgi}')  # fmt: skip
    proxy = make_proxy(limited, UPSTREAM=tgi.url, OTLP=f"http://127.0.0.1:{otlp.port}")
    reply = httpx.post(f"{proxy.url}/generate", json={"inputs": "hi"}, timeout=30)
    assert reply.status_code == 403 and proxy_error(reply)["code"] == "endpoint_denied", reply.text
    named = httpx.post(f"{proxy.url}/generate", json={"inputs": "hi", "model": "bigscience/bloom-560m"}, timeout=30)
    assert named.status_code == 200, named.text
    assert tgi.received == [("/generate", b'{"inputs":"hi","model":"bigscience/bloom-560m"}')]


def test_the_ingress_picks_the_tgi_adapter() -> None:
    for path in ("/generate", "/generate_stream", "/"):
        assert next(a for a in HTTP_ADAPTERS if a.match("POST", path)) is ADAPTER, path
    assert ADAPTER.match("GET", "/") is None


def observed(pieces: list[bytes], content_type: str = "text/event-stream") -> Outcome:
    outcome = Outcome(started_ns=1)
    observer = TgiObserver(outcome, EMAIL, True)
    observer.head(200, {"content-type": content_type}.get)
    for piece in pieces:
        observer.chunk(piece)
    observer.finish()
    return outcome


def _event(text: str, top: tuple[str, ...] = ()) -> bytes:
    token = {"id": 1, "text": text, "logprob": -1.0, "special": False}
    alternatives = [{"id": 2, "text": t, "logprob": -2.0, "special": False} for t in top]
    event = {"index": 0, "token": token, "top_tokens": alternatives, "generated_text": None, "details": None}
    return b"data:" + orjson.dumps(event) + b"\n\n"


def test_events_are_read_however_their_bytes_are_split() -> None:
    events = b"".join(_event(t) for t in ("alice", "@", "example.com"))
    whole = observed([events])
    for at in range(1, len(events)):
        split = observed([events[:at], events[at:]])
        assert split.output_detected == whole.output_detected == {"pii:email"}, at
        assert split.output_digest == whole.output_digest and split.content == whole.content == ("[pii:email]",)
    assert whole.first_token_ns


def test_the_alternatives_a_stream_weighed_label_its_output() -> None:
    """`top_n_tokens`: the tokens the model weighed at each step, which the client has, run together a line each."""
    events = _event("hello", ["alice@example.com"]) + _event(" world", ["x"])
    assert observed([events]).output_detected == {"pii:email"}
    assert observed([_event("hello", ["hi"])]).output_detected == frozenset()


def test_a_whole_reply_kept_as_it_passes_is_read_as_a_list_too() -> None:
    """The compat route's whole reply passed on as it arrives (chunked): a JSON list of one reply, read at its end."""
    outcome = observed([b'[{"generated_text":"alice@', b'example.com"}]'], "application/json")
    assert outcome.output_detected == {"pii:email"} and outcome.content == ("[pii:email]",)
