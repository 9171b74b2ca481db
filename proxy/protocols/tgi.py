"""Text Generation Inference's native API (TGI's `router/src/server.rs`, `docs/openapi.json`), read as llama.cpp's
native endpoints are: the server runs one model, which its body need not name.

`POST /generate` takes `{"inputs": str, "parameters": {...}}` and answers `{"generated_text": str, "details": ...}`;
`POST /generate_stream` answers SSE `data: {"index", "token": {"id", "text", "logprob", "special"}, "top_tokens",
"generated_text": null | str, "details": null | {...}}` events, the last one's `generated_text` the whole text, an
error in band as `data: {"error": str, "error_type": str}`. `POST /` (huggingface_hub's `InferenceClient
.text_generation`) takes the same body with `"stream": bool`, and answers a whole reply as a JSON list of one
`/generate` reply, a streamed one as `/generate_stream`. The model's input is `inputs`; `parameters.stop` and
`parameters.grammar` (a JSON schema or a regular expression the model's output is held to) reach it too;
`parameters.adapter_id` names the LoRA adapter that serves the call (its checkpoint: `openai.ServedModels`, the model
TGI's `/info` names). Replies are read event by event as they pass (`sse.SseObserver`), never held.
"""

from __future__ import annotations

from typing import Any, Final

from proxy.detectors import Detectors
from proxy.errors import InvalidRequest
from proxy.flow import Outcome, ProtocolName
from proxy.protocols import (
    MAX_STRINGS,
    Header,
    NotItsBody,
    Request,
    Target,
    load_request_json,
    regex_grammar,
    rendered_strings,
    request_json_as_utf8,
    request_strings,
    schema_program,
    unescaped,
    user_strings,
)
from proxy.protocols import Adapter as AdapterBase
from proxy.protocols.openai import TGI_ADAPTER, _param
from proxy.protocols.sse import SseObserver

# paths other servers serve too (`Target.shared`): a body that is not TGI's is passthrough's, as before TGI's were read
_GENERATE: Final = Target("generate", model_optional=True, shared=True)
_TARGETS: Final = {
    "/generate": _GENERATE,
    "/generate_stream": Target("generate", stream=True, model_optional=True, shared=True),
    "/": _GENERATE,  # the compat route: its body's `stream` says whether it streams
}
NATIVE_PATHS: Final = frozenset(_TARGETS)  # (a refusal on them is in TGI's error shape: `ProxyError.http_body`)
_INPUTS: Final = "inputs"
# TGI's generate parameters -> gen_ai.request.<name>
_PARAMS: Final = {
    "max_new_tokens": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "frequency_penalty": "frequency_penalty",
    "seed": "seed",
    "best_of": "choice.count",
    "stop": "stop_sequences",
}
# parameters read apart: the grammar, printed whole (its schema's keys and numbers constrain what the model writes);
# the adapter, a name TGI looks up, no text the model reads (the call's checkpoint)
_GRAMMAR: Final = "grammar"
_ADAPTER: Final = "adapter_id"
_PARAMETERS: Final = "parameters"
_NONE: Final[frozenset[str]] = frozenset()  # no top-level field is printed whole


def tgi_body(body: bytes) -> bool:
    """Whether `body` is TGI's, as `read_request` reads one: a JSON object whose `inputs` is a string."""
    try:
        data = load_request_json(body)
    except InvalidRequest:
        return False
    return type(data.get(_INPUTS)) is str


def read_request(target: Target, body: bytes) -> Request:
    """A `/generate`, `/generate_stream` or `/` body: `inputs` and every other string TGI may hand the model (its
    own fields, and any the caller added, which it drops: read all the same, as `request_strings` reads a body),
    `parameters`' strings but the adapter's name, its grammar whole. A `model` is optional: TGI reads none, but a
    call naming one goes by that model's route; one naming none is the `"*"` route's (`unrouted`). A body that is no
    JSON object whose `inputs` is a string, which TGI refuses (422), is another server's on these paths (an image to
    a Ray Serve or BentoML app's `/`, SGLang's `{"text", "input_ids"}`, vLLM's old `{"prompt"}` to `/generate`):
    `NotItsBody`, forwarded unread or refused as before TGI's API was read."""
    try:
        data = load_request_json(body)
    except InvalidRequest:
        raise NotItsBody from None
    if type(data.get(_INPUTS)) is not str:
        raise NotItsBody
    model = data.get("model")
    if model is None:
        model = ""
    elif type(model) is not str:
        raise InvalidRequest("'model' must be a string (or left out: the '*' route's model)", param="model")
    texts: list[str] = []
    parameters = data.get("parameters")
    budget = [MAX_STRINGS, 0]  # (the objects looked at: the body's, its parameters' too, as `request_strings` counts)
    whole = request_strings(
        {key: value for key, value in data.items() if key != _PARAMETERS}, _NONE, texts, None, budget
    )
    given: dict[str, Any] = parameters if type(parameters) is dict else {}
    if parameters is not None and not given:  # no object: a value TGI refuses (422), read all the same
        whole = user_strings(parameters, texts, None, budget) and whole
    params: list[tuple[str, Any]] = []
    version = None
    for key, value in given.items():
        if key == _ADAPTER:
            version = TGI_ADAPTER + value if type(value) is str and value else None
        elif key == _GRAMMAR:
            whole = (
                rendered_strings(value, texts, budget=budget)
                and whole
                and not (regex_grammar(value) or schema_program(value))
            )
        else:
            whole = user_strings(value, texts, None, budget) and whole
            name = _PARAMS.get(key)
            if name is not None and value is not None:
                params.append((name, _param(name, value)))
    stream = target.stream or data.get("stream") is True
    return Request(model, "generate", stream, tuple(texts), tuple(params), unscanned=not whole, version=version,
                   decoded=unescaped(body, texts), unrouted=not model)  # fmt: skip


class TgiObserver(SseObserver):
    """A TGI reply: `generated_text` is the content (a whole reply's, or a stream's tokens' `text` run together, a
    token an event); what the model wrote beside it read beside it (`OutputText.aside`): the other sequences of a
    `best_of` (`details.best_of_sequences[].generated_text`), the alternatives it weighed (`top_tokens`), a
    stream's last event's `generated_text` (the whole text again, the prompt before it with `return_full_text`).
    A `details.prefill` is the input's tokens, not output. `{"error", "error_type"}` is the upstream's error (in a
    stream's events, in band)."""

    def __init__(self, outcome: Outcome, detectors: Detectors, capture: bool) -> None:
        super().__init__(outcome, detectors, capture)
        self._arrays = True  # the compat route answers a list of replies

    def ends_with_event(self) -> bool:
        """Its streams end with the event whose `generated_text` is set (`stopped`)."""
        return True

    def array(self, reply: list[Any]) -> None:
        for item in reply:
            if type(item) is dict:
                self.whole(item)
            else:
                self._text.aside_strings(("reply",), item, apart=True)

    def whole(self, reply: dict[str, Any]) -> None:
        text = reply.get("generated_text")
        if type(text) is not str:
            self._text.add_unknown(reply)  # an error, or a server with none of TGI's fields
            return
        self._text.add_output(text)
        details = reply.get("details")
        if type(details) is dict:
            self._details(details)
            for sequence in _list(details.get("best_of_sequences")):
                if type(sequence) is dict and type(sequence.get("generated_text")) is str:
                    self._text.aside_strings(("best_of",), sequence["generated_text"], apart=True)
                    self._top_tokens(sequence.get("top_tokens"))
            self._top_tokens(details.get("top_tokens"))

    def erred(self, event: dict[str, Any]) -> bool:
        return type(event.get("token")) is not dict and "error" in event

    def event(self, event: dict[str, Any]) -> None:
        token = event.get("token")
        if type(token) is not dict:
            if self.erred(event):
                self.in_band_error()
            self.unknown(event)
            return
        text = token.get("text")
        if type(text) is str and text:
            self.first_chunk()
            self._text.add(text)
        self._top_tokens(event.get("top_tokens"))
        whole = event.get("generated_text")
        if type(whole) is str:  # the stream's last event (its `details` only when the call asked for them)
            self._text.aside(("generated_text",), whole)
            self.stopped = True
        details = event.get("details")
        if type(details) is dict:
            self._details(details)

    def _details(self, details: dict[str, Any]) -> None:
        """A reply's finish reason and generated tokens (`details`; a stream's last event's)."""
        outcome = self.outcome
        reason = details.get("finish_reason")
        if type(reason) is str and not outcome.finish_reasons:
            outcome.finish_reasons = (reason,)
        if type(details.get("generated_tokens")) is int:
            outcome.output_tokens = details["generated_tokens"]

    def _top_tokens(self, top: Any) -> None:
        """The tokens the model weighed beside the one it wrote (`top_n_tokens`): `[{"text"}]` an event, `[[{"text"}]]`
        a whole reply's, a line each."""
        if top:
            texts = [token.get("text") for tokens in _list(top) for token in _tokens(tokens)]
            self._text.aside_strings(("top_tokens",), [text for text in texts if type(text) is str], apart=True)

    def done(self) -> None:
        if self.outcome.first_token_ns:
            self._text.end_piece()


def _list(value: Any) -> list[Any]:
    return value if type(value) is list else []


def _tokens(value: Any) -> list[Any]:
    """One position's tokens (a whole reply's list of them), or one token (an event's list's)."""
    if type(value) is list:
        return [token for token in value if type(token) is dict]
    return [value] if type(value) is dict else []


class Adapter(AdapterBase):
    """TGI's native API: POST /generate, /generate_stream and / (its compat route)."""

    name: ProtocolName = "openai"
    dialect = "openai"  # TGI's `/info`, read by `openai.Dialect`
    status_attribute = "http.response.status_code"
    provider: str | None = "tgi"

    def merge(self, listings: list[Any]) -> dict[str, Any]:
        raise NotImplementedError("TGI's native API has no merged listing")

    def match(self, method: str, path: str) -> Target | None:
        return _TARGETS.get(path) if method == "POST" else None

    def read(self, target: Target, body: bytes, header: Header) -> Request:
        return read_request(target, body)

    def as_utf8_json(self, body: bytes, header: Header) -> bytes | None:
        return request_json_as_utf8(body)

    def observer(self, target: Target, outcome: Outcome, detectors: Detectors, capture: bool) -> TgiObserver:
        return TgiObserver(outcome, detectors, capture)


ADAPTER = Adapter()
