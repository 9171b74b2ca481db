"""Passthrough: any request, its model from an OIP path, its body digested but never read."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.detectors import Detectors
from proxy.errors import InvalidRequest
from proxy.flow import UPSTREAM, Checkpoint, Outcome
from proxy.protocols.oip import ModelVersions
from proxy.protocols.passthrough import ADAPTER, QueryAdapter, QueryRequest


def no_header(name: str) -> str | None:
    """A request or reply without headers."""
    return None


@pytest.mark.parametrize(
    ("method", "path", "model", "version"),
    [
        ("GET", "/v2/models/iris/versions/3/ready", "iris", "3"),
        ("POST", "/v2/models/iris/generate", "iris", None),
        ("GET", "/v2/models/iris", "iris", None),
        ("GET", "/v2/health/ready", "", None),
        ("POST", "/v1/rerank", "", None),
        ("DELETE", "/", "", None),
        ("PATCH", "", "", None),
    ],
)
def test_model_and_version_from_an_oip_path(method: str, path: str, model: str, version: str | None) -> None:
    target = ADAPTER.match(method, path)
    # an OIP call that carries no data is `metadata`, as its gRPC twin (ModelMetadata, ModelReady, ...) is
    operation = "metadata" if method == "GET" and path.startswith("/v2/") else "passthrough"
    assert (target.operation, target.model, target.version) == (operation, model, version)


def test_body_is_digested_not_read() -> None:
    target = ADAPTER.match("POST", "/v2/models/iris/versions/3/generate")
    body = b'{"text_input": "write to ana@example.org", "parameters": {"data_labels": "x"}}'
    request = ADAPTER.read(target, body, {"content-type": "application/json"}.get)
    assert (request.model, request.operation) == ("iris", "passthrough")
    assert request.digest == "sha256:" + hashlib.sha256(body).hexdigest()
    assert (request.texts, request.labels, request.params, request.stream) == ((), (), (), False)


def test_version_from_the_path_reaches_the_request() -> None:
    target = ADAPTER.match("POST", "/v2/models/iris/versions/3/generate")
    assert target.version == "3"
    request = ADAPTER.read(target, b'{"text_input": "hi"}', no_header)
    served = ModelVersions({"iris": ("3", "5")})
    assert served.resolve(request.model, request.version) == Checkpoint("iris:3", UPSTREAM)


def test_empty_body_has_no_digest() -> None:
    request = ADAPTER.read(ADAPTER.match("GET", "/v2/health/live"), b"", no_header)
    assert (request.model, request.operation, request.digest, request.texts) == ("", "metadata", None, ())


@settings(max_examples=100, deadline=None)
@given(body=st.binary(min_size=1, max_size=300))
def test_any_body_is_digested(body: bytes) -> None:
    request = ADAPTER.read(ADAPTER.match("PUT", "/anything"), body, no_header)
    assert request.digest == "sha256:" + hashlib.sha256(body).hexdigest()


def test_a_copy_of_a_get_read_with_ids_keeps_its_path_as_sent() -> None:
    """A labelled GET whose path was read with ids (`m_1733390000`) keeps its path as sent (`QueryRequest.sent`), which
    its captured input shows (`as_sent`), in a copy made by `dataclasses.replace` (as `Pipeline.call` makes one of a
    request whose reading is cut, `unscanned`): `sent` was no field, set after the request was made, and the copy had
    none (AttributeError)."""
    target = "/v1/models/m-1733390000?q=alice@example.com"
    request = QueryAdapter().read(ADAPTER.match("GET", target), target.encode("latin-1"), no_header)
    assert type(request) is QueryRequest and request.texts[0] == "/v1/models/m_1733390000"
    copied = dataclasses.replace(request, unscanned=True)
    assert type(copied) is QueryRequest and copied.unscanned
    assert copied.sent == request.sent == "/v1/models/m-1733390000"
    assert copied.as_sent(copied.texts) == ("/v1/models/m-1733390000", *copied.texts[1:])
    assert dataclasses.replace(copied, unscanned=False) == request


def test_no_observer() -> None:
    target = ADAPTER.match("POST", "/v1/rerank")
    assert ADAPTER.observer(target, Outcome(started_ns=0), Detectors([]), True) is None


@pytest.mark.parametrize("version", ["02", "+2", " 2", "2abc"])
def test_a_version_triton_reads_as_another_is_refused_on_any_oip_path(version: str) -> None:
    """`/v2/models/iris/versions/02/generate` is Triton's version 2: matched as written, it would pass a
    baseline approving only `iris:1` (the infer paths refuse it; other OIP paths went through)."""
    target = ADAPTER.match("POST", f"/v2/models/iris/versions/{version}/generate")
    with pytest.raises(InvalidRequest, match="canonical form"):
        ADAPTER.read(target, b"{}", no_header)
    assert ADAPTER.read(ADAPTER.match("POST", "/v2/models/iris/versions/2/generate"), b"{}", no_header).version == "2"
