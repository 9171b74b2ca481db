"""The OpenAI-compatible API (vLLM, TGI, llama.cpp, Ollama): chat, completions, embeddings.

Reads the request once (orjson) for the model, the content and the request parameters; watches the
reply, whole or as server-sent events, for model, id, usage, finish reasons and the output text.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from proxy.config import Upstream
from proxy.detectors import Detectors
from proxy.errors import InvalidRequest
from proxy.flow import UPSTREAM, Checkpoint, Outcome, ProtocolName
from proxy.protocols import Fetch, Header, OutputText, Request, Target

OPERATIONS = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "text_completion",
    "/v1/embeddings": "embeddings",
}

# request field -> gen_ai.request.<name>
_PARAMS = {
    "max_tokens": "max_tokens",
    "max_completion_tokens": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "seed": "seed",
    "n": "choice.count",
    "stop": "stop_sequences",
    "encoding_format": "encoding_formats",
    "dimensions": "embeddings.dimension.count",
}


_PARAM_ORDER = tuple(_PARAMS)  # a stable order, so max_completion_tokens wins over max_tokens the same way


def _param(name: str, value: Any) -> Any:
    if name in ("stop_sequences", "encoding_formats"):
        values = value if isinstance(value, list) else [value]
        return [v if isinstance(v, str) else _text(v) for v in values if v is not None]
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return _text(value)
    return value


def _text(value: Any) -> str:
    """A parameter of an unexpected shape, as compact JSON; never raises (observing never fails)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return f"<{type(value).__name__}>"


def _content_texts(content: Any, out: list[str]) -> None:
    if isinstance(content, str):
        out.append(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                out.append(part["text"])


def read_request(operation: str, body: bytes) -> Request:
    """Parse one request body; malformed JSON or a wrong shape is an InvalidRequest."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest("request body must be a JSON object")
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a string", param="model")
    texts: list[str] = []
    if operation == "chat":
        messages = data.get("messages")
        if not isinstance(messages, list):
            raise InvalidRequest("'messages' is required and must be a list", param="messages")
        for message in messages:
            if isinstance(message, dict):
                _content_texts(message.get("content"), texts)
    elif operation == "text_completion":
        prompt = data.get("prompt")
        if isinstance(prompt, str):
            texts.append(prompt)
        elif isinstance(prompt, list):
            texts.extend(p for p in prompt if isinstance(p, str))
    elif operation == "embeddings":
        value = data.get("input")
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, list):
            texts.extend(p for p in value if isinstance(p, str))
    params = tuple((_PARAMS[key], _param(_PARAMS[key], data[key])) for key in _PARAM_ORDER if data.get(key) is not None)
    stream = data.get("stream") is True
    return Request(model, operation, stream, tuple(texts), params)


class ReplyObserver:
    """Fills an Outcome from a chat/completion/embedding reply, whole (`body`) or streamed (`chunk`)."""

    __slots__ = ("_extra", "_operation", "_partial", "_text", "detectors", "ended", "outcome")

    def __init__(self, operation: str, outcome: Outcome, detectors: Detectors, capture: bool) -> None:
        self._operation = operation
        self.ended = False
        self.outcome = outcome
        self.detectors = detectors
        self._text = OutputText(outcome, detectors, capture)
        self._partial = b""
        self._extra: dict[int, list[str]] = {}  # streamed text of choices other than index 0

    def head(self, status: int, header: Header) -> None:
        pass

    def body(self, data: bytes) -> None:
        try:
            reply = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(reply, dict):
            return
        self._meta(reply)
        choices = reply.get("choices")
        if isinstance(choices, list):
            for choice in sorted((c for c in choices if isinstance(c, dict)), key=_index):
                message = choice.get("message")
                text = message.get("content") if isinstance(message, dict) else choice.get("text")
                if isinstance(text, str):
                    self._text.add(text)
                if isinstance(text, str) or _index(choice) == 0:  # as a stream ends choice 0's piece
                    self._text.end_piece()
                reason = choice.get("finish_reason")
                if isinstance(reason, str):
                    self.outcome.finish_reasons += (reason,)

    def chunk(self, data: bytes) -> None:
        """Server-sent events: `data: {...}` lines; a line may be split across chunks."""
        if self._partial:
            data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            if line.startswith(b"data:"):
                self._event(line[5:].strip())

    def _event(self, payload: bytes) -> None:
        if payload == b"[DONE]":
            self.ended = True
            return
        if not payload:
            return
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(event, dict):
            return
        self._meta(event)
        choices = event.get("choices")
        if not isinstance(choices, list):
            return
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            text = delta.get("content") if isinstance(delta, dict) else choice.get("text")
            if isinstance(text, str) and text:
                if not self.outcome.first_token_ns:
                    self.outcome.first_token_ns = time.time_ns()
                index = _index(choice)
                if index == 0:
                    self._text.add(text)
                else:
                    self._extra.setdefault(index, []).append(text)
            reason = choice.get("finish_reason")
            if isinstance(reason, str):
                self.outcome.finish_reasons += (reason,)

    def _meta(self, reply: dict[str, Any]) -> None:
        outcome = self.outcome
        if outcome.response_model is None and isinstance(reply.get("model"), str):
            outcome.response_model = reply["model"]
        if outcome.response_id is None and isinstance(reply.get("id"), str):
            outcome.response_id = reply["id"]
        fingerprint = reply.get("system_fingerprint")
        if isinstance(fingerprint, str):
            outcome.extra["lineage.checkpoint.fingerprint"] = fingerprint
        usage = reply.get("usage")
        if isinstance(usage, dict):
            if isinstance(usage.get("prompt_tokens"), int):
                outcome.input_tokens = usage["prompt_tokens"]
            if isinstance(usage.get("completion_tokens"), int):
                outcome.output_tokens = usage["completion_tokens"]

    def finish(self) -> None:
        if self._partial.startswith(b"data:"):
            self._event(self._partial[5:].strip())
            self._partial = b""
        if self._extra or self.outcome.first_token_ns:
            self._text.end_piece()
            for index in sorted(self._extra):
                for text in self._extra[index]:
                    self._text.add(text)
                self._text.end_piece()
        self._text.finish(self.detectors)


def _index(choice: dict[str, Any]) -> int:
    """A choice's index; anything but a whole number counts as 0 (observing never fails a reply)."""
    index = choice.get("index")
    return index if isinstance(index, int) and not isinstance(index, bool) else 0


_TARGETS = {path: Target(operation) for path, operation in OPERATIONS.items()}
_MODELS = Target("models", carries_data=False, listing=True)


class Adapter:
    """OpenAI-compatible HTTP: POST /v1/chat/completions, /v1/completions, /v1/embeddings; and
    GET /v1/models, answered with every OpenAI upstream's models."""

    __slots__ = ()
    name: ProtocolName = "openai"
    dialect = "openai"
    status_attribute = "http.response.status_code"

    def match(self, method: str, path: str) -> Target | None:
        if method == "POST":
            return _TARGETS.get(path)
        return _MODELS if method == "GET" and path == "/v1/models" else None

    def merge(self, listings: list[Any]) -> bytes:
        """One `/v1/models` list from several upstreams': each model once, first upstream first."""
        data: list[Any] = []
        seen: set[Any] = set()
        for listing in listings:
            for entry in listing.get("data", []) if isinstance(listing, dict) else []:
                model = entry.get("id") if isinstance(entry, dict) else None
                if model not in seen:
                    seen.add(model)
                    data.append(entry)
        return orjson.dumps({"object": "list", "data": data})

    def read(self, target: Target, body: bytes, header: Header) -> Request:
        return read_request(target.operation, body)

    def observer(self, target: Target, outcome: Outcome, detectors: Detectors, capture: bool) -> ReplyObserver:
        return ReplyObserver(target.operation, outcome, detectors, capture)


class ServedModels:
    """vLLM/TGI/llama.cpp metadata: model id -> checkpoint; "*" is what serves any name (TGI)."""

    __slots__ = ("_served",)

    def __init__(self, served: dict[str, Checkpoint]) -> None:
        self._served = served

    def resolve(self, model: str, version: str | None) -> Checkpoint | None:
        return self._served.get(model) or self._served.get("*")


class Dialect:
    """`/v1/models` (vLLM: `root` = the weights, `parent` for LoRA adapters), then TGI's `/info`
    (`model_id@model_sha`, the exact weights; vLLM answers 404)."""

    async def discover(self, upstream: Upstream, fetch: Fetch, models: frozenset[str]) -> ServedModels:
        body = await fetch.get_json(upstream, "/v1/models")
        served: dict[str, Checkpoint] = {}
        for entry in body.get("data", []) if isinstance(body, dict) else []:
            if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                root, parent = entry.get("root"), entry.get("parent")
                served[entry["id"]] = Checkpoint(
                    str(root) if isinstance(root, str) else str(entry["id"]),
                    UPSTREAM,
                    parent if isinstance(parent, str) else None,
                )
        try:
            info = await fetch.get_json(upstream, "/info")
        except Exception:
            info = None
        if isinstance(info, dict) and isinstance(info.get("model_id"), str):
            sha = info.get("model_sha")
            name = f"{info['model_id']}@{sha}" if isinstance(sha, str) and sha else info["model_id"]
            served = {model: Checkpoint(name, UPSTREAM) for model in served}
            served["*"] = Checkpoint(name, UPSTREAM)
        return ServedModels(served)


ADAPTER = Adapter()
DIALECT = Dialect()
