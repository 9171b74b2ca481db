"""TGI's native API (`/generate`, `/generate_stream`, `/`) in a config where an OpenAI call may reach KServe's OpenAI data
plane (a zone may reroute calls to a `protocol: kserve` upstream): such a call's body fields are read as KServe hands
them to its model (`kserve.openai_fields`), by the content keys of its operation, and TGI's, `generate`, had none, so
every TGI call there failed 500 `internal_error` (a `KeyError` in the proxy; a hunt, 2026-12-04), recorded as no flow.
Its fields are read as TGI's adapter reads them (`parameters`, its content), the rest as any OpenAI call's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from huggingface_hub import InferenceClient
from huggingface_hub.errors import TextGenerationError

from proxy.protocols.kserve import openai_fields
from tests import test_tgi_native as native
from tests.harness import ProxyHandle
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.tgi import CHECKPOINT, Tgi
from tests.test_oip_generate_endpoints import edges
from tests.test_tgi_native import ADDRESS

tgi = native.tgi

CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: tgi, url: "${UPSTREAM}", protocol: openai, region: us}
  - {name: kserve-eu, url: "${UPSTREAM}", protocol: kserve, region: eu, checkpoint: "held@1"}
routes:
  - {model: "*", upstream: tgi}
policy: {anonymous: allow, default_purpose: care}
zones:
  - {name: personal, labels: ["pii:email"], allow_purposes: [care]}
  - {name: residents, labels: [eu-resident], allow_purposes: [care], regions: [eu], on_deny: "reroute:kserve-eu"}
detectors: [email]
telemetry: {exporter: otlp, endpoint: "${OTLP}", protocol: grpc}
lineage: {store: "${STORE}"}
"""


@pytest.fixture
def proxy(tgi: Tgi, otlp: OtlpReceiver, make_proxy: Callable[..., ProxyHandle]) -> ProxyHandle:
    return make_proxy(CONFIG, wait="probed", UPSTREAM=tgi.url, OTLP=f"http://127.0.0.1:{otlp.port}")


def test_a_tgi_call_is_answered_and_recorded(tgi: Tgi, proxy: ProxyHandle, tmp_path: Path) -> None:
    client = InferenceClient(base_url=proxy.url)
    assert client.text_generation("hello", max_new_tokens=4)
    assert [path for path, _ in tgi.received] == ["/"]
    assert edges(tmp_path / "lineage.db") == [("", CHECKPOINT, "", "allow")]


def test_a_forbidden_tgi_call_is_refused_for_its_zone(tgi: Tgi, proxy: ProxyHandle) -> None:
    client = InferenceClient(base_url=proxy.url, headers={"x-purpose": "ads"})
    with pytest.raises(TextGenerationError) as raised:
        client.text_generation(f"write to {ADDRESS}", max_new_tokens=4)
    assert raised.value.__cause__.response.status_code == 403  # type: ignore[union-attr]
    assert "zone personal" in str(raised.value)
    assert tgi.received == []


def test_a_tgi_bodys_fields_are_read_as_its_adapter_reads_them() -> None:
    """`parameters` is TGI's content, read by its adapter (its name here, not its numbers: a random `seed` is no phone
    number); a field of the caller's own is read whole, as for any OpenAI call that may reach KServe."""
    body = b'{"inputs": "hi", "parameters": {"seed": 2147483647}, "context": {"note": "x"}}'
    text, whole = openai_fields(body, "generate")
    assert whole and text is not None
    assert "2147483647" not in text and "parameters" in text.splitlines() and "x" in text.splitlines()
