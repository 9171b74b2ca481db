"""An OIP or KServe call's header fields are read with it where its upstream's model is handed them (MLServer, KServe,
a Triton's forward pattern), and not where it is handed none (`headers_to_model: false`, a Triton without a pattern).
Their text was built on every such call all the same, then dropped: now the ingress hands the pipeline what builds it
(`Pipeline._fields_read`), called only where it is read, as an OpenAI call's has been since 65b826e. What is read, and
found, is as it was."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from proxy.config.loader import load
from proxy.pipeline import Pipeline
from proxy.protocols.oip import read_rest_request
from tests.harness import offline_pipeline

CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: mlserver, url: "http://127.0.0.1:9", protocol: oip}
  - {name: triton, url: "http://127.0.0.1:9", protocol: oip, headers_to_model: false}
  - {name: triton-note, url: "http://127.0.0.1:9", protocol: oip, headers_to_model: "x-note"}
routes:
  - {model: handed, upstream: mlserver}
  - {model: none, upstream: triton}
  - {model: named, upstream: triton-note}
policy: {anonymous: allow, default_purpose: care}
zones: [{name: personal, labels: ["pii:email", "pii:phone"], allow_purposes: [care]}]
detectors: [email, phone]
telemetry: {exporter: none}
lineage: {store: ":memory:"}
"""
NUMBERS = orjson.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [4], "data": [5.1, 3.5, 1.4, 0.2]}]})
FIELDS = "x-note: alice@example.com\nx-other: +44 20 7946 0958"


def pipeline(tmp_path: Path) -> Pipeline:
    path = tmp_path / "proxy.yaml"
    path.write_text(CONFIG)
    return offline_pipeline(load(path))


@pytest.mark.parametrize(
    ("model", "built", "found"),
    [
        ("handed", 1, {"pii:email", "pii:phone"}),  # every field handed, every one read
        ("named", 1, {"pii:email"}),  # only `x-note` handed and read
        ("none", 0, set()),  # none handed: none read, and the text never built
    ],
)
def test_the_fields_text_is_built_only_where_its_model_is_handed_them(
    tmp_path: Path, model: str, built: int, found: set[str]
) -> None:
    p = pipeline(tmp_path)
    builds: list[str] = []

    def fields() -> str:
        builds.append(FIELDS)
        return FIELDS

    header = {"x-purpose": "care"}.get
    call = p.call(read_rest_request(model, None, NUMBERS, None), "oip", header, p.trace(header), fields=fields)
    assert call.detected == found
    assert len(builds) == built
