"""The OpenAI-compatible API (vLLM, TGI, llama.cpp, Ollama): chat, completions, embeddings.

Reads the request once (orjson) for the model, the content and the request parameters; watches the
reply, whole or as server-sent events, for model, id, usage, finish reasons and the output text.
"""

from __future__ import annotations

import binascii
import functools
import heapq
import json
import logging
import math
from collections.abc import Mapping
from typing import Any, Final

import orjson

from proxy.config import Upstream
from proxy.detectors import Detectors
from proxy.errors import InvalidRequest
from proxy.flow import UPSTREAM, Checkpoint, Outcome, ProtocolName
from proxy.protocols import (
    _BACKSLASH,
    ELSEWHERE_KEYS,
    ENGINE_IDS,
    ENGINE_STATE,
    GRAMMARS,
    LOADERS,
    NOT_DATA,
    ROUTER_OVERRIDE,
    Fetch,
    Header,
    MetadataIncomplete,
    MetadataStatus,
    OthersNamed,
    Request,
    Target,
    _flat_named,
    advisor_models,
    advisors_spelt,
    batch_models,
    client_raises,
    harmony_runs,
    join_text_parts,
    load_request_json,
    named_as_fields,
    named_models,
    nested_named_as_fields,
    output_runs,
    own_grammar,
    own_template,
    refuse_sent_elsewhere,
    reply_json,
    request_json_as_utf8,
    request_strings,
    schema_program,
    spread_body,
    spread_bytes,
    spread_reading,
    token_ids,
    unescaped,
    unread_output,
    unread_parts,
    user_strings,
)
from proxy.protocols import _FEW as _FEW_FLAT
from proxy.protocols import Adapter as AdapterBase
from proxy.protocols.oip import NO_JSON, UNMATCHED, many_values, many_values_pattern, unread_long_integer, whole_json
from proxy.protocols.sse import _GIVEN, _OWN, SseObserver

# path -> how the body is read; llama.cpp and vLLM also serve the paths without /v1
OPERATIONS = {
    "/v1/chat/completions": "chat",
    "/v1/completions": "text_completion",
    "/v1/embeddings": "embeddings",
    "/v1/responses": "responses",
    "/chat/completions": "chat",
    "/completions": "text_completion",
    "/embeddings": "embeddings",
    "/responses": "responses",
}
# llama.cpp's llama-server's own endpoints -> how the body is read (`read_native`): its model is optional (the server
# runs the one it loaded), its text in fields of their own. `/completions` is its native completion too, but it is
# read as OpenAI's (its `model` required), as vLLM serves it
NATIVE = {
    "/completion": "completion",  # `prompt`: a string, strings and token ids, `{"prompt_string", "multimodal_data"}`
    "/infill": "infill",  # `input_prefix`, `input_suffix`, `input_extra` [{filename, text}], `prompt`
    "/apply-template": "apply_template",  # `messages` -> `{"prompt": ...}`, the chat template applied
    "/tokenize": "tokenize",  # `content` -> `{"tokens": [...]}` (with pieces: `[{"id", "piece"}]`)
    "/detokenize": "detokenize",  # `tokens` (ids) -> `{"content": ...}`
    "/embedding": "embedding",  # `content` -> `[{"index", "embedding"}]`
    "/rerank": "rerank",  # `query`, `documents` -> `{"results": [{"index", "relevance_score"}]}`
    "/reranking": "rerank",
    "/v1/rerank": "rerank",
    "/v1/reranking": "rerank",
}
_FINGERPRINT: Final = "lineage.checkpoint.fingerprint"  # (a reply's `system_fingerprint`: `_meta`)
# gen_ai.operation.name of each (the Responses API is a chat in the GenAI conventions' terms)
_GEN_AI_OPERATION: Final = {"chat": "chat", "text_completion": "text_completion", "embeddings": "embeddings",
                     "responses": "chat", "completion": "text_completion", "infill": "text_completion",
                     "apply_template": "apply_template", "tokenize": "tokenize", "detokenize": "detokenize",
                     "embedding": "embeddings", "rerank": "rerank"}  # fmt: skip

# request field -> gen_ai.request.<name>
_PARAMS: Final = {
    "max_tokens": "max_tokens",
    "max_completion_tokens": "max_tokens",
    "max_output_tokens": "max_tokens",  # the Responses API's
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


def _param(name: str, value: Any) -> Any:
    if name in ("stop_sequences", "encoding_formats"):
        values = value if isinstance(value, list) else [value]
        return [v if isinstance(v, str) else _text(v) for v in values if v is not None]
    if type(value) not in _PLAIN:  # (a bool is not an int here; orjson makes exact types)
        return _text(value)
    return value


_PLAIN = frozenset({int, float, str})  # parameter values recorded as they are


def _text(value: Any) -> str:
    """A parameter of an unexpected shape, as compact JSON; never raises (observing never fails)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return f"<{type(value).__name__}>"


# Every top-level value of a body is scanned but its parameters (`request_strings`): messages, prompts and
# inputs, and what servers put beside them (vLLM's embeddings read chat `messages`, llama.cpp's a `content`).
# By operation, the keys whose values servers print into the prompt whole (a chat template's `tojson`), so
# that no key in them is framing: tool and function definitions, a response format's or guided decoding's
# schema, vLLM's chat template arguments and documents. vLLM's Responses API renders its input with the same
# chat template, taking the same `chat_template_kwargs` and `structured_outputs` as its chat API.
_GUIDED = ("response_format", "guided_json", "guided_choice", "guided_regex", "guided_grammar", "structured_outputs",
           "json_schema", "grammar")  # fmt: skip
_RENDERED: Final = {
    "chat": frozenset({"tools", "functions", "tool_choice", "chat_template_kwargs", "documents", *_GUIDED}),
    "text_completion": frozenset(_GUIDED),
    "embeddings": frozenset({"chat_template_kwargs"}),
    "responses": frozenset({"tools", "tool_choice", "text", "chat_template_kwargs", "structured_outputs"}),
    # llama.cpp's native endpoints: a completion's (and an infill's) grammar and schema; a template applied as a chat's
    "completion": frozenset(_GUIDED),
    "infill": frozenset(_GUIDED),
    "apply_template": frozenset({"tools", "functions", "tool_choice", "chat_template_kwargs", *_GUIDED}),
    "tokenize": frozenset({"tools", "functions", "tool_choice", "chat_template_kwargs"}),  # vLLM's takes a chat's
    "detokenize": frozenset(),
    "embedding": frozenset(),
    "rerank": frozenset(),
    "generate": frozenset(),  # TGI's native API (`tgi.read_request`: its grammar whole, as a parameter; `_CONTENT`)
}
# by operation, the top-level keys whose objects and lists the adapter reads as that API's servers do: its content
# (messages, an input, a prompt: their framing, a part's type or link, not read) and what its templates print whole
# (`_RENDERED`: every key, number and string read). Another object or list (a field of the caller's own:
# `{"context": {"url": ...}}`, or one named as another API's, a `tools` beside a text completion's `prompt`) is read as
# content is, its framing-named members, keys and numbers not: no vLLM reads it, but KServe's OpenAI data plane hands
# its model the request whole (`kserve.openai_fields` reads it all). llama.cpp's own endpoints: every API's content
_CONTENT: Final = {
    "chat": frozenset({"messages"}),
    "text_completion": frozenset({"prompt"}),
    "embeddings": frozenset({"input", "messages"}),  # vLLM's embeddings take a chat's messages too
    "responses": frozenset({"input", "instructions", "prompt"}),
    "generate": frozenset({"parameters"}),  # TGI's: `inputs` a string; `parameters`, read by its adapter
}
_ANY_CONTENT: Final = frozenset().union(*_CONTENT.values())
CONTENT_KEYS: Final = {
    operation: _CONTENT.get(operation, _ANY_CONTENT) | rendered for operation, rendered in _RENDERED.items()
}
# the request parameters every server takes as numbers (`_PARAMS`: a `seed`, `max_tokens`), its request type checking
# them (vLLM's and KServe's `ChatCompletionRequest`): a number under one is that parameter, which the adapter records,
# not a text. `kserve.openai_fields` reads no such number: read as a field of the caller's own is, a 32-bit `seed`
# (`2147483647`, most random ones) was a phone number, refused where a zone forbids phones
NUMBER_PARAMS: Final = frozenset(_PARAMS) - {"stop", "encoding_format"}
# the top-level keys this adapter reads by name (its content, what templates print whole, the parameters, the keys it
# skips or takes as token ids, a template, a stored reply): one spelt otherwise, that Go's `encoding/json` takes for it
# (`Tools`: Ollama's OpenAI-compatible API), is refused (`named_as_fields`), as it would be read as another field
_NAMED: Final = frozenset({
    "model", "stream", "lora", "prompt_embeds", "chat_template", "previous_response", "conversation", "content",
    "logit_bias", "logit_bias_type", *(NOT_DATA - ENGINE_STATE - ENGINE_IDS), *_PARAMS, *_ANY_CONTENT, *(key for keys in _RENDERED.values() for key in keys),
    # and the other parameters OpenAI's SDKs send (read as any field is): a body of them all takes `named_as_fields`'
    # quick check, in C, where one such key sent the call through its loop (8 keys: 123 Python instructions, not 8)
    "parallel_tool_calls", "store", "reasoning_effort", "reasoning", "logprobs", "top_logprobs", "modalities", "audio",
    "service_tier", "prediction", "function_call", "verbosity", "web_search_options", "include", "truncation",
    "background", "max_tool_calls", "echo", "best_of", "suffix",
})  # fmt: skip
# the JSON names of a Responses input item's fields and a content part's, each level a struct of Go's in Ollama's
# Responses API (an item: `ResponsesInputMessage`, `ResponsesFunctionCall`, `ResponsesFunctionCallOutput`,
# `ResponsesReasoningInput`, `ResponsesWebSearchCall`, told apart by `type`, their fields together; a part, a message's
# or an output's: `ResponsesTextContent`, `ResponsesImageContent`, `ResponsesFileContent`, ...; openai/responses.go),
# their keys matched as the body's are: Ollama runs a message's text parts together, so a part's `"Text"` or a message's
# `"Content"` is refused as a body's `"Tools"` is. Only its level's fields (before 2026-12-05 one set served both: an
# item's `"Text"`, a part's `"Role"` were refused, though Go ignores them there; helper nativekeys)
_INPUT_NAMED: Final = frozenset({"type", "role", "content", "id", "call_id", "name", "arguments", "output", "summary",
                                 "encrypted_content", "status", "action"})  # fmt: skip
_PART_NAMED: Final = frozenset({"type", "text", "detail", "file_id", "image_url", "file_data", "file_url", "filename"})
_NO_FIELDS: Final[frozenset[str]] = frozenset()
_PARTS: Final = frozenset({"content", "output"})  # (a message's parts, a tool call's output given as parts)
_INPUT_BELOW: Final = {"content": (_PART_NAMED, _NO_FIELDS), "output": (_PART_NAMED, _NO_FIELDS)}
# the JSON names of a chat message's fields, its tool calls', their functions' and its content parts' (Ollama's
# `Message`, `ToolCall` and its `Function`: structs, their keys matched as the body's are; Ollama reads a part as a map,
# exact keys, but Go servers that decode parts into structs read them so too), each level against its own: a function's
# `"Arguments"` is Go's `arguments`, whose numbers Ollama prints as it parses them (`4.111111111111111e15` a card), which
# the proxy reads so only under `arguments`: refused as a body's `"Tools"` is. Before 2026-12-05 one set served every
# level, with the other keys OpenAI's SDKs send there: a message's `"Text"` or `"Refusal"`, a part's `"Role"` were
# refused, though Go ignores them there (helper nativekeys)
_MESSAGE_NAMED: Final = frozenset({"role", "content", "reasoning", "tool_calls", "name", "tool_call_id"})
_MESSAGE_INNER: Final = frozenset({"content", "tool_calls"})  # (where those objects are, under a message)
_MESSAGE_BELOW: Final = {
    "content": (frozenset({"type", "text", "image_url", "input_audio", "file", "refusal"}), _NO_FIELDS),
    "tool_calls": (frozenset({"id", "index", "type", "function"}), frozenset({"function"})),
    "function": (frozenset({"name", "arguments"}), _NO_FIELDS),
}
# llama.cpp's native request fields -> gen_ai.request.<name>: `n_predict` is its token limit (`max_tokens` when it is
# not given, as llama.cpp reads them)
_NATIVE_PARAMS: Final = {
    "n_predict": "max_tokens",
    "top_n": "top_n",
    **{key: _PARAMS[key] for key in ("max_tokens", "temperature", "top_p", "top_k", "frequency_penalty",
                                     "presence_penalty", "seed", "stop")},
}  # fmt: skip
# where an OpenAI body may carry token ids (a prompt's, an input's, llama.cpp's `content`; SGLang's chat `input_ids`,
# "pre-computed prompt token IDs" that bypass the chat template: the model reads them, not the messages, which SGLang
# reads for stop tokens alone; before 2026-12-07 they were not looked at, and such a call went on labelled by messages
# its model never read; TensorRT-LLM's `prompt_token_ids`, which trtllm-serve's chat and Responses APIs take as the
# prompt in place of the messages, for any caller, and which its disaggregated server sets on every generation call,
# the messages there cut to the last at its option: before review revfields15 unlooked-at too), looked for only where
# the body has one (in C: a plain chat has none)
_TOKEN_FIELDS: Final = frozenset({"prompt", "input", "content", "input_ids", "prompt_token_ids"})
# TensorRT-LLM's `prompt_token_ids_b64`: those token ids as base64 of int32s (decoded by the server when not empty and
# `prompt_token_ids` is not given), which its disaggregated server relays from the context server's reply
_TOKENS_B64: Final = "prompt_token_ids_b64"
# SGLang's `session_params` (`{"id": ..., "rid", "offset", "replace", "drop_previous_output"}`, "session info for
# continual prompting"): its engine continues the tokens a session it names holds (an `id`, not null), earlier calls'
# inputs and outputs, put before this call's (or at `offset`), as a Responses `previous_response_id` does. Its
# OpenAI-compatible request models take the field; the versions read (2026-12) hand the engine only `session_id`, its
# native `/generate` (GenerateReqInput) the session: a call naming one means to continue it, content the proxy did not
# see with the call, `scan:truncated` whatever the version does (the proxy does not remember a session's labels).
# Before 2026-12-07 its id alone was read. Not `session_id`, vLLM's and SGLang's both, a "stable session identity"
# that "does not alter or reconstruct the prompt": read as any field is
_SESSION: Final = "session_params"
# the fields that may hold what the model reads and the proxy cannot (`_held_unread`), looked for in C: a plain chat
# has none
_HELD_OTHERS: Final = frozenset({_SESSION, _TOKENS_B64})
_HELD_FIELDS: Final = _TOKEN_FIELDS | _HELD_OTHERS
# where llama.cpp's native bodies may carry token ids (text the proxy cannot read, which the model reads whole): an
# infill's `input_prefix` and `input_suffix` too, which llama-server reads as a prompt is (`tokenize_mixed`: strings and
# token ids mixed)
_NATIVE_TOKENS = ("prompt", "content", "tokens", "input", "query", "documents", "texts", "input_extra", "input_prefix",
                  "input_suffix")  # fmt: skip


def read_request(operation: str, body: bytes, others: bool = True, path_model: str = "") -> Request:
    """Parse one request body; malformed JSON or a wrong shape is an InvalidRequest. One naming other models that may
    serve it (`_OTHERS`; a chat's `model` naming several, separated by commas: `batch_models`) raises `OthersNamed`,
    unless `others` is False (its reading again, as the call it is). `path_model`: the model a route naming it in its
    path names (`InPathAdapter`), the call's in place of the body's `model` (`_in_path`). A body holding an object
    LiteLLM proxy lays into the call as its own keys is read less it and as LiteLLM hands it on (`_spread_read`)."""
    data = load_request_json(body)
    if path_model:  # (one test a plain call: `benchmarks/README.md`)
        _in_path(operation, body, data, path_model, others)
    if named_as_fields(data, _NAMED):  # (a body of `_NAMED` keys alone, most: neither test made)
        spread = not ELSEWHERE_KEYS.isdisjoint(data)
        if spread:
            refuse_sent_elsewhere(data)
        if not _OTHERS.isdisjoint(data) and others:
            batch = _batch(operation, data.get("model"))
            advised = advisor_models(data)  # (a body naming others: its tools walked whatever they spell)
            raise _others_named(operation, body, path_model, named_models(data, _OTHERS), batch, advised)
        # (an advisor tool in an object LiteLLM spreads into the call, `extra_body`'s: `advisor_models`)
        if spread and others and (advised := advisors_spelt(data, body)):
            raise _others_named(operation, body, path_model, (), _batch(operation, data.get("model")), advised)
        # (the body LiteLLM hands on, its spread objects' keys laid over its own: every rule of a key at the top
        # applied to one there, as the upstream reads it: until 2026-12-07 read as text alone, helper spread17)
        if spread and (bodies := spread_body(data)) is not None:
            return _spread_read(operation, body, data.get("model"), bodies, others, path_model)
    # an advisor tool's model (`advisors_spelt`): a body with `tools` whose type is spelt, or a JSON escape, found in C
    # (+4 Python instructions a call without `tools`, no search of its bytes, no call)
    if "tools" in data and others and (advised := advisors_spelt(data, body)):
        raise _others_named(operation, body, path_model, (), _batch(operation, data.get("model")), advised)
    model = data.get("model")
    # (one test, in C, for a model none, empty, or naming several separated by commas: a chat's LiteLLM proxy runs as a
    # batch; +3 Python instructions a plain call, where `not model` alone was and a test of its own took 4)
    if not isinstance(model, str) or "," in (model or ","):
        if not isinstance(model, str) or not model:
            raise InvalidRequest("'model' is required and must be a string", param="model")
        if operation == "chat" and others:
            batch = batch_models(model)
            raise OthersNamed(batch, functools.partial(read_request, operation, body, False, path_model), batch)
    walked = True  # (the messages' objects past `MAX_STRINGS` not looked at: unscanned)
    plain = False
    if operation == "chat":
        messages = data.get("messages")
        if not isinstance(messages, list):
            raise InvalidRequest("'messages' is required and must be a list", param="messages")
        plain = _plain_messages(messages)
        if not plain:
            walked = nested_named_as_fields(messages, _MESSAGE_NAMED, _MESSAGE_INNER, _MESSAGE_BELOW)
            if b'"audio"' in body or _BACKSLASH in body:  # (in C: a previous audio reply, stored, is unread too)
                walked = walked and not _stored_audio(messages)
    joined, all_joined = (
        ((), True)
        if plain
        else join_text_parts(data.get("messages") if operation != "responses" else data.get("input"), size=len(body))
    )
    texts: list[str] = []
    reprinted: list[str] = []  # numbers of tool calls' arguments as servers print them (most calls: none)
    whole = request_strings(data, _RENDERED[operation], texts, reprinted) and all_joined and walked
    # token ids (vLLM, llama.cpp), prompt embeddings, a template or a grammar of the request's own: what the model reads
    # there, the proxy cannot
    # (a request already cut short is not looked through again: its parts may be millions)
    whole = (
        whole
        and not ("prompt_embeds" in data or (not plain and unread_parts(data.get("messages"))) or own_template(data))
        and (GRAMMARS.isdisjoint(data) or not own_grammar(data, body))
        and (_HELD_FIELDS.isdisjoint(data) or not _held_unread(data))
    )
    names = _PARAMS  # (a module's constant, read once: compiled, each read is a lookup in the module's dict)
    params: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = names.get(key)
        if name is not None and value is not None and (name != "max_tokens" or key == _token_limit(operation, data)):
            params.append((name, _param(name, value)))
    stream = data.get("stream") is True
    builds_on, stored = None, False
    if operation == "responses":
        items = data.get("input")
        if type(items) is list:  # (not a string)
            whole = nested_named_as_fields(items, _INPUT_NAMED, _PARTS, _INPUT_BELOW) and whole
            if b'"output"' in body or _BACKSLASH in body:  # (in C: a key `output`, or one spelt with an escape)
                joined, all_joined = output_runs(items, joined)  # (a tool call's output given as parts, run together)
                whole = all_joined and whole
            # (in C: most none; a `configuration_update` item's text format too, `_configured_unread`: +4 Python
            # instructions a Responses call whose input is a list)
            if (
                b"additional_tools" in body
                or b"tool_search_output" in body
                or _CONFIGURED in body
                or _BACKSLASH in body
            ):
                whole = (
                    whole and not _input_tools_unread(items, data.get("tool_choice")) and not _configured_unread(items)
                )
        if "previous_input_messages" in data:  # (vLLM's earlier turns given whole: its parts run together too)
            earlier = data["previous_input_messages"]
            if type(earlier) is list:
                joined, all_joined = harmony_runs(earlier, joined)
                whole = all_joined and whole
        builds_on, stored = _state(data)
        previous = data.get("previous_response")
        if previous is not None:  # vLLM's: a previous response carried whole (what it builds on, as an id's)
            carried, read = _previous_response(previous, texts, reprinted)
            builds_on = builds_on or carried
            whole = whole and read
        # a conversation the upstream keeps (OpenAI's Conversations API), or an item it stored, named by id (an
        # `item_reference`, which the server replaces with that item): content the proxy never saw
        # a prompt template it stored (`prompt: {"id": ...}`, its text filled with the call's `variables`), or a file
        # it stored (`unread_parts`; in a tool call's output given as parts, `unread_output`): the same
        whole = (
            whole
            and data.get("conversation") is None
            and not _references(data.get("input"))
            and not _stored_prompt(data.get("prompt"))
            and ("tools" not in data or not _tools_read_unseen(data["tools"], data.get("tool_choice")))
            and not unread_parts(data.get("input"))
        )
    lora = data.get("lora")
    return Request(model, _GEN_AI_OPERATION[operation], stream, tuple(texts), tuple(params), unscanned=not whole,
                   version=None if lora is None else lora_version(lora), joined=joined,
                   decoded=unescaped(body, texts, reprinted), builds_on=builds_on, stored=stored)  # fmt: skip


def _spread_read(
    operation: str,
    body: bytes,
    model: Any,
    bodies: tuple[dict[str, Any], dict[str, Any]],
    others: bool,
    path_model: str,
) -> Request:
    """A body holding an object LiteLLM proxy lays into the call as its own keys, read less it and as LiteLLM hands it
    on (`spread_body`: the two `bodies`), as one (`spread_reading`); a chat's `model` naming several, separated by
    commas, raises `OthersNamed` first, as `read_request` raises it, its reading again this one."""
    if others and operation == "chat" and type(model) is str and "," in model:
        batch = batch_models(model)
        raise OthersNamed(batch, functools.partial(read_request, operation, body, False, path_model), batch)
    own, over = bodies
    handed = read_request(operation, spread_bytes(over), False, path_model)
    return spread_reading(read_request(operation, spread_bytes(own), False, path_model), handed)


def _in_path(operation: str, body: bytes, data: dict[str, Any], model: str, others: bool) -> None:
    """`data`, a body sent on a route naming its model in its path (`model`: `InPathAdapter`), made that model's call:
    its `model` is the path's, as LiteLLM proxy runs it (`base_process_llm_request`: `data["model"] = ... or model or
    data.get("model")`, the path's first) and Azure OpenAI runs its deployment's. A `model` of its own, optional (null
    or left out: none), must be a string (an InvalidRequest); one naming another model is judged too, as a server
    reading the body's would run it: `OthersNamed`, its `asked`, beside the models the body names otherwise (its
    fallbacks, a chat's path naming several separated by commas: a batch LiteLLM runs), unless `others` is False (its
    reading again); a body naming a server of its own is refused first, as `read_request` refuses it."""
    asked = data.get("model")
    if asked is not None and type(asked) is not str:
        raise InvalidRequest("'model' must be a string (or left out: the path names the model)", param="model")
    data["model"] = model
    if not others or not asked or asked == model:
        return
    if not ELSEWHERE_KEYS.isdisjoint(data):
        refuse_sent_elsewhere(data)
    batch = _batch(operation, model)
    fallbacks = named_models(data, _OTHERS) if not _OTHERS.isdisjoint(data) else ()
    advised = advisor_models(data)  # (its tools walked, as a body naming others' are)
    raise _others_named(operation, body, model, fallbacks, batch, advised, asked)


def _others_named(
    operation: str,
    body: bytes,
    path_model: str,
    fallbacks: tuple[str | None, ...],
    batch: tuple[str, ...],
    advised: Mapping[str | None, tuple[str, str | None]],
    asked: str = "",
) -> OthersNamed:
    """The `OthersNamed` of a body naming other models than the call's (`read_request`, `_in_path`): the model its
    body's `model` names where its path names the call's (`asked`), first, then its fallbacks, a batch's models, its
    advisors' (`models`), read again as the call it is by `read_request` with `others` False."""
    again = functools.partial(read_request, operation, body, False, path_model)
    return OthersNamed(((asked,) if asked else ()) + fallbacks + batch + tuple(advised), again, batch, advised, asked)


def _batch(operation: str, model: Any) -> tuple[str, ...]:
    """The models a chat's `model` names separated by commas, run as a batch by LiteLLM proxy (`batch_models`), for a
    body naming others under `_OTHERS` too; none for another operation (LiteLLM batches its chat completions alone)."""
    if operation != "chat" or type(model) is not str or "," not in model:
        return ()
    return batch_models(model)


def _held_unread(data: dict[str, Any]) -> bool:
    """Whether a body's `_HELD_FIELDS` give the model what the proxy cannot read: token ids (`token_ids`; as base64,
    `_TOKENS_B64`, not empty), or a session of SGLang's it continues (`_continues_session`)."""
    # (the others looked for by one test in C, as `_SESSION in data` was: every Responses call comes here, by `input`)
    return any(map(token_ids, map(data.get, _TOKEN_FIELDS.intersection(data)))) or (
        not _HELD_OTHERS.isdisjoint(data) and (_continues_session(data.get(_SESSION)) or bool(data.get(_TOKENS_B64)))
    )


def _continues_session(params: Any) -> bool:
    """Whether SGLang's `session_params` names a session (`id` not null: SGLang's scheduler then continues it, or
    refuses the call where it has none; its batch's list, one such object a prompt): `_SESSION`."""
    if type(params) is dict:
        return params.get("id") is not None
    return type(params) is list and any(type(one) is dict and one.get("id") is not None for one in params)


# the keys by which an OpenAI-compatible body names other models that may serve it, should its `model` fail or decline,
# on the gateways that act on them (`named_models`): OpenRouter's `models` (tried in order) and `route: "fallback"`
# (without `models`: a model OpenRouter picks); LiteLLM proxy's `fallbacks`, `context_window_fallbacks` and
# `content_policy_fallbacks` (model groups tried in turn). vLLM, SGLang, llama.cpp, TGI and Ollama act on none
# (and LiteLLM proxy's `router_settings_override`, its fallbacks where the body sets none: `ROUTER_OVERRIDE`)
_OTHERS: Final = frozenset({"models", "route", "fallbacks", "context_window_fallbacks", "content_policy_fallbacks",
                            ROUTER_OVERRIDE})  # fmt: skip
# (and those naming a server to send the call to in place of the upstream's: `ELSEWHERE_KEYS`, refused)
_ROUTING: Final = _OTHERS | ELSEWHERE_KEYS


def _plain_messages(messages: list[Any]) -> bool:
    """Whether a chat's messages are a few objects of scalars whose keys are all a message's fields (`_flat_named`), at
    most one of them a system text (most chats: a system prompt and a user's text): then nothing under them is a
    struct Go reads (`nested_named_as_fields`), no parts are run together (`join_text_parts`: one system text runs
    into nothing) and none is a file or embeddings the proxy cannot read (`unread_parts`). Those three walks, each a
    function's code to bring in after an idle spell, are left out (`benchmarks/README.md`, admission)."""
    if len(messages) > _FEW_FLAT or not _flat_named(messages, _MESSAGE_NAMED):
        return False
    systems = 0
    for message in messages:
        if message.get("role") == "system" and type(message.get("content")) is str:
            systems += 1
    return systems < 2


def read_native(operation: str, body: bytes, others: bool = True) -> Request:
    """Parse one body of llama.cpp's native endpoints (`NATIVE`) as the OpenAI ones are read: every string but the
    parameters and `NOT_DATA` scanned (`prompt`, `input_prefix`, `input_suffix`, `input_extra`'s file names and texts,
    `content`, `query`, `documents`, `messages`), token ids, prompt embeddings and a template of the request's own
    unread (`scan:truncated`), a multimodal prompt's `multimodal_data` (base64 media) skipped as an image is. `model`
    is optional: a call naming none is the `"*"` route's (`unrouted`). One naming other models that may serve it
    (`_OTHERS`: LiteLLM proxy serves `/v1/rerank` and `/rerank`, its router falling back there too) raises
    `OthersNamed`, unless `others` is False (its reading again), as `read_request` does (until 2026-12-07 these paths
    did not: review revfallback13)."""
    data = load_request_json(body)
    if not _ROUTING.isdisjoint(data):  # (one test a plain body, as `_OTHERS`' alone was)
        if not ELSEWHERE_KEYS.isdisjoint(data):
            refuse_sent_elsewhere(data)
        if not _OTHERS.isdisjoint(data) and others:
            raise OthersNamed(named_models(data, _OTHERS), functools.partial(read_native, operation, body, False))
    model = data.get("model")
    if model is None:
        model = ""
    elif type(model) is not str:
        raise InvalidRequest("'model' must be a string (or left out: the '*' route's model)", param="model")
    messages = data.get("messages")
    if operation == "apply_template" and not isinstance(messages, list):
        raise InvalidRequest("'messages' is required and must be a list", param="messages")
    texts: list[str] = []
    reprinted: list[str] = []
    whole = request_strings(_without_media(data), _RENDERED[operation], texts, reprinted)
    joined, all_joined = join_text_parts(messages, size=len(body)) if messages is not None else ((), True)
    whole = whole and all_joined
    whole = whole and not ("prompt_embeds" in data or unread_parts(messages) or own_template(data))
    whole = whole and (GRAMMARS.isdisjoint(data) or not own_grammar(data, body))
    whole = whole and not any(token_ids(data.get(key)) for key in _NATIVE_TOKENS)
    names = _NATIVE_PARAMS
    limit = "n_predict" if "n_predict" in data else "max_tokens"
    params: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = names.get(key)
        if name is not None and value is not None and (name != "max_tokens" or key == limit):
            params.append((name, _param(name, value)))
    lora = data.get("lora")
    return Request(model, _GEN_AI_OPERATION[operation], data.get("stream") is True, tuple(texts), tuple(params),
                   unscanned=not whole, version=None if lora is None else lora_version(lora),
                   joined=joined, decoded=unescaped(body, texts, reprinted), unrouted=not model)  # fmt: skip


def _without_media(data: dict[str, Any]) -> dict[str, Any]:
    """`data` less the base64 media of a multimodal prompt (`{"prompt_string": ..., "multimodal_data": [...]}`, alone or
    in a list of prompts): images and audio no text detector reads, skipped as a chat's `image_url` is. `data` itself
    when it has none (most bodies)."""
    prompt = data.get("prompt")
    if type(prompt) is dict and "multimodal_data" in prompt:
        return {**data, "prompt": {k: v for k, v in prompt.items() if k != "multimodal_data"}}
    if type(prompt) is list and any(type(item) is dict and "multimodal_data" in item for item in prompt):
        prompts = [
            {k: v for k, v in item.items() if k != "multimodal_data"} if type(item) is dict else item for item in prompt
        ]
        return {**data, "prompt": prompts}
    return data


def lora_version(lora: Any) -> str:
    """llama.cpp's per-request `lora` (`[{"id": 0, "scale": 0.5}]`: the adapters it applies to this request, every
    one not named at 0; an empty list names none, and llama-server applies its own scales) as the call's model
    version, `lora:0=0.5,1=1`, which the llama.cpp model list's `ServedModels` reads into the weights that serve it;
    `lora:none` for one naming no adapter llama.cpp knows, `lora:?` for one it refuses (no checkpoint)."""
    if type(lora) is not list:
        return _LORA + "?"
    scales: dict[int, float] = {}
    for item in lora:
        # read as llama.cpp's json_value reads them: an id or a scale missing or not a number is its default, -1 (no
        # adapter: ignored, or the request refused by older servers) and 0
        ident = _lora_id(item.get("id")) if type(item) is dict else -1
        if ident >= 0:
            scales[ident] = _scale(item.get("scale"))
    if lora and not scales:
        return _LORA + _NONE  # every adapter at 0
    return _LORA + ",".join(f"{ident}={scales[ident]!r}" for ident in sorted(scales))


def _lora_id(value: Any) -> int:
    """A LoRA adapter's id as llama.cpp reads it (nlohmann json's `get<int>`): a JSON integer cut to its low 32 bits
    (4294967296 is 0), a number with a fraction truncated (0.0 and 0.9 are 0), `true` 1 and `false` 0; anything else,
    or a number no int holds (UB in C++: x86 makes it INT_MIN), -1, no adapter."""
    if type(value) is bool:
        return 1 if value else 0
    if type(value) is int:
        if -(1 << 63) <= value < 1 << 64:  # (JSON's int64 or uint64; a wider one is read as a double)
            return ((value + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
        return -1
    if type(value) is float and math.isfinite(value) and -2147483649.0 < value < 2147483648.0:
        return int(value)
    return -1


def _scale(value: Any) -> float:
    """A LoRA scale as llama.cpp reads it (nlohmann json's `get<float>`): a JSON number, `true` 1 and `false` 0, else
    0."""
    if type(value) is bool:
        return 1.0 if value else 0.0
    if type(value) is int or type(value) is float:
        scale = float(value)
        return scale if math.isfinite(scale) else 0.0
    return 0.0


def _token_limit(operation: str, data: dict[str, Any]) -> str:
    """The field whose value a server generates up to (`gen_ai.request.max_tokens`): a chat's
    `max_completion_tokens` when set (vLLM and SGLang read `max_completion_tokens or max_tokens`), else
    `max_tokens` (a completions request has no other), wherever each stands in the body; a Responses request's
    `max_output_tokens` (its one field of the kind)."""
    if operation == "responses":
        return "max_output_tokens"
    return "max_completion_tokens" if operation == "chat" and data.get("max_completion_tokens") else "max_tokens"


def _references(items: Any) -> bool:
    """Whether a Responses input names a stored item by id (`{"type": "item_reference", "id": ...}`; the API's
    item reference may leave out its `type`, `{"id": ...}`: an id with nothing of its own to read), or a file the
    server stores or fetches in a tool call's output given as parts (`unread_output`), or holds a compaction item, an
    earlier conversation encrypted (`_COMPACTION`)."""
    return type(items) is list and any(type(item) is dict and _reference(item) for item in items)


def _tools_read_unseen(tools: Any, choice: Any) -> bool:
    """Whether a Responses call's tools read its model content the proxy never sees: a `file_search` over stored vector
    stores (`vector_store_ids`: files the server stores, named by id, as an `input_file`'s `file_id` is), a
    `code_interpreter` whose container holds files (its `file_ids`, or a container named by id, which keeps the files
    of earlier calls), unless the tool choice calls none; and an `mcp` tool (a `server_url`, a `connector_id`: the
    server lists the tools there into the model's context, and calls them, their results read to the model; vLLM's
    tool server too, by `server_label`), whatever the choice, as the listing comes first; a `shell` whose hosted
    container holds files or skills (`_shell_reads_unseen`). Before 2026-12-07 their text alone was read, and such a
    call went to the model unlabelled."""
    if type(tools) is not list:
        return False
    for tool in tools:
        kind = tool.get("type") if type(tool) is dict else None
        if type(kind) is not str or kind not in _TOOLS_READING:
            continue
        if kind == "mcp":
            return True
        if kind == "shell":  # (OpenAI's hosted shell: a container as code_interpreter's, or skills)
            if _shell_reads_unseen(tool.get("environment"), choice):
                return True
            continue
        if choice == "none":
            continue
        if kind == "file_search":
            if tool.get("vector_store_ids"):
                return True
            continue
        container = tool.get("container")
        if (type(container) is str and container) or (type(container) is dict and container.get("file_ids")):
            return True
    return False


# the Responses API's tools that read the model content stored or fetched by the server (`_tools_read_unseen`)
_TOOLS_READING: Final = frozenset({"file_search", "code_interpreter", "mcp", "shell"})


def _shell_reads_unseen(environment: Any, choice: Any) -> bool:
    """Whether a Responses `shell` tool's environment reads the model content the proxy never sees: a hosted container
    holding files (`container_auto`'s `file_ids`, or one named by id, `container_reference`), as a `code_interpreter`'s,
    unless the tool choice calls none; or skills there (`skills`: one the server stores, named by id, a
    `skill_reference`, or a ZIP sent inline), whose instructions the server lists into the model's context, whatever
    the choice. A `local` environment's commands run on the caller's side, their results read in a later call."""
    if type(environment) is not dict:
        return False
    kind = environment.get("type")
    if kind == "local":
        return False
    if environment.get("skills"):
        return True
    return choice != "none" and (kind == "container_reference" or bool(environment.get("file_ids")))


def _input_tools_unread(items: list[Any], choice: Any) -> bool:
    """Whether a Responses input item gives the model tools (`additional_tools`, a developer's tools made available
    from that item on; `tool_search_output`, the tools a tool search loaded) that read it content the proxy never sees
    (`_tools_read_unseen`), or whose schemas the server holds a call's arguments to hold a `pattern` or a grammar
    (`schema_program`, unless the tool choice calls none), as the request's own `tools` are read. Before review
    revfields12 such tools were read as their text alone, and the call went to the model unlabelled."""
    for item in items:
        kind = item.get("type") if type(item) is dict else None
        if kind != "additional_tools" and kind != "tool_search_output":  # (a hostile `type` may be a list: compared)
            continue
        tools = item.get("tools")
        if _tools_read_unseen(tools, choice) or (choice != "none" and schema_program(tools)):
            return True
    return False


# a Responses input's `configuration_update` item (`ResponseConfigurationUpdateItemParamParam`: "an update to the
# conversation's response configuration", each setting "in effect until a later update replaces it"): its `text.format`
# is the JSON schema OpenAI holds the later responses to, as the call's own `text.format` (`_configured_unread`); read
# whole as that is, keys and numbers too (`_WHOLE_KEYS`). Before 2026-12-07 read as content, its strings alone, and a
# `pattern` in it was text (helper fields17)
_CONFIGURATION: Final = "configuration_update"
_CONFIGURED: Final = b"configuration_update"


def _configured_unread(items: list[Any]) -> bool:
    """Whether a Responses input's `configuration_update` item sets a text format whose schema holds a `pattern` (or a
    grammar, `schema_program`), a program that writes text standing nowhere in it, which OpenAI holds the responses
    after it to: `scan:truncated`, as the call's own `text.format` holding one is (`own_grammar`)."""
    for item in items:
        if type(item) is dict and item.get("type") == _CONFIGURATION and schema_program(item.get("text")):
            return True
    return False


def _stored_audio(messages: Any) -> bool:
    """Whether a chat's assistant message names a previous audio reply by id (`"audio": {"id": "audio_..."}`): OpenAI
    puts that reply's audio, which it stores, into the model's context, content the proxy never reads, as a stored
    reply named by `previous_response_id` that it did not see is (before 2026-12-07 the id was read as text alone, the
    call unlabelled). Looked for only in a body spelling `"audio"` (or an escape): a message holding it is never a
    plain one (`_plain_messages`)."""
    for message in messages if type(messages) is list else ():
        audio = message.get("audio") if type(message) is dict else None
        if type(audio) is dict and audio.get("id") is not None:
            return True
    return False


def _stored_prompt(prompt: Any) -> bool:
    """Whether a Responses call names a prompt template the server stores (`{"id": "pmpt_...", "version", "variables"}`:
    OpenAI's reusable prompts), whose instructions and messages the server puts before the input."""
    return type(prompt) is dict and prompt.get("id") is not None


def _reference(item: dict[str, Any]) -> bool:
    kind = item.get("type")
    if kind is None:
        return "id" in item and "content" not in item
    if kind == "item_reference" or kind == _COMPACTION:
        return True
    return type(kind) is str and kind in _TOOL_OUTPUTS and unread_output(item.get("output"))  # (a list is unhashable)


# the Responses input items whose `output` may be given as parts, a file among them (`unread_output`)
_TOOL_OUTPUTS: Final = frozenset({"function_call_output", "custom_tool_call_output"})
# a Responses input's compaction item (`/v1/responses/compact`'s output): the earlier conversation summarised, encrypted
# (`encrypted_content`), which OpenAI decrypts into the model's context: content the proxy cannot read, as a stored
# reply it did not see is (before 2026-12-07 its ciphertext, framing, was skipped, the call unlabelled)
_COMPACTION: Final = "compaction"


def _state(data: dict[str, Any]) -> tuple[str | None, bool]:
    """A Responses API call's server-side state: the stored reply it continues (`previous_response_id`,
    whose conversation the server puts before this input), and whether its own reply is stored (`store`,
    on unless false)."""
    previous = data.get("previous_response_id")
    if previous is not None and (type(previous) is not str or not previous):
        raise InvalidRequest("'previous_response_id' must be a response id (a string)", param="previous_response_id")
    return previous, data.get("store") is not False


_STATE_CARRIER: Final = "vllm:1:"  # vLLM's state carrier: `vllm:1:<base64 of the messages' JSON>:<signature>`


def _previous_response(previous: Any, texts: list[str], reprinted: list[str]) -> tuple[str | None, bool]:
    """A Responses call that carries its previous response whole (vLLM's `previous_response`, multi-turn without a
    store): vLLM puts before its input the conversation that response's id names in its store (`msg_store`), or the
    one its state carrier holds (a reasoning item's `encrypted_content`, `vllm:1:<base64 of the messages'
    JSON>:<HMAC>`: signed, not encrypted). The id is what the call builds on, as `previous_response_id`'s (its labels
    carried, or unread); each carrier's messages are read into `texts` as input. False when some of it cannot be
    read (no id to name it, a carrier that does not decode, past `MAX_STRINGS`). Their tool calls' numbers as servers
    print them go to `reprinted` (`user_strings`)."""
    if type(previous) is not dict:
        return None, False
    ident = previous.get("id")
    whole = type(ident) is str and bool(ident)
    stack: list[Any] = [previous]
    while stack:
        item = stack.pop()
        if type(item) is dict:
            carrier = item.get("encrypted_content")
            if type(carrier) is str and carrier.startswith(_STATE_CARRIER):
                whole = _carried_messages(carrier, texts, reprinted) and whole
            stack.extend(value for value in item.values() if type(value) is dict or type(value) is list)
        elif type(item) is list:
            stack.extend(value for value in item if type(value) is dict or type(value) is list)
    return (ident if type(ident) is str and ident else None), whole


def _carried_messages(carrier: str, texts: list[str], reprinted: list[str]) -> bool:
    """The strings of the messages a vLLM state carrier holds, as vLLM reads it (`deserialize_state`: the base64 decoded
    leniently, then Python's `json`); False when it does not decode so (vLLM then refuses the call)."""
    parts = carrier.split(":", 3)
    if len(parts) != 4:
        return False
    try:
        messages = json.loads(binascii.a2b_base64(parts[2]))
    except (ValueError, RecursionError):  # (binascii.Error and JSONDecodeError are ValueErrors)
        return False
    return user_strings(messages, texts, reprinted)


_MANY_EMBEDDINGS: Final = many_values_pattern(rb'"data"')  # an embeddings reply's vectors (`large_json`)
_DATA_NAMED: Final = (b'"data"',)


class ReplyObserver(SseObserver):
    """Fills an Outcome from a chat/completion/embedding reply, whole (`body`) or streamed (`chunk`).

    Streamed choices (`n` > 1) come interleaved, and are read in index order all the same, each as it
    comes in its turn: choice 0's first, the next choice's once the one before it finished (its
    `finish_reason` came; its text that waited is read then). Text of a choice whose turn has not come
    waits (run together, as UTF-8), at most the scan limit's worth of characters (a choice past the first
    `_FEW` counted `_WAITING` more): past that, what waits is read then, in index order, and the last
    choice read is the one whose turn it is. Text of a choice before the one whose turn it is (no server
    streams so) is read after it, and the output is labelled `scan:truncated`."""

    # `_reasons` before the open event gave some (`SseObserver._given`), restored where no blank line ends it; a class
    # default (no work a call)
    _reasons_before: dict[int, str] | None = None
    # the `system_fingerprint` recorded (`_meta`), and before the open event changed it (`_OWN`), restored where the SDK
    # never gives that event (`_unseen`: no blank line ended it, or past `[DONE]`); class defaults (no work a call)
    _fingerprint: str | None = None
    _fingerprint_before: str | None = None

    def __init__(self, outcome: Outcome, detectors: Detectors, capture: bool, embeddings: bool = False) -> None:
        super().__init__(outcome, detectors, capture)
        self.json_every_event = True  # (the openai SDK: `sse.json()` for each event but `[DONE]`)
        self._embeddings = embeddings  # an embeddings reply's `data` (vectors, no text) is its output
        self._arrays = embeddings  # llama.cpp's native `/embeddings` answers with a JSON array of them
        self._reasons: dict[int, str] = {}  # choice index -> its finish reason (the last given)
        self._turn = 0  # the choice whose text is read as it comes
        self._choice = 0  # the same once some of its text was read; -1 before
        self._finished = False  # its finish reason came
        self._later: dict[int, bytearray] = {}  # choice index -> its text waiting for its turn (UTF-8)
        self._room = detectors.max_chars  # what may wait

    def large_json(self, data: bytes, whole: bool) -> Any:
        """An embeddings reply of over `MAX_STRINGS` vectors read without those past the first `MAX_STRINGS` + 1
        (`oip.many_values`), with its other members (its `model`, `usage` after them): its `data` is not read (vectors,
        no text), so its record is the same; orjson built a million tiny ones (16 MiB) in one turn, 0.4-0.5 s. One
        kept as it passed is so read only where its rest is whole JSON (`ends`: so one cut short is told so, as before);
        one in a charset is read whole, in it. One whose vectors past those close a bracket with a brace (`NO_JSON`) is
        none, unparsed, as its client's parse fails (`no_json`: 12 MiB were parsed whole to be told, 0.5-1 s, until
        2026-12-06)."""
        if self._embeddings and whole and self._text.charset is None:
            read, cut, closed = many_values(data, _MANY_EMBEDDINGS, _DATA_NAMED, self._kept_size > 0)
            if closed == UNMATCHED:  # (kept: parsed whole)
                reply = whole_json(data, cut, self._text)
                return self.no_json(whole) if reply is None else reply
            if closed == NO_JSON:
                return self.no_json(whole)
            if read is not data:
                reply = reply_json(read, self._text, True)
                if type(reply) is dict:
                    if unread_long_integer(data, cut, closed):
                        client_raises(self.outcome)
                    return reply
        return reply_json(data, self._text, whole)

    def ends_with_event(self) -> bool:
        """Its streams end with `data: [DONE]` (llama.cpp's native stream: an event whose `stop` is true)."""
        return True

    def array(self, reply: list[Any]) -> None:
        """llama.cpp's native embeddings reply, `[{"index": 0, "embedding": [...]}]`: vectors, no text; any strings
        in it are scanned, as an unknown reply's are."""
        self._text.aside_strings(("embeddings",), reply)

    def whole(self, reply: dict[str, Any]) -> None:
        self._meta(reply)
        choices = reply.get("choices")
        if isinstance(choices, list):
            # in index order (one choice, as most replies hold, needs no sort)
            ordered = choices if len(choices) == 1 else sorted((c for c in choices if isinstance(c, dict)), key=_index)
            for choice in ordered:
                if not isinstance(choice, dict):
                    continue
                index = _index(choice)
                message = choice.get("message")
                if isinstance(message, dict):
                    text = message.get("content")
                    if _writes_beside(message):
                        self._beside(index, message)
                else:
                    text = choice.get("text")
                if isinstance(text, str):
                    self._text.add_output(text)
                else:
                    if text is not None:  # content parts (`[{"type": "text", "text": ...}]`): their strings
                        self._text.aside_strings((index, "content"), text)
                    if index == 0:  # as a stream ends choice 0's piece
                        self._text.end_piece()
                if choice.get("logprobs"):  # the tokens the model weighed beside the ones it wrote
                    self.alternatives(("logprobs", index), choice["logprobs"])
                reason = choice.get("finish_reason")
                if type(reason) is str and len(self.outcome.finish_reasons) < _MOST_CHOICES:  # (one a choice)
                    self.outcome.finish_reasons += (reason,)
        elif not self._native(reply, False) and not (self._embeddings and isinstance(reply.get("data"), list)):
            self._text.add_unknown(reply)  # none of the fields the output is in

    def erred(self, event: dict[str, Any]) -> bool:
        return bool(event.get("error")) or (
            not isinstance(event.get("choices"), list) and event.get("object") == "error"
        )

    def event(self, event: dict[str, Any]) -> None:
        self._meta(event)
        choices = event.get("choices")
        if not isinstance(choices, list):  # llama.cpp's own, or none of the fields the output is in (an error, ...)
            if self._native(event, True):
                return
            # vLLM's, TGI's, OpenAI's errors (a truthy `error`, as the SDK reads it: `keyed`, none to it in a `thread.*`
            # event; vLLM's `object` `error` is the upstream's error whatever its name)
            if self.erred(event):
                self.in_band_error(event.get("object") != "error")
            self.unknown(event)
            return
        if event.get("error"):  # beside its choices (OpenRouter's mid-stream error): the openai SDK raises at it too
            self.in_band_error(True)
            self._text.aside_strings(("error",), event["error"], apart=True)  # (each error whole)
        for choice in choices:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if type(delta) is not dict:  # a server that streams each choice's `message` whole, as a reply holds it
                delta = choice.get("message")
            if type(delta) is dict:
                text = delta.get("content")
                if (text is None or len(delta) != 1) and not _BESIDE.isdisjoint(delta):  # (content only: the hot path)
                    self._beside(_index(choice), delta)
                    if not self.outcome.first_token_ns and _writes_beside(delta):  # (reasoning first, a tool call)
                        self.first_chunk()
            else:
                text = choice.get("text")
            if text is not None and type(text) is not str:  # content parts: their strings
                self._text.aside_strings((_index(choice), "content"), text)
            elif isinstance(text, str) and text:
                if not self.outcome.first_token_ns:
                    self.outcome.first_token_ns = self.outcome.now_ns()
                index = _index(choice)
                if index == self._choice:
                    self._text.add(text)
                else:
                    self._wait(index, text)
            if choice.get("logprobs"):  # (a dict lookup a chunk; most streams ask for none)
                self.alternatives(("logprobs", _index(choice)), choice["logprobs"])
            reason = choice.get("finish_reason")
            if reason is not None:
                self._reason(_index(choice), reason)

    def _reason(self, index: int, reason: Any) -> None:
        """A streamed choice's finish reason: one a choice, in index order at `done`, for `_MOST_CHOICES`
        choices at most (a stream may repeat it in every event, or name a million choices; a whole reply
        names each choice once, and its first `_MOST_CHOICES` are kept)."""
        reasons = self._reasons
        if type(reason) is str and (index in reasons or len(reasons) < _MOST_CHOICES):
            self._given()
            reasons[index] = reason
            if len(reasons) == 1:  # (most replies: recorded as it comes)
                self.outcome.finish_reasons = (reason,)
        if index == self._turn and type(reason) is str and reason and not self._finished:
            self._finished = True
            if self._later:
                self._advance()

    def _given(self) -> bool:
        if not super()._given():
            return False
        # (the choices' reasons too, which `done` records when more than one: at the event's first `_given`, which may be
        # its usage's before its finish reason's)
        self._reasons_before = dict(self._reasons)
        return True

    def _unseen(self, ending: int) -> None:
        super()._unseen(ending)
        if ending & _GIVEN and self._reasons_before is not None:
            self._reasons = self._reasons_before
            self._reasons_before = None
        if ending & _OWN:
            before = self._fingerprint = self._fingerprint_before
            if before is None:
                self.outcome.extra.pop(_FINGERPRINT, None)
            else:
                self.outcome.extra[_FINGERPRINT] = before

    def _wait(self, index: int, text: str) -> None:
        """A piece of the text of a choice other than the one read as it comes: read now if it is this
        choice's turn (the choices before it finished), else kept for its turn."""
        if index > self._turn and self._finished:
            self._advance()
        if index == self._turn:
            if index != self._choice:  # its first text: the text read before it is over
                self._text.end_piece()
                self._choice = index
            self._text.add(text)
            return
        if index < self._turn:  # after text of a choice after it: read out of its order
            self._text.unread()
        later = self._later
        waiting = later.get(index)
        if waiting is None:
            waiting = later[index] = bytearray()
        waiting += text.encode("utf-8", "surrogatepass")
        self._room -= len(text)
        if self._room < _WAITING * max(0, len(later) - _FEW):
            self._read_later()

    def _advance(self) -> None:
        """The choice whose turn it is finished: the next one's turn comes, and its text that waited is
        read (and so on, while the choice whose turn comes had finished too)."""
        while self._finished:
            turn = self._turn = self._turn + 1
            self._finished = bool(self._reasons.get(turn))
            waiting = self._later.pop(turn, None)
            if waiting is None:
                self._choice = -1  # none of its text read yet
            else:
                text = waiting.decode("utf-8", "surrogatepass")
                self._room += len(text)
                self._text.end_piece()
                self._text.add(text)
                self._choice = turn

    def _read_later(self) -> None:
        """What waits is past its room: the text read as it came is over, what waits is read, each choice's
        in index order, and the last choice read is the one whose turn it is."""
        last = self._turn = self._choice = self.read_waiting(self._later)
        self._finished = bool(self._reasons.get(last))
        self._later = {}
        self._room = self.detectors.max_chars

    def _beside(self, index: int, message: dict[str, Any]) -> None:
        """What a choice's message (or a streamed delta of it) holds beside its content: the model's
        reasoning, a refusal, tool calls' names and arguments, a spoken reply's transcript (`OutputText.aside`, each run together
        across deltas: a call's by its `index`)."""
        for key, value in message.items():  # (a delta holds a key or two)
            if key not in _BESIDE:
                continue
            if type(value) is str:
                self._text.aside((index, key), value)
            elif key == "audio":  # the model's spoken reply: its transcript (its `data` is the audio, base64)
                if type(value) is dict and type(transcript := value.get("transcript")) is str:
                    self._text.aside((index, key), transcript)
            elif key == "function_call":
                self._call(index, key, value)
            elif key == "annotations":  # a web search's citations: their titles and links, beside the content
                self._text.aside_strings((index, key), cited_strings(value), apart=True)
            elif key == "reasoning_details":
                self._details(index, message, value)
            elif key == "tool_calls" and (type(value) is list or type(value) is dict):
                # TGI streams each delta's call as an object, not a list of them
                for position, call in enumerate(value if type(value) is list else (value,)):
                    if type(call) is dict:
                        at = call.get("index")  # a streamed call's; a whole reply's calls are in order
                        # a function call's `function`; a custom tool call's `custom` (its name and `input`)
                        function = call.get("function")
                        if type(function) is not dict:
                            function = call.get("custom")
                        self._call(index, at if type(at) is int else position, function)

    def _details(self, index: int, message: dict[str, Any], details: Any) -> None:
        """OpenRouter's `reasoning_details` (`[{"type": "reasoning.text", "text": ...}, {"type": "reasoning.summary",
        "summary": ...}, {"type": "reasoning.encrypted", "data": ...}]`, whole or streamed, a detail's pieces by its
        `index`): the text and summaries, beside the content; not the encrypted data (base64). OpenRouter sends the
        same reasoning as `reasoning` in the same message or delta: read there, not again here; a server that sends
        the details alone has them read."""
        for key in ("reasoning", "reasoning_content"):
            if type(message.get(key)) is str and message[key]:
                return
        for position, detail in enumerate(details if type(details) is list else (details,)):
            if type(detail) is dict:
                at = detail.get("index")
                at = at if type(at) is int else position
                for field in ("text", "summary"):
                    value = detail.get(field)
                    if type(value) is str:
                        self._text.aside((index, "reasoning_details", at, field), value)

    def _call(self, index: int, at: Any, function: Any) -> None:
        if type(function) is dict:
            for key in ("name", "arguments", "input"):  # a function call's; a custom tool call's `input`
                value = function.get(key)
                if type(value) is str:
                    self._text.aside((index, at, key), value)
                elif value is not None:  # arguments as a JSON object (TGI's), not a string of it: read as its JSON
                    text = self._text.json_text(value)  # (an integer past 64 bits with its digits)
                    if text is None:  # nested deeper than can be written: not read
                        self._text.unread()
                    else:
                        self._text.aside((index, at, key), text)

    def _meta(self, reply: dict[str, Any]) -> None:
        self.identify(reply)
        fingerprint = reply.get("system_fingerprint")
        # (each chunk of a chat stream names it: recorded where it changes, held till its event's blank line as the model
        # is, `_OWN`; one after `[DONE]`, or in an event the body ended in before its blank line, was recorded until
        # 2026-12-05: helper streams2)
        if isinstance(fingerprint, str) and fingerprint != self._fingerprint:
            if self._in_stream and not self._ending & _OWN:  # (the event's first change: what it was before)
                self._ending |= _OWN
                self._fingerprint_before = self._fingerprint
            self._fingerprint = self.outcome.extra[_FINGERPRINT] = fingerprint
        self.usage(reply.get("usage"), "prompt_tokens", "completion_tokens")

    def _native(self, reply: dict[str, Any], streamed: bool) -> bool:
        """llama.cpp's own completion reply or event (`/completions`, which the openai adapter reads, is its native
        `/completion`): `content` is the text the model wrote, `stop` whether it ended, `tokens_evaluated` and
        `tokens_predicted` the usage, `completion_probabilities` (asked for with `n_probs`) the alternatives the model
        weighed at each token (`alternatives`); its `prompt` echoes the input (not output). False for any other shape."""
        text = reply.get("content")
        if type(text) is not str or type(reply.get("stop")) is not bool or self._embeddings:
            return False
        if streamed:
            if text:
                self.first_chunk()
            self._text.add(text)
            if reply["stop"]:
                self._given()
                self.stopped = True
        else:
            self._text.add_output(text)
        probabilities = reply.get("completion_probabilities")  # (`n_probs`): the tokens the model weighed
        if probabilities:
            self.alternatives(("completion_probabilities",), probabilities)
        self.usage(reply, "tokens_evaluated", "tokens_predicted")
        return True

    def done(self) -> None:
        if len(self._reasons) > 1:
            self.outcome.finish_reasons = tuple(self._reasons[index] for index in sorted(self._reasons))
        if self._later:  # what still waits, in index order
            self.read_waiting(self._later)
        if self._later or self.outcome.first_token_ns:
            self._text.end_piece()


# streamed output: the deltas of an item's text (a whole reply's content parts: a message's text, a reasoning
# item's) and of what a tool call holds (`_ITEM_TEXTS`); and the deltas of what the model wrote beside them
# (`OutputText.aside`)
# what a Responses event that is the upstream's error holds, past where the reply is read (`late_words`)
_LATE_WORDS: Final = (b"error", b"response.failed")
_NO_PART: Final = object()  # `ResponsesObserver._part` before a delta of the open item came (no `content_index` is it)
_ITEM_DELTAS = (
    "response.output_text.delta",
    "response.function_call_arguments.delta",
    "response.reasoning_text.delta",
    "response.custom_tool_call_input.delta",
    "response.mcp_call_arguments.delta",
    "response.code_interpreter_call_code.delta",
)
# what a whole reply's output item holds that the model wrote, as the deltas above stream it: a function or MCP
# call's arguments, a custom tool call's input, a code interpreter call's code
_ITEM_TEXTS = ("arguments", "input", "code")
# output items whose strings are not read when none of the above is in them: an image generation's result (base64),
# a reasoning item's encrypted content
_ITEMS_UNREAD = frozenset({"image_generation_call", "reasoning"})
# an item's own keys that name it or the call it answers: the server's, not what the model wrote (no detector need
# read them; OpenAI's, a prefix and 48 hex digits, are no card since digits inside a word are none)
_ITEM_IDS = frozenset({"id", "call_id", "approval_request_id"})
# (a spoken reply's transcript too: `response.audio.transcript.delta`; not `response.audio.delta`, the audio in base64)
_ASIDE_DELTAS = ("response.reasoning", "response.refusal", "response.audio.transcript")
# the events that end what the deltas above stream, each with it whole (the field that holds it): read when no delta
# carried it (a server that streams an item's text in these alone), not again when one did
_DONE_TEXTS: Final = {
    "response.output_text.done": "text",
    "response.reasoning_text.done": "text",
    "response.function_call_arguments.done": "arguments",
    "response.custom_tool_call_input.done": "input",
    "response.mcp_call_arguments.done": "arguments",
    "response.code_interpreter_call_code.done": "code",
    "response.content_part.done": "part",  # {"text": ...} or {"refusal": ...}
    "response.refusal.done": "refusal",
    "response.reasoning_summary_text.done": "text",
    "response.reasoning_summary_part.done": "part",  # {"text": ...}
}


class ResponsesObserver(SseObserver):
    """The Responses API (`/v1/responses`, vLLM and llama.cpp serve it): output items, each a message's
    text or a function call's arguments; streamed as typed events ending in `response.completed`.

    Items stream one after another: the text of the open item (the one streaming) is read as it comes.
    Text of a later item that comes while it is open (its `response.output_item.done` not yet come) waits,
    run together as UTF-8, and once it is done the next item that waited is read and is the open one (and
    so on, while that one was done too). What waits is at most the scan limit's worth of characters (an
    item past the first `_FEW` that wait counted `_WAITING` more): past that, it is read then, in item
    order, and the last item read is the open one. Text of an item before one already read (no server
    streams so) is read after it, and the output is labelled `scan:truncated`: a value split across it may
    be missed."""

    def __init__(self, outcome: Outcome, detectors: Detectors, capture: bool) -> None:
        super().__init__(outcome, detectors, capture)
        self.json_every_event = True  # (the openai SDK: `sse.json()` for each event but `[DONE]`)
        self._item: int | None = None  # the output item whose text is read as it comes
        self._closed = False  # its response.output_item.done came
        self._later: dict[int, bytearray] = {}  # output_index -> its text waiting for its turn (UTF-8)
        self._order: list[int] = []  # the same indices, a heap: the next to read first
        self._finished: set[int] = set()  # those of them whose response.output_item.done came
        self._room = detectors.max_chars  # what may wait
        self._texted: set[int] = set()  # the items whose text streamed (or was read whole: `_unstreamed`)
        self._summarized: set[int] | None = None  # the reasoning items whose summary streamed (None: none did)
        self._cited: set[tuple[int, int]] | None = None  # the (item, part) whose citations were read (None: none)
        # the (item, part) whose text was read from the events that end it (`_done`, None: none)
        self._done_parts: set[tuple[int, int]] | None = None
        # the (item, part) whose text deltas carried (None: none); the part of the open item whose deltas are read as
        # they come (its `content_index`: a delta of another part is read through `_part_delta`, which notes it)
        self._streamed: set[tuple[int, int]] | None = None
        self._part: Any = _NO_PART
        self._whole_items: set[int] | None = None  # the items read whole (`_unstreamed`: none of their text streamed)
        # a server may leave the part's `content_index` out of some events (its deltas, or its `.done` events): such an
        # event is of the item's part now open, which the events that carry the index tell and the events that end a
        # part move past (`_part_of`; None: no item's was told yet); and the text of the `.done` event read last, with
        # its item, which an unnumbered one repeating it ends again (`response.content_part.done` after its
        # `response.output_text.done`)
        self._open_parts: dict[int, int] | None = None
        self._last_done: str | None = None
        self._last_done_item = -1

    def ends_with_event(self) -> bool:
        """Its streams end with `response.completed` (`response.incomplete`, `response.failed`)."""
        return True

    def _ends_in(self, data: bytes) -> bool:
        """`response.completed`, `response.incomplete` and `response.failed` end a reply (`event`), their types perhaps
        written with `\\u` escapes; `[DONE]` too."""
        return (
            b"response.completed" in data
            or b"response.incomplete" in data
            or b"response.failed" in data
            or b"\\u" in data
            or b"[DONE]" in data
        )

    def whole(self, reply: dict[str, Any]) -> None:
        self._response(reply)
        output = reply.get("output")
        if not isinstance(output, list):  # none of the fields the output is in
            self._text.add_unknown(reply)
            return
        for at, item in enumerate(output):
            pieces = self._item_texts(at, item) if isinstance(item, dict) else []
            if any(pieces):  # an item without text (a reasoning item's summary only) is no piece, as streamed
                for piece in pieces:
                    self._text.add(piece)
                self._text.end_piece()

    def _item_texts(self, at: int, item: dict[str, Any], summary: bool = True) -> list[str]:
        """An output item's text (a message's, a reasoning item's; a tool call's arguments, a custom tool call's
        input, code it runs), and what is beside it read so (`OutputText.aside`: its name, a refusal, a
        reasoning summary). An item in which none of that is (a web search's query, a shell call's command, an
        item type or a shape the adapter does not know): its strings, beside, as a reply of unknown shape's are
        (`OutputText.add_unknown`), but for an image generation's base64 result and a reasoning item's
        encrypted content."""
        pieces: list[str] = []
        refused = False
        content = item.get("content")
        if isinstance(content, str):  # (the API's are parts; a server's own may be the text)
            pieces.append(content)
        for part_at, part in enumerate(content if isinstance(content, list) else ()):
            if isinstance(part, dict):
                if isinstance(part.get("text"), str):  # a message's text, a reasoning item's
                    pieces.append(part["text"])
                    if part.get("logprobs"):  # the tokens the model weighed beside the ones it wrote
                        self.alternatives(("logprobs", at, part_at), part["logprobs"])
                    if part.get("annotations"):  # its citations, as a stream's annotation.added events hold them
                        self._cite(at, part_at, part["annotations"])
                elif isinstance(part.get("refusal"), str):  # read beside (unless it streamed): not its item's strings
                    refused = True
                    if not self._text.has_aside(("response.refusal", at, part_at)):
                        self._text.aside(("response.refusal", at, part_at), part["refusal"])
        for key in _ITEM_TEXTS:  # a tool call's arguments, a custom tool call's input, code it runs
            if isinstance(item.get(key), str):
                pieces.append(item[key])
        read = bool(pieces) or refused
        if isinstance(item.get("name"), str):
            self._text.aside(("name", at), item["name"])
            read = True
        parts = item.get("summary") if summary else None  # a reasoning item's (`summary`: unless it streamed)
        for part_at, part in enumerate(parts if isinstance(parts, list) else ()):
            summary_key = ("response.reasoning_summary_text", at, part_at)
            if isinstance(part, dict) and isinstance(part.get("text"), str) and not self._text.has_aside(summary_key):
                self._text.aside(summary_key, part["text"])  # (unless its `.done` events carried it)
        if not read and item.get("type") not in _ITEMS_UNREAD:
            self._text.aside_strings(("item", at), {key: value for key, value in item.items() if key not in _ITEM_IDS})
        return pieces

    def erred(self, event: dict[str, Any]) -> bool:
        """The API's `error` event, `response.failed`, or any event holding a truthy `error` (`event`)."""
        return event.get("type") in ("error", "response.failed") or bool(event.get("error"))

    def late_words(self) -> tuple[bytes, ...]:
        return _LATE_WORDS  # (`response.failed` holds no `error`)

    def event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if event.get("error"):
            # a truthy `error`, in any event (a server's chat-style `{"error": {...}}`): the openai SDK raises at it, as
            # in a chat stream (but in a `thread.*` event: `keyed`); until 2026-12-05 recorded a success (helper revssenormal)
            self.in_band_error(True)
            if isinstance(kind, str) and kind.startswith("response."):  # (read beside; the others', by `unknown`)
                self._text.aside_strings(("error",), event["error"], apart=True)
        if kind in _ITEM_DELTAS:
            delta = event.get("delta")
            if isinstance(delta, str) and delta:
                if not self.outcome.first_token_ns:
                    self.outcome.first_token_ns = self.outcome.now_ns()
                index = event.get("output_index")
                if not isinstance(index, int):
                    index = 0
                # (a stream's every delta but its parts' first; `is`: the small ints JSON parsers give are one object
                # each, and a part told otherwise is read through `_part_delta`, only slower)
                if index == self._item and event.get("content_index") is self._part:
                    self._text.add(delta)
                else:
                    self._part_delta(index, event.get("content_index"), delta)
            elif delta is not None and type(delta) is not str:  # not the API's string: its strings, beside
                self._object_delta(kind, event, delta)
            if event.get("logprobs"):  # an output text's, the tokens of its delta (OpenAI sends `[]` without)
                at = event.get("content_index")
                self.alternatives(("logprobs", _whole(event.get("output_index")), _whole(at)), event["logprobs"])
        elif isinstance(kind, str) and kind.endswith(".delta") and kind.startswith(_ASIDE_DELTAS):
            delta = event.get("delta")
            if isinstance(delta, str):  # a reasoning summary's, a refusal's, a transcript's: by item and part
                part = event.get("summary_index", event.get("content_index"))
                at = _whole(event.get("output_index"))
                self._text.aside((kind[:-6], at, _whole(part)), delta)
                if kind == "response.reasoning_summary_text.delta":  # not read again when its item comes whole
                    if self._summarized is None:
                        self._summarized = set()
                    self._summarized.add(at)
                if delta:
                    self.first_chunk()
            elif delta is not None:  # an object (the API's first reasoning events: `delta` an object of text fields)
                self._object_delta(kind, event, delta)
        elif isinstance(kind, str) and kind.startswith("response."):
            response = event.get("response")
            if isinstance(response, dict):
                self._response(response, True)
            if kind in ("response.completed", "response.incomplete", "response.failed"):
                if isinstance(response, dict) and type(response.get("output")) is list:
                    for at, item in enumerate(response["output"]):
                        self._unstreamed(at, item)
                if kind == "response.failed":  # the upstream's failure, sent in the stream as an `error` event is
                    self.in_band_error()
                self.ended = True
            elif kind == "response.output_item.done":
                index = event.get("output_index")
                index = index if isinstance(index, int) else 0
                self._unstreamed(index, event.get("item"))
                self._close(index)
            elif kind == "response.output_text.annotation.added":  # a citation of the text: beside it
                at, part = _whole(event.get("output_index")), _whole(event.get("content_index"))
                cited = cited_strings(event.get("annotation"))
                self._text.aside_strings(("response.annotation", at, part), cited, apart=True)
                if self._cited is None:
                    self._cited = set()
                self._cited.add((at, part))  # its part's citations, whole in the events that end it: read already
            elif kind == "response.content_part.done":  # a part whole: its citations, unless they streamed
                part = event.get("part")
                if type(part) is dict and part.get("annotations"):
                    at, part_at = _whole(event.get("output_index")), _whole(event.get("content_index"))
                    self._cite(at, part_at, part["annotations"])
            elif kind == "response.content_part.added":  # a part begins: an unnumbered event after it is of it
                begun = event.get("content_index")
                if type(begun) is int:
                    self._open_part(_whole(event.get("output_index")), begun)
            elif kind == "response.output_item.added":  # a function call's name comes with its item
                item = event.get("item")
                if isinstance(item, dict) and isinstance(item.get("name"), str):
                    self._text.aside(("name", _whole(event.get("output_index"))), item["name"])
            field = _DONE_TEXTS.get(kind)
            if field is not None:  # (`response.content_part.done` read its citations above)
                self._done(kind, event, event.get(field))
        else:  # no event of the API's (`error` is the one other it names)
            if kind == "error":  # (`response.failed` is read above, a truthy `error` before)
                self.in_band_error()
            self.unknown(event)

    def _done(self, kind: str, event: dict[str, Any], value: Any) -> None:
        """An event that ends an item's text, a part of it, or what is beside it (`_DONE_TEXTS`), holding it whole:
        read when no delta carried it (nor the item whole), once however many such events carry it (a part's
        `response.output_text.done`, then its `response.content_part.done`)."""
        at = _whole(event.get("output_index"))
        if type(value) is dict:  # a part: a message's text, a reasoning item's, a refusal, a summary's
            if type(value.get("refusal")) is str:
                kind, value = "response.refusal.done", value["refusal"]
            else:
                value = value.get("text")
        if type(value) is not str or not value:
            return
        if kind.startswith(("response.refusal", "response.reasoning_summary")):  # beside the content
            part_at = _whole(event.get("summary_index", event.get("content_index")))
            refusal = kind.startswith("response.refusal")
            key = ("response.refusal" if refusal else "response.reasoning_summary_text", at, part_at)
            if not self._text.has_aside(key):
                self._text.aside(key, value)
                self.first_chunk()
            return
        numbered = event.get("content_index")
        if type(numbered) is int:
            part_at = numbered
        elif at == self._last_done_item and value == self._last_done:
            return  # an unnumbered event ending again the part the one before it ended
        else:  # (unnumbered: the item's part now open)
            part_at = self._part_of(at, None)
        self._last_done, self._last_done_item = value, at
        self._open_part(at, part_at + 1)  # (an unnumbered event after this one is of the part after it)
        streamed, whole = self._streamed, self._whole_items
        if (streamed is not None and (at, part_at) in streamed) or (whole is not None and at in whole):
            return  # its own deltas carried it (not another part's of its item), or its item was read whole
        parts = self._done_parts
        if parts is None:
            parts = self._done_parts = set()
        elif (at, part_at) in parts:
            return
        parts.add((at, part_at))
        if not self.outcome.first_token_ns:
            self.outcome.first_token_ns = self.outcome.now_ns()
        if at == self._item:
            self._text.add(value)
        else:
            self._content(at, value)

    def _object_delta(self, kind: str, event: dict[str, Any], delta: Any) -> None:
        """A delta that is not a string: an object of text fields (`response.reasoning.delta` and
        `response.reasoning_summary.delta` as the API first defined them, `{"text": ...}`), or another shape a server
        sends. Its strings (framing skipped, as `user_strings` reads them) are read beside the content, by event type,
        item and part, each delta's run into the one before as a string delta's are; not part of the content."""
        part = event.get("summary_index", event.get("content_index"))
        self._text.aside_strings((kind[:-6], _whole(event.get("output_index")), _whole(part)), delta)
        if delta:
            self.first_chunk()

    def _response(self, response: dict[str, Any], streamed: bool = False) -> None:
        self.identify(response)
        status = response.get("status")
        if isinstance(status, str) and status not in ("in_progress", "queued"):
            if streamed:
                self._given()
            self.outcome.finish_reasons = (status,)
        self.usage(response.get("usage"))

    def _unstreamed(self, index: int, item: Any) -> None:
        """An item as a stream's `response.output_item.done` or its end's `response` holds it whole: read as a
        whole reply's is when none of its text streamed (a server that sends an item's text in its `.done`
        events only, or in the end's `output` alone), not again when it did; a reasoning item's summary (beside the
        content) likewise, read whole unless it streamed."""
        if type(item) is not dict:
            return
        if index in self._texted:  # its text streamed: a part of it no delta nor `.done` event carried is read here,
            content = item.get("content")  # and the citations of its parts may come here only
            for part_at, part in enumerate(content if type(content) is list else ()):
                if type(part) is dict:
                    if part.get("annotations"):
                        self._cite(index, part_at, part["annotations"])
                    self._done("response.content_part.done", {"output_index": index, "content_index": part_at}, part)
            return
        self._texted.add(index)
        if self._whole_items is None:
            self._whole_items = set()
        self._whole_items.add(index)
        summarized = self._summarized is not None and index in self._summarized
        for piece in self._item_texts(index, item, summary=not summarized):
            if index == self._item:
                self._text.add(piece)
            else:
                self._content(index, piece)

    def _cite(self, at: int, part: int, annotations: Any) -> None:
        """The citations of an output item's content part (a whole reply's, or as a stream's `response.content_part.done`,
        `response.output_item.done` or end holds them): read beside the content once, not again where a stream
        carries them again (or sent them as `response.output_text.annotation.added` events)."""
        cited = self._cited
        if cited is None:
            cited = self._cited = set()
        elif (at, part) in cited:
            return
        cited.add((at, part))
        self._text.aside_strings(("response.annotation", at, part), cited_strings(annotations), apart=True)

    def _part_delta(self, index: int, part: Any, delta: str) -> None:
        """A delta of a part other than the open item's part whose deltas came last: noted as streamed (its `.done`
        events then read nothing again; a part of the same item that comes in them alone is read), then read."""
        streamed = self._streamed
        if streamed is None:
            streamed = self._streamed = set()
        streamed.add((index, self._part_of(index, part)))
        if index == self._item:
            self._text.add(delta)
        else:
            self._content(index, delta)
        self._part = part if index == self._item else _NO_PART

    def _part_of(self, index: int, part: Any) -> int:
        """The content part an event of item `index` is of: its `content_index`, or when it has none (a server that
        numbers a part in some of its events only), the item's part now open (`_open_parts`)."""
        if type(part) is int:
            return part
        parts = self._open_parts
        return parts.get(index, 0) if parts is not None else 0

    def _open_part(self, index: int, part: int) -> None:
        """Item `index`'s part `part` is the open one (an event begins it, or ended the one before it): the next delta
        of the item is read through `_part_delta`, which notes its part."""
        parts = self._open_parts
        if parts is None:
            parts = self._open_parts = {}
        parts[index] = part
        if index == self._item:
            self._part = _NO_PART

    def _content(self, index: int, text: str) -> None:
        """A piece of the text of an item other than the open one: read now if it is the first, or comes
        after the open item is done, else kept for its turn."""
        self._texted.add(index)
        item = self._item
        if item is None or (index > item and self._closed):
            if item is not None:
                self._text.end_piece()
            self._item = index
            self._part = _NO_PART
            self._closed = False
            self._text.add(text)
            return
        if index < item:  # after text of an item after it: read out of its order
            self._text.unread()
        later = self._later
        waiting = later.get(index)
        if waiting is None:
            waiting = later[index] = bytearray()
            heapq.heappush(self._order, index)
        waiting += text.encode("utf-8", "surrogatepass")
        self._room -= len(text)
        if self._closed:  # (out of order: the open item is done, so this is the next read)
            self._advance()
        elif self._room < _WAITING * max(0, len(later) - _FEW):
            self._read_later()

    def _close(self, index: int) -> None:
        """An item's `response.output_item.done`: the open item's lets the next item's text be read (what
        waited, or what comes); a waiting item's is kept for its turn."""
        if index == self._item:
            if not self._closed:
                self._closed = True
                if self._later:
                    self._advance()
        elif index in self._later:
            self._finished.add(index)

    def _advance(self) -> None:
        """The open item is done: the next item's text that waited is read, and it is the open one (and so
        on, while that one was done too)."""
        later, order, finished = self._later, self._order, self._finished
        while self._closed and order:
            index = heapq.heappop(order)
            text = later.pop(index).decode("utf-8", "surrogatepass")
            self._room += len(text)
            self._text.end_piece()
            self._text.add(text)
            self._item = index
            self._part = _NO_PART
            self._closed = index in finished
            finished.discard(index)

    def _read_later(self) -> None:
        """What waits is past its room (or the stream is over): the open item's text is over, what waits is
        read, each item's in item order, and the last item read is the open one."""
        last = self._item = self.read_waiting(self._later)
        self._part = _NO_PART
        self._closed = last in self._finished
        self._later = {}
        self._order = []
        self._finished = set()
        self._room = self.detectors.max_chars

    def done(self) -> None:
        if self._later:
            self._read_later()
        if self._item is not None:
            self._text.end_piece()


# what a chat reply's message holds beside its content that the model wrote (vLLM's reasoning is `reasoning`,
# formerly `reasoning_content` as llama.cpp's is; a string `tool_calls` is no call, but read all the same; a web
# search's citations, `annotations`; OpenRouter's `reasoning_details`, beside its `reasoning`)
_BESIDE_KEYS: Final = (
    "reasoning", "reasoning_content", "refusal", "tool_calls", "function_call", "audio", "annotations",
    "reasoning_details",
)  # fmt: skip
_BESIDE: Final = frozenset(_BESIDE_KEYS)
# the finish reasons recorded (`gen_ai.response.finish_reasons`): of this many choices at most
_MOST_CHOICES: Final = 128
# what a streamed choice's text waiting for the choices before it costs beside its characters (its slot in the
# dict, its buffer), past the first `_FEW` that wait: counted against the room of what waits, so a stream of
# many choices is bounded as one of long texts is
_WAITING: Final = 192
_FEW: Final = 64


# a citation's keys that are its framing, not what a client shows of it: its kind, the ids of the file it cites (its
# offsets in the text are numbers, not read)
_CITATION_FRAMING = frozenset({"type", "file_id", "container_id"})


def cited_strings(annotations: Any) -> list[str]:
    """The strings of citations (a reply's `annotations`, one of them streamed) that a client shows beside the text: a
    cited page's title and link (`url_citation`, under its type's key in a chat reply), a cited file's name; not their
    framing (`_CITATION_FRAMING`). A link is what `user_strings` skips as framing in a request, so it is read here."""
    out: list[str] = []
    for annotation in annotations if type(annotations) is list else [annotations]:
        if type(annotation) is not dict:
            continue
        for key, value in annotation.items():
            if type(value) is dict:  # a chat reply's citation: `{"type": "url_citation", "url_citation": {...}}`
                for inner_key, inner in value.items():
                    if type(inner) is str and inner and inner_key not in _CITATION_FRAMING:
                        out.append(inner)
            elif type(value) is str and value and key not in _CITATION_FRAMING:
                out.append(value)
    return out


def _writes_beside(message: dict[str, Any]) -> bool:
    """Whether a whole reply's message holds anything for `_beside` to read: a key of `_BESIDE` whose value is
    not empty (vLLM writes `"tool_calls": []` and nulls beside the content of every message; a role and content
    only is the rest of the common case)."""
    # the message's few keys, not every key of `_BESIDE` looked up in it (compiled: a loop, no generator)
    return any(value and key in _BESIDE for key, value in message.items())


def _index(choice: dict[str, Any]) -> int:
    """A choice's index; anything but a whole number counts as 0 (observing never fails a reply)."""
    return _whole(choice.get("index"))


def _whole(index: Any) -> int:
    """An index as a reply gives it; anything but a whole number counts as 0."""
    return index if type(index) is int else 0


_TARGETS: Final = {path: Target(operation) for path, operation in OPERATIONS.items()}  # Target.operation: how to read
_TARGETS.update((path, Target(operation, model_optional=True)) for path, operation in NATIVE.items())
_MODELS: Final = Target("models", carries_data=False, listing=True)


class Adapter(AdapterBase):
    """OpenAI-compatible HTTP: POST /v1/chat/completions, /v1/completions, /v1/embeddings; and
    GET (and HEAD) /v1/models, answered with every OpenAI upstream's models."""

    name: ProtocolName = "openai"
    dialect = "openai"
    status_attribute = "http.response.status_code"
    provider: str | None = "openai"

    def match(self, method: str, path: str) -> Target | None:
        if method == "POST":
            return _TARGETS.get(path)
        # a HEAD is the GET without its body (RFC 9110): the listing too, answered with the GET's fields
        return _MODELS if (method == "GET" or method == "HEAD") and path == "/v1/models" else None

    def merge(self, listings: list[Any]) -> dict[str, Any]:
        """One `/v1/models` list from several upstreams': each model once, first upstream first."""
        data: list[Any] = []
        seen: set[Any] = set()
        for listing in listings:
            for entry in listing.get("data", []) if isinstance(listing, dict) else []:
                model = entry.get("id") if isinstance(entry, dict) else None
                key = model if model is None or isinstance(model, str) else ("", repr(model))  # a list id: hashable
                if key not in seen:
                    seen.add(key)
                    data.append(entry)
        return {"object": "list", "data": data}

    def read(self, target: Target, body: bytes, header: Header) -> Request:
        if target.model_optional:
            return read_native(target.operation, body)
        return read_request(target.operation, body)

    def as_utf8_json(self, body: bytes, header: Header) -> bytes | None:
        return request_json_as_utf8(body)

    def observer(self, target: Target, outcome: Outcome, detectors: Detectors, capture: bool) -> SseObserver:
        operation = target.operation
        if operation == "responses":
            return ResponsesObserver(outcome, detectors, capture)
        return ReplyObserver(outcome, detectors, capture, operation == "embeddings" or operation == "embedding")


# LiteLLM proxy's routes naming the model in the path (`InPathAdapter`): their prefixes, and the operation each suffix
# is, in the order LiteLLM registers them (Starlette tries its routes in turn)
_DEPLOYMENTS: Final = "/openai/deployments/"
_ENGINES: Final = "/engines/"
_IN_PATH_PREFIXES: Final = (_DEPLOYMENTS, _ENGINES)
_IN_PATH_OPERATIONS: Final = (("/chat/completions", "chat"), ("/completions", "text_completion"),
                              ("/embeddings", "embeddings"))  # fmt: skip


class InPathAdapter(Adapter):
    """OpenAI's chat, completions and embeddings on the routes that name their model in the path, LiteLLM proxy's
    (`POST /openai/deployments/{model}/chat/completions`, `.../completions`, `.../embeddings`, the same under
    `/engines/{model}/`), which the openai SDK's `AzureOpenAI` client calls, as Azure OpenAI serves them: read as the
    call of the path's model, the one LiteLLM runs (`read_request`'s `path_model`), forwarded at the path as sent.
    After every other adapter in the table (`HTTP_ADAPTERS`), before passthrough: the paths other adapters read pay
    nothing for it. Until 2026-12-07 these were data the proxy does not read, passthrough's: refused while a route
    limits purposes (`policy.passthrough: auto`), else forwarded by the `"*"` route, an `ads` call reaching a model
    whose route allows only `assistant` (helper paths15)."""

    def match(self, method: str, path: str) -> Target | None:
        if method != "POST" or not path.startswith(_IN_PATH_PREFIXES):
            return None
        start = len(_DEPLOYMENTS) if path.startswith(_DEPLOYMENTS) else len(_ENGINES)
        for suffix, target in _IN_PATH_OPERATIONS:
            # (LiteLLM's `{model:path}` is Starlette's `.*`: any text, `/` too, the longest leaving the suffix; its
            # chat's route first, so `.../m/chat/completions` is the chat's, not the completion's of model `m/chat`)
            if path.endswith(suffix) and len(path) > start + len(suffix):
                return Target(target, path[start : -len(suffix)])
        return None

    def read(self, target: Target, body: bytes, header: Header) -> Request:
        return read_request(target.operation, body, path_model=target.model)


IN_PATH: Final = InPathAdapter()


_LORA: Final = "lora:"
# a TGI call's version naming the LoRA adapter it asks for (`parameters.adapter_id`, `tgi.read_request`)
TGI_ADAPTER: Final = "adapter:"
_NONE: Final = "none"
_SCALES_UNKNOWN: Final = "+lora:?"  # a checkpoint's name once the scales were set and not read since
log = logging.getLogger("lineage_proxy.checkpoints")  # discovery's, as `CheckpointBook.refresh` logs it
_KEYLESS: set[str] = set()  # upstreams whose /lora-adapters refused the proxy its key, said once (`_llama_adapters`)
_TAGLESS: set[str] = set()  # upstreams whose /api/tags refused the proxy, said once (`_ollama_twins`)


class ServedModels:
    """vLLM/TGI/llama.cpp metadata: model id -> checkpoint; "*" is what serves any name (TGI). A llama.cpp
    server's LoRA adapters (`/lora-adapters`: id -> path) and the weights they make with its base model:
    its checkpoints name the adapters applied by default (scale not 0), and a call's own `lora` (its version,
    `lora_version`) the ones it applies."""

    def __init__(
        self, served: dict[str, Checkpoint], adapters: dict[int, str] | None = None, base: Checkpoint | None = None,
        twins: dict[str, tuple[str, ...]] | None = None,
    ) -> None:  # fmt: skip
        """`twins`: checkpoint -> the other checkpoints listed as the same weights (Ollama's tags of one digest)."""
        self._served = served
        self._adapters = adapters
        self._base = base
        self._twins = twins or {}
        self.unready: frozenset[str] = frozenset()  # one listing names every model: none is asked about alone
        self.missing: frozenset[str] = frozenset()
        self.loads = any(found.provider in LOADERS for found in served.values())  # (`Catalog.loads`)

    def resolve(self, model: str, version: str | None) -> Checkpoint | None:
        found = self._served.get(model) or self._served.get("*")
        if version is None or found is None:
            return found
        if version.startswith(TGI_ADAPTER):  # TGI's model with the adapter a call names (TGI lists none)
            return Checkpoint(f"{found.name}+lora:{version[len(TGI_ADAPTER) :]}", found.source, found.name,
                              found.provider)  # fmt: skip
        if self._adapters is None or not version.startswith(_LORA):
            return found
        named = version[len(_LORA) :]
        if not named:  # `"lora": []` names none: llama-server applies its own scales, as without the field
            return found
        if named == "?":
            return None  # llama.cpp refuses it: no weights serve it
        scales: dict[int, float] = {}
        for item in named.split(",") if named != _NONE else ():
            ident, _, scale = item.partition("=")
            if int(ident) in self._adapters:  # (an id it has not loaded: ignored, or the request refused)
                scales[int(ident)] = float(scale)
        return with_adapters(self._base or found, self._adapters, scales)

    def twins(self, checkpoint: str) -> tuple[str, ...]:
        return self._twins.get(checkpoint, ())

    def scales_unknown(self) -> ServedModels:
        """The scales set (`POST /lora-adapters`) and not read since: a call without its own `lora` is served by the
        base with adapters at scales nobody knows, `org/gemma-3+lora:?` (unsure); one with its own `lora` as before
        (it names its scales). Made once a round, never per call: `resolve` finds it in `_served` as any other."""
        base = self._base
        if self._adapters is None or base is None:
            if self.loads:
                # a vLLM's (SGLang's) adapters loaded or unloaded (`load_lora_adapter`) and not read since: a name
                # listed as one is not known now (as a name not listed is), its base is (a load does not change it)
                kept = {model: found for model, found in self._served.items() if found.parent is None}
                if len(kept) < len(self._served):
                    return ServedModels(kept, twins=self._twins)
            return self  # no adapters read: none to scale (a POST naming none changes nothing)
        unknown = Checkpoint(base.name + _SCALES_UNKNOWN, base.source, base.name, base.provider, unsure=True)
        return ServedModels(dict.fromkeys(self._served, unknown), self._adapters, base)


def with_adapters(base: Checkpoint, adapters: dict[int, str], scales: dict[int, float]) -> Checkpoint:
    """The weights `base` with the LoRA `adapters` at `scales` (an adapter at 0, or not in `scales`, is not
    applied): `model.gguf+lora:sql.gguf:0.5`, its base the parent; `base` itself when none applies."""
    applied = "".join(f"+lora:{adapters[ident]}:{scales[ident]:g}" for ident in sorted(scales) if scales[ident])
    if not applied:
        return base
    return Checkpoint(base.name + applied, base.source, base.name, base.provider)


# `/v1/models` owned_by → gen_ai.provider.name: what serving engines put there (an unknown owner, often
# an organisation, names no engine)
ENGINES = {"vllm": "vllm", "llamacpp": "llama.cpp", "llama.cpp": "llama.cpp", "tgi": "tgi", "sglang": "sglang",
           "library": "ollama", "ollama": "ollama", "openai": "openai", "system": "openai",
           "triton inference server": "triton", "tensorrt_llm": "tensorrt_llm"}  # fmt: skip


class Dialect:
    """`/v1/models` (vLLM: `root` = the weights, `parent` for LoRA adapters), then TGI's `/info`
    (`model_id@model_sha`, the exact weights; vLLM answers 404). Names the list does not hold are named
    where the list says what serves them (`_unlisted`)."""

    async def discover(self, upstream: Upstream, fetch: Fetch, models: frozenset[str]) -> ServedModels:
        body = await fetch.get_json(upstream, "/v1/models")
        data = body.get("data") if isinstance(body, dict) else None
        data = data if isinstance(data, list) else []
        entries = [entry for entry in data if isinstance(entry, dict) and isinstance(entry.get("id"), str)]
        served: dict[str, Checkpoint] = {}
        for entry in entries:
            root, parent = entry.get("root"), entry.get("parent")
            served[entry["id"]] = Checkpoint(
                str(root) if isinstance(root, str) else str(entry["id"]),
                UPSTREAM,
                parent if isinstance(parent, str) else None,
                ENGINES.get(str(entry.get("owned_by", "")).lower()),
            )
        try:
            info = await fetch.get_json(upstream, "/info")
        except Exception:
            info = None
        if isinstance(info, dict) and isinstance(info.get("model_id"), str):
            sha = info.get("model_sha")
            name = f"{info['model_id']}@{sha}" if isinstance(sha, str) and sha else info["model_id"]
            served = {model: Checkpoint(name, UPSTREAM, provider="tgi") for model in served}
            served["*"] = Checkpoint(name, UPSTREAM, provider="tgi")
        _unlisted(data, entries, served)
        if "*" in served and entries[0].get("owned_by") == "llamacpp":  # llama-server, one model: its adapters
            return await _llama_adapters(upstream, fetch, served)
        if any(_by_ollama(entry) for entry in entries):
            return ServedModels(served, twins=await _ollama_twins(upstream, fetch, served))
        return ServedModels(served)


async def _llama_adapters(upstream: Upstream, fetch: Fetch, served: dict[str, Checkpoint]) -> ServedModels:
    """A llama.cpp server's LoRA adapters (`GET /lora-adapters`: `[{"id": 0, "path": "sql.gguf", "scale": 0.5}]`,
    the scale every request without its own `lora` gets; none without `--lora`, 404 on servers older than it):
    its model's checkpoint is the base with the adapters applied by default."""
    try:
        listed = await fetch.get_json(upstream, "/lora-adapters")
    except MetadataStatus as status:
        if status.status == 401 or status.status == 403:
            # a llama-server started with --api-key keeps /v1/models open and /lora-adapters behind the key: its
            # model is named, its adapters are not (the base model recorded, as before they were read), said once
            if upstream.name not in _KEYLESS:
                _KEYLESS.add(upstream.name)
                log.warning("upstream %s: llama-server's /lora-adapters answered %d: set upstreams[].api_key to its "
                            "--api-key, or calls an adapter serves are recorded as its base model", upstream.name,
                            status.status)  # fmt: skip
            return ServedModels(served)
        if status.status != 404:  # not known now: the base alone could be a checkpoint that does not serve
            raise MetadataIncomplete("LoRA adapters (/lora-adapters)", str(status)) from status
        listed = None
    except Exception as exc:  # (the same) a reset, a timeout, a reply that is not JSON: it answered its model list
        raise MetadataIncomplete("LoRA adapters (/lora-adapters)", str(exc) or type(exc).__name__) from exc
    items = listed if type(listed) is list else []
    adapters: dict[int, str] = {}
    scales: dict[int, float] = {}
    for item in items:
        if type(item) is dict and type(item.get("id")) is int and type(item.get("path")) is str:
            adapters[item["id"]] = item["path"]
            scales[item["id"]] = _scale(item.get("scale"))
    if not adapters:
        return ServedModels(served)
    base = served["*"]
    applied = with_adapters(base, adapters, scales)
    return ServedModels({name: applied for name in served}, adapters, base)


def _unlisted(data: list[Any], entries: list[dict[str, Any]], served: dict[str, Checkpoint]) -> None:
    """Add to `served` the names the upstream answers though its model list does not hold them, where the
    list says how. One model listed, by a server that `_answers_any_name`: every name (and a call naming
    none) is that model (`*`). An entry `NAME:latest` that Ollama wrote (its `owned_by` is the namespace
    Ollama gives NAME), with NAME itself not listed: NAME is it, as Ollama resolves a name without a tag
    (in a list of any length). Otherwise a list names nothing it does not hold: several models listed are
    never taken to answer other names."""
    if len(data) == 1 and len(entries) == 1 and "*" not in served and _answers_any_name(entries[0]):
        served["*"] = served[entries[0]["id"]]
    for entry in entries:
        name, _, tag = entry["id"].rpartition(":")
        if tag == "latest" and name and name not in served and entry.get("owned_by") == _ollama_namespace(name):
            served[name] = served[entry["id"]]


def _by_ollama(entry: dict[str, Any]) -> bool:
    """Whether a model list's entry is one Ollama writes: `NAME:TAG`, owned by the namespace Ollama gives NAME."""
    name, _, tag = entry["id"].rpartition(":")
    return bool(name and tag) and entry.get("owned_by") == _ollama_namespace(name)


async def _ollama_twins(upstream: Upstream, fetch: Fetch, served: dict[str, Checkpoint]) -> dict[str, tuple[str, ...]]:
    """Ollama's tags of one model (`GET /api/tags`: `{"models": [{"name": "llama3:8b", "digest": "365c..."}]}`): the
    names listed with one digest are the same weights (`llama3:8b` and `llama3:latest`, a copy `ollama cp` made), each
    checkpoint -> the others'. Nothing where there is none (404: a listing that only looks like Ollama's) or a gateway
    lets `/v1/` through alone (401, 403: said once): each name its own weights, as its model list says. Any other
    failure is not known now (`MetadataIncomplete`): the twins read before stay, never dropped for a round."""
    try:
        listed = await fetch.get_json(upstream, "/api/tags")
    except MetadataStatus as status:
        if status.status == 401 or status.status == 403:
            if upstream.name not in _TAGLESS:
                _TAGLESS.add(upstream.name)
                log.warning("upstream %s: Ollama's /api/tags answered %d: its tags of one digest are not known as one "
                            "set of weights (a call for another tag of a route's model is not held to its purposes)",
                            upstream.name, status.status)  # fmt: skip
            return {}
        if status.status == 404:
            return {}
        raise MetadataIncomplete("tags (/api/tags)", str(status)) from status
    except Exception as exc:  # a reset, a timeout: what it serves was read, not which names are the same weights
        raise MetadataIncomplete("tags (/api/tags)", str(exc) or type(exc).__name__) from exc
    models = listed.get("models") if type(listed) is dict else None
    by_digest: dict[str, list[str]] = {}
    for item in models if type(models) is list else ():
        if type(item) is not dict:
            continue
        name, digest = item.get("name", item.get("model")), item.get("digest")
        if type(name) is str and type(digest) is str and digest and name in served:
            checkpoint = served[name].name
            same = by_digest.setdefault(digest, [])
            if checkpoint not in same:
                same.append(checkpoint)
    twins: dict[str, tuple[str, ...]] = {}
    for same in by_digest.values():
        for checkpoint in same:
            others = tuple(other for other in same if other != checkpoint)
            if others:
                twins[checkpoint] = others
    return twins


def _answers_any_name(entry: dict[str, Any]) -> bool:
    """Whether a model list's only entry is one a server that loads one model, and answers every call
    with it whatever model the call names, writes: llama.cpp's llama-server (`owned_by: llamacpp` with
    the model's `meta`; in router mode, which loads models by name and refuses names it does not have,
    its entries carry a `status` and no `meta`), llama-cpp-python (`owned_by: me`, `permissions`). With
    several models listed none is taken (llama-cpp-python answers other names with its first: not relied on)."""
    owner = entry.get("owned_by")
    if owner == "llamacpp":
        return isinstance(entry.get("meta"), dict) and "status" not in entry
    return owner == "me" and isinstance(entry.get("permissions"), list)


def _ollama_namespace(name: str) -> str | None:
    """The namespace Ollama writes as `owned_by` for a model name, `[host/][namespace/]model`
    (`library` when it names none); None for a name Ollama would not parse."""
    parts = name.split("/")
    if len(parts) == 1:
        return "library"
    return parts[-2] if len(parts) <= 3 else None


ADAPTER = Adapter()
DIALECT = Dialect()
