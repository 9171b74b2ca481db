"""An OIP request's header fields (gRPC metadata), which MLServer hands the model (`oip.header_text`, read with the
request since 2026-12-03), are the same on each call of a client (a User-Agent, an Accept, a Content-Type): read on
their own, what the detectors found in them is kept by the text (`Pipeline.beside_found`), so a call whose fields
were read before is not read again (a User-Agent's digits had every numeric OIP call run the digit detectors, which
found nothing in its tensors). What is found, recorded and captured is as it was."""

from __future__ import annotations

from pathlib import Path

import orjson

from proxy.config.loader import load
from proxy.pipeline import BESIDE_KEPT, Pipeline
from proxy.protocols.oip import read_rest_request
from tests.harness import offline_pipeline

CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams: [{name: t, url: "http://127.0.0.1:9", protocol: oip}]
routes: [{model: "*", upstream: t}]
policy: {anonymous: allow, default_purpose: care}
zones: [{name: personal, labels: ["pii:email"], allow_purposes: [care]}]
detectors: [email, phone, credit_card, ip_address, iban]
telemetry: {exporter: none}
lineage: {store: ":memory:"}
"""
NUMBERS = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [4], "data": [5.1, 3.5, 1.4, 0.2]}]})
PLAIN = "user-agent: python-requests/2.32.3\naccept: */*\ncontent-type: application/json"
ADDRESSED = "user-agent: python-requests/2.32.3\nx-note: alice@example.com"


def pipeline(tmp_path: Path) -> Pipeline:
    path = tmp_path / "proxy.yaml"
    path.write_text(CONFIG)
    return offline_pipeline(load(path))


def detected(pipeline: Pipeline, body: bytes, beside: str | None) -> frozenset[str]:
    """What `Exchange.admit` has the pipeline find in an OIP REST call whose header fields are `beside`."""
    read = read_rest_request("iris", None, body, None)
    header = {"x-purpose": "care"}.get
    return pipeline.call(read, "oip", header, pipeline.trace(header), fields=lambda: beside).detected


def test_header_fields_read_before_are_not_read_again(tmp_path: Path) -> None:
    p = pipeline(tmp_path)
    assert detected(p, NUMBERS, ADDRESSED) == {"pii:email"}
    assert detected(p, NUMBERS, PLAIN) == frozenset()
    assert p.beside_found.kept == {ADDRESSED: {"pii:email"}, PLAIN: frozenset()}  # each read once, by its text
    assert detected(p, NUMBERS, ADDRESSED) == {"pii:email"}  # the same fields again: as found the first time
    # what is kept is what answers: a block's findings are taken from it, not read again (planted here to show it)
    p.beside_found.keep(PLAIN, frozenset({"pii:phone"}), 0)
    assert detected(p, NUMBERS, PLAIN) == {"pii:phone"}


def test_the_body_is_read_beside_them_and_the_record_keeps_both(tmp_path: Path) -> None:
    p = pipeline(tmp_path)
    addressed = orjson.dumps(
        {"inputs": [{"name": "t", "datatype": "BYTES", "shape": [1], "data": ["bob@example.org"]}]}
    )
    assert detected(p, addressed, PLAIN) == {"pii:email"}  # the fields read before, the body as ever
    assert detected(p, addressed, PLAIN) == {"pii:email"}
    assert detected(p, NUMBERS, None) == frozenset()  # no fields beside the body (gRPC metadata all framing)
    read = read_rest_request("iris", None, addressed, None)
    header = {"x-purpose": "care"}.get
    assert p.call(read, "oip", header, p.trace(header), fields=lambda: PLAIN).detected == {"pii:email"}
    assert read.texts == ("bob@example.org",)  # the fields are read, never captured nor digested with the body


def test_what_is_kept_is_bounded_and_a_reload_starts_anew(tmp_path: Path) -> None:
    p = pipeline(tmp_path)
    for index in range(BESIDE_KEPT + 1):  # a client sending new fields on every call (an `x-request-id`)
        detected(p, NUMBERS, f"x-request-id: {index}")
    assert 0 < len(p.beside_found) <= BESIDE_KEPT
    assert len(pipeline(tmp_path).beside_found) == 0  # a reload's pipeline (its detectors may differ) reads anew
