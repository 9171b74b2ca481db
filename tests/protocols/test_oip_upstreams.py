"""OIP reads held against the servers behind the proxy: text real MLServer hands its model (whatever the
tensor's datatype says, base64 its model-settings declare), and versions a Triton-like server reads as
numbers, checked by the baseline over the faithful gRPC server."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from tests.harness import proxy_error
from tests.protocols.test_oip_grpc import (  # messages in a pool of their own (tritonclient's is the default)
    simple_infer,
)
from tests.servers.real import mlserver_serving

E = "alice@example.com"

# Answers with what MLServer gave the model for each input: its data, decoded by the codecs MLServer picks
ECHO = """
from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput


class Echo(MLModel):
    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        outputs = []
        for tensor in payload.inputs:
            try:
                seen = self.decode(tensor)
            except Exception as exc:
                seen = repr(exc)
            outputs.append(ResponseOutput(name=tensor.name, shape=[1], datatype="BYTES",
                                          data=[repr((tensor.data.root, seen))]))
        return InferenceResponse(model_name=self.name, outputs=outputs)
"""


@pytest.fixture(scope="module")
def echo_mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """MLServer serving `echo` (its model-settings declare input `text` base64, as MLServer's docs show)
    and `plain` (no declared inputs), both the Echo model above."""
    root = tmp_path_factory.mktemp("mlserver") / "models"
    declared = [{"name": "text", "datatype": "BYTES", "shape": [-1], "parameters": {"content_type": "base64"}}]
    for name, inputs in (("echo", declared), ("plain", [])):
        (root / name).mkdir(parents=True)
        (root / name / "echo.py").write_text(ECHO)
        (root / name / "model-settings.json").write_text(
            json.dumps({"name": name, "implementation": "echo.Echo", "inputs": inputs})
        )
    with mlserver_serving(root, "/v2/models/plain/ready", "/v2/models/echo/ready") as (http, grpc_address):
        yield http


MLSERVER_CONFIG = """
listen:
  http: 127.0.0.1:0
upstreams:
  - name: mls
    url: ${MLS}
    protocol: oip
routes:
  - model: "*"
    upstream: mls
zones:
  - name: pii
    labels: ["pii:email"]
    allow_purposes: [support]
policy:
  anonymous: allow
  default_purpose: marketing
detectors: [email]
telemetry:
  exporter: none
lineage:
  store: ${STORE}
"""

B64 = base64.b64encode(E.encode()).decode()


@pytest.mark.realserver
@pytest.mark.parametrize(
    ("model", "tensor", "status"),
    [
        ("plain", {"name": "t", "shape": [1], "datatype": "INT32", "data": [E]}, 403),
        ("plain", {"name": "t", "shape": [1], "datatype": "FP32", "data": [E], "parameters": {"content_type": "str"}},
         403),
        ("plain", {"name": "t", "shape": [1], "datatype": "BYTES", "data": [E], "parameters": {"binary_data_size": 0}},
         403),
        ("plain", {"name": "t", "shape": [1], "datatype": "BYTES", "data": [{"x": E}]}, 400),
        ("plain", {"name": "t", "shape": [1], "datatype": "BYTES", "data": {"x": E}}, 400),
        ("echo", {"name": "text", "shape": [1], "datatype": "BYTES", "data": [B64]}, 403),
    ],
)  # fmt: skip
def test_text_mlserver_hands_the_model_is_scanned(  # type: ignore[no-untyped-def]
    echo_mlserver, make_proxy, model: str, tensor: dict[str, Any], status: int
) -> None:
    """Each request gives the model the address (asked of MLServer directly); through the proxy the address
    is found and the zone refuses the marketing call (403), or the tensor is not a tensor (400)."""
    body = {"inputs": [tensor]}
    direct = httpx.post(f"{echo_mlserver}/v2/models/{model}/infer", json=body, timeout=30)
    assert direct.status_code == 200 and E in direct.json()["outputs"][0]["data"][0], direct.text
    proxy = make_proxy(MLSERVER_CONFIG, MLS=echo_mlserver)
    via = httpx.post(f"{proxy.url}/v2/models/{model}/infer", json=body, timeout=30)
    assert via.status_code == status, via.text
    if status == 403:
        assert proxy_error(via)["code"] == "purpose_denied" and "pii" in via.text
    else:
        assert proxy_error(via)["code"] == "invalid_request" and "tensor 't'" in via.text


@pytest.mark.realserver
def test_a_model_mlserver_lists_with_no_version_is_checked_as_its_replies_name_it(  # type: ignore[no-untyped-def]
    echo_mlserver, make_proxy, loop_thread, tmp_path: Path
) -> None:
    """MLServer lists a model with no version (its default) as `"versions": []`: `lineage.on_unapproved:
    block` refused every call to it, for ever, as a model the metadata does not list. Its checkpoint is
    its name, as its replies (no `model_version`) and so the record name it: a baseline written from the
    record admits it. A baseline approving the flow for any checkpoint admits it at once."""
    body = {"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": ["hello"]}]}
    recording = make_proxy(MLSERVER_CONFIG, MLS=echo_mlserver)
    reply = httpx.post(f"{recording.url}/v2/models/plain/infer", json=body, timeout=30)
    assert reply.status_code == 200 and reply.headers["x-lineage-checkpoint"] == "plain", reply.text
    loop_thread.run(recording.process.runtime.sinks.flush())
    baseline = tmp_path / "written.yaml"
    written = subprocess.run([sys.executable, "-m", "proxy", "verify", "--store", str(tmp_path / "lineage.db"),
                              "--write-baseline", str(baseline)], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert written.returncode == 0 and "checkpoints: [plain]" in baseline.read_text(), written.stderr

    blocking = MLSERVER_CONFIG + "  baseline: ${BASELINE}\n  on_unapproved: block\n"
    proxy = make_proxy(blocking, MLS=echo_mlserver, BASELINE=str(baseline), STORE=str(tmp_path / "block.db"))
    replies = []
    deadline = time.monotonic() + 5
    while (replies[-1].status_code if replies else 503) == 503:
        assert time.monotonic() < deadline, replies[-1].text
        time.sleep(0.05 if replies else 0)  # polling: the metadata is being asked about `plain`
        replies.append(httpx.post(f"{proxy.url}/v2/models/plain/infer", json=body, timeout=30))
    assert replies[-1].status_code == 200 and replies[-1].headers["x-lineage-checkpoint"] == "plain", replies[-1].text
    assert all(proxy_error(r)["code"] == "checkpoint_unknown" for r in replies[:-1])  # while it is asked about

    anything = tmp_path / "any.yaml"
    anything.write_text("version: 1\nflows:\n  - {caller: anonymous, purpose: marketing}\n")
    proxy = make_proxy(blocking, MLS=echo_mlserver, BASELINE=str(anything), STORE=str(tmp_path / "any.db"))
    reply = httpx.post(f"{proxy.url}/v2/models/echo/infer", json=body, timeout=30)
    assert reply.status_code == 200, reply.text


BASELINE_CONFIG = """
listen:
  http: 127.0.0.1:0
  grpc: 127.0.0.1:0
upstreams:
  - name: oip
    grpc: ${OIP_GRPC}
    protocol: oip
routes:
  - model: simple
    upstream: oip
policy:
  anonymous: allow
  default_purpose: evaluation
telemetry:
  exporter: none
lineage:
  store: ${STORE}
  baseline: ${BASELINE}
  on_unapproved: block
"""


def test_a_version_triton_reads_as_another_number_does_not_pass_the_baseline(  # type: ignore[no-untyped-def]
    faithful, make_proxy, tmp_path: Path
) -> None:
    """The baseline approves `simple:1` only. Triton reads model_version `02` (or `+2`, ` 2`, `2abc`) as
    version 2: such a call was checked as an unknown version, which any approved checkpoint fits, and ran
    version 2. Now such a version is refused as invalid, and version 2 itself as unapproved."""
    address, log = faithful
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text(
        "version: 1\nflows:\n  - {caller: '*', purpose: '*', labels: ['*'], checkpoints: ['simple:1']}\n"
    )
    proxy = make_proxy(BASELINE_CONFIG, wait="reachable", OIP_GRPC=address, BASELINE=str(baseline))

    def infer(version: str) -> object:
        return simple_infer(proxy.grpc, version)[0]

    # "3": a version the upstream's metadata does not list (loaded since it was read): checked as `simple:3`,
    # not as an unknown checkpoint, which any approved one fitted
    refused = {version: infer(version) for version in ("1", "2", "3", "02", "+2", " 2", "2abc")}
    assert refused == {"1": grpc.StatusCode.OK, "2": grpc.StatusCode.PERMISSION_DENIED,
                       "3": grpc.StatusCode.PERMISSION_DENIED,
                       **dict.fromkeys(("02", "+2", " 2", "2abc"), grpc.StatusCode.INVALID_ARGUMENT)}  # fmt: skip
    assert [json.loads(line)["version"] for line in log.read_text().splitlines()] == ["1"]
