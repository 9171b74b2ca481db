"""Anthropic content the proxy cannot read is `scan:truncated`, as OpenAI's is (tests/test_stored_content_by_id.py): a
`document` whose source is a PDF sent whole (`base64`), a `url` or a `file` (by id), in a message, a tool result or a
web fetch's result; a `container_upload` (a file put into code execution's container); a `container` named by id
(unless the tool choice calls none) or holding skills; a `thread` continuing a reply the proxy did not see answered;
a `compaction` block holding ciphertext (since 2026-12-07, helper anthc13: before, its ciphertext unread, unlabelled).
Before 2026-12-07 each was forwarded unread and unlabelled, for any purpose: vLLM and llama.cpp drop a document, but
Anthropic's own API reads it to the model. A text document (a `text` or `content` source, or base64 of a text file)
is read; images are not read, nor labelled (README)."""

from __future__ import annotations

import base64
from typing import Any

import anthropic
import orjson
import pytest

from proxy.protocols.anthropic import read_request
from tests.configs import ONE_UPSTREAM
from tests.servers.vllm_like import SERVED

CONFIG = (
    ONE_UPSTREAM
    + """
zones:
  - name: unread
    labels: [scan:truncated]
    allow_purposes: [assistant]
  - name: pii
    labels: [pii:email]
    allow_purposes: [assistant]
detectors: [email]
"""
)

ASK: Any = {"type": "text", "text": "Summarise it"}
PDF = base64.b64encode(b"%PDF-1.7\n1 0 obj << >> endobj\n%%EOF\n").decode()
PDF_DOC: Any = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}}
URL_DOC: Any = {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}
FILE_DOC: Any = {"type": "document", "source": {"type": "file", "file_id": "file_011"}}
UPLOAD: Any = {"type": "container_upload", "file_id": "file_011"}
TEXT_DOC: Any = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"}}
CONTENT_DOC: Any = {"type": "document", "source": {"type": "content", "content": [ASK]}}
IMAGE: Any = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
IMAGE_URL: Any = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
IMAGE_FILE: Any = {"type": "image", "source": {"type": "file", "file_id": "file_012"}}
SEARCH: Any = {"type": "search_result", "source": "https://example.com", "title": "t", "content": [ASK]}
CODE_EXECUTION: Any = [{"type": "code_execution_20250825", "name": "code_execution"}]
SKILL: Any = {"type": "anthropic", "skill_id": "pptx", "version": "latest"}


def _in_tool_result(*blocks: Any) -> Any:
    return [
        {"role": "user", "content": "Read a.pdf"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "read", "input": {"p": "a.pdf"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [ASK, *blocks]}]},
    ]


def _user(*blocks: Any) -> Any:
    return [{"role": "user", "content": [ASK, *blocks]}]


FETCHED: Any = [
    {"role": "user", "content": "Fetch https://example.com/a.pdf"},
    {
        "role": "assistant",
        "content": [
            {"type": "server_tool_use", "id": "s1", "name": "web_fetch", "input": {"url": "https://example.com/a.pdf"}},
            {
                "type": "web_fetch_tool_result",
                "tool_use_id": "s1",
                "content": {"type": "web_fetch_result", "url": "https://example.com/a.pdf", "content": PDF_DOC},
            },
        ],
    },
    {"role": "user", "content": "Summarise it"},
]

# what the SDK sends back of a turn that searched and fetched (a page, a text document) and cited it, with a search
# result in a tool result (its `source` a string) and cache breakpoints: read, none of it a file (review revanth12)
CACHED: Any = {"cache_control": {"type": "ephemeral"}}
PAGE: Any = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "A page"}, "title": "A"}
CITED: Any = [
    {"type": "char_location", "cited_text": "A page", "document_index": 0, "start_char_index": 0, "end_char_index": 6},
    {"type": "search_result_location", "source": "https://example.com", "title": "t", "cited_text": "Summarise it",
     "search_result_index": 0, "start_block_index": 0, "end_block_index": 0},
]  # fmt: skip
PAGE_READ: Any = [
    {"role": "user", "content": [{**TEXT_DOC, "citations": {"enabled": True}, **CACHED}, {**ASK, **CACHED}]},
    {
        "role": "assistant",
        "content": [
            {"type": "server_tool_use", "id": "s1", "name": "web_search", "input": {"query": "a page"}},
            {
                "type": "web_search_tool_result",
                "tool_use_id": "s1",
                "content": [
                    # (its page not encrypted here: one whose page is, which Anthropic decrypts into the model's
                    # context, is scan:truncated since 2026-12-07, tests/test_anthropic_ciphertext_and_tool_changes.py)
                    {"type": "web_search_result", "url": "https://example.com", "title": "A", "encrypted_content": ""}
                ],
            },
            {"type": "server_tool_use", "id": "s2", "name": "web_fetch", "input": {"url": "https://example.com"}},
            {
                "type": "web_fetch_tool_result",
                "tool_use_id": "s2",
                "content": {"type": "web_fetch_result", "url": "https://example.com", "content": PAGE},
            },
            {"type": "text", "text": "It says", "citations": CITED},
            {"type": "tool_use", "id": "t1", "name": "read", "input": {"p": "a"}},
        ],
    },
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [ASK, SEARCH], **CACHED}]},
]


def _ran(kind: str, result: Any) -> Any:
    """A turn whose code execution (`code_execution`, or the bash tool's `bash_code_execution`) gave `result`, sent back
    in the history as the SDK's `to_param()` gives it."""
    name = "code_execution" if kind == "code_execution" else "bash_code_execution"
    return [
        {"role": "user", "content": "Plot it"},
        {
            "role": "assistant",
            "content": [
                {"type": "server_tool_use", "id": "s1", "name": name, "input": {"code": "plot()"}},
                {"type": f"{kind}_tool_result", "tool_use_id": "s1", "content": result},
            ],
        },
        {"role": "user", "content": "Summarise it"},
    ]


def _result(kind: str, *files: str) -> Any:
    outputs = [{"type": f"{kind}_output", "file_id": file} for file in files]
    return {"type": f"{kind}_result", "stdout": "done", "stderr": "", "return_code": 0, "content": outputs}


ENCRYPTED: Any = {"type": "encrypted_code_execution_result", "encrypted_stdout": "EqQBCioIAhgC", "stderr": "",
                  "return_code": 0, "content": []}  # fmt: skip


def _compacted(**block: Any) -> Any:
    """A conversation compacted (the beta's context management): the `compaction` block its reply gave sent back first,
    in place of the turns it stands for, as the SDK types it (`BetaCompactionBlockParam`), then the next question."""
    return [
        {"role": "assistant", "content": [{"type": "compaction", **block}]},
        {"role": "user", "content": "Go on"},
    ]


SUMMARY = "We planned the trip to Lisbon."
CIPHER = "EqQBCioIAhgCIkCx9f2V"

UNREAD: dict[str, dict[str, Any]] = {
    "pdf document": {"messages": _user(PDF_DOC)},
    "url document": {"messages": _user(URL_DOC)},
    "file document": {"messages": _user(FILE_DOC)},
    "container upload": {"messages": _user(UPLOAD), "tools": CODE_EXECUTION},
    "pdf in a tool result": {"messages": _in_tool_result(PDF_DOC)},
    "file in a tool result": {"messages": _in_tool_result(FILE_DOC)},
    "pdf a web fetch read": {"messages": FETCHED},
    "container by id": {"messages": _user(), "container": "container_011", "tools": CODE_EXECUTION},
    "container skills": {"messages": _user(), "container": {"skills": [SKILL]}, "tools": CODE_EXECUTION},
    "container skills, no call": {
        "messages": _user(),
        "container": {"id": None, "skills": [SKILL]},
        "tool_choice": {"type": "none"},
    },
    "thread continued": {"messages": _user(), "thread": {"type": "continue", "previous_message_id": "msg_011"}},
    "code execution output file": {"messages": _ran("code_execution", _result("code_execution", "file_013"))},
    "bash output file": {"messages": _ran("bash_code_execution", _result("bash_code_execution", "file_013"))},
    "code execution stdout encrypted": {"messages": _ran("code_execution", ENCRYPTED)},
    "thread of a type not known": {"messages": _user(), "thread": {"type": "fork", "previous_message_id": "msg_011"}},
    "compaction": {"messages": _compacted(content=SUMMARY, encrypted_content=CIPHER, signature="sig")},
    "compaction without its summary": {"messages": _compacted(content=None, encrypted_content=CIPHER)},
}

READ: dict[str, dict[str, Any]] = {
    "images and text documents": {
        "messages": _user(IMAGE, IMAGE_URL, IMAGE_FILE, TEXT_DOC, CONTENT_DOC, SEARCH),
        "system": [{"type": "text", "text": "Be brief"}],
    },
    "text documents in a tool result": {"messages": _in_tool_result(TEXT_DOC, IMAGE, SEARCH)},
    "container by id, no call": {
        "messages": _user(),
        "container": "container_011",
        "tools": CODE_EXECUTION,
        "tool_choice": {"type": "none"},
    },
    "container without skills": {"messages": _user(), "container": {"id": None, "skills": []}},
    "thread begun": {"messages": _user(), "thread": {"type": "create"}},
    "code execution results without files": {
        "messages": _ran("code_execution", _result("code_execution"))[:2]
        + _ran("bash_code_execution", _result("bash_code_execution"))[1:],
        "tools": CODE_EXECUTION,
    },
    "code execution error": {
        "messages": _ran("code_execution", {"type": "code_execution_tool_result_error", "error_code": "unavailable"})
    },
    "a fetched page, citations, cache control": {
        "messages": PAGE_READ,
        "system": [{"type": "text", "text": "Be brief"}],
    },
    # a compaction that failed (no summary, nothing encrypted: the API's no-op) or its summary alone, read as text; and
    # redacted thinking, which stands beside the turn it reasoned over, as a Responses reasoning item's ciphertext
    "compaction without ciphertext, redacted thinking": {
        "messages": [
            *_compacted(content=None, encrypted_content=None),
            {"role": "assistant", "content": [{"type": "compaction", "content": SUMMARY, "encrypted_content": ""}]},
            {"role": "user", "content": "And then?"},
            {
                "role": "assistant",
                "content": [{"type": "redacted_thinking", "data": CIPHER}, {"type": "text", "text": "ok"}],
            },
            {"role": "user", "content": "Go on"},
        ]
    },
}


def _call(client: anthropic.Anthropic, given: dict[str, Any], purpose: str) -> Any:
    return client.beta.messages.with_raw_response.create(
        model=SERVED, max_tokens=8, extra_headers={"x-purpose": purpose}, **given
    )


@pytest.mark.parametrize("case", list(UNREAD))
def test_content_the_server_reads_unseen_is_unread(vllm, make_proxy, case) -> None:  # type: ignore[no-untyped-def]
    """Through the real `anthropic` SDK (its beta Messages route, which carries every block named here): refused (403)
    for a purpose the zone of `scan:truncated` does not allow, nothing forwarded; forwarded labelled for one it does."""
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    client = anthropic.Anthropic(base_url=proxy.url, api_key="unused", max_retries=0, timeout=10)
    try:
        with pytest.raises(anthropic.PermissionDeniedError) as caught:
            _call(client, UNREAD[case], "ads")
        assert "scan:truncated" in caught.value.message
        assert server.data_requests() == []
        reply = _call(client, UNREAD[case], "assistant")
        assert reply.headers["x-data-labels"] == "scan:truncated"
        assert len(server.data_requests()) == 1
    finally:
        client.close()


@pytest.mark.parametrize("case", list(READ))
def test_images_and_text_documents_are_read_as_before(vllm, make_proxy, case) -> None:  # type: ignore[no-untyped-def]
    """An SDK-typical body of images (base64, by URL, by file id), text documents and search results, and a container
    the call cannot use or that holds nothing, is forwarded unlabelled for any purpose: images are not read (README)."""
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    client = anthropic.Anthropic(base_url=proxy.url, api_key="unused", max_retries=0, timeout=10)
    try:
        assert _call(client, READ[case], "ads").headers["x-data-labels"] == ""
        assert len(server.data_requests()) == 1
    finally:
        client.close()


def _body(*blocks: Any) -> bytes:
    return orjson.dumps({"model": "m", "max_tokens": 8, "messages": _user(*blocks)})


def test_a_text_document_as_base64_is_read_decoded() -> None:
    """A `base64` source of a text media type is read as an OpenAI file's `file_data` is: its text decoded, scanned (an
    address there found); one that is no text (a PDF's bytes, whatever its media type says) is unread."""
    note = {"type": "base64", "media_type": "text/plain", "data": base64.b64encode(b"mail ana@example.org").decode()}
    read = read_request(_body({"type": "document", "source": note}))
    assert not read.unscanned
    assert "mail ana@example.org" in read.texts
    pdf_as_text = {"type": "base64", "media_type": "text/plain", "data": PDF}
    assert read_request(_body({"type": "document", "source": pdf_as_text})).unscanned


@pytest.mark.parametrize(
    "source",
    [None, "https://example.com/a.pdf", {"type": "pdf"}, {"type": ["text"]}, {"type": "base64", "data": PDF}],
    ids=["none", "a string", "an unknown type", "a type as a list", "base64 without a media type"],
)
def test_a_document_of_a_source_not_known_is_unread(source: Any) -> None:
    """Fail-safe: a document whose source the proxy does not know is one the API would read as a file, never as text
    the proxy saw (and one it refuses reaches no model): unread, `scan:truncated`."""
    assert read_request(_body({"type": "document", "source": source})).unscanned


def test_an_escaped_key_is_looked_through() -> None:
    """A block's type spelt with an escape (`container\\u005fupload`): the body's search in C finds no
    `container_upload`, the backslash sends it to be looked through."""
    body = _body(UPLOAD).replace(b"container_upload", b"container\\u005fupload")
    assert read_request(body).unscanned


def test_a_compaction_block_is_unread_its_summary_read() -> None:
    """A `compaction` block holding ciphertext (`encrypted_content`: the earlier turns it stands for, which only
    Anthropic decrypts into the model's context) is unread, `scan:truncated`, as a Responses `compaction` item is; its
    summary (`content`) is read all the same, an address there found; its type spelt with an escape is looked through
    (no `"compaction"` in the body's bytes). One without ciphertext (null, empty, absent) is read (before 2026-12-07
    every one was, its ciphertext skipped, unlabelled)."""
    mailed = {"messages": _compacted(content="mail ana@example.org", encrypted_content=CIPHER)}
    body = orjson.dumps({"model": "m", "max_tokens": 8, **mailed})
    read = read_request(body)
    assert read.unscanned
    assert "mail ana@example.org" in read.texts
    escaped = body.replace(b'"compaction"', b'"compactio\\u006e"')
    assert b'"compaction"' not in escaped
    assert read_request(escaped).unscanned
    for cipher in (None, ""):
        plain = {"messages": _compacted(content="mail ana@example.org", encrypted_content=cipher)}
        assert not read_request(orjson.dumps({"model": "m", "max_tokens": 8, **plain})).unscanned
    assert not read_request(orjson.dumps({"model": "m", "max_tokens": 8, "messages": _compacted()})).unscanned


def test_tool_results_nested_deep_are_read_not_raised_at() -> None:
    """A tool result within tool results 400 deep (no API's: it takes none within one), a file document at the bottom:
    read, its text taken, not a RecursionError (a walk into each nested one recursed as deep as the body)."""
    block = b'{"type":"document","source":{"type":"file","file_id":"f"}}'
    for _ in range(400):
        block = b'{"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"a"},' + block + b"]}"
    body = b'{"model":"m","max_tokens":8,"messages":[{"role":"user","content":[' + block + b"]}]}"
    assert "a" in read_request(body).texts


@pytest.mark.parametrize("prefix", ["data:text/plain;ab,", "data:text/plain;base64,"], ids=["no base64", "base64"])
def test_a_base64_document_spelt_as_a_data_url_is_unread(prefix: str) -> None:
    """A `base64` source's data is bare base64; one spelt as a data URL is not read as one alone: `file_text` reads
    `data:text/plain;ab,` and the base64 after it as the letters they are, no address there, where a base64 decoder
    that skips what is not of its alphabet reads the address they spell, after 12 bytes of the prefix's. Unread,
    `scan:truncated`, what the proxy read of it kept (review revanth12: read, unlabelled)."""
    hidden = base64.b64encode(b"    mail ana@example.org").decode()
    assert b"    mail ana@example.org" in base64.b64decode(prefix + hidden)  # (Python's, which skips them)
    source = {"type": "base64", "media_type": "text/plain", "data": prefix + hidden}
    read = read_request(_body({"type": "document", "source": source}))
    assert read.unscanned
    assert ("    mail ana@example.org" in read.texts) == prefix.endswith(";base64,")


def _refused_for_ads(proxy: Any, server: Any, given: dict[str, Any], labels: str) -> None:
    """Through the anthropic SDK: `given` refused for `ads` (`pii:email`, nothing forwarded), forwarded for
    `assistant` labelled `labels`."""
    client = anthropic.Anthropic(base_url=proxy.url, api_key="unused", max_retries=0, timeout=10)
    try:
        with pytest.raises(anthropic.PermissionDeniedError) as caught:
            _call(client, given, "ads")
        assert "pii:email" in caught.value.message
        assert server.data_requests() == []
        assert _call(client, given, "assistant").headers["x-data-labels"] == labels
    finally:
        client.close()


def test_an_address_in_a_base64_text_document_is_found(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """End to end, through the anthropic SDK: the address a base64 text document holds (no address in the body's
    bytes) is found, the call refused for a purpose the `pii` zone does not allow, forwarded as `pii:email` alone for
    one it does (the document read, not `scan:truncated`); review revanth12's pin of what the decoded text is for."""
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    note = {"type": "base64", "media_type": "text/plain", "data": base64.b64encode(b"mail ana@example.org").decode()}
    given = {"messages": _user({"type": "document", "source": note})}
    assert b"ana@example.org" not in orjson.dumps(given)
    _refused_for_ads(proxy, server, given, "pii:email")


def test_a_document_without_a_source_is_read_whole(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    """A pin, not a fix: a `document` with no `source` key (the API refuses it, its `source` required; vLLM's and
    llama.cpp's Messages API drop a document) holds nothing the proxy cannot read: its other strings (`title`,
    `context`) are read where they stand, an address there found, and the call is not `scan:truncated` (no `"source"` in
    the body, so the blocks are not walked: no work). Through the SDK: refused for `ads` (`pii:email`), forwarded
    labelled `pii:email` alone for `assistant`."""
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    bare = {"type": "document", "title": "notes", "context": "from ana@example.org"}
    read = read_request(_body(bare))
    assert not read.unscanned
    assert "from ana@example.org" in read.texts
    _refused_for_ads(proxy, server, {"messages": _user(bare)}, "pii:email")


# `scan:truncated` allowed for `ads` too: what decides the call is whether the address is found
LENIENT = CONFIG.replace(
    "allow_purposes: [assistant]\n  - name: pii", "allow_purposes: [assistant, ads]\n  - name: pii"
)
MAILED: Any = {"type": "document", "source": {"type": "base64", "media_type": "text/plain",
                                              "data": base64.b64encode(b"mail ana@example.org").decode()}}  # fmt: skip
FIRST_UNREAD: dict[str, list[Any]] = {
    "pdf document": _user(PDF_DOC, MAILED),
    "container upload": _user(UPLOAD, MAILED),
    "code execution output file": [*_ran("code_execution", _result("code_execution", "file_013")), _user(MAILED)[0]],
    "pdf in a tool result": _in_tool_result(PDF_DOC, MAILED),
    "a tool result's pdf, then a message's": [
        *_in_tool_result(PDF_DOC),
        {"role": "assistant", "content": "ok"},
        _user(MAILED)[0],
    ],
}


@pytest.mark.parametrize("case", list(FIRST_UNREAD))
def test_a_text_document_after_an_unread_block_is_read(vllm, make_proxy, case: str) -> None:  # type: ignore[no-untyped-def]
    """A base64 text document after a block the proxy cannot read (a PDF, a container upload, a code execution's output
    file, in a message or a tool result) is decoded and read all the same: the address in it (none in the body's bytes)
    found, the call refused for a purpose the `pii` zone does not allow though `scan:truncated`'s does, forwarded
    labelled both for one both allow. Until review revanth13 the blocks' walk stopped at the first unread one: the call
    went to `ads` as `scan:truncated` alone, the address unfound (a code execution's output file since anth13's
    2c03b5f5, before it read as text)."""
    server, upstream = vllm
    assert "[assistant, ads]" in LENIENT
    proxy = make_proxy(LENIENT, UPSTREAM=upstream)
    given = {"messages": FIRST_UNREAD[case], "tools": CODE_EXECUTION}
    assert b"ana@example.org" not in orjson.dumps(given)
    _refused_for_ads(proxy, server, given, "pii:email,scan:truncated")
