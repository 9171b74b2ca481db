"""A gRPC call's key: grpc.aio gives a handler no connection to hang a memo on (HTTP's `KeyMemo` is its
connection's), so each ModelInfer looks its caller's key up once among the keys its config has hashed
(`Pipeline._digest_of`, a dict look-up: the per-listener memo, bounded, let go on a reload), and a caller's key is
hashed once a process, whichever channel or connection it comes on; a key no caller owns is hashed on each call.
Counted here: one look-up a call, one hash in all (`interpreted`: the counters replace what compiled callers call)."""

from __future__ import annotations

import hashlib
from typing import Any

import grpc
import pytest

from proxy.pipeline import Pipeline
from tests.configs import ONE_GRPC_UPSTREAM
from tests.harness import LoopThread
from tests.ingress.grpc_proxied import INFER, Answering, proxied
from tests.ingress.test_grpc import _request
from tests.servers.otlp_receiver import OtlpReceiver

pytestmark = pytest.mark.interpreted

KEY = "sk-grpc-key"
SHA = hashlib.sha256(KEY.encode()).hexdigest()
CONFIG = (
    ONE_GRPC_UPSTREAM
    + f"callers: [{{name: app, api_key_sha256: {SHA}, purposes: [assistant], default_purpose: assistant}}]\n"
    + "policy: {anonymous: deny}\n"
    + 'telemetry: {exporter: otlp, endpoint: "${OTLP}"}\n'
)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[str]]:
    """The fields looked up among the callers' keys (`Pipeline._digest_of`) and those hashed (`_key_digest`)."""
    looked: list[str] = []
    hashed: list[str] = []
    digest_of, key_digest = Pipeline._digest_of, Pipeline._key_digest

    def look(self: Pipeline, auth: str) -> str:
        looked.append(auth)
        return digest_of(self, auth)

    def hash_(auth: str) -> str:
        hashed.append(auth)
        return key_digest(auth)

    monkeypatch.setattr(Pipeline, "_digest_of", look)
    monkeypatch.setattr(Pipeline, "_key_digest", staticmethod(hash_))
    return looked, hashed


def test_a_callers_key_is_looked_up_once_a_grpc_call_and_hashed_once_a_process(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any, counted: tuple[list[str], list[str]]
) -> None:
    looked, hashed = counted
    auth = [("authorization", f"Bearer {KEY}")]
    with proxied(loop_thread, otlp, make_proxy, CONFIG, Answering()) as proxy:
        with grpc.insecure_channel(proxy.grpc) as channel:  # five calls on one connection
            for _ in range(5):
                channel.unary_unary(INFER)(_request(), metadata=auth, timeout=10)
        for _ in range(3):  # three on a connection each
            with grpc.insecure_channel(proxy.grpc) as channel:
                channel.unary_unary(INFER)(_request(), metadata=auth, timeout=10)
        with grpc.insecure_channel(proxy.grpc) as channel, pytest.raises(grpc.RpcError) as refused:
            channel.unary_unary(INFER)(_request(), metadata=[("authorization", "Bearer sk-nobody")], timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert looked == [f"Bearer {KEY}"] * 8 + ["Bearer sk-nobody"]  # one look-up a call
    assert hashed == [f"Bearer {KEY}", "Bearer sk-nobody"]  # a caller's key once; a key no caller owns, each time
