"""The Anthropic Messages API (`POST /v1/messages`), which llama.cpp and vLLM also serve.

Served by upstreams of the `openai` dialect (the same servers, whose `/v1/models` names the weights).
Requests: every top-level value but the parameters is read (`system`, `messages`: text blocks, tool uses
and tool results are user data; `tools` whole). Replies:
`content` blocks, thinking beside them; streamed as typed events from `message_start` to `message_stop`.
"""

from __future__ import annotations

import functools
from typing import Any, Final

from proxy.detectors import Detectors
from proxy.errors import InvalidRequest
from proxy.flow import Outcome, ProtocolName
from proxy.protocols import (
    ELSEWHERE_KEYS,
    GRAMMARS,
    ROUTER_OVERRIDE,
    Header,
    OthersNamed,
    Request,
    Target,
    advisor_models,
    advisors_spelt,
    file_text,
    join_text_parts,
    load_request_json,
    named_as_fields,
    named_models,
    nested_named_as_fields,
    own_grammar,
    own_template,
    refuse_sent_elsewhere,
    request_json_as_utf8,
    request_strings,
    spread_body,
    spread_bytes,
    spread_reading,
    unescaped,
)
from proxy.protocols import Adapter as AdapterBase
from proxy.protocols.sse import _GIVEN, _OWN, SseObserver

PATHS = ("/v1/messages", "/messages")
# the Anthropic API's paths its SDK calls here, with its key in `x-api-key`: the Messages API (read by this
# adapter), token counting (passed through) and the models' listing (`GET /v1/models`, `/v1/models/{id}`)
X_API_KEY_PATHS: Final = frozenset({*PATHS, "/v1/messages/count_tokens", "/v1/models"})
_TARGET = Target("chat")
# the prompt's token count (Claude Code asks it before its calls): the body is a Messages request's, read as one, so
# it is checked as the call it counts for would be (unread, it was refused while zones are configured)
COUNT_PATH = "/v1/messages/count_tokens"
_COUNT = Target("count_tokens")
# what the template prints whole (tool names, descriptions and schemas): every key and value is data; and the output
# schema (`output_config.format.schema`, the beta's `output_format`), which vLLM hands on as a chat request's
# `response_format`, read whole as that is
_RENDERED = frozenset({"tools", "tool_choice", "chat_template_kwargs", "output_config", "output_format"})
# usage counts of the prompt Anthropic's `input_tokens` leaves out (`MessagesObserver._usage`)
_CACHED_INPUT: Final = ("cache_read_input_tokens", "cache_creation_input_tokens")
_PARAMS = {"max_tokens": "max_tokens", "temperature": "temperature", "top_p": "top_p", "top_k": "top_k"}
# the top-level keys read by name: one spelt otherwise that Go's `encoding/json` takes for it (`"Tools"`: Ollama's
# Anthropic-compatible API) is refused (`named_as_fields`), as it would be read as another field
_NAMED: Final = frozenset({"model", "messages", "system", "stream", "stop_sequences", "metadata", "thinking",
                           "chat_template", *_RENDERED, *_PARAMS})  # fmt: skip
# the JSON names of a message's fields, a content block's, an image source's: each level a struct of Go's in Ollama's
# Anthropic-compatible API (`MessageParam`, `ContentBlock`, `ImageSource`), its keys matched as the body's are, so a key
# Go takes for a field of its level is refused: a tool_use block's `"Input"` is its `input`, printed whole (keys and
# numbers); a source's `"Data"` its image. Only its level's fields (before 2026-12-05 one set served every level: a
# message's `"URL"`, a text block's `"Data"` were refused, though Go ignores them there). A tool result's blocks, a
# system block, a tool use's `input` are maps to Go (exact keys), citations unread: not walked
_MESSAGE_NAMED: Final = frozenset({"role", "content"})
_BLOCK_NAMED: Final = frozenset({"type", "text", "citations", "source", "id", "name", "input", "tool_use_id", "content",
                                 "is_error", "thinking", "signature"})  # fmt: skip
_SOURCE_NAMED: Final = frozenset({"type", "media_type", "data", "url"})
# top-level keys naming what the server holds (`_thread`, `_container_unread`)
_HELD: Final = frozenset({"thread", "container"})
# the keys naming models to run the call on should the one asked for decline or fail (`named_models`): the beta's
# server-side `fallbacks` (`[{"model": ...}]`, or `"default"`, the models that model names itself; OpenRouter's Messages
# API takes it too), and those gateways serving the Messages API act on as on their OpenAI-compatible paths
# (`openai._OTHERS`): OpenRouter's and ElectronHub's `models`, LiteLLM proxy's `fallbacks` of names,
# `context_window_fallbacks`, `content_policy_fallbacks` (its `/v1/messages` runs through its router's fallbacks).
# Until 2026-12-07 `fallbacks` alone (review revfallback13)
# (and LiteLLM's `router_settings_override`, its `route_request` serving `/v1/messages` too: `ROUTER_OVERRIDE`)
_FALLBACKS: Final = frozenset({"fallbacks", "models", "route", "context_window_fallbacks", "content_policy_fallbacks",
                               ROUTER_OVERRIDE})  # fmt: skip
_ESCAPE: Final = b"\\u"  # (a JSON escape: the one way to spell `source`, `container_upload` otherwise)
_NONE: Final[frozenset[str]] = frozenset()
_CONTENT: Final = frozenset({"content"})  # (a message's blocks)
# (a message's blocks: `ContentBlock`s, their sources within; a block's source: an `ImageSource`)
_BELOW: Final = {"content": (_BLOCK_NAMED, frozenset({"source"})), "source": (_SOURCE_NAMED, _NONE)}


# an advisor's advice sent back encrypted (an `advisor_tool_result` holding an `advisor_redacted_result`: "opaque,
# encrypted advice", which Anthropic decrypts server-side "when rendering the advisor's advice into the executor's
# prompt" on the turns after): another model's text, written over the transcript as it stood when it was asked, which
# the call may no longer carry, that the model reads and the proxy never sees: `scan:truncated`. Before 2026-12-07
# skipped as framing (`encrypted_content`: neither read nor marked), unlabelled; `redacted_thinking` is read as text,
# not marked (the model's own reasoning, beside the turn it reasoned over). A citation's `encrypted_index` hides no
# text: where in a result's page the quoted words stand, those (`cited_text`) read. Looked for where the body spells the
# result block's type, not its advice's, which may be left out (`_ciphertext_held`: review revfields16)
_ADVICE: Final = b"advisor_tool_result"
_CIPHERTEXT: Final = "encrypted_content"
_STDOUT_CIPHERTEXT: Final = "encrypted_stdout"  # (a code execution's output encrypted: `_code_result_unread`)


def read_request(body: bytes, operation: str = "chat", others: bool = True) -> Request:
    """Parse one request body; malformed JSON or a wrong shape is an InvalidRequest. One naming other models that may
    serve it (the beta's `fallbacks`, a gateway's keys: `_FALLBACKS`) raises `OthersNamed`, unless `others` is False
    (its reading again). A body holding an object LiteLLM proxy lays into the call as its own keys is read less it
    and as LiteLLM hands it on (`spread_body`), the two readings one (`spread_reading`)."""
    data = load_request_json(body)
    if named_as_fields(data, _NAMED):  # (a body of `_NAMED` keys alone, most: neither test made)
        spread = not ELSEWHERE_KEYS.isdisjoint(data)
        if spread:
            refuse_sent_elsewhere(data)
        if not _FALLBACKS.isdisjoint(data) and others:
            advised = advisor_models(data)  # (a body naming others: its tools walked whatever they spell)
            again = functools.partial(read_request, body, operation, False)
            raise OthersNamed(named_models(data, _FALLBACKS) + tuple(advised), again, (), advised)
        # (an advisor tool in an object LiteLLM spreads into the call, `extra_body`'s: `advisor_models`)
        if spread and others and (advised := advisors_spelt(data, body)):
            raise OthersNamed(tuple(advised), functools.partial(read_request, body, operation, False), (), advised)
        # (the body LiteLLM hands on, its spread objects' keys laid over its own: every rule of a key at the top
        # applied to one there, as the upstream reads it: until 2026-12-07 read as text alone, helper spread17)
        if spread and (bodies := spread_body(data)) is not None:
            own, over = bodies
            handed = read_request(spread_bytes(over), operation, False)
            return spread_reading(read_request(spread_bytes(own), operation, False), handed)
    # an advisor tool's model (`advisors_spelt`): a body with `tools` whose type is spelt, or a JSON escape, found in C
    # (+4 Python instructions a call without `tools`, no search of its bytes, no call)
    if "tools" in data and others and (advised := advisors_spelt(data, body)):
        raise OthersNamed(tuple(advised), functools.partial(read_request, body, operation, False), (), advised)
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("'model' is required and must be a string", param="model")
    if not isinstance(data.get("messages"), list):
        raise InvalidRequest("'messages' is required and must be a list", param="messages")
    walked = nested_named_as_fields(data["messages"], _MESSAGE_NAMED, _CONTENT, _BELOW)
    joined, all_joined = join_text_parts(data["messages"], data.get("system"), blocks=True, size=len(body))
    texts: list[str] = []
    reprinted: list[str] = []  # numbers of tool calls' arguments as servers print them, beside the texts (most: none)
    whole = request_strings(data, _RENDERED, texts, reprinted) and all_joined and walked
    params: list[tuple[str, Any]] = [
        (name, value)
        for key, name in _PARAMS.items()
        if isinstance(value := data.get(key), int | float) and not isinstance(value, bool)  # true is not 1.0
    ]
    stops = data.get("stop_sequences")
    if isinstance(stops, list):
        params.append(("stop_sequences", [s for s in stops if isinstance(s, str)]))
    stream = operation == "chat" and data.get("stream") is True
    whole = whole and not own_template(data)  # (vLLM's Messages API renders with the chat API's template)
    # MCP servers (`mcp_servers`, the MCP connector's): Anthropic lists their tools into the model's context and calls
    # them, their results read to the model: content the proxy never sees, as an OpenAI `mcp` tool's (before 2026-12-07
    # their URLs and names alone were read, the call unlabelled)
    whole = whole and not data.get("mcp_servers")
    # a conversation the server holds (a beta's `thread`: what it continues, `_thread`), a container kept by the server
    # (its id) or skills loaded into it (`_container_unread`): top-level keys, most calls neither (one set's test, in C)
    builds_on: str | None = None
    stored = False
    if not _HELD.isdisjoint(data):
        builds_on, held, read = _thread(data.get("thread"))
        stored = held and operation == "chat"  # (token counting stores no reply)
        whole = whole and read and not _container_unread(data.get("container"), data.get("tool_choice"))
    # a message's content the server reads from a file, a URL or a PDF, or decrypts (`_blocks_unread`): looked for only
    # in a body spelling a block's `source` (a document has one), a `container_upload`, a code execution's result or a
    # `compaction`, or a `\u` escape (a key or a type spelt with one), searched in C: most calls hold none. A request
    # already cut short is not looked through again (its blocks may be millions)
    if whole and (
        b'"source"' in body
        or b"container_upload" in body
        or b"code_execution" in body
        or b'"compaction"' in body
        or b"web_search_tool_result" in body
        or _ADVICE in body
        or _ESCAPE in body
    ):
        whole = not _blocks_unread(data["messages"], texts)
    # (its tools' schemas' `pattern`s; its `{"type": "none"}` calls no tool)
    whole = whole and (GRAMMARS.isdisjoint(data) or not own_grammar(data, body, typed_choice=True))
    return Request(model, operation, stream, tuple(texts), tuple(params), unscanned=not whole,
                   joined=joined, decoded=unescaped(body, texts, reprinted), builds_on=builds_on,
                   stored=stored)  # fmt: skip


def _thread(thread: Any) -> tuple[str | None, bool, bool]:
    """A call's `thread` (the beta's conversation held by the server): the reply it continues, whether the server keeps
    this call's reply under its id for a later turn to continue, and whether nothing of it is unread. None (null):
    nothing held. One it begins (`{"type": "create"}`) is read here, its reply kept. One it continues (`{"type":
    "continue", "previous_message_id": ...}`) puts the earlier turns before the messages, as a Responses
    `previous_response_id` does, and is read as that: the labels the proxy saw that reply's call and output hold
    (`StoredReplies`), or `scan:truncated` where it saw none. Another form (a type the proxy does not know, no id to
    name what it continues) is unread, fail-safe, its reply not kept. Before 2026-12-07 every continued thread was
    `scan:truncated`, its earlier turns' labels not carried (before that day its id alone was read)."""
    if thread is None:
        return None, False, True
    kind = thread.get("type") if type(thread) is dict else None
    if kind == "create":
        return None, True, True
    previous = thread.get("previous_message_id") if kind == "continue" else None
    if type(previous) is str and previous:
        return previous, True, True
    return None, False, False


def _container_unread(container: Any, choice: Any) -> bool:
    """Whether a call's `container` (Anthropic's code execution's) holds what the model reads and the proxy never sees:
    one named by id (a string, or `{"id": ...}`), which keeps the files of earlier calls, unless the tool choice calls
    none (`{"type": "none"}`); or skills loaded into it (`skills`), whose instructions Anthropic lists into the model's
    context, whatever the choice: as a Responses `shell` tool's container (`openai._shell_reads_unseen`). Before
    2026-12-07 its id alone was read, and the call forwarded unlabelled."""
    if type(container) is dict:
        if container.get("skills"):
            return True
        container = container.get("id")
    called = not (type(choice) is dict and choice.get("type") == "none")
    return called and type(container) is str and bool(container)


def _blocks_unread(messages: list[Any], texts: list[str]) -> bool:
    """Whether a message's content blocks (and a tool result's, a fetched page's) hold a file the server reads to the
    model and the proxy cannot (`_block_unread`), as an OpenAI `input_file` by id or URL or a PDF sent whole; a document
    sent as base64 text is read, decoded, into `texts`, as an OpenAI file's `file_data` is (`file_text`). Every block is
    looked at, one unread or not: until 2026-12-07 the walk stopped at the first unread, and a text document after it
    went undecoded, an address there unfound (`scan:truncated` alone, which a zone may allow where `pii:email` is not;
    review revanth13)."""
    unread = False
    for message in messages:
        content = message.get("content") if type(message) is dict else None
        if type(content) is list:
            for block in content:
                if type(block) is dict and _block_unread(block, texts):
                    unread = True
    return unread


def _block_unread(block: dict[str, Any], texts: list[str], inner: bool = False) -> bool:
    """A `document` the proxy cannot read (`_document_unread`); a `container_upload` (a file put into the code
    execution's container, by id); a code execution's result holding an output file by id or its output encrypted
    (`_code_result_unread`); a `compaction` holding ciphertext (`encrypted_content`: the earlier turns it stands for,
    which Anthropic decrypts into the model's context, as an OpenAI `compaction` item; before 2026-12-07 skipped as
    ciphertext, unlabelled; not `redacted_thinking`, which stands beside the turn it reasoned over, read as an OpenAI
    reasoning item's `encrypted_content` is); such a block in a tool result's content (one level: the API takes no
    tool result within one, and a walk of nested ones recursed as deep as the body: 400 nested raised RecursionError)
    or a web fetch's result (the page it fetched, a document). An image is not read, nor labelled (the README's images
    rule). Before 2026-12-07 each was forwarded unread and unlabelled: vLLM and llama.cpp drop a document, but
    Anthropic's API reads it to the model."""
    kind = block.get("type")
    if kind == "document":
        return _document_unread(block.get("source"), texts)
    if kind == "container_upload":
        return True
    if kind == "code_execution_tool_result" or kind == "bash_code_execution_tool_result":
        return _code_result_unread(block.get("content"))
    if kind == "compaction":  # (its summary, `content`, is read where it stands; null, or no ciphertext: read)
        return bool(block.get("encrypted_content"))
    if kind == "web_search_tool_result" or kind == "advisor_tool_result":
        return _ciphertext_held(block.get("content"))  # (advice in clear, `advisor_result`'s `text`: read where it is)
    if kind == "tool_result" and not inner:
        content = block.get("content")
        unread = False
        if type(content) is list:
            for inside in content:  # (each: a text document after an unread one is read too, `_blocks_unread`)
                if type(inside) is dict and _block_unread(inside, texts, True):
                    unread = True
        return unread
    if kind == "web_fetch_tool_result" and not inner:
        result = block.get("content")
        document = result.get("content") if type(result) is dict else None
        return (
            type(document) is dict
            and document.get("type") == "document"
            and _document_unread(document.get("source"), texts)
        )
    return False


def _ciphertext_held(results: Any) -> bool:
    """Whether a web search's results sent back in the history hold a page's text encrypted (a `web_search_result`'s
    `encrypted_content`, not empty), which Anthropic decrypts into the model's context on the turns after, as it does an
    `encrypted_code_execution_result`'s: what the page says, the proxy never sees (its `url` and `title` are read); or
    an advisor's result its advice encrypted (`advisor_redacted_result`'s, `_ADVICE`). An error
    (`web_search_tool_result_error`) holds none. Before 2026-12-07 the ciphertext was skipped as framing and the call
    went on unlabelled, whatever the pages held. A result is looked at by its ciphertext, whatever its `type` and
    whether it stands alone (the API's advice, an error) or in a list (the API's pages): one without a type, or of a
    type the proxy does not know, holding ciphertext was unmarked until helper fields16, an advisor's until review
    revfields16, a list of advice or one page alone too. Not a search the call runs itself (its `web_search` tool): the
    pages Anthropic fetches in the call, for a query the model writes from what the proxy read, are a server tool's
    doing, as a code execution's output or a fetched page is, and none of those is marked; a page sent back is what the
    call's body carries unseen."""
    if type(results) is dict:
        return bool(results.get(_CIPHERTEXT))
    return type(results) is list and any(type(result) is dict and bool(result.get(_CIPHERTEXT)) for result in results)


def _code_result_unread(result: Any) -> bool:
    """Whether a code execution's result sent back in the history (a `code_execution_tool_result`'s or a
    `bash_code_execution_tool_result`'s `content`) holds what the proxy cannot read: an output file named by id (a
    `code_execution_output`'s or a `bash_code_execution_output`'s `file_id`), which the server stores and a call may name
    whatever file it is, as an OpenAI `input_file`'s `file_id`; or its standard output encrypted
    (`encrypted_code_execution_result`'s `encrypted_stdout`), which the server decrypts into the model's context, as an
    OpenAI `compaction` item. Its `stdout`, `stderr` and an error's code are read as text. Before 2026-12-07 each was
    read as its id's or its ciphertext's letters, the call unlabelled. A result is looked at by its ciphertext too,
    whatever its `type`, as a search result's page is: the ciphertext is not read (`_STRING_FRAMING`: review
    revfields17), so one of another type holding it was unmarked and unread."""
    if type(result) is not dict:
        return False
    if result.get("type") == "encrypted_code_execution_result" or result.get(_STDOUT_CIPHERTEXT):
        return True
    outputs = result.get("content")
    return type(outputs) is list and any(type(o) is dict and o.get("file_id") is not None for o in outputs)


def _document_unread(source: Any, texts: list[str]) -> bool:
    """Whether a document's source is one the proxy cannot read: a PDF sent whole (`base64`, a media type not `text/`),
    a `url` or a `file` (by id), or a source it does not know (fail-safe: the API would take it only as a file), or
    none. A `text` or `content` source is read where it stands (`user_strings`); a `base64` one of a `text/` media type
    is read decoded into `texts`, as an OpenAI file's `file_data` is (`file_text`), unread when it is no text, or when
    it is spelt as a data URL (`data:...,`, what `file_text` reads of it read too): the API's is bare base64, and
    `file_text` reads a data URL's payload (percent-decoded, or its base64) where a base64 decoder that skips what is
    not of its alphabet reads the bytes the prefix's letters and the payload's spell (`data:text/plain;ab,` and the
    base64 of an address: the proxy read the base64's letters, the decoder the address; before 2026-12-07, review
    revanth12, read so, unlabelled)."""
    if type(source) is not dict:
        return True
    given = source.get("type")
    if given == "text" or given == "content":
        return False
    media = source.get("media_type")
    data = source.get("data")
    if given != "base64" or type(media) is not str or not media.lower().startswith("text/") or type(data) is not str:
        return True
    read = file_text(data)
    if read is None:
        return True
    if read[0]:
        texts.append(read[0])
    return not read[1] or data.startswith("data:")


# blocks of the model's thinking: beside the content (`OutputText.aside`; redacted thinking is encrypted)
_THINKING = ("thinking", "redacted_thinking")
# what a waiting piece of text costs beside its characters (a str, its list slot), and a waiting block (its
# list, its key): counted against the room of what waits, so a stream of one-character pieces or blocks is
# bounded as a stream of long ones is
_PIECE = 64
_BLOCK = 192


class MessagesObserver(SseObserver):
    """Fills an Outcome from a Messages reply: text blocks (and tool inputs) in block order; thinking
    beside them.

    Blocks stream one after another: the text of the block streaming is read as it comes. Text of a later
    block that comes while it is still open (its `content_block_stop` not yet come; llama.cpp stops them
    all at the end) waits, and is read in block order once it stops, as much of it as the scan limit's
    worth of characters (a piece counted `_PIECE` more, a block `_BLOCK`): past that, what waits is read
    then, in block order, and the last block read stays open. Text of a block before one already read
    (no server streams so) is read after it, and the output is labelled `scan:truncated`: a value split
    across it may be missed."""

    # `_cached` before a streamed event changed it, with the record `_given` kept for that event (`_before`): restored
    # where its SDK never gives the event (an unended one, one it skips: `_unseen`); a class default (no work a call)
    _cached_before: tuple[object, int] | None = None
    # the reply's model before a streamed `fallback` block named the one that wrote what follows (`_fallback`, `_OWN`),
    # restored where the SDK never gives that event (`_unseen`); a class default (no work a call)
    _model_before: str | None = None

    def _ends_in(self, data: bytes) -> bool:
        """`message_stop` ends a reply (`event`), its type perhaps written with `\\u` escapes; `[DONE]` too."""
        return b"message_stop" in data or b"\\u" in data or b"[DONE]" in data

    def __init__(self, outcome: Outcome, detectors: Detectors, capture: bool) -> None:
        super().__init__(outcome, detectors, capture)
        self.typed_by_name = True  # an event is skipped, parsed or raised at by its name, as the SDK reads it
        self._block: int | None = None  # the content block whose text is read as it comes
        self._closed = False  # its content_block_stop came
        self._later: dict[int, list[str]] = {}  # content block index -> text waiting for the block above
        self._room = detectors.max_chars  # what may wait
        self._cached = 0  # prompt tokens read from or written to the cache, as the reply's usage gave them (`_usage`)

    def ends_with_event(self) -> bool:
        """Its streams end with `message_stop`."""
        return True

    def whole(self, reply: dict[str, Any]) -> None:
        self._message(reply)
        content = reply.get("content")
        if not isinstance(content, list):  # none of the fields the output is in
            self._text.add_unknown(reply)
        for at, block in enumerate(content if isinstance(content, list) else ()):
            if isinstance(block, dict):
                if isinstance(block.get("text"), str):
                    self._text.add(block["text"])
                    citations = block.get("citations")
                    if citations:  # the document's words it quotes (`cited_text`), as a stream's `citations_delta`
                        self._text.aside_strings((at, "delta"), citations)
                elif "input" in block:
                    self._tool_name(at, block)
                    self._input(block["input"])
                elif block.get("type") in _THINKING:  # beside the content, as a stream's thinking_delta is
                    if isinstance(block.get("thinking"), str):
                        self._text.aside((at, "thinking"), block["thinking"])
                    continue
                else:
                    self._other(at, block)
            self._text.end_piece()
        self._reason(reply.get("stop_reason"))

    def erred(self, event: dict[str, Any]) -> bool:
        """None by its data: the SDK raises at an event named `error` alone, whatever its data (`_named_end`, and past
        where the reply is read `_late_event`, `_LateEvents`); data `{"type": "error"}` in an event named otherwise it
        passes on as an event of that type (`message_delta`, another name it parses) or skips (`ping`, another name,
        none). Until 2026-12-05 such data was `upstream_error` (helper ssenormal)."""
        return False

    def event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta")
            text = None
            if isinstance(delta, dict):
                form = delta.get("type")
                if form == "text_delta":
                    text = delta.get("text")
                elif form == "thinking_delta":
                    thinking = delta.get("thinking")
                    if isinstance(thinking, str):
                        index = event.get("index")
                        self._text.aside((index if isinstance(index, int) else 0, "thinking"), thinking)
                        if thinking:
                            self.first_chunk()
                elif form == "input_json_delta" or "partial_json" in delta:
                    text = delta.get("partial_json")
                elif form != "signature_delta":  # (a thinking block's signature: no text)
                    # a citation (its `cited_text`), or a delta the adapter does not know: its strings, beside the
                    # content, as a block it reads no text from (`_other`)
                    index = event.get("index")
                    self._text.aside_strings((index if isinstance(index, int) else 0, "delta"), delta)
            if isinstance(text, str) and text:
                if not self.outcome.first_token_ns:
                    self.outcome.first_token_ns = self.outcome.now_ns()
                index = event.get("index")
                self._content(index if isinstance(index, int) else 0, text)
        elif kind == "content_block_stop":
            if event.get("index") == self._block and not self._closed:
                if self._later:
                    self._read_later()
                else:
                    self._closed = True
        elif kind == "content_block_start":
            block = event.get("content_block")
            if isinstance(block, dict):
                index = event.get("index")
                self._start(index if isinstance(index, int) else 0, block)
        elif kind == "message_start":
            message = event.get("message")
            if isinstance(message, dict):
                self._message(message)
        elif kind == "message_delta":
            delta = event.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
                self._given()
                self._reason(delta["stop_reason"])
            self._usage(event.get("usage"))
        elif kind == "message_stop":
            self.ended = True
        elif kind != "ping":  # no event of the API's (`error` is the one other it names: `erred`)
            self.unknown(event)

    def _start(self, index: int, block: dict[str, Any]) -> None:
        """A block's start: Anthropic's holds no text (`"text": ""`, `"input": {}`, `"thinking": ""`); what
        another server's holds is the block's first piece, read as the whole reply reads that block."""
        text = block.get("text")
        if not isinstance(text, str):
            text = None  # (a number there broke the reader, and the rest of the reply went unread)
            if "input" in block:
                self._tool_name(index, block)
                value = block["input"]
                text = self._text.json_text(value) if value else None  # (`{}`: no text, and every stream's)
                if value and text is None:
                    self._text.unread()
            elif block.get("type") in _THINKING:
                thinking = block.get("thinking")
                if isinstance(thinking, str):
                    self._text.aside((index, "thinking"), thinking)
                    if thinking:
                        self.first_chunk()
            else:
                if block.get("type") == "fallback":
                    self._fallback(block)
                self._other(index, block)
        if text:
            if not self.outcome.first_token_ns:
                self.outcome.first_token_ns = self.outcome.now_ns()
            self._content(index, text)

    def _fallback(self, block: dict[str, Any]) -> None:
        """A streamed `fallback` block (the beta's server-side fallback: the model before it declined, and `to.model`
        wrote what follows): the reply's model is from then on the one it names, as the SDK's stream snapshot takes it
        (`accumulate_event`: "the final hop's fallback block names the model that served the response") and as a whole
        reply's `model` is relabelled to it. Until 2026-12-07 the model `message_start` named stood: the model asked
        for, which declined, the record naming a model that wrote none of the reply (helper anth13)."""
        to = block.get("to")
        model = to.get("model") if type(to) is dict else None
        if type(model) is str and model:
            outcome = self.outcome
            if self._in_stream and not self._ending & _OWN:  # (the event's first change: what it was before)
                self._ending |= _OWN
                self._model_before = outcome.response_model
            outcome.response_model = model

    def _tool_name(self, index: int, block: dict[str, Any]) -> None:
        """A tool use's name, beside the content (as a chat reply's tool call's name is)."""
        name = block.get("name")
        if isinstance(name, str):
            self._text.aside((index, "name"), name)

    def _input(self, value: Any) -> None:
        """A whole tool use's input, as JSON text (`OutputText.json_text`: an integer past 64 bits with its digits)."""
        text = self._text.json_text(value)
        if text is None:  # nested deeper than can be written
            self._text.unread()
        else:
            self._text.add(text)

    def _other(self, index: int, block: dict[str, Any]) -> None:
        """A block with no text, input or thinking (a server tool's result: code execution's `stdout`, a web
        search's results; a block type the adapter does not know): its strings, beside the content, as a reply of
        unknown shape's are (`OutputText.add_unknown`). Such blocks come whole, in their `content_block_start`."""
        self._text.aside_strings((index, "block"), block)

    def _content(self, index: int, text: str) -> None:
        """A piece of a content block's text: read now if it is the open block's (or the first, or one
        after a block that stopped), else kept for later."""
        block = self._block
        if index == block:  # (a stream's every piece but its blocks' first)
            self._text.add(text)
        elif block is None or (index > block and self._closed and not self._later):
            if block is not None:
                self._text.end_piece()
            self._block = index
            self._closed = False
            self._text.add(text)
        else:
            if index < block:  # after text of a block after it: read out of its order
                self._text.unread()
            pieces = self._later.get(index)
            if pieces is None:
                pieces = self._later[index] = []
                self._room -= _BLOCK
            pieces.append(text)
            self._room -= len(text) + _PIECE
            if self._room < 0:
                self._read_later()

    def _read_later(self) -> None:
        """The open block is over: the text kept for later is read, each block's in block order; the last
        stays open."""
        self._block = self.read_waiting(self._later)
        self._closed = False
        self._later = {}
        self._room = self.detectors.max_chars

    def _message(self, message: dict[str, Any]) -> None:
        self.identify(message)
        self._usage(message.get("usage"))

    def _usage(self, usage: Any) -> None:
        """The reply's token counts. Anthropic's `input_tokens` leaves out the prompt read from or written to its
        cache: `gen_ai.usage.input_tokens` is the whole prompt (the OTel GenAI conventions for Anthropic: their
        sum), so the cached parts are added: those this usage gives, else those an earlier one of the reply gave (a
        stream's `message_delta` may repeat `input_tokens` without them)."""
        self.usage(usage)
        if isinstance(usage, dict):
            given = False
            cached = 0
            for key in _CACHED_INPUT:
                count = usage.get(key)
                if type(count) is int:
                    cached += count
                    given = True
            if given:
                if cached != self._cached and self._in_stream:  # (an ordinary stream's repeat the first's: no work)
                    self._hold_cached()
                self._cached = cached
            if self._cached and type(usage.get("input_tokens")) is int:
                self.outcome.input_tokens = usage["input_tokens"] + self._cached

    def _hold_cached(self) -> None:
        """A streamed event changes `_cached`: kept as it was, as its counts are (`_given`), to be restored where the SDK
        never gives the event (`_unseen`). Until 2026-12-05 a skipped event's cached counts stood, added to a later
        event's `input_tokens` (review revstreams: an unnamed `message_delta`'s 100, then 5 input tokens, recorded 105)."""
        if not self._ending & _GIVEN:
            self._given()
        self._cached_before = (self._before, self._cached)

    def _unseen(self, ending: int) -> None:
        held = self._cached_before
        if held is not None and ending & _GIVEN and held[0] is self._before:  # (this event's: `_hold_cached`)
            self._cached = held[1]
        self._cached_before = None
        if ending & _OWN:  # (a `fallback` block's model: `_fallback`)
            self.outcome.response_model = self._model_before
        super()._unseen(ending)

    def _reason(self, reason: Any) -> None:
        if isinstance(reason, str):
            self.outcome.finish_reasons = (reason,)

    def done(self) -> None:
        if self._later:
            self._read_later()
        if self._block is not None:
            self._text.end_piece()


def x_api_key_path(path: str) -> bool:
    """True on the Anthropic API's paths: there `x-api-key` is the caller's key as `Authorization: Bearer`
    is, and kept from the upstream as it is; elsewhere it is no key of the proxy's."""
    return path in X_API_KEY_PATHS or path.startswith("/v1/models/")


class Adapter(AdapterBase):
    name: ProtocolName = "anthropic"
    dialect = "openai"
    status_attribute = "http.response.status_code"
    provider: str | None = "anthropic"

    def match(self, method: str, path: str) -> Target | None:
        if method != "POST":
            return None
        return _TARGET if path in PATHS else _COUNT if path == COUNT_PATH else None

    def read(self, target: Target, body: bytes, header: Header) -> Request:
        return read_request(body, target.operation)

    def as_utf8_json(self, body: bytes, header: Header) -> bytes | None:
        return request_json_as_utf8(body)

    def observer(self, target: Target, outcome: Outcome, detectors: Detectors, capture: bool) -> MessagesObserver:
        return MessagesObserver(outcome, detectors, capture)

    def merge(self, listings: list[Any]) -> dict[str, Any]:
        raise NotImplementedError("the Messages API has no merged listing")


ADAPTER = Adapter()
