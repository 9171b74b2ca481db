"""The adapter and dialect tables, HTTP dispatch by method and path, and the shared output digest."""

from __future__ import annotations

import hashlib
import json
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import proxy.config
from proxy.detectors import CAPTURE_MAX_CHARS, NOT_CAPTURED_PAST_BOUND, Detectors
from proxy.errors import ConfigError
from proxy.flow import Outcome, ProtocolName
from proxy.protocols import ADAPTERS, DIALECTS, HTTP_ADAPTERS, Adapter, OutputText, Target, text_digest
from proxy.protocols.oip_generate import ADAPTER as OIP_GENERATE
from proxy.protocols.ollama import ADAPTER as OLLAMA
from proxy.protocols.tgi import ADAPTER as TGI


def dispatch(method: str, path: str) -> tuple[Adapter, Target]:
    """What the HTTP ingress does: the first adapter in `HTTP_ADAPTERS` that matches, else passthrough."""
    for adapter in HTTP_ADAPTERS:
        target = adapter.match(method, path)
        if target is not None:
            return adapter, target
    passthrough = ADAPTERS["passthrough"]
    target = passthrough.match(method, path)
    assert target is not None
    return passthrough, target


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_one_adapter_per_protocol_name() -> None:
    assert sorted(ADAPTERS) == sorted(get_args(ProtocolName))
    assert len({id(adapter) for adapter in ADAPTERS.values()}) == len(ADAPTERS)


def test_adapter_name_is_its_key() -> None:
    assert {name: adapter.name for name, adapter in ADAPTERS.items()} == {name: name for name in ADAPTERS}


def test_status_attributes() -> None:
    assert {name: adapter.status_attribute for name, adapter in ADAPTERS.items()} == {
        "openai": "http.response.status_code",
        "anthropic": "http.response.status_code",
        "oip": "http.response.status_code",
        "oip-grpc": "rpc.grpc.status_code",
        "kserve": "http.response.status_code",
        "passthrough": "http.response.status_code",
    }


def test_grpc_adapter_is_not_an_http_adapter() -> None:
    assert ADAPTERS["oip-grpc"] not in HTTP_ADAPTERS
    assert HTTP_ADAPTERS[0] is ADAPTERS["openai"]
    assert HTTP_ADAPTERS[1] is ADAPTERS["anthropic"]
    assert HTTP_ADAPTERS[2] is ADAPTERS["oip"]
    assert HTTP_ADAPTERS[3] is OIP_GENERATE and OIP_GENERATE.name == "oip"  # OIP's LLM paths: OIP's calls
    assert HTTP_ADAPTERS[4] is TGI and HTTP_ADAPTERS[5] is OLLAMA  # native LLM APIs: OpenAI-compatible servers' calls
    assert HTTP_ADAPTERS[6] is ADAPTERS["kserve"]
    assert HTTP_ADAPTERS[-1] is ADAPTERS["passthrough"]  # matches anything: last


@pytest.mark.parametrize(
    ("path", "operation"),
    [("/v1/chat/completions", "chat"), ("/v1/completions", "text_completion"), ("/v1/embeddings", "embeddings")],
)
def test_post_openai_paths_dispatch_to_openai(path: str, operation: str) -> None:
    adapter, target = dispatch("POST", path)
    assert adapter is ADAPTERS["openai"]
    assert (target.operation, target.model, target.version) == (operation, "", None)


def test_post_oip_infer_dispatches_to_oip_with_model_and_version() -> None:
    adapter, target = dispatch("POST", "/v2/models/iris/versions/3/infer")
    assert adapter is ADAPTERS["oip"]
    assert (target.operation, target.model, target.version) == ("infer", "iris", "3")
    adapter, target = dispatch("POST", "/v2/models/iris/infer")
    assert adapter is ADAPTERS["oip"]
    assert (target.operation, target.model, target.version) == ("infer", "iris", None)


@pytest.mark.parametrize(
    ("how", "operation", "stream"),
    [("generate", "generate", False), ("generate_stream", "generate", True), ("infer_stream", "infer", True)],
)
def test_post_oip_llm_paths_dispatch_to_oip_generate(how: str, operation: str, stream: bool) -> None:
    for path, version in ((f"/v2/models/iris/versions/3/{how}", "3"), (f"/v2/models/iris/{how}", None)):
        adapter, target = dispatch("POST", path)
        assert adapter is OIP_GENERATE
        assert (target.operation, target.model, target.version, target.stream) == (operation, "iris", version, stream)
        assert OIP_GENERATE.match("GET", path) is None


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions", "/v2/models/iris/versions/3/infer"])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "HEAD"])
def test_other_methods_on_inference_paths_match_no_inference_adapter(method: str, path: str) -> None:
    assert ADAPTERS["openai"].match(method, path) is None
    assert ADAPTERS["oip"].match(method, path) is None
    assert ADAPTERS["kserve"].match(method, path) is None
    adapter, target = dispatch(method, path)
    assert adapter is ADAPTERS["passthrough"]
    # one carrying no data on an OIP path is `metadata`, as gRPC's data-free RPCs are
    assert target.operation == ("metadata" if method in ("GET", "HEAD") and path.startswith("/v2/") else "passthrough")


@pytest.mark.parametrize(
    "path", ["/v2/models/iris/versions/3/ready", "/v2/models/iris", "/v1/chat", "/v1/chat/completions/"]
)
def test_post_to_other_paths_falls_through_to_passthrough(path: str) -> None:
    adapter, target = dispatch("POST", path)
    assert adapter is ADAPTERS["passthrough"]
    assert target.operation == "passthrough"


@pytest.mark.parametrize("path", ["/", "/generate", "/generate_stream"])
def test_tgi_s_shared_paths_are_tgi_s_and_left_to_the_body(path: str) -> None:
    """TGI's native paths are any server's too: dispatched to TGI's adapter, a body not TGI's goes to passthrough
    (`Target.shared`; tests/test_tgi_native_shared_paths.py)."""
    adapter, target = dispatch("POST", path)
    assert adapter is TGI and target.shared


@settings(max_examples=150, deadline=None)
@given(method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]), path=st.text(max_size=60))
def test_passthrough_matches_anything(method: str, path: str) -> None:
    target = ADAPTERS["passthrough"].match(method, path)
    metadata = not target.carries_data and (path == "/v2" or path.startswith("/v2/"))
    assert target.operation == ("metadata" if metadata else "passthrough")
    matched = [ADAPTERS[name].match(method, path) for name in ("openai", "oip", "kserve")]
    assert sum(target is not None for target in matched) <= 1  # no request is two protocols at once


def test_dialects_are_the_configs_upstream_protocols() -> None:
    """The config accepts exactly the dialects in the table: a new one needs no second list."""
    base = "listen: {http: '127.0.0.1:0'}\nroutes: [{model: '*', upstream: u}]\nupstreams: [{name: u, url: 'http://a:1', protocol: %s}]"
    for name in DIALECTS:
        assert proxy.config.parse(base % name).upstreams[0].protocol == name
    with pytest.raises(ConfigError) as caught:
        proxy.config.parse(base % "grpc-web")
    assert f"must be one of {', '.join(DIALECTS)}" in str(caught.value)


def test_dialects_table() -> None:
    assert sorted(DIALECTS) == ["kserve", "oip", "openai", "passthrough"]


def test_text_digest_is_each_text_followed_by_a_newline() -> None:
    assert text_digest(()) is None
    assert text_digest(["a", "é"]) == sha("a\né\n".encode())
    assert text_digest(("",)) == sha(b"\n")


@settings(max_examples=300, deadline=None)
@given(
    texts=st.lists(
        st.text(st.characters(codec=None, blacklist_categories=()), max_size=12)
        | st.sampled_from(["\ud800", "\udfff", "\n", "a\n", "\x00", "é", "\U0001f600"]),
        max_size=6,
    )
)
def test_text_digest_hashes_each_text_as_its_own_bytes(texts: list[str]) -> None:
    """Hashed joined, the digest is each text's bytes (`surrogatepass`: a lone surrogate, and a pair split across two
    texts, as each is written) followed by a newline, as it was hashed piece by piece; ASCII texts or not."""
    assert text_digest(texts) == (
        sha(b"".join(t.encode("utf-8", "surrogatepass") + b"\n" for t in texts)) if texts else None
    )
    assert text_digest(tuple(texts)) == text_digest(texts)


@settings(max_examples=100, deadline=None)
@given(outputs=st.lists(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=4), min_size=1, max_size=3))
def test_output_text_digest_does_not_depend_on_how_an_output_is_cut(outputs: list[list[str]]) -> None:
    """OutputText over pieces, one end_piece per output, equals text_digest over the whole outputs:
    what makes the digests of whole and streamed replies equal."""
    outcome = Outcome(started_ns=0)
    text = OutputText(outcome, Detectors([]), capture=True)
    for pieces in outputs:
        for piece in pieces:
            text.add(piece)
        text.end_piece()
    text.finish()
    assert outcome.output_digest == text_digest(["".join(pieces) for pieces in outputs])
    assert outcome.content == ("".join("".join(pieces) for pieces in outputs),)


@pytest.mark.parametrize("pieces", [1, 255, 256, 257, 100_000])
def test_captured_output_keeps_its_pieces_joined_not_an_object_each(pieces: int) -> None:
    """With capture_content, a stream of short pieces (a token each) is kept as runs joined once each, not a
    string object a piece (100k two-character pieces held 5.9 MB; up to ~58 MB at the default scan limit)."""
    outcome = Outcome(started_ns=0)
    detectors = Detectors([])
    text = OutputText(outcome, detectors, capture=True)
    for n in range(pieces):
        text.add(f"{n % 100:02d}")
    kept = text._capture
    assert kept is not None and len(kept) <= pieces // 256 + 256
    text.end_piece()
    text.finish(detectors)  # as the observers finish it
    written = "".join(f"{n % 100:02d}" for n in range(pieces))
    if len(written) <= CAPTURE_MAX_CHARS:
        assert outcome.content == (written,)
    else:  # past a call's capture bound: what is kept is cut, 320 characters early, and says so
        (content,) = outcome.content
        assert content.endswith(NOT_CAPTURED_PAST_BOUND), content[-100:]
        kept_text = content[: -len(NOT_CAPTURED_PAST_BOUND)]
        assert written.startswith(kept_text) and len(kept_text) == CAPTURE_MAX_CHARS - 320, len(kept_text)


def test_output_text_with_no_text_leaves_no_digest() -> None:
    outcome = Outcome(started_ns=0)
    text = OutputText(outcome, Detectors([]), capture=True)
    text.add("")
    text.end_piece()
    text.finish()
    assert (outcome.output_digest, outcome.content) == (None, ())


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(alphabet='ab":\\ {}[],', max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(alphabet='ab":', max_size=3), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(alphabet='ab":', max_size=3), JSON_VALUES, max_size=4))
def test_request_json_without_duplicates_reads_as_orjson_does(data: dict[str, object]) -> None:
    import orjson

    from proxy.protocols import load_request_json

    body = orjson.dumps(data)
    assert load_request_json(body) == orjson.loads(body)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(alphabet='ab":\\', max_size=3), JSON_VALUES, min_size=1, max_size=4), st.data())
def test_a_key_written_twice_anywhere_is_refused(data: dict[str, object], draw: st.DataObject) -> None:
    """A body written by hand, keys and strings with quotes, colons and backslashes in them, one object of
    it holding one of its keys twice: refused, whatever the key and wherever the object."""
    from proxy.errors import InvalidRequest
    from proxy.protocols import load_request_json
    from tests.protocols.bodies import key_twice

    with pytest.raises(InvalidRequest, match="appears twice"):
        load_request_json(key_twice(data, draw, b" "))


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "a", "messages": [], "model": "b"}',
        b'{"model": "a", "messages": [{"role": "user", "content": "x", "content": "y"}]}',
        b'{"a": {"b": 1, "b" : 2}, "note": "\\":"}',
        b'{"k\\\\": 1, "b": 1, "b": 2}',  # a key ending in an escaped backslash must not hide a duplicate
        b'{"k" : 1, "b": 1, "b": 2}',  # nor a key with space before its colon
        # nor a string beginning with ':' written `\u003a` (written out again, it counts as one more key)
        b'{"model":"m","messages":[{"role":"user","content":"alice@example.com","content":"\\u003a) hi"}]}',
        b'{"model":"m","stop":"\\u003a","model":"n"}',
        b'{"model":"m","\\u003ax":1,"model":"n"}',
        # nor a string beginning with ':', written as it is, with or without space around
        b'{"a":":x","b":1,"b":2}',
        b'{"a" : " :x", "b" :1, "b":2}',
    ],
)
def test_duplicate_keys_are_refused(body: bytes) -> None:
    from proxy.errors import InvalidRequest
    from proxy.protocols import load_request_json

    with pytest.raises(InvalidRequest, match="appears twice"):
        load_request_json(body)


@pytest.mark.interpreted  # patches what a compiled module calls directly (tests/conftest.py)
def test_json_inside_strings_does_not_send_a_body_to_the_slow_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tool-call arguments and tool results are JSON in strings ('\\":' everywhere): the duplicate-key check
    still decides in C, without parsing the body a second time."""
    import orjson

    import proxy.protocols as protocols
    from proxy.protocols import load_request_json

    def slow(*args: object, **kwargs: object) -> None:
        raise AssertionError("parsed a second time")

    monkeypatch.setattr(protocols.json, "loads", slow)
    arguments = orjson.dumps({"city": "Paris", "days": 3}).decode()
    body = orjson.dumps({"model": "m", "messages": [
        {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "c", "content": orjson.dumps({"result": "sunny"}).decode()},
    ]})  # fmt: skip
    assert load_request_json(body)["messages"][0]["tool_calls"][0]["function"]["arguments"] == arguments


def test_a_large_body_of_many_objects_is_refused_before_it_is_parsed() -> None:
    """`{},` is three bytes in the body and tens in memory: a 16 MiB body of them took 487 MiB."""
    from proxy.errors import RequestTooLarge
    from proxy.protocols import MAX_JSON_CONTAINERS, load_request_json

    many = b'{"input": [' + b"{}," * MAX_JSON_CONTAINERS + b"{}]}"
    with pytest.raises(RequestTooLarge, match="over 1,000,000 JSON objects and arrays"):
        load_request_json(many)
    text = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * (4 << 20)}] * 3}).encode()
    assert load_request_json(text)["model"] == "m"  # large, few objects: read


PLAIN_MESSAGES = st.lists(
    st.one_of(
        st.text(alphabet="ab@.", max_size=4),  # a bare string beside messages (a server that takes them reads it)
        st.builds(
            lambda role, text: {"role": role, "content": text},
            st.sampled_from(["user", "system", "tool"]),
            st.text(alphabet="ab@.", max_size=4),
        ),
        st.builds(lambda text: {"role": "user", "content": [{"type": "text", "text": text}]}, st.text(max_size=3)),
    ),
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(PLAIN_MESSAGES, st.booleans())
def test_plain_messages_and_what_is_beside_them_are_read_in_document_order(items: list[object], nested: bool) -> None:
    """Plain chat messages are read without walking their fields; every string before, between and after
    them is read all the same, in document order."""
    from proxy.protocols import user_strings

    expected: list[str] = []
    for item in items:
        if isinstance(item, str):
            expected.append(item)
        else:
            assert isinstance(item, dict)
            content = item["content"]
            expected.append(content if isinstance(content, str) else content[0]["text"])
    out: list[str] = []
    assert user_strings({"messages": items, "after": ["z@z.z"]} if nested else items, out)
    assert out == [text for text in expected if text] + (["z@z.z"] if nested else [])


@pytest.mark.parametrize("inner", [b'{"a":1,"a":2}', b'{"a":":)"}'])
def test_a_body_too_deep_for_the_duplicate_check_is_refused_not_a_fault(inner: bytes) -> None:
    """orjson reads 1,024 levels, Python's json (the slow check) about 1,000: a body between the two that
    the slow check must read (a duplicate, or a string beginning with ':') was a RecursionError, a 500."""
    from proxy.errors import InvalidRequest
    from proxy.protocols import load_request_json

    depth = 1010
    body = b'{"x":' + b"[" * depth + inner + b"]" * depth + b"}"
    with pytest.raises(InvalidRequest, match="nested too deeply"):
        load_request_json(body)
