"""What held in a hunt (2026-12-05) for parser differentials: a request body the model server reads otherwise than the
proxy, so that a call the proxy forwards (200) hands its model an address its zone forbids for the call's purpose.
None was found; kept as regressions. Each form carries `alice@example.com` (or spells it so a reader might):

- a byte order mark before UTF-8 JSON, UTF-16 JSON: read as FastAPI's `request.json()` reads them, 403;
- `NaN`, `-Infinity`, `/* comments */`, a second JSON value or bytes after the first, nesting past 1,024 levels, a lone
  surrogate escape (`\\ud800`): refused 400 where servers answer 200 (llama-cpp-python takes `NaN`; KServe's V2
  endpoint too) or fail themselves (llama-cpp-python's 500 at the surrogate, at trailing bytes and at the nesting);
- a key written twice (the last wins in llama-cpp-python, MLServer and KServe: the address, or `hi` before it): 400;
- `\\u0000` inside the address: 403 (llama-cpp-python's tokenizer reads the NUL where it stands);
- a `Content-Type` that is no JSON's (`text/plain`, `application/x-www-form-urlencoded`, none, `+json`): the body is
  read as JSON all the same, 403, where FastAPI parses it (`+json`, MLServer without a type) or refuses it (422, 500);
- a `charset` in the type: the servers read the bytes as UTF-8 JSON whatever it names (`charset=utf-16` over UTF-8:
  the address, 403), so `charset=utf-7` with `alice+AEA-example.com` (`@` in UTF-7) reaches the model as written,
  no address (the servers' echo shows it), and is forwarded 200, as the proxy read it;
- `Content-Encoding: gzip`: MLServer decompresses it (`"gzip" in headers.getlist(...)`), and so does the proxy, 403;
  `GZIP`, `x-gzip` (MLServer, KServe and llama-cpp-python read those bytes as they came: no JSON, 4xx/5xx), 403 all
  the same; two gzip members (MLServer reads both, `gzip.decompress`), the field twice, or `identity` then `gzip`
  (MLServer decompresses once): 400;
- OIP's binary tensor extension (`Inference-Header-Content-Length`): KServe reads it only when the type is no JSON's
  (FastAPI hands it bytes), MLServer never: a JSON-typed one is no JSON to either, and a JSON body with the field
  shorter than it (KServe and MLServer read the whole body) is refused 400 (its bytes past the length are no tensor's).

Real servers: llama-cpp-python (OpenAI chat), MLServer and KServe's model server with a runtime that answers with what
it was handed (OIP v2 REST). Ollama is Go (`encoding/json`, gin's `ShouldBindJSON`): it takes invalid UTF-8 and lone
surrogates as U+FFFD, a key in any case, and reads the first JSON value of a body leaving the rest; orjson refuses the
first two and trailing bytes (400, as above), and keys Go takes for a field are refused (test_ollama_native_keys_any_case)."""

from __future__ import annotations

import codecs
import gzip
import struct
from collections.abc import Callable, Iterator

import httpx
import orjson
import pytest

from tests.harness import LoopThread, ProxyHandle
from tests.ingress.test_compressed_replies_read import CONFIG
from tests.ingress.test_request_json_utf16 import FORWARDED, LLAMA_CONFIG, answer  # (the raw origin keeping the bodies)
from tests.servers.raw_origin import proxy_in_front
from tests.servers.real import kserve_echo, kserve_model_server, mlserver_echo, mlserver_runtime
from tests.test_oip_request_id_reaches_model import CONFIG as MLSERVER_CONFIG
from tests.test_oip_tensor_names_reach_model import KSERVE_CONFIG

ADDRESS = "alice@example.com"
UTF7 = "alice+AEA-example.com"  # the address in UTF-7: what a model reading the bytes by that charset would get
JSON = "application/json"
Fields = list[tuple[str, str]]


def chat(content: str, model: str = "m", more: str = "") -> bytes:
    """A chat body as written (not by a JSON writer: some forms are no JSON), `content` JSON-escaped as it stands."""
    return (f'{{"model":"{model}","max_tokens":1,"temperature":0{more},'
            f'"messages":[{{"role":"user","content":"{content}"}}]}}').encode()  # fmt: skip


def chat_forms(model: str) -> dict[str, tuple[bytes, Fields]]:
    """Forms of an OpenAI chat body holding the address, with the fields sent beside it."""
    plain = chat(ADDRESS, model)
    typed = [("content-type", JSON)]
    return {
        "utf-8 byte order mark": (codecs.BOM_UTF8 + plain, typed),
        "utf-16": (plain.decode().encode("utf-16-le"), typed),
        "NaN": (plain.replace(b'"temperature":0', b'"temperature":NaN'), typed),
        "-Infinity": (plain.replace(b'"temperature":0', b'"temperature":-Infinity'), typed),
        "comment": (plain.replace(b'{"model"', b'{/*c*/"model"', 1), typed),
        "second value": (chat("hi", model) + plain, typed),
        "bytes after": (plain + b"xx", typed),
        "lone surrogate": (chat("\\ud800" + ADDRESS, model), typed),
        "key twice": (
            chat("hi", model).replace(b'"content":"hi"', f'"content":"hi","content":"{ADDRESS}"'.encode()),
            typed,
        ),
        "nul inside": (chat("alice\\u0000@example.com", model), typed),
        "nested past 1024": (chat(ADDRESS, model, ',"x":' + "[" * 1100 + "]" * 1100), typed),
        "text/plain": (plain, [("content-type", "text/plain")]),
        "form-urlencoded": (plain, [("content-type", "application/x-www-form-urlencoded")]),
        "no type": (plain, []),
        "+json type": (plain, [("content-type", "application/vnd.x+json")]),
        "charset=utf-16 over utf-8": (plain, [("content-type", "application/json; charset=utf-16")]),
        "gzip": (gzip.compress(plain), [*typed, ("content-encoding", "gzip")]),
        "gzip, gzip": (gzip.compress(gzip.compress(plain)), [*typed, ("content-encoding", "gzip, gzip")]),
        "gzip, identity": (gzip.compress(plain), [*typed, ("content-encoding", "gzip, identity")]),
    }


# the status each form is answered with for a purpose the address's zone forbids: 403 read, 400 refused unread
REFUSED = {
    "utf-8 byte order mark": 403, "utf-16": 403, "NaN": 400, "-Infinity": 400, "comment": 400, "second value": 400,
    "bytes after": 400, "lone surrogate": 400, "key twice": 400, "nul inside": 403, "nested past 1024": 400,
    "text/plain": 403, "form-urlencoded": 403, "no type": 403, "+json type": 403, "charset=utf-16 over utf-8": 403,
    "gzip": 403, "gzip, gzip": 400, "gzip, identity": 400,
}  # fmt: skip


@pytest.fixture
def proxy(make_proxy: Callable[..., ProxyHandle], loop_thread: LoopThread) -> Iterator[ProxyHandle]:
    FORWARDED.clear()
    with proxy_in_front(loop_thread, make_proxy, CONFIG, answer) as handle:
        yield handle


@pytest.mark.parametrize("form", list(REFUSED))
def test_no_form_of_a_forbidden_address_is_forwarded(proxy: ProxyHandle, form: str) -> None:
    body, fields = chat_forms("m")[form]
    refused = httpx.post(f"{proxy.url}/v1/chat/completions", content=body, headers=[*fields, ("x-purpose", "ads")])
    assert refused.status_code == REFUSED[form], refused.text
    assert FORWARDED == []


def test_a_charset_the_servers_do_not_decode_by_is_read_as_they_read_it(proxy: ProxyHandle) -> None:
    """UTF-7's `+AEA-` is `@` only to a reader that decodes by the charset, which none of the servers does (below):
    the text is read as the bytes are, UTF-8, and forwarded as sent."""
    body = chat(UTF7)
    sent = httpx.post(f"{proxy.url}/v1/chat/completions", content=body,
                      headers={"content-type": "application/json; charset=utf-7", "x-purpose": "ads"})  # fmt: skip
    assert sent.status_code == 200, sent.text
    assert [body] == FORWARDED


@pytest.mark.realserver
def test_llama_cpp_python_reads_no_form_the_proxy_forwards(llama: str, make_proxy: Callable[..., ProxyHandle]) -> None:
    """llama-cpp-python (FastAPI, Python's `json`) answers many of these forms 200 itself; through the proxy, for a
    purpose the zone forbids, none is forwarded; and UTF-7's address is no address to its tokenizer."""
    proxy = make_proxy(LLAMA_CONFIG, UPSTREAM=llama)
    direct_status = {}
    for form, (body, fields) in chat_forms("smollm2").items():
        if "gzip" in form and form != "gzip":
            continue  # (the proxy's refusal is of the field, not of what a server reads: shown on MLServer's)
        direct = httpx.post(f"{llama}/v1/chat/completions", content=body, headers=fields, timeout=120)
        direct_status[form] = direct.status_code
        via = httpx.post(f"{proxy.url}/v1/chat/completions", content=body, headers=[*fields, ("x-purpose", "ads")])
        assert via.status_code == REFUSED[form], (form, via.text)
    # the server serves these, the address among what its model reads (NaN and -Infinity, `temperature`, aside)
    served = {"utf-8 byte order mark", "utf-16", "NaN", "-Infinity", "key twice", "nul inside", "+json type",
              "charset=utf-16 over utf-8"}  # fmt: skip
    assert {form for form, status in direct_status.items() if status == 200} == served
    tokens = httpx.post(f"{llama}/extras/tokenize", content=f'{{"input":"{UTF7}"}}'.encode(),
                        headers={"content-type": "application/json; charset=utf-7"}).json()["tokens"]  # fmt: skip
    read = httpx.post(f"{llama}/extras/detokenize", json={"tokens": tokens}).json()["text"]
    assert read.strip() == UTF7  # as written: no `@`


# a runtime answering with what MLServer handed it: its inputs' data
MLSERVER_ECHO = mlserver_echo("[tensor.data.model_dump() for tensor in payload.inputs]")
# a KServe model answering with what KServe's model server handed it: its inputs' data
KSERVE_ECHO = kserve_echo(
    "[[item.decode() if isinstance(item, bytes) else item for item in tensor.data] for tensor in payload.inputs]"
)


def infer(text: str) -> bytes:
    return f'{{"inputs":[{{"name":"t","datatype":"BYTES","shape":[1],"data":["{text}"]}}]}}'.encode()


def oip_forms() -> dict[str, tuple[bytes, Fields]]:
    plain = infer(ADDRESS)
    typed = [("content-type", JSON)]
    data = struct.pack("<I", len(ADDRESS)) + ADDRESS.encode()
    tensor = {"name": "t", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": len(data)}}
    head = orjson.dumps({"inputs": [tensor]})
    length = ("inference-header-content-length", str(len(head)))
    two_members = gzip.compress(infer("hi")[:20]) + gzip.compress(infer("hi")[20:].replace(b"hi", ADDRESS.encode()))
    return {
        "plain": (plain, typed),
        "gzip": (gzip.compress(plain), [*typed, ("content-encoding", "gzip")]),
        "gzip members": (two_members, [*typed, ("content-encoding", "gzip")]),
        "gzip field twice": (
            gzip.compress(plain),
            [*typed, ("content-encoding", "gzip"), ("content-encoding", "gzip")],
        ),
        "identity, gzip": (
            gzip.compress(plain),
            [*typed, ("content-encoding", "identity"), ("content-encoding", "gzip")],
        ),
        "GZIP": (gzip.compress(plain), [*typed, ("content-encoding", "GZIP")]),
        "x-gzip": (gzip.compress(plain), [*typed, ("content-encoding", "x-gzip")]),
        "text/plain": (plain, [("content-type", "text/plain")]),
        "no type": (plain, []),
        "charset=utf-16 over utf-8": (plain, [("content-type", "application/json; charset=utf-16")]),
        "NaN": (plain.replace(b'"shape"', b'"parameters":{"x":NaN},"shape"'), typed),
        "key twice": (infer("hi").replace(b'"data"', f'"data":["{ADDRESS}"],"data"'.encode()), typed),
        "second value": (infer("hi") + b" " + plain, typed),
        "binary, octet-stream": (head + data, [("content-type", "application/octet-stream"), length]),
        "binary, JSON type": (head + data, [*typed, length]),
        "binary, no type": (head + data, [length]),
        "JSON, length short": (plain + b"  ", [*typed, ("inference-header-content-length", str(len(plain)))]),
    }


OIP_REFUSED = {
    "plain": 403, "gzip": 403, "gzip members": 400, "gzip field twice": 400, "identity, gzip": 400, "GZIP": 403,
    "x-gzip": 403, "text/plain": 403, "no type": 403, "charset=utf-16 over utf-8": 403, "NaN": 403, "key twice": 400,
    "second value": 400, "binary, octet-stream": 403, "binary, JSON type": 403, "binary, no type": 403,
    "JSON, length short": 400,
}  # fmt: skip
# what each server's model is handed of the tensor's data (None: the server answers no 200)
MLSERVER_SEEN = {
    "plain": ADDRESS, "gzip": ADDRESS, "gzip members": ADDRESS, "gzip field twice": ADDRESS, "identity, gzip": ADDRESS,
    "no type": ADDRESS, "charset=utf-16 over utf-8": ADDRESS, "key twice": "hi", "JSON, length short": ADDRESS,
}  # fmt: skip
KSERVE_SEEN = {
    "plain": ADDRESS, "charset=utf-16 over utf-8": ADDRESS, "NaN": ADDRESS, "key twice": "hi",
    "binary, octet-stream": ADDRESS, "binary, no type": ADDRESS, "JSON, length short": ADDRESS,
}  # fmt: skip


def held(base: str, proxy: ProxyHandle, path: str, seen: dict[str, str]) -> None:
    """Each form: what the server's model is handed directly, and the proxy's answer for a purpose the zone of the
    address forbids (never a 200); then UTF-7's address, which reaches the model as written."""
    for form, (body, fields) in oip_forms().items():
        direct = httpx.post(f"{base}{path}", content=body, headers=fields, timeout=60)
        got = orjson.loads(direct.json()["outputs"][0]["data"][0])[0][0] if direct.status_code == 200 else None
        assert got == seen.get(form), (form, direct.text)
        via = httpx.post(f"{proxy.url}{path}", content=body, headers=[*fields, ("x-purpose", "ads")], timeout=60)
        assert via.status_code == OIP_REFUSED[form], (form, via.text)
    utf7 = {"content-type": "application/json; charset=utf-7", "x-purpose": "ads"}
    via = httpx.post(f"{proxy.url}{path}", content=infer(UTF7), headers=utf7, timeout=60)
    assert via.status_code == 200, via.text
    assert orjson.loads(via.json()["outputs"][0]["data"][0]) == [[UTF7]]


@pytest.mark.realserver
def test_mlserver_reads_no_form_the_proxy_forwards(
    tmp_path_factory: pytest.TempPathFactory, make_proxy: Callable[..., ProxyHandle]
) -> None:
    with mlserver_runtime(tmp_path_factory.mktemp("mlserver-forms"), MLSERVER_ECHO) as (rest, grpc):
        proxy = make_proxy(MLSERVER_CONFIG, wait="probed", REST=rest, GRPC=grpc)
        held(rest, proxy, "/v2/models/echo/infer", MLSERVER_SEEN)


@pytest.mark.realserver
def test_kserve_reads_no_form_the_proxy_forwards(
    tmp_path_factory: pytest.TempPathFactory, make_proxy: Callable[..., ProxyHandle]
) -> None:
    with kserve_model_server(tmp_path_factory.mktemp("kserve-forms"), KSERVE_ECHO, "kecho") as url:
        proxy = make_proxy(KSERVE_CONFIG, KSERVE=url)
        held(url, proxy, "/v2/models/kecho/infer", KSERVE_SEEN)
