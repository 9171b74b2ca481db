"""CONTRACT.md §3's error table and §4/§5 as a first user reads them, one row a case.

Each row of the table, over HTTP with the real openai SDK: the status, the SDK's typed error, the body's four keys and
its code, `x-lineage-decision` and `x-trace-id`; the span a real OTLP receiver decodes (its name, `lineage.decision`,
`error.type`, `lineage.reason` when not allow); a refusal never reaching the upstream; and the call's edge readable
with `lineage-proxy edges --json` as soon as its reply is in (§5: a first edge is written before the reply completes).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import KEYS, sha
from tests.harness import dead_port
from tests.servers.vllm_like import ROOT as ROOT_WEIGHTS
from tests.servers.vllm_like import SERVED

ROOT = Path(__file__).resolve().parent.parent

CONFIG = f"""
listen:
  http: 127.0.0.1:0
upstreams:
  - name: eu
    url: ${{UPSTREAM}}
    region: eu
  - name: us
    url: ${{UPSTREAM}}
    region: us
  - name: dead
    url: http://127.0.0.1:${{DEAD}}
  - name: slow
    url: http://127.0.0.1:${{SLOW}}
    checkpoint: slow-weights
    timeout_s: 0.5
routes:
  - model: {SERVED}
    upstream: eu
    purposes: [assistant, evaluation]
  - model: us-model
    upstream: us
  - model: dead-model
    upstream: dead
  - model: slow-model
    upstream: slow
callers:
  - name: glasses-app
    api_key_sha256: {sha(KEYS["glasses"])}
    purposes: [assistant]
    labels: [user-interaction]
    default_purpose: assistant
  - name: lab
    api_key_sha256: {sha(KEYS["ops"])}
    purposes: [assistant, evaluation, support]
zones:
  - name: interaction-data
    labels: [user-interaction]
    allow_purposes: [assistant]
    regions: [eu]
    on_deny: block
policy:
  mode: enforce
  anonymous: deny
  default_purpose: null
limits:
  max_body_bytes: 4096
telemetry:
  exporter: otlp
  endpoint: ${{OTLP}}
  protocol: grpc
lineage:
  store: ${{STORE}}
"""


@dataclass(frozen=True)
class Row:
    """One call and what CONTRACT.md §3 says it gets."""

    case: str
    status: int
    code: str
    error: type[openai.APIStatusError]
    key: str | None = KEYS["glasses"]
    model: str = SERVED
    headers: dict[str, str] = field(default_factory=dict)
    content: str = "hello"
    refused: bool = True  # refused by the proxy (decision deny, never forwarded); else forwarded and failed there
    routed: bool = True  # else the span is named by its operation alone (README "The record": refused before routing)
    read: bool = True  # else refused before it was read: no gen_ai.request.model, no edge (README "Edges")


ROWS = [
    Row("purpose not allowed: caller", 403, "purpose_denied", openai.PermissionDeniedError, KEYS["glasses"],
        headers={"x-purpose": "evaluation"}),
    Row("purpose not allowed: route", 403, "purpose_denied", openai.PermissionDeniedError, KEYS["ops"],
        headers={"x-purpose": "support"}),
    Row("purpose not allowed: zone", 403, "purpose_denied", openai.PermissionDeniedError, KEYS["ops"],
        headers={"x-purpose": "evaluation", "x-data-labels": "user-interaction"}),
    Row("no purpose given and no default", 403, "purpose_required", openai.PermissionDeniedError, KEYS["ops"]),
    Row("zone forbids the upstream's region", 403, "region_denied", openai.PermissionDeniedError, model="us-model"),
    Row("unknown key", 401, "invalid_api_key", openai.AuthenticationError, "not-a-key", routed=False),
    Row("missing key (anonymous: deny)", 401, "invalid_api_key", openai.AuthenticationError, None, routed=False),
    Row("malformed label", 400, "invalid_request", openai.BadRequestError, headers={"x-data-labels": "-x"},
        routed=False, read=False),
    Row("body over the limit", 413, "request_too_large", openai.APIStatusError, content="x" * 5000,
        routed=False, read=False),
    Row("no route for the model", 404, "model_not_found", openai.NotFoundError, model="nope", routed=False),
    Row("upstream refused / reset", 502, "upstream_unavailable", openai.InternalServerError, KEYS["ops"],
        model="dead-model", headers={"x-purpose": "assistant"}, refused=False),
    Row("upstream too slow", 504, "upstream_timeout", openai.InternalServerError, KEYS["ops"],
        model="slow-model", headers={"x-purpose": "assistant"}, refused=False),
]  # fmt: skip


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose listener takes connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


@pytest.fixture
def audited(vllm, otlp, make_proxy, silent_port, tmp_path):  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, "probed", UPSTREAM=upstream, OTLP=f"http://127.0.0.1:{otlp.port}", DEAD=str(dead_port()),
                       SLOW=str(silent_port))  # fmt: skip
    return server, proxy, otlp, tmp_path / "lineage.db"


def edges(store: Path) -> list[dict[str, object]]:
    result = subprocess.run([sys.executable, "-m", "proxy", "edges", "--store", str(store), "--json"],
                            capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.parametrize("row", ROWS, ids=[row.case for row in ROWS])
def test_error_table_row(audited, row: Row) -> None:  # type: ignore[no-untyped-def]
    server, proxy, otlp, store = audited
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=row.key or "unused", max_retries=0, timeout=10)
    sent: dict[str, object] = {**row.headers} if row.key else {**row.headers, "Authorization": openai.Omit()}
    seen = len(server.data_requests())
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model=row.model, messages=[{"role": "user", "content": row.content}],
                                       extra_headers=sent)  # type: ignore[arg-type]  # fmt: skip
    error = caught.value
    assert isinstance(error, row.error), type(error)
    assert error.status_code == row.status
    assert error.code == row.code and error.message
    body = error.response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "code", "param"}, body
    assert body["error"]["code"] == row.code and isinstance(body["error"]["type"], str) and body["error"]["type"]
    headers = error.response.headers
    decision = "deny" if row.refused else "allow"
    assert headers["x-lineage-decision"] == decision
    if row.refused:  # "A denied call never reaches the upstream"
        assert len(server.data_requests()) == seen
    span = otlp.by_trace(headers["x-trace-id"])
    assert span.name == (f"chat {row.model}" if row.routed else "chat")
    attributes = span.attributes
    assert attributes["lineage.decision"] == decision and attributes["error.type"] == row.code
    assert attributes.get("gen_ai.request.model") == (row.model if row.read else None)
    assert attributes["gen_ai.operation.name"] == "chat"
    assert ("lineage.reason" in attributes) == row.refused
    assert isinstance(attributes["lineage.zones"], list) and isinstance(attributes["lineage.input.labels"], list)
    # §5: the call's edge is on disk before its reply completed (a new flow is written through, not batched)
    assert [edge["decision"] for edge in edges(store)] == ([decision] if row.read else []), edges(store)


def test_malformed_json_body_is_invalid_request(audited) -> None:  # type: ignore[no-untyped-def]
    """The table's "malformed ... JSON body" row: what the SDK never sends, sent raw."""
    server, proxy, otlp, store = audited
    reply = httpx.post(f"{proxy.url}/v1/chat/completions", content=b'{"model": ', timeout=10,
                       headers={"authorization": f"Bearer {KEYS['glasses']}", "content-type": "application/json"})  # fmt: skip
    assert reply.status_code == 400
    body = reply.json()
    assert set(body["error"]) == {"message", "type", "code", "param"} and body["error"]["code"] == "invalid_request"
    assert body["error"]["param"] is None
    assert reply.headers["x-lineage-decision"] == "deny" and server.data_requests() == []
    span = otlp.by_trace(reply.headers["x-trace-id"])
    assert span.attributes["lineage.decision"] == "deny" and span.attributes["error.type"] == "invalid_request"
    assert edges(store) == []  # refused before it was read: its span is its record (README "Edges")


def test_allowed_call_headers_and_span(audited) -> None:  # type: ignore[no-untyped-def]
    """§3's reply headers and §4's attributes of an allowed call, through the SDK."""
    server, proxy, otlp, store = audited
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=KEYS["glasses"], max_retries=0, timeout=10)
    reply = client.chat.completions.with_raw_response.create(
        model=SERVED, messages=[{"role": "user", "content": "mail bob@example.org"}], max_tokens=5, temperature=0.2
    )
    headers = reply.http_response.headers
    assert headers["x-lineage-decision"] == "allow"
    assert headers["x-lineage-checkpoint"]
    assert set(headers["x-data-labels"].split(",")) == {"user-interaction"}
    span = otlp.by_trace(headers["x-trace-id"])
    a = span.attributes
    assert span.name == f"chat {SERVED}" and a["lineage.checkpoint"] == headers["x-lineage-checkpoint"]
    assert a["lineage.checkpoint.source"] in ("config", "upstream", "response")
    assert a["lineage.decision"] == "allow" and "lineage.reason" not in a and "error.type" not in a
    assert a["lineage.caller"] == "glasses-app" and a["lineage.purpose"] == "assistant"
    assert a["lineage.zones"] == ["interaction-data"]
    assert a["gen_ai.request.max_tokens"] == 5 and a["gen_ai.request.temperature"] == 0.2
    assert isinstance(a["server.address"], str) and isinstance(a["server.port"], int)
    for digest in ("lineage.input.digest", "lineage.output.digest"):
        assert a[digest].startswith("sha256:") and len(a[digest]) == len("sha256:") + 64
    assert [edge["decision"] for edge in edges(store)] == ["allow"]


GRPC_CONFIG = f"""
listen:
  http: 127.0.0.1:0
  grpc: 127.0.0.1:0
upstreams:
  - name: oip
    grpc: ${{OIP_GRPC}}
    protocol: oip
    region: eu
  - name: oip-us
    grpc: ${{OIP_GRPC}}
    protocol: oip
    region: us
  - name: dead
    grpc: 127.0.0.1:${{DEAD}}
    protocol: oip
routes:
  - model: simple
    upstream: oip
    purposes: [assistant, evaluation]
  - model: simple-us
    upstream: oip-us
  - model: dead-model
    upstream: dead
callers:
  - name: lab
    api_key_sha256: {sha(KEYS["ops"])}
    purposes: [assistant, evaluation, support]
zones:
  - name: health
    labels: [health]
    allow_purposes: [assistant]
    regions: [eu]
policy:
  anonymous: deny
telemetry:
  exporter: none
lineage:
  store: ${{STORE}}
"""

AUTH = f"Bearer {KEYS['ops']}"
GRPC_ROWS = [
    ("purpose_denied", "PERMISSION_DENIED", "simple", {"authorization": AUTH, "x-purpose": "support"}),
    ("purpose_denied", "PERMISSION_DENIED", "simple",
     {"authorization": AUTH, "x-purpose": "evaluation", "x-data-labels": "health"}),
    ("purpose_required", "PERMISSION_DENIED", "simple", {"authorization": AUTH}),
    ("region_denied", "PERMISSION_DENIED", "simple-us",
     {"authorization": AUTH, "x-purpose": "assistant", "x-data-labels": "health"}),
    ("invalid_api_key", "UNAUTHENTICATED", "simple", {"authorization": "Bearer nope", "x-purpose": "assistant"}),
    ("invalid_api_key", "UNAUTHENTICATED", "simple", {"x-purpose": "assistant"}),
    ("invalid_request", "INVALID_ARGUMENT", "simple", {"authorization": AUTH, "x-purpose": "assistant",
                                                       "x-data-labels": "-x"}),
    ("model_not_found", "NOT_FOUND", "nope", {"authorization": AUTH, "x-purpose": "assistant"}),
    ("upstream_unavailable", "UNAVAILABLE", "dead-model", {"authorization": AUTH, "x-purpose": "assistant"}),
]  # fmt: skip


@pytest.fixture(scope="module")
def oip_grpc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    from tests.servers.real import faithful_oip

    with faithful_oip(tmp_path_factory.mktemp("oip")) as server:
        yield server


@pytest.mark.parametrize(("code", "status", "model", "metadata"), GRPC_ROWS, ids=[f"{r[0]}-{i}" for i, r in
                                                                                  enumerate(GRPC_ROWS)])  # fmt: skip
def test_grpc_status_of_each_code(oip_grpc, make_proxy, code: str, status: str, model: str,  # type: ignore[no-untyped-def]
                                  metadata: dict[str, str]) -> None:  # fmt: skip
    """§3's gRPC column: the status the table gives each code, through the real tritonclient, a reason in words, and
    a refusal never reaching the upstream (its request log)."""
    import numpy as np
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    address, log = oip_grpc
    proxy = make_proxy(GRPC_CONFIG, "probed", OIP_GRPC=address, DEAD=str(dead_port()))
    seen = log.read_text().count("\n")
    inputs = []
    for name in ("A", "B"):
        tensor = grpcclient.InferInput(name, [1, 2], "INT32")
        tensor.set_data_from_numpy(np.array([[1, 2]], dtype=np.int32))
        inputs.append(tensor)
    with grpcclient.InferenceServerClient(proxy.grpc) as client, pytest.raises(InferenceServerException) as caught:
        client.infer(model, inputs, headers=metadata, client_timeout=10)
    assert caught.value.status() == f"StatusCode.{status}", caught.value
    assert caught.value.message()  # the reason in words (the code itself is the HTTP body's, not gRPC's)
    if code != "upstream_unavailable":
        assert log.read_text().count("\n") == seen


# CONTRACT.md §2's sample as written there, its elided key digest completed (the sha256 of `test`)
CONTRACT_SAMPLE = """\
listen:
  http: 127.0.0.1:8080          # OpenAI-compatible and Open Inference Protocol v2 REST traffic
  grpc: 127.0.0.1:8081          # Open Inference Protocol v2 gRPC traffic (optional)
  admin: 127.0.0.1:9464         # /healthz /readyz /metrics (optional; else on the http listener)

upstreams:
  - name: llama
    url: http://127.0.0.1:8000  # HTTP upstream (OpenAI-compatible or OIP v2 REST)
    protocol: openai            # openai | oip | passthrough
    region: eu                  # optional, used by zones
    checkpoint: meta-llama/Llama-3.1-8B-Instruct@0e9e39f   # optional pin; else discovered
    timeout_s: 600
  - name: triton
    grpc: 127.0.0.1:8001        # gRPC upstream (OIP v2 GRPCInferenceService)
    protocol: oip

routes:                         # which upstream serves a call, by requested model name
  - model: llama-3.1-8b         # exact name, or "*" as the fallback
    upstream: llama
    purposes: [assistant, evaluation]   # what this model may be used for (optional)

callers:                        # who may call, and what they may claim
  - name: glasses-app
    api_key_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08   # matches "Authorization: Bearer <key>"; never the key itself
    purposes: [assistant]       # purposes this caller may act for
    labels: [user-interaction]  # labels always attached to this caller's inputs
    default_purpose: assistant

zones:                          # Policy Zones: data carrying a zone label may only be used as allowed
  - name: interaction-data
    labels: [user-interaction]
    allow_purposes: [assistant, safety-review]
    regions: [eu]               # optional: only upstreams in these regions may receive it
    on_deny: block              # block | reroute:<upstream>

policy:
  mode: enforce                 # enforce | audit (decide and record, never block)
  anonymous: deny               # deny | allow: calls without a known caller key
  default_purpose: null         # used when neither the call nor the caller names one

detectors: [email, phone, credit_card, ip_address]   # content scanners that add pii:* labels

telemetry:
  service_name: lineage-proxy
  exporter: otlp                # otlp | console | none
  endpoint: http://127.0.0.1:4317
  protocol: grpc                # grpc | http/protobuf
  sample_ratio: 1.0             # spans only: lineage edges are never sampled
  capture_content: false        # raw prompts/outputs in spans: off by default; digests always

lineage:
  store: ./lineage.db           # embedded default (SQLite); other sinks may be added
  retention_days: 30            # older records are purged automatically
"""

# (what the sample says, what a user writes instead, every problem `check` prints for it)
CONFIG_ROWS = [
    ("protocol: openai", "protocol: vllm",
     ["upstreams[0].protocol: must be one of openai, oip, kserve, passthrough, got 'vllm'"]),
    ("timeout_s: 600", "timeout_s: 0", ["upstreams[0].timeout_s: must be >= 0.001, got 0"]),
    ("upstream: llama", "upstream: vlm", ["routes[0].upstream: unknown upstream 'vlm'"]),
    ("labels: [user-interaction]  #", "labels: [User-Interaction]  #",
     ["callers[0].labels[0]: invalid label 'User-Interaction' (grammar [a-z0-9][a-z0-9._:/-]{0,127})"]),
    ("default_purpose: assistant", "default_purpose: ads",
     ["callers[0].default_purpose: 'ads' is not one of the caller's purposes"]),
    ("on_deny: block", "on_deny: deny", ["zones[0].on_deny: must be block or reroute:<upstream>, got 'deny'"]),
    ("on_deny: block", "on_deny: 'reroute:'", ["zones[0].on_deny: reroute needs an upstream: reroute:<upstream>"]),
    ("on_deny: block", "on_deny: reroute:vlm", ["zones[0].on_deny: unknown upstream 'vlm'"]),
    ("mode: enforce", "mode: strict", ["policy.mode: must be one of enforce, audit, got 'strict'"]),
    ("anonymous: deny", "anonymous: maybe", ["policy.anonymous: must be one of deny, allow, got 'maybe'"]),
    ("[email, phone,", "[email, phones,", ["detectors[1]: unknown detector 'phones' (built-in: email, phone, "
                                         "credit_card, ip_address, iban; or {name: ..., pattern: ...})"]),
    ("service_name: lineage-proxy", "service_name: ''", ["telemetry.service_name: expected a non-empty string, got ''"]),
    ("exporter: otlp", "exporter: jaeger", ["telemetry.exporter: must be one of otlp, console, none, got 'jaeger'"]),
    ("protocol: grpc", "protocol: http", ["telemetry.protocol: must be one of grpc, http/protobuf, got 'http'"]),
    ("sample_ratio: 1.0", "sample_ratio: 2", ["telemetry.sample_ratio: must be between 0 and 1, got 2"]),
    ("capture_content: false", "capture_content: maybe", ["telemetry.capture_content: expected true or false, got 'maybe'"]),
    ("retention_days: 30", "retention_days: -1", ["lineage.retention_days: must be >= 0.0001, got -1"]),
    ("store: ./lineage.db", "store: ${LP_AUDIT16_UNSET}",
     ["lineage.store: environment variable LP_AUDIT16_UNSET is not set (set it, or write ${LP_AUDIT16_UNSET:-default})"]),
]  # fmt: skip


def check(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return subprocess.run([sys.executable, "-m", "proxy", "check", "--config", str(path)], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)  # fmt: skip


def test_contract_sample_config_is_valid(tmp_path: Path) -> None:
    """§2's sample passes `check` as written, and `${VAR:-default}` reads its default when VAR is unset."""
    result = check(tmp_path, CONTRACT_SAMPLE.replace("store: ./lineage.db", "store: ${LP_AUDIT16_UNSET:-./l.db}"))
    assert result.returncode == 0 and result.stdout.endswith(": ok (2 upstreams, 1 route, 1 caller, 1 zone)\n")


@pytest.mark.parametrize(("said", "written", "problems"), CONFIG_ROWS, ids=[row[1] for row in CONFIG_ROWS])
def test_check_names_each_invalid_value_once(tmp_path: Path, said: str, written: str, problems: list[str]) -> None:
    """§1: `check` exits 1 and prints every problem with its location, each once (a `reroute:` naming no upstream
    was said twice: `reroute needs an upstream`, then `unknown upstream ''`)."""
    assert CONTRACT_SAMPLE.count(said) == 1
    result = check(tmp_path, CONTRACT_SAMPLE.replace(said, written))
    assert result.returncode == 1
    header, *lines = result.stderr.splitlines()
    assert header.startswith("lineage-proxy check: ") and header.endswith("config.yaml: invalid configuration:")
    assert lines == [f"  {problem}" for problem in problems]


def test_sample_ratio_samples_spans_never_edges(vllm, otlp, make_proxy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """§2 `sample_ratio: spans only: lineage edges are never sampled`: at 0 a call of its own trace exports no span,
    yet has its x-trace-id and counts toward its edge, and its upstream is told it is not sampled; a caller's sampled
    traceparent is kept (the sampler is parent-based: README, Observing the proxy)."""
    server, upstream = vllm
    config = CONFIG.replace("  protocol: grpc\n", "  protocol: grpc\n  sample_ratio: 0.0\n")
    proxy = make_proxy(config, "probed", UPSTREAM=upstream, OTLP=f"http://127.0.0.1:{otlp.port}",
                       DEAD=str(dead_port()), SLOW=str(dead_port()))  # fmt: skip
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=KEYS["glasses"], max_retries=0, timeout=10)
    messages = [{"role": "user", "content": "hello"}]
    alone = client.chat.completions.with_raw_response.create(model=SERVED, messages=messages)  # type: ignore[arg-type]
    unsampled = alone.http_response.headers["x-trace-id"]
    assert server.data_requests()[-1].headers["traceparent"].startswith(f"00-{unsampled}-")
    assert server.data_requests()[-1].headers["traceparent"].endswith("-00")
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    joined = client.chat.completions.with_raw_response.create(model=SERVED, messages=messages,  # type: ignore[arg-type]
                                                              extra_headers={"traceparent": parent})  # fmt: skip
    assert joined.http_response.headers["x-trace-id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    otlp.by_trace("4bf92f3577b34da6a3ce929d0e0e4736")  # exported in order: the first call's span would be by now
    assert all(span.trace_id != unsampled for span in otlp.spans)
    # the second call's count is batched (§5: flushed at least every second): read until it is in, 10 s at most
    deadline = time.monotonic() + 10
    while (counts := [(e["decision"], e["count"]) for e in edges(tmp_path / "lineage.db")]) != [("allow", 2)]:
        assert counts == [("allow", 1)] and time.monotonic() < deadline, counts


SOURCES_CONFIG = f"""
listen:
  http: 127.0.0.1:0
upstreams:
  - name: pinned
    url: ${{UPSTREAM}}
    checkpoint: meta-llama/Llama-3.1-8B-Instruct@0e9e39f
  - name: discovered
    url: ${{UPSTREAM}}
  - name: unlisted
    url: ${{UNLISTED}}
routes:
  - model: pinned-model
    upstream: pinned
  - model: {SERVED}
    upstream: discovered
  - model: other-model
    upstream: unlisted
policy:
  anonymous: allow
  default_purpose: assistant
telemetry:
  exporter: otlp
  endpoint: ${{OTLP}}
lineage:
  store: ${{STORE}}
"""


@pytest.mark.parametrize(
    ("model", "source", "checkpoint"),
    [("pinned-model", "config", "meta-llama/Llama-3.1-8B-Instruct@0e9e39f"), (SERVED, "upstream", ROOT_WEIGHTS),
     ("other-model", "response", "other-model")],
)  # fmt: skip
def test_checkpoint_source_each_value(vllm, otlp, make_proxy, loop_thread, model: str, source: str,  # type: ignore[no-untyped-def]
                                      checkpoint: str) -> None:  # fmt: skip
    """§4 `lineage.checkpoint.source` (`config` | `upstream` | `response`), each value with the checkpoint
    `x-lineage-checkpoint` names: a pin, the upstream's `/v1/models` root, the reply's `model` (a server whose listing
    names no such model)."""
    from tests.harness import serving
    from tests.servers.vllm_like import VllmLike

    _, upstream = vllm
    with serving(loop_thread, VllmLike(models=[]).app()) as unlisted:
        proxy = make_proxy(SOURCES_CONFIG, "probed", UPSTREAM=upstream, UNLISTED=unlisted,
                           OTLP=f"http://127.0.0.1:{otlp.port}")  # fmt: skip
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=10)
        reply = client.chat.completions.with_raw_response.create(model=model,
                                                                 messages=[{"role": "user", "content": "hi"}])  # fmt: skip
        headers = reply.http_response.headers
        assert headers["x-lineage-checkpoint"] == checkpoint
        span = otlp.by_trace(headers["x-trace-id"])
        assert (span.attributes["lineage.checkpoint"], span.attributes["lineage.checkpoint.source"]) == (
            checkpoint, source)  # fmt: skip
