"""A numeric OIP call's only text is its tensors' names (`Request.names`: `INPUT0`, the same on every call), which the
detectors read on every call. Where the names are all a request holds to read, those the detectors found nothing in
before are not read again (`Detectors.finds_nothing`, the memo a reply's output names use: a gRPC ModelInfer ran 7,104
Python instructions a call against 6,954 now, `benchmarks.work`). Never beside texts, which a pattern may span with
them; a name that labels is labelled however many plain calls came before, and the memo is bounded."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from proxy.config.loader import load
from proxy.detectors import _REMEMBERED_KEPT, Detectors
from proxy.flow import Outcome
from proxy.pipeline import Pipeline
from proxy.protocols.oip import read_rest_request
from proxy.protocols.oip_grpc import ReplyObserver, read_infer_request
from tests.harness import ProxyHandle, offline_pipeline, proxy_error
from tests.protocols.test_oip_grpc import PB, infer_request
from tests.servers.real import mlserver_runtime
from tests.test_oip_request_id_reaches_model import CONFIG as MLSERVER_CONFIG
from tests.test_oip_tensor_names_reach_model import ECHO, features, rest_body, seen_over_rest

ADDRESS = "alice@example.com"
CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams: [{name: t, url: "http://127.0.0.1:9", protocol: oip}]
routes: [{model: "*", upstream: t}]
policy: {anonymous: allow, default_purpose: care}
zones: [{name: personal, labels: ["pii:email", "pii:proj"], allow_purposes: [care]}]
detectors: [email, phone, credit_card, ip_address, iban, {name: proj, pattern: "secret\\\\s+project|^hidden\\\\Z"}]
telemetry: {exporter: none}
lineage: {store: ":memory:"}
"""


def pipeline(tmp_path: Path) -> Pipeline:
    path = tmp_path / "proxy.yaml"
    path.write_text(CONFIG)
    return offline_pipeline(load(path))


def over_rest(p: Pipeline, *names: str, text: str | None = None) -> frozenset[str]:
    """What the pipeline finds in an OIP REST call of numeric inputs named `names` (and a BYTES one holding `text`)."""
    inputs: list[dict[str, Any]] = [{"name": name, "datatype": "FP32", "shape": [1], "data": [1.0]} for name in names]
    if text is not None:
        inputs.append({"name": "t", "datatype": "BYTES", "shape": [1], "data": [text]})
    header = {"x-purpose": "care"}.get
    read = read_rest_request("m", None, orjson.dumps({"inputs": inputs}), None)
    return p.call(read, "oip", header, p.trace(header)).detected


def over_grpc(p: Pipeline, *names: str) -> frozenset[str]:
    request = infer_request(model_name="m")
    for name in names:
        request.inputs.add(name=name, datatype="FP32", shape=[1]).contents.fp32_contents.append(1.0)
    header = {"x-purpose": "care"}.get
    return p.call(read_infer_request(request.SerializeToString()), "oip-grpc", header, p.trace(header)).detected


@pytest.mark.interpreted  # (it counts the scans by patching one: the module interpreted)
def test_names_alone_the_detectors_found_nothing_in_are_not_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = pipeline(tmp_path)
    scanned: list[str] = []
    scan = p.detectors.scan
    monkeypatch.setattr(p.detectors, "scan", lambda text, limit=None: scanned.append(text) or scan(text, limit))
    for _ in range(3):  # a numeric model's calls: the same name on every call, over REST and gRPC
        assert over_rest(p, "INPUT0") == over_grpc(p, "INPUT0") == frozenset()
    assert scanned and set(scanned) <= {"INPUT0", "INPUT0\n"}  # read once (as a request's text, as a reply's output)
    read = len(scanned)
    assert over_rest(p, "INPUT0") == frozenset() and len(scanned) == read  # not read again
    assert (
        over_rest(p, "INPUT0", text="hello") == frozenset() and scanned[-1] == "hello\nINPUT0\nt"
    )  # beside a text: read


def test_a_labelled_name_is_labelled_after_many_plain_calls_and_past_the_bound(tmp_path: Path) -> None:
    p = pipeline(tmp_path)
    for _ in range(500):
        assert over_rest(p, "INPUT0") == over_grpc(p, "INPUT0") == frozenset()
    assert over_rest(p, ADDRESS) == over_grpc(p, ADDRESS) == {"pii:email"}
    assert over_rest(p, "INPUT0", ADDRESS) == over_grpc(p, ADDRESS, "INPUT0") == {"pii:email"}
    memo = p.detectors._found_nothing  # a client naming its inputs anew on every call: the memo stays bounded
    for index in range(3 * _REMEMBERED_KEPT):
        assert over_grpc(p, f"input-{index}") == frozenset()
        assert 0 < len(memo) <= _REMEMBERED_KEPT and memo.bytes <= memo.most_bytes
    assert over_rest(p, ADDRESS) == over_grpc(p, ADDRESS) == {"pii:email"}
    long = "x" * 300 + " " + ADDRESS  # past what is remembered: read each time, and labelled
    assert over_grpc(p, long) == over_grpc(p, long) == {"pii:email"}


def test_names_beside_texts_or_each_other_are_read_with_them(tmp_path: Path) -> None:
    """A pattern may span a name and a text (`secret\\s+project`: the texts, then the names, a line apart), or two
    names: a name found nothing in alone (`project`) is read again beside them, warm or cold."""
    p = pipeline(tmp_path)
    for _ in range(2):
        assert over_rest(p, "project") == over_grpc(p, "project") == frozenset()
        assert over_rest(p, "project", text="secret") == {"pii:proj"}
        assert over_rest(p, "secret", "project") == over_grpc(p, "secret", "project") == {"pii:proj"}


def test_a_name_read_as_a_reply_output_first_is_labelled_as_a_requests(tmp_path: Path) -> None:
    """The memo is shared with a reply's output names, which are read as a short output is, a line end after them: a
    pattern that tells the two apart (`^hidden\\Z`, a request's one name read whole) finds the request's name though it
    found nothing in the reply's."""
    p = pipeline(tmp_path)
    reply = PB["ModelInferResponse"](model_name="m")
    reply.outputs.add(name="hidden", datatype="FP32", shape=[1]).contents.fp32_contents.append(1.0)
    outcome = Outcome(started_ns=1)
    observer = ReplyObserver(outcome, p.detectors, False)
    observer.body(reply.SerializeToString())
    observer.finish()
    assert p.detectors.scan_output("hidden") == frozenset()  # (the reply's reading finds nothing in it)
    assert over_grpc(p, "hidden") == over_rest(p, "hidden") == {"pii:proj"}


@pytest.fixture(scope="module")
def echo_mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    with mlserver_runtime(tmp_path_factory.mktemp("mlserver-echo-remembered"), ECHO) as addresses:
        yield addresses


@pytest.mark.realserver
def test_an_input_named_with_an_address_is_refused_after_many_plain_calls_to_the_real_mlserver(
    echo_mlserver: tuple[str, str], make_proxy: Callable[..., ProxyHandle]
) -> None:
    rest, grpc_address = echo_mlserver
    proxy = make_proxy(MLSERVER_CONFIG, wait="probed", REST=rest, GRPC=grpc_address)
    url = f"{proxy.url}/v2/models/echo/infer"
    client = grpcclient.InferenceServerClient(proxy.grpc)
    ads = {"x-purpose": "ads"}
    for _ in range(20):  # plain names, for a purpose the zone forbids: they go through, and are remembered
        plain = httpx.post(url, json=rest_body("x"), headers=ads, timeout=60)
        assert plain.status_code == 200 and seen_over_rest(plain)["inputs"] == ["x"], plain.text
        assert json.loads(client.infer("echo", [features("x")], headers=ads).as_numpy("seen")[0])["inputs"] == ["x"]
    refused = httpx.post(url, json=rest_body(ADDRESS), headers=ads, timeout=60)
    assert refused.status_code == 403 and proxy_error(refused)["code"] == "purpose_denied", refused.text
    with pytest.raises(InferenceServerException) as denied:
        client.infer("echo", [features(ADDRESS)], headers=ads)
    assert denied.value.status() == "StatusCode.PERMISSION_DENIED", denied.value
    assert httpx.post(url, json=rest_body("x"), headers=ads, timeout=60).status_code == 200  # and plain ones still go


# Differential: names made of pieces that tell the readings apart (a line end a reply's short output is read with,
# anchors, folds, escapes, controls, values split across names), through the memo warm and cold, against the detectors'
# plain reading of the joined names (what a request holding only them was read as before it was remembered)
PIECES = (
    "a", "x", "0", "4", "@", ".", " ", "\n", "\r", "\x85", "\u2028", "\x00", "\u200b", "\u0301", "\uff20", "%40",
    "\\u0040", "\u0664", "-", "secret", "project", "hidden", "alice", "example.com", "4111111111111111", "10.0.0.1",
    "+1 415 555 0100", "DE89370400440532013000", "::1",
)  # fmt: skip
PATTERNS = (
    r"^hidden\Z", r"hidden$", r"\Ax", r"a\Z", r"x(?=\n)", r"(?<=\n)x", r"[^\n]{5}\Z", r"t\s+p",
    r"(?m)^a$", r"\n\Z",
)  # fmt: skip


@pytest.mark.parametrize("limit", [24, 1_000_000])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_names_remembered_or_not_are_found_as_the_detectors_read_them(tmp_path: Path, pattern: str, limit: int) -> None:
    """However the memo was filled (a reply's output names first, a request's, or none), a request of names alone is
    found what the detectors find in its names read whole (`scan_all`), within the scan limit too. One custom pattern
    a configuration: with several, one of them finds something in nearly every text, and nothing is remembered."""
    path = tmp_path / "proxy.yaml"
    custom = json.dumps({"name": "proj", "pattern": pattern})
    path.write_text(re.sub(r"\{name: proj[^}]*\}", lambda _: custom, CONFIG) + f"limits: {{scan_max_chars: {limit}}}\n")
    p = offline_pipeline(load(path))
    fresh = Detectors(p.config.detectors, limit)  # (a memo of its own, never asked)
    chosen = random.Random(limit)
    labelled = 0
    for _ in range(300):
        names = tuple(
            "".join(chosen.choice(PIECES) for _ in range(chosen.randint(1, 4))) for _ in range(chosen.randint(1, 3))
        )
        if chosen.random() < 0.5:  # a reply naming its outputs so, read first
            reply = PB["ModelInferResponse"](model_name="m")
            for name in names:
                reply.outputs.add(name=name, datatype="FP32", shape=[1]).contents.fp32_contents.append(1.0)
            observer = ReplyObserver(Outcome(started_ns=1), p.detectors, False)
            observer.body(reply.SerializeToString())
            observer.finish()
        expected = fresh.scan_all(names)
        labelled += "pii:proj" in expected
        for _ in range(2):  # cold, then warm
            assert over_grpc(p, *names) == over_rest(p, *names) == expected, names
    # both ways taken: names found, and names skipped (but where every short name's reply reading finds something)
    remembered = p.detectors._found_nothing.kept.values()
    assert labelled and (True in remembered or pattern == r"\n\Z"), (labelled, len(remembered))
