"""Triton hands its model only the header fields (gRPC metadata) its `--http-header-forward-pattern` and
`--grpc-header-forward-pattern` name, and none without them, while MLServer and KServe hand it every one. The proxy
cannot tell which a Triton does, so it reads them all, as MLServer's: in front of a Triton without a pattern,
`x-note: alice@example.com` got a call refused (403) for an address its model never saw. `upstreams[].headers_to_model:
false` says so, and that upstream's calls' fields are not read (unless a zone may reroute calls to an upstream whose
model is handed them: the fields are read before the decision says where the call goes)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from proxy.config import parse
from proxy.errors import ConfigError
from proxy.protocols import Request
from tests.harness import ProxyHandle, offline_pipeline
from tests.servers.real import faithful_oip

ADDRESS = "alice@example.com"
CONFIG = """
listen: {http: "127.0.0.1:0", grpc: "127.0.0.1:0"}
upstreams:
  - {name: triton, grpc: "${GRPC}", protocol: oip, headers_to_model: "${HANDED}"}
routes:
  - {model: "*", upstream: triton}
policy: {anonymous: allow, default_purpose: care}
zones:
  - {name: personal, labels: ["pii:email"], allow_purposes: [care]}
detectors: [email]
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""


def text_input(text: str) -> grpcclient.InferInput:
    tensor = grpcclient.InferInput("TEXT", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([text.encode()], dtype=object))
    return tensor


def reached(log: Path) -> list[dict[str, str]]:
    """The metadata of each inference request that reached the faithful server, in order."""
    return [json.loads(line)["metadata"] for line in log.read_text().splitlines()]


@pytest.mark.parametrize("handed", ["true", "false"])
def test_fields_are_read_unless_the_upstream_hands_its_model_none(
    handed: str, faithful: tuple[str, Path], make_proxy: Callable[..., ProxyHandle]
) -> None:
    address, log = faithful
    proxy = make_proxy(CONFIG, wait="probed", GRPC=address, HANDED=handed)
    client = grpcclient.InferenceServerClient(proxy.grpc)
    note = {"x-note": ADDRESS, "x-purpose": "ads"}
    if handed == "true":  # (the default: the proxy cannot tell what the server hands on)
        with pytest.raises(InferenceServerException) as refused:
            client.infer("echo", [text_input("hello")], headers=note)
        assert refused.value.status() == "StatusCode.PERMISSION_DENIED", refused.value
        assert reached(log) == []
    else:
        assert client.infer("echo", [text_input("hello")], headers=note).as_numpy("TEXT")[0] == b"hello"
        assert [entry["x-note"] for entry in reached(log)] == [ADDRESS]  # forwarded, to a server that keeps it
    with pytest.raises(InferenceServerException) as denied:  # the tensors are read all the same
        client.infer("echo", [text_input(ADDRESS)], headers={"x-purpose": "ads"})
    assert denied.value.status() == "StatusCode.PERMISSION_DENIED", denied.value


REROUTING = """
listen: {http: "127.0.0.1:0", grpc: "127.0.0.1:0"}
upstreams:
  - {name: triton, grpc: "${GRPC}", protocol: oip, region: us, headers_to_model: false}
  - {name: mlserver-eu, grpc: "${EU}", protocol: oip, region: eu}
routes:
  - {model: "*", upstream: triton}
policy: {anonymous: allow, default_purpose: care}
zones:
  - {name: personal, labels: ["pii:email"], allow_purposes: [care], regions: [eu], on_deny: "reroute:mlserver-eu"}
detectors: [email]
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""


def test_fields_are_read_where_a_zone_may_reroute_to_an_upstream_that_hands_them(
    faithful: tuple[str, Path], tmp_path: Path, make_proxy: Callable[..., ProxyHandle]
) -> None:
    address, log = faithful
    (tmp_path / "eu").mkdir()
    with faithful_oip(tmp_path / "eu") as (eu, eu_log):
        proxy = make_proxy(REROUTING, wait="probed", GRPC=address, EU=eu)
        client = grpcclient.InferenceServerClient(proxy.grpc)
        client.infer("echo", [text_input("hello")], headers={"x-note": ADDRESS})
        assert reached(log) == [] and [entry["x-note"] for entry in reached(eu_log)] == [ADDRESS]  # rerouted
        client.infer("echo", [text_input("hello")], headers={"x-note": "hello"})
        assert [entry["x-note"] for entry in reached(log)] == ["hello"]  # (nothing for the zone: its route's)


TO_AN_OPENAI_SERVER = """
listen: {http: "127.0.0.1:0", grpc: "127.0.0.1:0"}
upstreams:
  - {name: triton, grpc: "${GRPC}", protocol: oip, region: us, headers_to_model: "${HANDED}"}
  - {name: vllm-eu, url: "http://127.0.0.1:9", region: eu, checkpoint: "smol@1"}
routes:
  - {model: "*", upstream: triton}
policy: {anonymous: allow, default_purpose: care}
zones:
  - {name: personal, labels: ["pii:email"], allow_purposes: [care]}
  - {name: eu-only, labels: [eu-data], allow_purposes: [care], regions: [eu], on_deny: "reroute:vllm-eu"}
detectors: [email]
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""


@pytest.mark.parametrize("handed", ["false", "^x-other$"])
def test_fields_are_not_read_where_a_zone_may_reroute_only_to_an_openai_server(
    handed: str, faithful: tuple[str, Path], make_proxy: Callable[..., ProxyHandle]
) -> None:
    """A zone that may reroute calls to vLLM, whose model is handed no header field, is no reason to read the fields
    of a call to a Triton that hands its model none (or those its pattern names): before, they were read, and
    `X-Note: alice@example.com` got the call refused for an address no model it could reach is handed."""
    address, log = faithful
    proxy = make_proxy(TO_AN_OPENAI_SERVER, wait="probed", GRPC=address, HANDED=handed)
    client = grpcclient.InferenceServerClient(proxy.grpc)
    note = {"x-note": ADDRESS, "x-purpose": "ads"}
    assert client.infer("echo", [text_input("hello")], headers=note).as_numpy("TEXT")[0] == b"hello"  # before: 403
    assert [entry["x-note"] for entry in reached(log)] == [ADDRESS]
    with pytest.raises(InferenceServerException) as denied:  # the tensors are read all the same
        client.infer("echo", [text_input(ADDRESS)], headers={"x-purpose": "ads"})
    assert denied.value.status() == "StatusCode.PERMISSION_DENIED", denied.value


@pytest.mark.parametrize(
    ("target", "read"),
    [
        ('url: "http://vllm-host:8000"', False),  # vLLM's model is handed no field
        ('url: "http://gw/kserve-llm", headers_to_model: true', True),  # a gateway in front of KServe's OpenAI plane
        ('url: "http://kserve-host:8080/openai"', True),  # KServe's OpenAI data plane
        ('url: "http://kserve-host:8080/openai", headers_to_model: false', False),  # not KServe's
        ('url: "http://kserve-host:8080", protocol: kserve', True),
        ('url: "http://mlserver:8080", protocol: oip', True),
    ],
)
def test_a_triton_calls_fields_are_read_where_a_zone_may_reroute_to_an_upstream_whose_model_gets_them(
    target: str, read: bool
) -> None:
    config = parse(TO_AN_OPENAI_SERVER.replace('url: "http://127.0.0.1:9", ', target + ", "), env={
        "GRPC": "127.0.0.1:9", "HANDED": "false", "STORE": ":memory:"})  # fmt: skip
    pipeline = offline_pipeline(config)
    header = {"x-purpose": "ads"}.get
    call = pipeline.call(Request("echo", "infer", texts=("hello",)), "oip-grpc", header, pipeline.trace(header),
                         fields=lambda: f"x-note: {ADDRESS}")  # fmt: skip
    assert ("pii:email" in call.detected) is read


def problems(upstream: str) -> list[str]:
    text = f"""
listen: {{http: 127.0.0.1:0}}
upstreams: [{upstream}]
routes: [{{model: "*", upstream: u}}]
policy: {{anonymous: allow, default_purpose: assistant}}
lineage: {{store: null}}
"""
    try:
        parse(text, env={})
    except ConfigError as exc:
        return [problem for problem in exc.problems if problem.startswith("upstreams[0].headers_to_model")]
    return []


def test_only_an_oip_upstream_may_hand_its_model_no_fields() -> None:
    assert problems('{name: u, url: "http://127.0.0.1:9", protocol: oip, headers_to_model: false}') == []
    (kserve,) = problems('{name: u, url: "http://127.0.0.1:9", protocol: kserve, headers_to_model: false}')
    assert "KServe's model server hands its model every one" in kserve
    assert problems('{name: u, url: "http://127.0.0.1:9", headers_to_model: false}')  # openai, the default protocol
    (number,) = problems('{name: u, url: "http://127.0.0.1:9", protocol: oip, headers_to_model: 1}')
    assert number == (
        "upstreams[0].headers_to_model: expected true, false or a Triton header forward pattern (a regular "
        "expression), got 1"
    )  # (a word is a pattern: `test_oip_header_forward_pattern`)
