"""KServe's model server answers a structured CloudEvent sent as `application/cloudevents+json` with one
(`DataPlane.encode`, `create_response_cloudevent`): the model's reply is the event's `data`, `{"specversion", "id",
"source", "type", "time", "data": {"predictions": [...]}}`. The reply observer looked for `predictions` at the top,
found none, and read the event as a reply of unknown shape: its strings were scanned, but the call was recorded with
no output digest. The event's `data` is now read as any V1 reply is, its attributes beside it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.flow import Outcome
from proxy.protocols import bytes_digest
from proxy.protocols.kserve import ReplyObserver
from tests.harness import LoopThread, ProxyHandle
from tests.protocols.test_kserve_v1 import ADDRESS, CONFIG, ECHO
from tests.protocols.test_kserve_v1_inputs_first import EVENT
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.real import kserve_model_server

TRACED = CONFIG.replace("telemetry: {exporter: none}", 'telemetry: {exporter: otlp, endpoint: "${OTLP}"}')
DATA = {"instances": [["hello"]]}


@pytest.fixture(scope="module")
def kserve_echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("kserve-cloudevent-reply")
    with kserve_model_server(workdir, ECHO, "echo") as url:
        yield url


def output_digest(otlp: OtlpReceiver, reply: httpx.Response) -> Any:
    return otlp.by_trace(reply.headers["x-trace-id"]).attributes.get("lineage.output.digest")


@pytest.mark.realserver
def test_a_structured_cloudevents_reply_is_recorded_with_its_output_digest(
    kserve_echo: str, make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver, loop_thread: LoopThread
) -> None:
    event = orjson.dumps({**EVENT, "data": DATA})
    headers = {"content-type": "application/cloudevents+json"}
    direct = httpx.post(f"{kserve_echo}/v1/models/echo:predict", content=event, headers=headers, timeout=60)
    answered = direct.json()  # the real server answers with a structured CloudEvent, the model's reply its data
    assert direct.status_code == 200 and answered["data"] == {"predictions": [DATA]}, direct.text
    assert {"specversion", "id", "source", "type", "time"} <= answered.keys(), answered
    proxy = make_proxy(
        TRACED, wait="probed", KSERVE=kserve_echo, PASSTHROUGH="auto", OTLP=f"http://127.0.0.1:{otlp.port}"
    )
    as_event = httpx.post(f"{proxy.url}/v1/models/echo:predict", content=event, headers=headers, timeout=60)
    assert as_event.status_code == 200 and as_event.json()["data"] == {"predictions": [DATA]}, as_event.text
    plain = httpx.post(f"{proxy.url}/v1/models/echo:predict", json=DATA, timeout=60)
    assert plain.status_code == 200 and plain.json() == {"predictions": [DATA]}, plain.text
    # recorded as the same reply sent plain is: the digest of its predictions (before: none)
    expected = bytes_digest(orjson.dumps([DATA]))
    assert output_digest(otlp, plain) == expected
    assert output_digest(otlp, as_event) == expected


def test_a_structured_cloudevents_data_is_the_replys_output() -> None:
    detectors = Detectors([DetectorSpec("email")])
    predictions = [["setosa", ADDRESS]]
    for data in ({"predictions": predictions}, predictions):
        outcome = Outcome(started_ns=1)
        observer = ReplyObserver(outcome, detectors, True)
        observer.body(orjson.dumps({**EVENT, "source": "io.kserve.inference.echo", "data": data}))
        observer.finish()
        assert outcome.output_digest == bytes_digest(orjson.dumps(predictions)), data
        assert outcome.output_detected == {"pii:email"} and "[pii:email]" in outcome.content[0]
    outcome = Outcome(started_ns=1)  # an attribute of the event is read beside the output
    observer = ReplyObserver(outcome, detectors, False)
    observer.body(orjson.dumps({**EVENT, "source": ADDRESS, "data": {"predictions": [1]}}))
    observer.finish()
    assert outcome.output_detected == {"pii:email"} and outcome.output_digest == bytes_digest(b"[1]")
