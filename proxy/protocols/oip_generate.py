"""OIP v2 REST's LLM paths: Triton's generate extension and MLServer's streamed inference, read as `/infer` is.

`POST /v2/models/{name}[/versions/{v}]/generate` and `/generate_stream` take, at Triton, a JSON object whose fields are
the model's inputs or the request's parameters (`{"text_input": "...", "max_tokens": 20, "parameters": {...}}`) and
answer one JSON object of the outputs (`{"model_name", "model_version", "text_output"}`), or, streamed, SSE
`data: {...}` events of them, an error in band as `data: {"error": "..."}`. At MLServer the same paths (and
`/infer_stream`) take an OIP inference request and answer an inference response, or SSE events of them. So a body whose
`inputs` is a list of tensors is an inference request, read by `oip.inference_request`; any other a generate request,
every field read (`oip.parameter_strings`: names, strings, and numbers as decimal text: Triton hands a field the model
has no input of to it as a parameter). Replies are read event by event as they pass (`sse.SseObserver`), never held.
"""

from __future__ import annotations

from typing import Any, Final

from proxy.detectors import Detectors
from proxy.errors import InvalidRequest
from proxy.flow import Outcome, ProtocolName
from proxy.protocols import Adapter as AdapterBase
from proxy.protocols import Header, Request, Target, client_raises, reply_json
from proxy.protocols.oip import (
    _MANY_TENSORS_FROM,
    HEADER_LENGTH,
    LABELS_PARAMETER,
    NO_JSON,
    UNMATCHED,
    StreamNames,
    _json_part,
    _request_json,
    _strings,
    add_decoded_texts,
    add_name,
    aside_name_list,
    check_version,
    inference_request,
    labels_parameter,
    many_values,
    observe_reply_meta,
    parameter_strings,
    read_reply,
    refuse_many_tensors,
    rest_sequence,
    split_path,
    unread_long_integer,
    whole_json,
)
from proxy.protocols.oip import (
    ADAPTER as INFER,
)
from proxy.protocols.sse import SseObserver

# path -> (operation, streamed)
_PATHS: Final = {
    "generate": ("generate", False),
    "generate_stream": ("generate", True),
    "infer_stream": ("infer", True),
}
# an inference request's fields (MLServer's `InferenceRequest`, which drops any other)
_INFERENCE_FIELDS: Final = frozenset({"id", "parameters", "inputs", "outputs"})
# a generate request's fields read apart: the parameters. A `data_labels` beside them is no label: Triton hands it to
# the model as it does any field (a parameter, or the input of that name), so it is read as one
_GENERATE_FRAMING: Final = frozenset({"parameters"})
# ... and of its parameters, the labels (`parameters.data_labels`, as `/infer`'s)
_LABELS_ONLY: Final = frozenset({LABELS_PARAMETER})
# a generate reply's fields that are not outputs
_REPLY_FRAMING: Final = frozenset({"model_name", "model_version", "id"})
# the `OutputText.aside` key of a streamed reply's output, by its name, other than the one whose text is the content
_OUTPUT: Final = "output"
# the output whose text is a streamed generate reply's content when an event holds it (Triton's LLM backends')
_TEXT_OUTPUT: Final = "text_output"


def tensor_list(value: Any) -> bool:
    """Whether a value is a list of tensor objects: a request's `inputs`, a response's `outputs`. Any other value under
    that name is a generate request's or response's field (a Triton model's input or output named so)."""
    return type(value) is list and all(type(tensor) is dict for tensor in value)


def inference_form(data: dict[str, Any]) -> bool:
    """Whether a body is an OIP inference request (MLServer's): its `inputs` a list of tensor objects."""
    return tensor_list(data.get("inputs"))


def read_request(target: Target, body: bytes, header_length: str | None) -> Request:
    """A `/generate`, `/generate_stream` or `/infer_stream` body: an inference request (`inference_form`), or Triton's
    generate request. A generate path's body that holds an inference request's `inputs` beside fields of another kind
    is an InvalidRequest: MLServer reads it as the inference request, dropping the other fields, Triton's generate reads
    every field, and the proxy cannot tell which of the two it goes to."""
    check_version(target.version)
    head, binary = _json_part(body, header_length)
    if len(head) > _MANY_TENSORS_FROM and target.operation == "infer":  # (a generate path's `inputs` may be one input)
        refuse_many_tensors(head)  # before 2026-12-05 parsed whole: 278,000 one-element inputs (16 MB) 1-1.3 s
    data, constants = _request_json(head)
    if target.operation == "infer" or inference_form(data):
        if target.operation != "infer" and not _INFERENCE_FIELDS.issuperset(data):
            extra = sorted(set(data) - _INFERENCE_FIELDS)[0][:128]
            raise InvalidRequest(f"a generate request holding an inference request's 'inputs' tensors and a field of "
                                 f"another kind ({extra!r}): send the inference request alone (MLServer) or the "
                                 "generate request's fields alone (Triton)", param="inputs")  # fmt: skip
        return inference_request(target.model, target.version, data, constants, binary, target.operation, target.stream)
    if binary:
        raise InvalidRequest(f"a generate request has no binary section ({HEADER_LENGTH}): send its JSON alone")
    return generate_request(target.model, target.version, data, target.stream)


def generate_request(model: str, version: str | None, data: dict[str, Any], stream: bool) -> Request:
    """Triton's generate request: every field but `parameters` an input or a parameter of the model's, read as a
    request's parameters are (`parameter_strings`: its name too), and so is each of `parameters`; the labels in
    `parameters.data_labels`, as `/infer`'s. Texts are read decoded too (`add_decoded_texts`), as a tensor's are."""
    parameters = data.get("parameters")
    given = parameters if type(parameters) is dict else {}
    labels = labels_parameter(given.get(LABELS_PARAMETER))
    texts: list[str] = []
    names: list[str] = []
    reprinted: list[str] = []
    whole = parameter_strings(data, texts, _GENERATE_FRAMING, names=names)
    if given:
        whole = parameter_strings(given, texts, _LABELS_ONLY, _LABELS_ONLY, names) and whole
    elif parameters is not None:  # no object: a value Triton refuses, read all the same
        whole = _strings(parameters, texts, numbers=True) and whole
    if texts:
        whole = add_decoded_texts(texts, 0, reprinted) and whole
    sequence, starts = rest_sequence(model, given)
    if sequence is None:
        sequence, starts = rest_sequence(model, data)
    return Request(model, "generate", stream, tuple(texts), (), labels, version, unscanned=not whole,
                   sequence=sequence, starts=starts, decoded=tuple(reprinted), names=tuple(names))  # fmt: skip


class GenerateObserver(SseObserver):
    """A generate or streamed inference reply: one JSON object, or SSE events of them, each an inference response
    (`outputs`: `oip.read_reply`) or a generate response (its fields but `_REPLY_FRAMING` outputs, their strings
    read, their names beside them). An event `{"error": ...}` is the upstream's error in band. Each output of a
    streamed reply runs together over its events as one text (a token an event), so a value streamed over two events
    is read whole: one output's (`text_output`, else the first an event holds) is the content, each other one's is read
    beside it (`_streamed`), never run into the content (vLLM's backend sends a `finish_reason` in every event)."""

    def __init__(self, outcome: Outcome, detectors: Detectors, capture: bool) -> None:
        super().__init__(outcome, detectors, capture)
        self._digest: str | None = None  # a whole inference response's tensors' (`oip.read_reply`)
        self._content: Any = None  # the name of the output whose text is a stream's content, once an event held one
        self._names = StreamNames()  # (a stream's events' output names, read together)

    def whole(self, reply: dict[str, Any]) -> None:
        if tensor_list(reply.get("outputs")):
            self._digest = read_reply(self._text, self.detectors, reply, b"")
        elif "error" in reply:  # Triton's answer, 200, to a `/generate` its model answered other than once
            self.in_band_error()
            self._text.add_unknown(reply)
        else:
            self._generated(reply, True)

    def large_json(self, data: bytes, whole: bool) -> Any:
        """An inference response of over `MAX_STRINGS` outputs (MLServer's `infer_stream`, an event, or one JSON object)
        read in its first `MAX_STRINGS` + 1 (`oip.many_values`, `after_unread`), as `/infer`'s is: `read_reply` records
        it `scan:truncated`, without a digest, the rest unread (the outputs after them, the fields after `outputs`);
        until 2026-12-05 orjson built a million tiny outputs to have all but 65,536 passed over, 3.5-3.7 s interpreted.
        Parsed whole, as before, where `many_values` reads it so (`outputs` named again after them), where those read
        are not all objects (a generate reply's field, every string read: `_generated`), and where a whole reply's type
        names a charset (read in it, `reply_json`) or its rest is not whole JSON (so a reply framed by its close is told
        cut short as before: `SseObserver.cut_short`). One whose outputs past those close a bracket with a brace
        (`NO_JSON`) is none, unparsed, as its client's parse fails (`no_json`: 12 MiB parsed whole to be told, 1.5-2 s,
        until 2026-12-06)."""
        if not whole or self._text.charset is None:  # (an event's data is UTF-8)
            cut, at, closed = many_values(data, ends=whole, after_unread=True)
            if closed == UNMATCHED:  # (a whole reply in no charset)
                reply = whole_json(data, at, self._text)
                return self.no_json(whole) if reply is None else reply
            if closed == NO_JSON:
                return self.no_json(whole)
            if cut is not data:
                reply = reply_json(cut, self._text, whole)
                if type(reply) is dict and tensor_list(reply.get("outputs")):
                    if not unread_long_integer(data, at, closed):
                        return reply
                    if not whole:  # (an event's data: no JSON, as one holding it in the outputs read is)
                        return self.no_json(whole)
                    client_raises(self.outcome)
                    return reply
        return reply_json(data, self._text, whole)

    def erred(self, event: dict[str, Any]) -> bool:
        return not tensor_list(event.get("outputs")) and "error" in event

    def event(self, event: dict[str, Any]) -> None:
        outputs = event.get("outputs")
        if tensor_list(outputs):
            if self._content is None and outputs:
                self._content = outputs[0].get("name")
            read_reply(self._text, self.detectors, event, b"", self._streamed, self._names)
            wrote = bool(outputs)
        elif "error" in event:
            self.in_band_error()
            self.unknown(event)
            return
        else:
            wrote = self._generated(event, False)
        if wrote:  # output came (`gen_ai.response.time_to_first_chunk`)
            self.first_chunk()

    def _generated(self, reply: dict[str, Any], whole: bool) -> bool:
        """A generate response: its model, and each output's strings (the numbers of one, log probabilities, are
        not text), each output its own piece in a whole reply. Whether it held an output."""
        text = self._text
        observe_reply_meta(self.outcome, reply.get("model_name"), reply.get("model_version"), reply.get("id"))
        names: list[str] = []
        for name, value in reply.items():
            if name in _REPLY_FRAMING:
                continue
            if not add_name(name, names):
                text.unread()
            strings: list[str] = []
            if not _strings(value, strings):
                text.unread()
            if whole:
                for piece in strings:
                    text.add(piece)
                text.end_piece()
                continue
            if self._content is None:
                self._content = _TEXT_OUTPUT if _TEXT_OUTPUT in reply else name
            self._streamed(name, strings)
        aside_name_list(text, self.detectors, names, None if whole else self._names)
        return bool(names)

    def _streamed(self, name: Any, strings: list[str]) -> None:
        """An output's strings in one event of a stream: the content's continue the reply's text, any other output's
        continue that output's own text, read beside the content (`OutputText.aside`, a key each output)."""
        text = self._text
        if name == self._content:
            for piece in strings:
                text.add(piece)
        elif strings:
            text.aside((_OUTPUT, name), strings[0] if len(strings) == 1 else "".join(strings))

    def finish(self) -> None:
        super().finish()
        if self._digest:
            self.outcome.output_digest = self._digest


class Adapter(AdapterBase):
    """OIP v2 REST's LLM paths: POST /v2/models/{name}[/versions/{v}]/generate, /generate_stream, /infer_stream."""

    name: ProtocolName = "oip"
    dialect = "oip"
    status_attribute = "http.response.status_code"
    provider: str | None = None

    def merge(self, listings: list[Any]) -> dict[str, Any]:
        raise NotImplementedError("OIP REST has no merged listing")

    def match(self, method: str, path: str) -> Target | None:
        if method != "POST":
            return None
        parts = split_path(path)
        found = _PATHS.get(parts[2]) if parts is not None else None
        if parts is None or found is None:
            return None
        return Target(found[0], parts[0], parts[1], stream=found[1])

    def read(self, target: Target, body: bytes, header: Header) -> Request:
        return read_request(target, body, header(HEADER_LENGTH.lower()))

    def as_utf8_json(self, body: bytes, header: Header) -> bytes | None:
        """As `/infer`'s (`oip.Adapter.as_utf8_json`): a body with the binary tensor extension is not read again."""
        return INFER.as_utf8_json(body, header)

    def observer(self, target: Target, outcome: Outcome, detectors: Detectors, capture: bool) -> GenerateObserver:
        return GenerateObserver(outcome, detectors, capture)


ADAPTER = Adapter()
