"""A ModelStreamInfer stream's later messages are read (`Exchange.readmit`) for what may change its decision: their model,
labels and what the detectors find. The stream is recorded with its first message's input digest and decided with its
caller's key, both the first message's (its metadata is the stream's): a later message's content digest and key digest
were computed and thrown away, 83 of a message's 1,995 Python instructions (13.7 µs, 12.0 µs after)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

import proxy.protocols.oip_grpc as oip_grpc
from proxy.config import parse
from proxy.exchange import Exchange
from proxy.pipeline import Pipeline
from proxy.protocols import GRPC_ADAPTERS
from tests.harness import offline_pipeline
from tests.protocols.test_oip_grpc import PB

# they count calls by replacing what the compiled modules call (tests/conftest.py: run with the modules interpreted)
pytestmark = pytest.mark.interpreted

KEY = "sk-stream-key"
CONFIG = """
listen: {{http: 127.0.0.1:8080, grpc: 127.0.0.1:8081}}
upstreams: [{{name: triton, grpc: 127.0.0.1:1, protocol: oip, checkpoint: m@1}}]
routes: [{{model: "*", upstream: triton}}]
callers: [{{name: app, api_key_sha256: {sha}, purposes: [assistant], default_purpose: assistant}}]
policy: {{anonymous: deny}}
detectors: [email]
lineage: {{store: {store}}}
"""
HEADER = {"authorization": f"Bearer {KEY}"}.get


def message(text: bytes, raw: bool = False) -> bytes:
    request = PB["ModelInferRequest"](model_name="m")
    tensor = request.inputs.add(name="TEXT", datatype="BYTES", shape=[1])
    if raw:
        request.raw_input_contents.append(len(text).to_bytes(4, "little") + text)
    else:
        tensor.contents.bytes_contents.append(text)
    data: bytes = request.SerializeToString()
    return data


class Counted:
    """hashlib's SHA-256 as `oip_grpc` copies it, counting the digests made."""

    made = 0

    def __init__(self, real: Any) -> None:
        self._real = real

    def copy(self) -> Any:
        Counted.made += 1
        return self._real.copy()


@pytest.fixture
def stream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Exchange, Pipeline, list[str]]:
    Counted.made = 0
    monkeypatch.setattr(oip_grpc, "SHA256", Counted(oip_grpc.SHA256))
    keyed: list[str] = []
    digest = Pipeline._key_digest

    def counted(auth: str) -> str:
        keyed.append(auth)
        return digest(auth)

    monkeypatch.setattr(Pipeline, "_key_digest", staticmethod(counted))
    sha = hashlib.sha256(KEY.encode()).hexdigest()
    pipe = offline_pipeline(parse(CONFIG.format(sha=sha, store=tmp_path / "lineage.db")))
    adapter = GRPC_ADAPTERS[0]
    target = adapter.match("POST", oip_grpc.MODEL_STREAM_INFER)
    assert target is not None
    ex = Exchange(pipe, adapter, target, pipe.trace({}.get))
    ex.admit(message(b"the first message"), HEADER, (), deferred=True)
    ex.forwarded()
    return ex, pipe, keyed


@pytest.mark.parametrize("raw", [False, True], ids=["contents", "raw_input_contents"])
def test_a_streams_later_messages_are_neither_digested_nor_keyed_again(
    stream: tuple[Exchange, Pipeline, list[str]], raw: bool
) -> None:
    ex, pipe, keyed = stream
    # the first message's digest and key digest (the stream's record and decision), and its replies' digest
    made = Counted.made
    assert len(keyed) == 1
    call = ex.call
    assert call is not None and call.input_digest is not None and call.key_sha256 is not None
    for n in range(20):
        assert ex.readmit(message(b"a later message %d" % n, raw), HEADER, pipe) is None
    assert (Counted.made, len(keyed)) == (made, 1)
    assert ex.call is call  # nothing a later message read changed it


def test_a_later_message_that_adds_labels_is_decided_again_with_the_first_messages_digest_and_key(
    stream: tuple[Exchange, Pipeline, list[str]],
) -> None:
    ex, pipe, keyed = stream
    made = Counted.made
    call = ex.call
    assert call is not None
    assert ex.readmit(message(b"mail me at jane.doe@example.com"), HEADER, pipe) is None
    widened = ex.call
    assert widened is not None and widened is not call
    assert "pii:email" in widened.detected
    assert (widened.input_digest, widened.key_sha256) == (call.input_digest, call.key_sha256)
    assert ex.decision is not None and ex.decision.caller == "app"
    assert (Counted.made, len(keyed)) == (made, 1)
