"""Review of 8a92474 (streamcost): `StreamScanner._read_window` reads a window and keeps its end exactly as `scan` and
`_read_end` did (every window: plain ASCII, with controls, with escapes, not ASCII), and `Pipeline._fields_read` reads
a call's header fields as the code it replaced did (`beside`, `_passed_on`, `_handed`) for every protocol, operation,
route, forward pattern and reroute, and builds them at most once a call."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.config.loader import load
from proxy.config.model import DetectorSpec
from proxy.detectors import Detectors, StreamScanner, _read_end, _tail_at_a_gap
from proxy.flow import TraceContext
from proxy.pipeline import _FIELDS_TO_MODEL, Pipeline
from proxy.protocols import Header, Request
from proxy.protocols.oip import named_fields
from tests.harness import offline_pipeline

# characters the detectors read differently: controls, escapes' starts, zero-width and fullwidth ones, marks
_ALPHABET = "ab@.4 \n\x00\x01\x7f%&#\\u2e40dD;" + "\u200b\uff20\u0301\u0664\ufdfa"
_PIECES = st.lists(st.text(alphabet=_ALPHABET, max_size=300), min_size=1, max_size=8)
_OLD = Detectors([DetectorSpec(name="email"), DetectorSpec(name="phone")])


def _old_read_window(scanner: StreamScanner, window: str) -> None:
    """The pair `_read_window` replaced (as of 8a92474^; its end kept from a gap since, `_tail_at_a_gap`; read whole
    however long it reads since 2026-12-05, not `scan:truncated` past its length: test_stream_window_edges_read_as_whole)."""
    scanner._found |= _OLD.scan(window, 18 * len(window))
    scanner._tail = _tail_at_a_gap(_read_end(window, 2 * scanner.OVERLAP))


@settings(max_examples=400, deadline=None)
@given(pieces=_PIECES, plain=st.booleans())
def test_a_window_is_read_and_its_end_kept_as_scan_and_read_end_did(pieces: list[str], plain: bool) -> None:
    if plain:  # most windows: printable ASCII, some with a control character at their end
        pieces = [piece.encode("ascii", "ignore").decode() for piece in pieces]
    new, old = StreamScanner(_OLD), StreamScanner(_OLD)
    for piece in pieces:
        window = new._tail + piece
        if not window:
            continue
        new._read_window(window, hold=False)  # (its end held back since 2026-12-04: test_detector_false_positives_rows)
        _old_read_window(old, old._tail + piece)
        assert new._tail == old._tail
        assert new._found == old._found


CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: mlserver, url: "http://127.0.0.1:9", protocol: oip}
  - {name: kserve, url: "http://127.0.0.1:9", protocol: KSERVE, region: eu}
  - {name: vllm, url: "http://127.0.0.1:9", protocol: openai, region: eu}
  - {name: triton, url: "http://127.0.0.1:9", protocol: oip, headers_to_model: HANDED}
  - {name: mlserver-eu, url: "http://127.0.0.1:9", protocol: oip, region: eu}
routes:
  - {model: handed, upstream: mlserver}
  - {model: kserved, upstream: kserve}
  - {model: chat, upstream: vllm}
  - {model: tri, upstream: triton}
policy: {anonymous: allow, default_purpose: care}
zones:
  - {name: personal, labels: ["pii:email", "pii:phone"], allow_purposes: [care]}
  - {name: eu, labels: [eu-data], allow_purposes: [care], regions: [eu], on_deny: "REROUTE"}
detectors: [email, phone]
telemetry: {exporter: none}
lineage: {store: ":memory:"}
"""


def _build(builds: list[str]) -> str:
    builds.append(FIELDS)
    return FIELDS


FIELDS = "x-note: alice@example.com\nx-other: +44 20 7946 0958"


def _old_fields(
    p: Pipeline, request: Request, protocol: str, header: Header, trace: TraceContext, grpc: bool
) -> str | None:
    """What the code before 8a92474 read: the ingress's `beside` and `fields`, `Pipeline.call`'s branches, `_handed`."""
    beside = FIELDS if grpc or protocol in ("oip", "kserve") else None
    fields = (lambda: FIELDS) if not grpc and p.kserve_openai and protocol == "openai" else None
    if protocol in _FIELDS_TO_MODEL and request.operation != "passthrough":
        beside = p._passed_on(request, protocol, header, trace, beside)
    elif p.kserve_openai and protocol == "openai":
        if p._to_kserve(request):
            beside = p._passed_on(request, protocol, header, trace, fields() if fields is not None else beside)
        else:
            beside = None
    if p.reads_all_fields:
        return beside
    routed = p.policy.route(request.model)
    if routed is None or beside is None:
        return beside
    name = routed[1].name
    if p.headers_handed is not None and name not in p.headers_handed:
        return None
    named: re.Pattern[str] | None = p.fields_named.get(name)
    return beside if named is None else named_fields(beside, named)


@pytest.mark.parametrize("kserve", ["kserve", "oip"])  # an OpenAI call may reach KServe, or no call may
@pytest.mark.parametrize("handed", ["true", "false", '"x-note"'])
@pytest.mark.parametrize("reroute", ["block", "reroute:mlserver-eu", "reroute:vllm", "reroute:kserve"])
def test_the_fields_read_are_those_the_replaced_code_read(
    tmp_path: Path, kserve: str, handed: str, reroute: str
) -> None:
    path = tmp_path / "proxy.yaml"
    path.write_text(
        CONFIG.replace("HANDED", handed)
        .replace("protocol: KSERVE", f"protocol: {kserve}")
        .replace('"REROUTE"', reroute)
    )
    p = offline_pipeline(load(path))
    assert p.kserve_openai == (kserve == "kserve")
    # (a zone that may reroute to an upstream handing every field has every call's read: `_headers_handed`)
    assert p.reads_all_fields == (handed == "true" or reroute in ("reroute:mlserver-eu", "reroute:kserve"))
    headers = [
        {"x-purpose": "care"},
        {"x-purpose": "care", "authorization": "Bearer sk-caller", "tracestate": "vendor=alice@example.com"},
    ]
    compared = 0
    for protocol in ("oip", "oip-grpc", "kserve", "openai", "anthropic", "passthrough"):
        for operation in ("infer", "chat", "passthrough"):
            for model in ("handed", "kserved", "chat", "tri", "unrouted", ""):
                for fields in headers:
                    header = fields.get
                    trace = p.trace(header)
                    request = Request(model, operation)
                    builds: list[str] = []
                    build = functools.partial(_build, builds)

                    grpc = protocol == "oip-grpc"
                    given_builder = grpc or protocol in ("oip", "kserve") or (p.kserve_openai and protocol == "openai")
                    new = p._fields_read(request, protocol, header, trace, build if given_builder else None)
                    assert new == _old_fields(p, request, protocol, header, trace, grpc), (protocol, operation, model)
                    assert len(builds) <= 1
                    assert (new is not None) <= (len(builds) == 1)  # nothing read that was never built
                    compared += 1
    assert compared == 6 * 3 * 6 * 2
