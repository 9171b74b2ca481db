"""KServe's V1 protocol (`POST /v1/models/{name}:predict`, `:explain`; `GET /v1/models/{name}`), as KServe's own model
server (`kserve.ModelServer`) serves it: read as the OIP adapter reads OIP v2. Before, such a call was no adapter's: with
zones configured every one was refused (403 `endpoint_denied`), even one holding nothing; with `policy.passthrough:
forward` it went to the `"*"` route unread, so an instance holding an address reached the model for a purpose its zone
forbids, and its record had no labels. The model a V1 path names now routes the call, its instances are read (their
strings, as an OIP tensor's), the reply's predictions are its output, and an upstream of `protocol: kserve` names the
model's checkpoint from `GET /v1/models/{name}`."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web

from proxy.protocols import bytes_digest
from proxy.protocols.kserve import ADAPTER, read_request, split_path
from proxy.record.store import EdgeKey, SqliteStore
from tests.harness import LoopThread, ProxyHandle, proxy_error, serving
from tests.servers.real import kserve_model_server

ADDRESS = "alice@example.com"
# a custom KServe model that answers with the payload KServe's model server handed it, and writes it down (one JSON
# line a call): what reached the model
ECHO = """
import json, os, sys
import kserve


class Echo(kserve.Model):
    def __init__(self, name):
        super().__init__(name)
        self.ready = True

    async def predict(self, payload, headers=None, response_headers=None):
        seen = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
        with open("seen.jsonl", "a") as log:
            log.write(json.dumps(seen) + "\\n")
        return {"predictions": [seen]}


if __name__ == "__main__":
    kserve.ModelServer(http_port=int(sys.argv[1]), enable_grpc=False, workers=1).start([Echo("echo")])
"""
CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: kserve, url: "${KSERVE}", protocol: kserve}
routes:
  - {model: echo, upstream: kserve}
policy: {anonymous: allow, default_purpose: care, passthrough: "${PASSTHROUGH}"}
zones:
  - {name: personal, labels: ["pii:email"], allow_purposes: [care]}
detectors: [email]
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""


@pytest.fixture(scope="module")
def kserve_echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """KServe's model server running the echo model: its url and its log of what reached the model."""
    workdir = tmp_path_factory.mktemp("kserve-echo")
    with kserve_model_server(workdir, ECHO, "echo") as url:
        yield url, workdir / "seen.jsonl"


def seen(log: Path) -> list[Any]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def edges(store: Path) -> list[EdgeKey]:
    kept = SqliteStore(store, readonly=True)
    try:
        return [row.key for row in kept.rows()]
    finally:
        kept.close()


@pytest.mark.realserver
def test_a_labelled_instance_is_refused_before_the_real_kserve_model(
    kserve_echo: tuple[str, Path], make_proxy: Callable[..., ProxyHandle], tmp_path: Path
) -> None:
    url, log = kserve_echo
    body = {"instances": [[ADDRESS, 1.5]]}
    direct = httpx.post(f"{url}/v1/models/echo:predict", json=body, timeout=60)
    assert direct.json() == {"predictions": [body]}  # the real model server hands the model the whole body
    proxy = make_proxy(CONFIG, wait="probed", KSERVE=url, PASSTHROUGH="forward")
    before = len(seen(log))
    refused = httpx.post(f"{proxy.url}/v1/models/echo:predict", json=body, headers={"x-purpose": "ads"}, timeout=60)
    assert refused.status_code == 403, refused.text
    error = proxy_error(refused)  # in KServe's error shape, `{"error": "<message>"}`
    assert error["code"] == "purpose_denied" and "pii:email" in error["message"], error
    assert len(seen(log)) == before  # nothing reached the model
    rows = edges(tmp_path / "lineage.db")
    assert [(r.purpose, r.input_labels, r.decision) for r in rows] == [("ads", "pii:email", "deny")], rows


@pytest.mark.realserver
def test_an_allowed_instance_reaches_the_real_kserve_model_recorded_with_its_labels(
    kserve_echo: tuple[str, Path], make_proxy: Callable[..., ProxyHandle], tmp_path: Path
) -> None:
    url, log = kserve_echo
    # `auto`, with zones: a call no adapter reads is refused
    proxy = make_proxy(CONFIG, wait="probed", KSERVE=url, PASSTHROUGH="auto")
    body = {"instances": [{"note": f"write to {ADDRESS}", "x": 2}]}
    allowed = httpx.post(f"{proxy.url}/v1/models/echo:predict", json=body, timeout=60)
    assert allowed.status_code == 200, allowed.text
    assert allowed.json() == {"predictions": [body]} and seen(log)[-1] == body
    assert "pii:email" in allowed.headers["x-data-labels"].split(","), allowed.headers
    (row,) = edges(tmp_path / "lineage.db")
    # its checkpoint named by `GET /v1/models/echo` (no version: the model's name), its output read (the echo)
    assert (row.purpose, row.input_labels, row.checkpoint, row.output_labels, row.decision) == (
        "care", "pii:email", "echo", "pii:email", "allow"
    ), row  # fmt: skip
    plain = httpx.post(f"{proxy.url}/v1/models/echo:predict", json={"instances": [[1, 2]]},
                       headers={"x-purpose": "ads"}, timeout=60)  # fmt: skip
    assert plain.status_code == 200 and plain.json() == {"predictions": [{"instances": [[1, 2]]}]}, plain.text


@pytest.mark.realserver
def test_malformed_v1_bodies_are_refused_400_and_reach_no_model(
    kserve_echo: tuple[str, Path], make_proxy: Callable[..., ProxyHandle]
) -> None:
    url, log = kserve_echo
    proxy = make_proxy(CONFIG, wait="probed", KSERVE=url, PASSTHROUGH="auto")
    before = len(seen(log))
    for body in (b"not json", b'{"instances": "x"}', b'{"instances": [1], "instances": [2]}'):
        reply = httpx.post(f"{proxy.url}/v1/models/echo:predict", content=body,
                           headers={"content-type": "application/json"}, timeout=60)  # fmt: skip
        assert reply.status_code == 400, (body, reply.text)
        assert proxy_error(reply)["code"] == "invalid_request", reply.text
    assert len(seen(log)) == before


@pytest.mark.realserver
def test_a_raw_body_is_data_the_proxy_does_not_read(
    kserve_echo: tuple[str, Path], make_proxy: Callable[..., ProxyHandle]
) -> None:
    """KServe hands the model a body whose `Content-Type` is not JSON as its raw bytes: one that says neither JSON nor
    text (`image/png`) is unread, so refused while zones are configured (`endpoint_denied`), forwarded with
    `policy.passthrough: forward` (a `text/*` body is read as its text: test_kserve_v1_content_types.py)."""
    url, log = kserve_echo
    headers = {"content-type": "image/png"}
    refusing = make_proxy(CONFIG, wait="probed", KSERVE=url, PASSTHROUGH="auto")
    before = len(seen(log))
    refused = httpx.post(f"{refusing.url}/v1/models/echo:predict", content=ADDRESS, headers=headers, timeout=60)
    assert refused.status_code == 403 and proxy_error(refused)["code"] == "endpoint_denied", refused.text
    assert len(seen(log)) == before
    forwarding = make_proxy(CONFIG, wait="probed", KSERVE=url, PASSTHROUGH="forward")
    sent = httpx.post(f"{forwarding.url}/v1/models/echo:predict", content="raw", headers=headers, timeout=60)
    assert sent.status_code == 200 and seen(log)[-1] == "raw", sent.text


def raw_exchange(port: int, request: bytes) -> bytes:
    """One request written on a raw socket, its connection closed after: the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.realserver
def test_v1_calls_over_raw_sockets_route_by_the_model_their_path_names(
    kserve_echo: tuple[str, Path], make_proxy: Callable[..., ProxyHandle]
) -> None:
    """With named routes only (no `"*"`), a V1 call is routed by the model its path names: its readiness
    (`GET /v1/models/echo`, KServe's client's `is_model_ready`) was 404 `model_not_found` before, as was every
    `:predict` (`policy.passthrough: forward`)."""
    url, log = kserve_echo
    proxy = make_proxy(CONFIG, wait="probed", KSERVE=url, PASSTHROUGH="forward")
    port = int(proxy.url.rsplit(":", 1)[1])
    ready = raw_exchange(port, b"GET /v1/models/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = ready.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), ready
    assert json.loads(body) == {"name": "echo", "ready": True}
    data = b'{"instances":[["' + ADDRESS.encode() + b'"]]}'
    refused = raw_exchange(port, b"POST /v1/models/echo:predict HTTP/1.1\r\nHost: x\r\nx-purpose: ads\r\n"
                           b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                           % (len(data), data))  # fmt: skip
    head, _, body = refused.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403 ") and json.loads(body)["code"] == "purpose_denied", refused
    assert isinstance(json.loads(body)["error"], str)  # KServe's error shape
    before = len(seen(log))
    allowed = raw_exchange(port, b"POST /v1/models/echo:predict HTTP/1.1\r\nHost: x\r\n"
                           b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                           % (len(data), data))  # fmt: skip
    head, _, body = allowed.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"x-data-labels: pii:email" in head.lower(), allowed
    assert len(seen(log)) == before + 1


def test_the_openai_model_list_is_unaffected(loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle]) -> None:
    """`GET /v1/models` is OpenAI's model list (vLLM's, llama.cpp's), whatever else `/v1/models/...` is."""

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "m", "object": "model", "owned_by": "vllm"}]})

    app = web.Application()
    app.router.add_get("/v1/models", models)
    with serving(loop_thread, app) as upstream:
        proxy = make_proxy("""
listen: {http: "127.0.0.1:0"}
upstreams: [{name: vllm, url: "${UP}"}]
routes: [{model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: care}
zones: [{name: personal, labels: ["pii:email"], allow_purposes: [care]}]
telemetry: {exporter: none}
""", UP=upstream)  # fmt: skip
        listed = httpx.get(f"{proxy.url}/v1/models", timeout=30)
    assert listed.status_code == 200 and [m["id"] for m in listed.json()["data"]] == ["m"], listed.text
    assert ADAPTER.match("GET", "/v1/models") is None


def test_paths() -> None:
    assert split_path("/v1/models/iris:predict") == ("iris", "predict")
    assert split_path("/v1/models/a:b:explain") == ("a:b", "explain")  # KServe's router: the name up to the last `:`
    assert split_path("/v1/models/iris") == ("iris", "")
    assert split_path("/v1/models/iris:other") == ("iris:other", "")
    assert split_path("/v1/models") is None and split_path("/v1/models/") is None
    assert split_path("/v1/models/x/y") is None
    assert ADAPTER.match("POST", "/v1/models/iris") is None  # no verb: no V1 call (passthrough's)
    target = ADAPTER.match("GET", "/v1/models/iris")
    assert target is not None and (target.model, target.carries_data) == ("iris", False)
    target = ADAPTER.match("GET", "/v1/models/iris:predict")  # KServe reads it as the readiness of `iris:predict`
    assert target is not None and (target.operation, target.model) == ("metadata", "iris:predict")


def test_instances_are_read_as_oip_tensor_data_is() -> None:
    body = {"instances": [[4111111111111111, "bob@example.org", {"col": "x"}], ["YWxpY2VAZXhhbXBsZS5jb20="]]}
    request = read_request("iris", "predict", orjson.dumps(body), "application/json")
    # strings and an object's keys; numbers are data (an OIP tensor's are not text); base64 read decoded too
    assert request.texts == ("bob@example.org", "col", "x", "YWxpY2VAZXhhbXBsZS5jb20=", ADDRESS), request
    assert request.digest == bytes_digest(orjson.dumps(body["instances"]))
    assert not request.opaque and request.model == "iris" and request.operation == "predict"
    numeric = read_request("iris", "predict", b'{"instances": [[1.0, 2.0], [3.0, 4.0]]}', None)
    assert numeric.texts == () and numeric.digest == bytes_digest(b"[[1.0,2.0],[3.0,4.0]]")
    # any other key reaches a custom model with the body: read as OIP parameters are (numbers as text too)
    other = read_request("m", "predict", b'{"inputs": {"a": ["t"]}, "user": "u", "card": 4111111111111111}', None)
    assert other.texts == ("a", "t", "u", "4111111111111111"), other
    raw = read_request("m", "predict", b"\x89PNG", "image/png")
    assert raw.opaque and raw.digest == bytes_digest(b"\x89PNG")
    assert not read_request("m", "predict", b"{}", "application/json; charset=utf-8").opaque


def test_discovery_reads_each_models_readiness() -> None:
    """`GET /v1/models/{name}`: ready names the model itself (no version); 404 not served; 503 (KServe's
    `ModelNotReady`) or `"ready": false` not ready; asked about none, the model list (any answer)."""
    import asyncio

    from proxy.config import Upstream
    from proxy.protocols import Fetch, MetadataStatus
    from proxy.protocols.kserve import DIALECT

    asked: list[str] = []

    async def get_json(upstream: Upstream, path: str) -> Any:
        asked.append(path)
        answers: dict[str, Any] = {
            "/v1/models/iris": {"name": "iris", "ready": True},
            "/v1/models/a%2Fb": {"name": "a/b", "ready": False},
            "/v1/models": {"models": ["iris"]},
        }
        if path == "/v1/models/gone":
            raise MetadataStatus(404, path)
        if path == "/v1/models/loading":
            raise MetadataStatus(503, path)
        return answers[path]

    upstream = Upstream(name="k", url="http://127.0.0.1:1", protocol="kserve")
    catalog = asyncio.run(DIALECT.discover(upstream, Fetch(get_json), frozenset({"iris", "a/b", "gone", "loading"})))
    found = catalog.resolve("iris", None)
    assert found is not None and found.name == "iris"
    assert catalog.resolve("a/b", None) is None and catalog.resolve("gone", None) is None
    assert catalog.missing == {"gone"} and catalog.unready == {"a/b", "loading"}
    asyncio.run(DIALECT.discover(upstream, Fetch(get_json), frozenset()))
    assert asked[-1] == "/v1/models"


def test_the_replys_predictions_are_its_output() -> None:
    from proxy.config import DetectorSpec
    from proxy.detectors import TRUNCATED, Detectors
    from proxy.flow import Outcome
    from proxy.protocols.kserve import ReplyObserver

    detectors = Detectors([DetectorSpec("email")])

    def observed(reply: bytes, whole: bool = True) -> Outcome:
        outcome = Outcome(started_ns=1)
        observer = ReplyObserver(outcome, detectors, True)
        if whole:
            observer.body(reply)
        else:
            observer.chunk(reply[:5])
            observer.chunk(reply[5:])
        observer.finish()
        return outcome

    predictions = [["setosa", ADDRESS], [0.5]]
    for whole in (True, False):  # read before it is sent, or kept as it passes and read at its end
        outcome = observed(orjson.dumps({"predictions": predictions}), whole)
        assert outcome.output_detected == {"pii:email"}
        assert outcome.output_digest == bytes_digest(orjson.dumps(predictions))
        assert ADDRESS not in outcome.content[0] and "[pii:email]" in outcome.content[0]  # captured masked
    explained = observed(orjson.dumps({"explanations": [{"anchor": ["bob@example.org"]}], "meta": "x"}))
    assert explained.output_detected == {"pii:email"}
    custom = observed(b'{"answer": "write to bob@example.org"}')  # no field the output is in: read beside it
    assert custom.output_detected == {"pii:email"} and custom.output_digest is None
    assert observed(b"<html>oops</html>").output_detected == {TRUNCATED}


@pytest.mark.realserver
@pytest.mark.parametrize("path", ["/v1/models/org/echo:predict", "/v1/models/:explain"])
def test_a_path_kserve_does_not_serve_is_answered_in_openais_error_shape(
    kserve_echo: tuple[str, Path], make_proxy: Callable[..., ProxyHandle], path: str
) -> None:
    """KServe's router takes a V1 call's model name from one path segment, not empty: `/v1/models/org/echo:predict`
    and `/v1/models/:explain` are no KServe calls (the real server answers them 404 and 405 in FastAPI's own shape,
    `{"detail": ...}`), but a path no adapter reads, answered as every other one is, in the OpenAI error shape. They
    were answered in KServe's, as the proxy's error replies chose it by the path's ends alone."""
    url, log = kserve_echo
    direct = httpx.post(f"{url}{path}", json={"instances": [[1]]}, timeout=60)
    assert direct.status_code in (404, 405) and "error" not in direct.json(), direct.text
    proxy = make_proxy(CONFIG, wait="probed", KSERVE=url, PASSTHROUGH="auto")
    before = len(seen(log))
    refused = httpx.post(f"{proxy.url}{path}", json={"instances": [[1]]}, timeout=60)
    assert refused.status_code == 404, refused.text  # (no route serves a model no path names)
    error = refused.json()["error"]
    assert isinstance(error, dict) and error["code"] == "model_not_found", refused.text  # before: a string
    assert len(seen(log)) == before
