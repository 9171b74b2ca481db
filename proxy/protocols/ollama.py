"""Ollama's native API (`docs/api.md`): `/api/chat`, `/api/generate`, `/api/embed`, `/api/embeddings`, read as the
OpenAI ones are (every string of the body but its parameters).

`POST /api/chat` takes `{"model", "messages": [{"role", "content", "images": [base64], "tool_calls", "thinking"}],
"tools", "format": "json" | <schema>, "options": {...}, "stream"}`; `/api/generate` `{"model", "prompt", "suffix",
"system", "template", "context": [token ids], "images", "format", "options", "raw", "stream"}`; `/api/embed`
`{"model", "input": str | [str]}`, `/api/embeddings` `{"model", "prompt"}`. A chat or a generate call streams unless
its `stream` is false: JSON lines (`application/x-ndjson`, read as they pass: `sse.SseObserver`), each
`{"model", "message": {"content", "thinking", "tool_calls"}, "done": false}` (a generate's `"response"`), the last
`"done": true` with `done_reason` and the counts; `{"error": ...}` is the upstream's error. Images (base64) are skipped
as a chat's `image_url` is; a generate's `context`, the token ids of an earlier exchange, is text the proxy cannot
read (`scan:truncated`); the template a generate gives is read as text, and what it prints, which only running it
shows, is unread (`scan:truncated`: `_TEMPLATE`). The model is the body's, required as Ollama
requires it; its checkpoint is what the upstream's `/v1/models` names (`protocol: openai`, `openai.Dialect`).
"""

from __future__ import annotations

from typing import Any, Final

from proxy.detectors import Detectors
from proxy.errors import InvalidRequest
from proxy.flow import Outcome, ProtocolName
from proxy.protocols import Adapter as AdapterBase
from proxy.protocols import (
    Header,
    Request,
    Target,
    join_text_parts,
    load_request_json,
    named_as_fields,
    nested_named_as_fields,
    request_json_as_utf8,
    request_strings,
    schema_program,
    token_ids,
    unescaped,
)
from proxy.protocols.openai import _param
from proxy.protocols.sse import SseObserver

_EMBEDDING: Final = Target("embeddings")  # `/api/embeddings`' (its own fields: `_EMBEDDING_FIELDS`)
# path -> its target (Target.operation: gen_ai.operation.name)
_TARGETS: Final = {
    "/api/chat": Target("chat"),
    "/api/generate": Target("text_completion"),
    "/api/embed": Target("embeddings"),
    "/api/embeddings": _EMBEDDING,
}
_STREAMED: Final = frozenset({"chat", "text_completion"})  # the operations that stream unless told not to
# the fields a chat template prints whole (every key, number and string read): tool definitions, the output's schema
_RENDERED: Final = frozenset({"tools", "format"})
# `options` -> gen_ai.request.<name>
_OPTIONS: Final = {
    "num_predict": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "seed": "seed",
    "stop": "stop_sequences",
}
_IMAGES: Final = "images"  # base64 images, a message's or a generate's: no text a detector reads
_NOT_READ: Final = frozenset({_IMAGES, "keep_alive"})  # (`keep_alive`: a duration, `"5m"`)
# The JSON names of Ollama's request types' fields (`api/types.go`), a struct's at each level: a request's (by operation:
# `ChatRequest`, `GenerateRequest`, `/api/embed`'s `EmbedRequest`; `/api/embeddings`' `EmbeddingRequest` by its target,
# `_EMBEDDING`: before 2026-12-05 the two together, so `/api/embed`'s `"Prompt"`, `/api/embeddings`' `"Input"`,
# `"Truncate"`, `"Dimensions"`, which Go ignores there, were refused, helper reqreads),
# a chat message's (`Message`), its tool calls' (`ToolCall`) and their functions' (`ToolCallFunction`; `arguments` an
# ordered map, exact keys). Ollama reads a body with Go's `encoding/json`, which takes a key for a field whatever its
# case (`Tools`, `FORMAT`), `ſ` for `s` and the Kelvin sign for `k` too: such a key is refused (`named_as_fields`), as the
# proxy reads these fields by name (`Tools` was read as a field of no meaning, its keys and numbers unread, and printed
# to the model as `tools`). Only its level's fields (before 2026-12-05 one set served every level: a message's `"Model"`,
# a chat's `"Prompt"` were refused, though Go ignores them there; helper nativekeys)
_SHARED: Final = ("model", "stream", "format", "keep_alive", "options", "think", "truncate", "shift",
                  "_debug_render_only", "logprobs", "top_logprobs")  # fmt: skip
_REQUEST_FIELDS: Final = {
    "chat": frozenset({*_SHARED, "messages", "tools"}),
    "text_completion": frozenset({*_SHARED, "prompt", "suffix", "system", "template", "context", "raw", "images"}),
    "embeddings": frozenset({"model", "input", "keep_alive", "truncate", "dimensions", "options"}),
}
_EMBEDDING_FIELDS: Final = frozenset({"model", "prompt", "keep_alive", "options"})
# a generate's own prompt template: Ollama parses it with Go's text/template and runs it over the call's system prompt
# and prompt (`GenerateHandler`: `template.Parse(req.Template)`, then `tmpl.Execute`), so it prints text that stands
# nowhere in the request: `{{ range .Messages }}{{ .Content }}{{ end }}` runs a `system` of "alice@" and a `prompt` of
# "example.com" together, `{{ printf "%s%s" "alice@" "example.com" }}` joins its own strings. Its literal text is read
# as any string is; what it prints is content the proxy cannot read (`scan:truncated`), as vLLM's `chat_template` is
# (`own_template`). Before 2026-12-07 it was read as text alone: such a call reached the model for any purpose
_TEMPLATE: Final = "template"
_MESSAGE_FIELDS: Final = frozenset({"role", "content", "thinking", "images", "tool_calls", "tool_name", "tool_call_id"})
_NONE: Final[frozenset[str]] = frozenset()
_CALLS: Final = frozenset({"tool_calls"})  # (a message's tool calls: structs, their functions within)
# (a message's tool calls: `ToolCall`s; a call's function: a `ToolCallFunction`)
_BELOW: Final = {
    "tool_calls": (frozenset({"id", "function"}), frozenset({"function"})),
    "function": (frozenset({"index", "name", "arguments"}), _NONE),
}


def read_request(target: Target, body: bytes) -> Request:
    """A native body: its `model` required; every string but `images`, `keep_alive` and the parameters read
    (`request_strings`: messages' contents, thinking and tool calls, `prompt`, `suffix`, `system`, `template`, `input`,
    `options.stop`), `tools` and `format` whole; a generate's `context` (token ids), what its own `template` prints and
    what a `format` schema's `pattern` writes unread."""
    data = load_request_json(body)
    operation = target.operation
    named_as_fields(data, _EMBEDDING_FIELDS if target is _EMBEDDING else _REQUEST_FIELDS[operation])
    model = data.get("model")
    if type(model) is not str or not model:
        raise InvalidRequest("'model' is required and must be a string", param="model")
    messages = data.get("messages")
    if operation == "chat" and messages is not None and type(messages) is not list:
        # (none, or null: Ollama loads the model and answers `done_reason: "load"`, as for `[]`)
        raise InvalidRequest("'messages' must be a list", param="messages")
    texts: list[str] = []
    read = {key: value for key, value in data.items() if key not in _NOT_READ}
    walked = True  # (the messages' objects past `MAX_STRINGS` not looked at: unscanned)
    if type(messages) is list:
        if operation == "chat":  # (a generate's, an embed's: no field of their requests', ignored by Ollama)
            walked = nested_named_as_fields(messages, _MESSAGE_FIELDS, _CALLS, _BELOW)
        read["messages"] = [_without_images(message) for message in messages]
    whole = request_strings(read, _RENDERED, texts) and walked
    whole = whole and not token_ids(data.get("context")) and not _own_template(operation, data)
    # (a `format` schema, an object, `"json"` not one, holding a `pattern`: Ollama turns it into a grammar with
    # llama.cpp's json-schema-to-grammar, which holds the output to it as a regular expression, a program as a grammar
    # is, `"^alice\\x40example\\.com$"` writing an address its text is not; looked for only when there is one)
    output = data.get("format")
    whole = whole and not (type(output) is dict and schema_program(output))
    options = data.get("options")
    params: list[tuple[str, Any]] = []
    for key, value in options.items() if type(options) is dict else ():
        name = _OPTIONS.get(key)
        if name is not None and value is not None:
            params.append((name, _param(name, value)))
    stream = operation in _STREAMED and data.get("stream") is not False
    joined, all_joined = join_text_parts(messages, size=len(body)) if type(messages) is list else ((), True)
    return Request(model, operation, stream, tuple(texts), tuple(params), unscanned=not (whole and all_joined),
                   joined=joined, decoded=unescaped(body, texts))  # fmt: skip


def _own_template(operation: str, data: dict[str, Any]) -> bool:
    """Whether a generate brings its own prompt template (`_TEMPLATE`): a string but the empty one, with which Ollama
    uses the model's own (a template beside `raw: true` Ollama refuses, 400)."""
    template = data.get(_TEMPLATE)
    return operation == "text_completion" and type(template) is str and template != ""


def _without_images(message: Any) -> Any:
    if type(message) is dict and _IMAGES in message:
        return {key: value for key, value in message.items() if key != _IMAGES}
    return message


class OllamaObserver(SseObserver):
    """An Ollama reply, whole or JSON lines: the content is `message.content` (a chat's) or `response` (a generate's),
    a stream's run together; the model's `thinking` and its tool calls (a call's name, its arguments as the JSON text
    its client has) read beside it, and the tokens it weighed beside those it wrote (`logprobs`' `top_logprobs`). `done_reason` is the finish reason, `prompt_eval_count` and `eval_count` the usage;
    `{"error": ...}` the upstream's error (in a stream, in band). An embedding reply's vectors hold no text."""

    def __init__(self, outcome: Outcome, detectors: Detectors, capture: bool, chat: bool = False) -> None:
        super().__init__(outcome, detectors, capture)
        self.chat = chat  # a chat's reply (`/api/chat`), which its client reads as a `ChatResponse`: a `message` in it
        # the call asked for a stream (its `stream` not false: `Exchange._observe`), which the `ollama` client reads
        # line by line, raising at an `error` that is set; a reply it did not ask to stream it reads whole
        self.streamed = False

    def ends_with_event(self) -> bool:
        """Its streams (JSON lines) end with the line whose `done` is true (`stopped`)."""
        return True

    def whole(self, reply: dict[str, Any]) -> None:
        if reply.get("error") and (self.streamed or not _holds_output(reply, self.chat)):
            self._error(reply)
        elif not self._read(reply, False):
            self._text.add_unknown(reply)

    def erred(self, event: dict[str, Any]) -> bool:
        return bool(event.get("error"))

    def event(self, event: dict[str, Any]) -> None:
        if event.get("error"):
            self._error(event)
        elif not self._read(event, True):
            self.unknown(event)

    def _error(self, reply: dict[str, Any]) -> None:
        """`{"error": ...}` after a 200 head: a stream's line, or the whole reply (a stream whose one line it is, read
        whole when it came sized), which the `ollama` client raises `ResponseError` at either way. Only an `error`
        that is set, as the client reads it (`if err := part.get('error')`): `"error": null` beside a reply's fields
        (a server that writes every field of its type) is an answer, read as one; and so is a whole reply to a call
        that did not stream with an `error` set beside its output, which the client returns as its answer (it reads
        the reply's fields, `ChatResponse(**r.json())`, and never its `error`). That `error` alone is no answer (the
        client's `ChatResponse` wants a `message`; a generate's is empty): the upstream's error."""
        self.in_band_error()
        self.unknown(reply)

    def _read(self, reply: dict[str, Any], streamed: bool) -> bool:
        """A reply or a line of one; False when it holds none of the fields Ollama writes output in."""
        self.identify(reply)
        message = reply.get("message")
        source = message if type(message) is dict else reply
        text = source.get("content") if source is message else reply.get("response")
        if type(text) is str:
            if streamed:
                if text:
                    self.first_chunk()
                self._text.add(text)
            else:
                self._text.add_output(text)
        thinking = source.get("thinking")
        if type(thinking) is str and thinking:
            if streamed:
                self.first_chunk()
            self._text.aside(("thinking",), thinking)
        self._tool_calls(source.get("tool_calls"), streamed)
        logprobs = reply.get("logprobs")
        if logprobs:  # asked for with `logprobs` and `top_logprobs`: `[{"token", "top_logprobs": [{"token"}]}]`
            self.alternatives(("logprobs",), logprobs)
        if reply.get("done") is True:
            self.stopped = True
            reason = reply.get("done_reason")
            if type(reason) is str:
                self.outcome.finish_reasons = (reason,)
            self.usage(reply, "prompt_eval_count", "eval_count")
        return type(text) is str or "embeddings" in reply or "embedding" in reply or "done" in reply

    def _tool_calls(self, calls: Any, streamed: bool) -> None:
        """Each tool call whole (Ollama streams a call in one line): its function's name, and its arguments, an
        object, as JSON text (`OutputText.json_text`), a line apart from the call before."""
        for call in calls if type(calls) is list else ():
            function = call.get("function") if type(call) is dict else None
            if type(function) is not dict:
                continue
            if streamed:
                self.first_chunk()
            arguments = function.get("arguments")
            written = arguments if type(arguments) is str else self._text.json_text(arguments)
            name = function.get("name")
            self._text.aside_strings(("tool_calls",), [name if type(name) is str else "", written or ""], apart=True)

    def done(self) -> None:
        if self.outcome.first_token_ns:
            self._text.end_piece()


def _holds_output(reply: dict[str, Any], chat: bool) -> bool:
    """Whether a whole reply holds a field Ollama writes output in (as `OllamaObserver._read` reads it), which its
    client returns as an answer: a chat's, a `message` with its `role` (without one the client's `ChatResponse` raises
    pydantic's `ValidationError`, whatever else the reply holds: `done`, a `response`)."""
    if chat:
        message = reply.get("message")
        return type(message) is dict and type(message.get("role")) is str
    return type(reply.get("response")) is str or "embeddings" in reply or "embedding" in reply or "done" in reply


class Adapter(AdapterBase):
    """Ollama's native API: POST /api/chat, /api/generate, /api/embed, /api/embeddings."""

    name: ProtocolName = "openai"
    dialect = "openai"  # the upstream's `/v1/models`, read by `openai.Dialect`
    status_attribute = "http.response.status_code"
    provider: str | None = "ollama"

    def merge(self, listings: list[Any]) -> dict[str, Any]:
        raise NotImplementedError("Ollama's native API has no merged listing")

    def match(self, method: str, path: str) -> Target | None:
        return _TARGETS.get(path) if method == "POST" else None

    def read(self, target: Target, body: bytes, header: Header) -> Request:
        return read_request(target, body)

    def as_utf8_json(self, body: bytes, header: Header) -> bytes | None:
        return request_json_as_utf8(body)

    def observer(self, target: Target, outcome: Outcome, detectors: Detectors, capture: bool) -> OllamaObserver:
        return OllamaObserver(outcome, detectors, capture, target.operation == "chat")


ADAPTER = Adapter()
