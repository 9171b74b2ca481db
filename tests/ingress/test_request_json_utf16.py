"""A request body that is JSON after a UTF-8 byte order mark, or in UTF-16 or UTF-32 (with or without their mark):
FastAPI's `request.json()` is Python's `json.loads` of the bytes, which reads all of them (`json.detect_encoding`), so
vLLM, llama-cpp-python and KServe's V2 and OpenAI endpoints serve it. The proxy refused it 400 (`not valid JSON`:
orjson reads UTF-8 alone), where those servers answered. It is now read as they read it, by the same adapter: an
address in it is `pii:email`, refused 403 for a purpose its zone forbids and never forwarded; allowed, the bytes as
sent are forwarded, the call recorded with its labels and the digest of its content. MLServer and KServe's V1
endpoint (orjson) refuse these forms themselves: read all the same, they answer their own 4xx."""

from __future__ import annotations

import asyncio
import codecs
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from proxy.protocols import text_digest
from tests.harness import LoopThread, ProxyHandle
from tests.ingress.test_compressed_replies_read import CHAT, CONFIG
from tests.ingress.test_model_output_labels import stored_output_labels
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.raw_origin import proxy_in_front, request_body
from tests.servers.real import mlserver

ADDRESS = "alice@example.com"
REQUEST = {"model": "m", "messages": [{"role": "user", "content": f"write to {ADDRESS}"}]}
FORMS: dict[str, Callable[[str], bytes]] = {
    "utf-8-bom": lambda text: codecs.BOM_UTF8 + text.encode(),
    "utf-16-le": lambda text: text.encode("utf-16-le"),
    "utf-16-be": lambda text: text.encode("utf-16-be"),
    "utf-16-bom": lambda text: text.encode("utf-16"),  # (a byte order mark first, then little-endian)
    "utf-32-le": lambda text: text.encode("utf-32-le"),
    "utf-32-bom": lambda text: text.encode("utf-32"),
}
FORWARDED: list[bytes] = []  # the bodies the origin got


async def answer(head: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    FORWARDED.append(await request_body(head, reader))
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                 % (len(CHAT), CHAT))  # fmt: skip
    await writer.drain()
    return True


@pytest.fixture
def proxy(make_proxy, loop_thread: LoopThread, otlp: OtlpReceiver) -> Iterator[ProxyHandle]:  # type: ignore[no-untyped-def]
    FORWARDED.clear()
    spans = f"telemetry: {{exporter: otlp, endpoint: 'http://127.0.0.1:{otlp.port}'}}\n"
    with proxy_in_front(loop_thread, make_proxy, CONFIG + spans, answer) as handle:
        yield handle


def post(url: str, body: bytes, **fields: str) -> httpx.Response:
    """`body` sent as it is (httpx writes `content` untouched), `application/json` as FastAPI needs to parse it."""
    return httpx.post(url, content=body, headers={"content-type": "application/json", **fields}, timeout=30)


@pytest.mark.parametrize("form", list(FORMS))
def test_a_forbidden_address_in_utf16_json_is_refused_403_and_not_forwarded(proxy: ProxyHandle, form: str) -> None:
    body = FORMS[form](orjson.dumps(REQUEST).decode())
    refused = post(f"{proxy.url}/v1/chat/completions", body, **{"x-purpose": "marketing"})
    assert refused.status_code == 403, refused.text  # before: 400 invalid_request, "not valid JSON"
    assert "pii:email" in refused.text
    assert FORWARDED == []


@pytest.mark.parametrize("form", list(FORMS))
def test_allowed_utf16_json_is_forwarded_as_sent_and_recorded_with_its_labels(
    proxy: ProxyHandle, loop_thread: LoopThread, otlp: OtlpReceiver, tmp_path: Path, form: str
) -> None:
    body = FORMS[form](orjson.dumps(REQUEST).decode())
    flow = f"flow-{form}"
    allowed = post(f"{proxy.url}/v1/chat/completions", body, **{"x-data-labels": flow})
    assert allowed.status_code == 200, allowed.text  # before: 400 invalid_request
    assert [body] == FORWARDED  # byte for byte: never written again in UTF-8
    assert allowed.headers["x-data-labels"] == f"{flow},pii:email"
    loop_thread.run(proxy.process.runtime.sinks.flush())
    assert stored_output_labels(tmp_path / "lineage.db")[f"{flow},pii:email"] == [flow, "pii:email"]
    (span,) = otlp.wait_for(lambda spans: len(spans) == 1)
    assert span.attributes["lineage.input.digest"] == text_digest([f"write to {ADDRESS}"])  # its content's, as UTF-8's


def test_json_no_server_reads_stays_refused_400(proxy: ProxyHandle) -> None:
    """UTF-16 that is no JSON, and UTF-8 JSON after two byte order marks (Python's `json` reads one), are refused
    as before, saying why."""
    for body in ("write to alice@example.com".encode("utf-16-le"), codecs.BOM_UTF8 * 2 + orjson.dumps(REQUEST)):
        refused = post(f"{proxy.url}/v1/chat/completions", body)
        assert refused.status_code == 400, refused.text
        assert "not valid JSON" in refused.json()["error"]["message"]
    assert FORWARDED == []


def test_utf16_json_missing_a_field_is_refused_for_it(proxy: ProxyHandle) -> None:
    """Refused as the JSON the server reads is: for the field it lacks, not as no JSON."""
    refused = post(f"{proxy.url}/v1/chat/completions", orjson.dumps({"messages": []}).decode().encode("utf-16"))
    assert refused.status_code == 400 and "'model' is required" in refused.json()["error"]["message"], refused.text


OIP_RAW_CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: triton, url: "${UPSTREAM}", protocol: oip, checkpoint: "m@1"}]
routes: [{model: m, upstream: triton}]
policy: {anonymous: allow, default_purpose: assistant}
detectors: [email]
lineage: {store: "${STORE}"}
"""


def test_a_binary_extension_head_in_utf16_stays_refused_400(
    make_proxy: Callable[..., ProxyHandle], loop_thread: LoopThread
) -> None:
    """An OIP body with the binary tensor extension: Triton (rapidjson) and KServe (`InferRequest.from_bytes`, orjson)
    read its head, `Inference-Header-Content-Length` bytes as sent, in UTF-8 alone, so a head in UTF-16 is no JSON to
    any server and is refused as before. Read again as UTF-16 text, the whole body, binary section too, became other
    bytes the length no longer split as sent: this head, then its section's UTF-16 spaces, read as a head, and
    the rest as a tensor's data (an address), where the server reads a UTF-16 head it refuses."""
    FORWARDED.clear()
    data = struct.pack("<I", len(ADDRESS)) + ADDRESS.encode()
    tensor = {"name": "t", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": len(data)}}
    head = orjson.dumps({"inputs": [tensor]}).decode()
    body = head.encode("utf-16-le") + (" " * len(head) + data.decode("ascii")).encode("utf-16-le")
    with proxy_in_front(loop_thread, make_proxy, OIP_RAW_CONFIG, answer) as proxy:
        refused = post(
            f"{proxy.url}/v2/models/m/infer", body, **{"inference-header-content-length": str(2 * len(head))}
        )
    assert refused.status_code == 400, refused.text  # before: 200, forwarded, recorded as holding the address
    assert "inference request is not valid JSON" in refused.json()["error"]  # its head's refusal, as before
    assert FORWARDED == []


LLAMA_CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: llamacpp, url: "${UPSTREAM}"}]
routes: [{model: "*", upstream: llamacpp}]
policy: {anonymous: allow, default_purpose: assistant}
zones: [{name: personal, labels: [pii:email], allow_purposes: [assistant]}]
detectors: [email]
lineage: {store: "${STORE}"}
"""


@pytest.mark.realserver
@pytest.mark.parametrize("form", ["utf-16-le", "utf-32-bom", "utf-8-bom"])
def test_llama_cpp_python_serves_utf16_json_through_the_proxy(
    llama: str, make_proxy: Callable[..., ProxyHandle], form: str
) -> None:
    """llama-cpp-python (FastAPI) answers these bodies itself: through the proxy too, labelled; refused 403 where
    the purpose is forbidden."""
    request: dict[str, Any] = {**REQUEST, "model": "smollm2", "max_tokens": 2, "temperature": 0}
    body = FORMS[form](orjson.dumps(request).decode())
    direct = post(f"{llama}/v1/chat/completions", body)
    assert direct.status_code == 200, direct.text  # the server reads it
    proxy = make_proxy(LLAMA_CONFIG, UPSTREAM=llama)
    via = post(f"{proxy.url}/v1/chat/completions", body)
    assert via.status_code == 200, via.text  # before: 400 invalid_request
    assert via.headers["x-data-labels"] == "pii:email"
    assert via.json()["choices"][0]["message"]["content"] == direct.json()["choices"][0]["message"]["content"]
    refused = post(f"{proxy.url}/v1/chat/completions", body, **{"x-purpose": "marketing"})
    assert refused.status_code == 403, refused.text


OIP_CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: mlserver, url: "${UPSTREAM}", protocol: oip}]
routes: [{model: iris, upstream: mlserver}]
policy: {anonymous: allow, default_purpose: assistant}
zones: [{name: personal, labels: [pii:email], allow_purposes: [assistant]}]
detectors: [email]
lineage: {store: "${STORE}"}
"""


@pytest.mark.realserver
def test_mlserver_refuses_utf16_json_itself_and_the_proxy_reads_it(
    make_proxy: Callable[..., ProxyHandle], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """MLServer reads request JSON with orjson: it answers UTF-16 422 itself. The proxy reads it all the same (reading
    is safe): a forbidden address is refused 403, an allowed body reaches MLServer, whose own answer comes back."""
    inputs = {"name": "predict", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
    with mlserver(tmp_path_factory.mktemp("mlserver")) as (url, _):
        proxy = make_proxy(OIP_CONFIG, UPSTREAM=url, wait="probed")
        plain = orjson.dumps({"inputs": [inputs]}).decode().encode("utf-16")
        direct, via = (post(f"{base}/v2/models/iris/infer", plain) for base in (url, proxy.url))
        assert direct.status_code == via.status_code == 422, via.text  # MLServer's answer, passed on
        labelled = orjson.dumps({"inputs": [inputs], "parameters": {"note": ADDRESS}}).decode().encode("utf-16")
        refused = post(f"{proxy.url}/v2/models/iris/infer", labelled, **{"x-purpose": "marketing"})
        assert refused.status_code == 403 and "pii:email" in refused.text, refused.text


def test_oip_s_llm_paths_read_utf16_json_again_as_infer_does() -> None:
    """Triton's generate extension and MLServer's `/infer_stream` (`oip_generate`) re-read a body in UTF-16 as
    `/infer` does, and not one with the binary tensor extension (whose head's length counts the bytes sent)."""
    from proxy.errors import InvalidRequest
    from proxy.protocols.oip_generate import ADAPTER

    body = FORMS["utf-16-le"](orjson.dumps({"text_input": f"write to {ADDRESS}"}).decode())
    target = ADAPTER.match("POST", "/v2/models/ensemble/generate")
    assert target is not None
    with pytest.raises(InvalidRequest, match="JSON"):
        ADAPTER.read(target, body, {}.get)
    again = ADAPTER.as_utf8_json(body, {}.get)
    assert again == orjson.dumps({"text_input": f"write to {ADDRESS}"})
    assert ADDRESS in "\n".join(ADAPTER.read(target, again, {}.get).texts)
    assert ADAPTER.as_utf8_json(body, {"inference-header-content-length": "10"}.get) is None
