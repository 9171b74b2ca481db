"""An OIP call's header fields (gRPC metadata) are read for labels, as MLServer hands them to its model
(`parameters.headers`), but no list of names can hold every credential a deployment authenticates with
(`X-Auth-Token`, Azure's `api-key`, `x-goog-api-key`, `X-Amz-Security-Token`, ...). They were the request's last text,
so with `telemetry.capture_content` such a token went into the call's captured content (its span) and its input
digest. Header fields are now never captured nor digested: the digest is of the tensors (the body) alone, so the
same tensors sent with another token or `User-Agent` have one digest, as most calls (whose digest is their tensors')
already had."""

from __future__ import annotations

import functools
from pathlib import Path

import orjson
import pytest

from proxy.config import parse
from proxy.errors import ProxyError
from proxy.exchange import Exchange
from proxy.flow import Call
from proxy.ingress.http import _oip_header_text
from proxy.pipeline import Pipeline
from proxy.protocols.oip import Adapter as OIP
from tests.harness import offline_pipeline

CONFIG = """
listen: {{http: 127.0.0.1:8080}}
upstreams: [{{name: u, url: http://127.0.0.1:1, protocol: oip, checkpoint: org/iris-1}}]
routes: [{{model: "*", upstream: u}}]
policy: {{anonymous: allow, default_purpose: care}}
zones: [{{name: personal, labels: ["pii:email"], allow_purposes: [care]}}]
detectors: [email]
telemetry: {{exporter: otlp, endpoint: "http://127.0.0.1:1", capture_content: true}}
lineage: {{store: {store}}}
"""
TOKEN = "tok-9f2c1e7a5b3d4c6e8f0a1b2c3d4e5f60"
# a text tensor (captured as content; the digest is of the tensors) and one holding no data (whose digest is its
# texts', where the fields went too)
BODY = orjson.dumps({"inputs": [{"name": "t", "datatype": "BYTES", "shape": [1], "data": ["hello"]}]})
EMPTY = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [0], "data": []}]})


def pipeline(tmp_path: Path) -> Pipeline:
    return offline_pipeline(parse(CONFIG.format(store=tmp_path / "lineage.db")))


def admitted(pipe: Pipeline, body: bytes, fields: list[tuple[bytes, bytes]], purpose: str, deferred: bool) -> Call:
    """A call admitted as the HTTP ingress admits an OIP REST request with these header fields (and, deferred, once
    forwarded or refused: what its record holds)."""
    adapter = OIP()
    target = adapter.match("POST", "/v2/models/iris/infer")
    assert target is not None
    sampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"  # content is captured for sampled calls
    ex = Exchange(pipe, adapter, target, pipe.trace({"traceparent": sampled}.get))
    header = {"x-purpose": purpose}.get
    try:
        ex.admit(body, header, (), deferred, functools.partial(_oip_header_text, fields))
    except ProxyError:
        pass
    else:
        ex.forwarded()
    assert ex.call is not None
    return ex.call


CREDENTIALS = [(b"X-Auth-Token", TOKEN.encode()), (b"api-key", TOKEN.encode()), (b"x-goog-api-key", TOKEN.encode()),
               (b"X-Amz-Security-Token", TOKEN.encode()), (b"User-Agent", b"my-client/1.0")]  # fmt: skip


@pytest.mark.parametrize("deferred", [False, True], ids=["admitted", "deferred"])
@pytest.mark.parametrize("body", [BODY, EMPTY], ids=["text-tensor", "no-data"])
def test_a_credential_in_a_header_field_is_never_captured_nor_digested(
    tmp_path: Path, deferred: bool, body: bytes
) -> None:
    pipe = pipeline(tmp_path)
    call = admitted(pipe, body, CREDENTIALS, "care", deferred)
    assert all(TOKEN not in text for text in call.content), call.content
    assert all("x-auth-token" not in text and "my-client" not in text for text in call.content), call.content
    bare = admitted(pipe, body, [], "care", deferred)  # the same tensors without the fields: the same digest
    assert call.input_digest == bare.input_digest is not None
    if body is BODY:
        assert call.content == ("hello",)


@pytest.mark.parametrize("deferred", [False, True], ids=["admitted", "deferred"])
def test_the_fields_are_still_read_and_a_denied_call_captures_none_of_them(tmp_path: Path, deferred: bool) -> None:
    pipe = pipeline(tmp_path)
    fields = [*CREDENTIALS, (b"X-Note", b"alice@example.com")]
    allowed = admitted(pipe, BODY, fields, "care", deferred)
    assert allowed.detected == {"pii:email"}  # read as MLServer hands them to the model
    denied = admitted(pipe, BODY, fields, "ads", deferred)  # the zone over pii:email forbids `ads`
    assert denied.detected == {"pii:email"}
    for call in (allowed, denied):
        assert call.content == ("hello",)
        assert all(TOKEN not in text and "alice" not in text for text in call.content)
