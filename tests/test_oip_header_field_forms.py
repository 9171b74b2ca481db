"""An OIP call's header fields are read for labels (MLServer hands them to its model), and two fields' own forms were
read as values they are not: a browser's User-Agent product versions (desktop Chrome's `Chrome/120.0.0.0` is an IP
address to the detectors, Android Chrome's `Chrome/120.0.6099.144` and Edge's `Edg/120.0.2210.91` phone numbers), and
a load balancer's `X-Forwarded-For` entry (an IP address, as the one the proxy adds, which is not read), so with the
`ip_address` or `phone` detector every call from a browser, or through a load balancer, was labelled (refused where a
zone holds those labels). Such a piece is now read apart (`oip.header_labels`), its IP-address and phone findings not
the call's; anything else in it (a card) and anywhere else in the fields is read as before. Since 2026-12-04 an upstream
whose model is handed the fields is sent no `X-Forwarded-For` at all, so none is read, whatever it holds
(`test_oip_client_address_and_binary_key`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest

from proxy.config.loader import load
from proxy.ingress.http import _oip_header_text
from proxy.pipeline import Pipeline
from proxy.protocols.oip import read_rest_request
from tests.harness import ProxyHandle, offline_pipeline, proxy_error
from tests.test_oip_header_fields_reach_model import BODY, echo_mlserver, echoed_headers

__all__ = ["echo_mlserver"]  # (the fixture, shared)

DETECTORS = "[email, phone, credit_card, ip_address, iban]"
ZONE = (
    '{name: personal, labels: ["pii:email", "pii:phone", "pii:credit_card", "pii:ip_address"], allow_purposes: [care]}'
)
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
          "Safari/537.36")  # fmt: skip
ANDROID = ("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile "
           "Safari/537.36")  # fmt: skip
EDGE = f"{CHROME} Edg/120.0.2210.91"
NUMBERS = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [5.1]}]})
CONFIG = f"""
listen: {{http: "127.0.0.1:0"}}
upstreams: [{{name: t, url: "http://127.0.0.1:9", protocol: oip}}]
routes: [{{model: "*", upstream: t}}]
policy: {{anonymous: allow, default_purpose: care}}
zones: [{ZONE}]
detectors: {DETECTORS}
telemetry: {{exporter: none}}
lineage: {{store: ":memory:"}}
"""


def pipeline(tmp_path: Path) -> Pipeline:
    path = tmp_path / "proxy.yaml"
    path.write_text(CONFIG)
    return offline_pipeline(load(path))


def detected(p: Pipeline, *fields: tuple[str, str]) -> frozenset[str]:
    """What the pipeline finds in an OIP REST call of numbers sent with these header fields (as the ingress reads them)."""
    received = [(name.encode(), value.encode()) for name, value in fields]
    header = {"x-purpose": "care"}.get
    read = read_rest_request("iris", None, NUMBERS, None)
    return p.call(read, "oip", header, p.trace(header), fields=lambda: _oip_header_text(received)).detected


@pytest.mark.parametrize(
    "fields",
    [
        [("User-Agent", CHROME)],
        [("User-Agent", ANDROID)],
        [("User-Agent", EDGE), ("Accept", "*/*")],
        [("X-Forwarded-For", "203.0.113.7")],  # a load balancer's hop
        [("X-Forwarded-For", "203.0.113.7, 192.168.100.200"), ("User-Agent", "python-requests/2.32.3")],
        [("X-Forwarded-For", "[2001:db8::1]:443, 198.51.100.2:8080")],  # ports, as some hops write them
    ],
    ids=["chrome", "android-chrome", "edge", "forwarded-for", "forwarded-for-list", "forwarded-for-ports"],
)
def test_a_product_version_or_a_hops_address_labels_nothing(tmp_path: Path, fields: list[tuple[str, str]]) -> None:
    assert detected(pipeline(tmp_path), *fields) == frozenset()


@pytest.mark.parametrize(
    ("fields", "labels"),
    [
        ([("User-Agent", f"{CHROME} (alice@example.com)")], {"pii:email"}),
        ([("User-Agent", "App/4111.1111.1111.1111")], {"pii:credit_card"}),  # a card as a version
        ([("User-Agent", f"{CHROME} 4111111111111111")], {"pii:credit_card"}),
        ([("User-Agent", "App/1.0 (host 203.0.113.7)")], {"pii:ip_address"}),  # an address that is no version
        ([("User-Agent", "App/1.0 (call +1 415 555 0132)")], {"pii:phone"}),
        ([("X-Note", "120.0.0.0")], {"pii:ip_address"}),  # another field: read as ever
        # a product version as a phone is written: another field reads it as ever (a build number of four dotted
        # parts, `Chrome/120.0.6099.144`, is no phone anywhere since 2026-12-04)
        ([("X-Note", "App/555.123.4567")], {"pii:phone"}),
    ],
    ids=[
        "ua-email",
        "ua-card-version",
        "ua-card",
        "ua-address",
        "ua-phone",
        "note-address",
        "note-version",
    ],
)
def test_any_other_value_in_them_is_still_read(tmp_path: Path, fields: list[tuple[str, str]], labels: set[str]) -> None:
    assert detected(pipeline(tmp_path), *fields) == labels


@pytest.mark.parametrize("value", ["alice@example.com, 203.0.113.7", "555.123.4567", "fe80::1%4155550132"])
def test_a_forwarded_for_is_not_read(tmp_path: Path, value: str) -> None:
    """No model it reaches is handed it (`Upstream.fields_to_model`): what it holds is not the call's data."""
    assert detected(pipeline(tmp_path), ("X-Forwarded-For", value), ("X-Note", "hello")) == frozenset()


REAL = f"""
listen: {{http: "127.0.0.1:0", grpc: "127.0.0.1:0"}}
upstreams:
  - {{name: mlserver, url: "${{REST}}", grpc: "${{GRPC}}", protocol: oip}}
routes:
  - {{model: "*", upstream: mlserver}}
policy: {{anonymous: allow, default_purpose: care}}
zones: [{ZONE}]
detectors: {DETECTORS}
telemetry: {{exporter: none}}
lineage: {{store: "${{STORE}}"}}
"""


@pytest.mark.realserver
def test_a_browser_reaches_mlserver_and_a_value_it_carries_does_not(
    echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    proxy = make_proxy(REAL, wait="probed", REST=echo_mlserver[0], GRPC=echo_mlserver[1])
    url = f"{proxy.url}/v2/models/echo/infer"
    for agent in (CHROME, ANDROID):
        reply = httpx.post(url, content=json.dumps(BODY), headers={"user-agent": agent, "x-purpose": "ads"}, timeout=60)
        assert reply.status_code == 200, proxy_error(reply)
        assert echoed_headers(reply)["user-agent"] == agent  # what the model was handed
    reply = httpx.post(url, content=json.dumps(BODY), timeout=60,
                       headers={"user-agent": f"{CHROME} (alice@example.com)", "x-purpose": "ads"})  # fmt: skip
    assert reply.status_code == 403, reply.text
