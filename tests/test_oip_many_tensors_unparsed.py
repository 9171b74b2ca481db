"""An OIP REST inference request of more tensors than the proxy reads is refused before its body is parsed: a request
of 278,000 one-element inputs (16 MB) was parsed whole (orjson building a dict, four strings and two lists for each),
then its keys counted for duplicates, before its inputs were counted and it was refused (413 `request_too_large`),
0.9-1.7 s of the event loop here; its first 65,537 inputs are now matched in C (`oip._MANY_TENSORS`), 0.06-0.2 s.
A body of another shape is parsed and counted as before; at the limit a request is read as ever."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import requests

from proxy.errors import RequestTooLarge
from proxy.logs import ACCESS
from proxy.protocols import MAX_STRINGS, oip
from proxy.protocols.oip import read_rest_request
from tests.harness import LoopThread, ProxyHandle, serving
from tests.servers.otlp_receiver import OtlpReceiver
from tests.test_oip_rest_error_shape import CONFIG as ERROR_SHAPE_CONFIG
from tests.test_oip_rest_error_shape import oip_server


def _tiny(count: int) -> list[dict[str, Any]]:
    return [{"name": f"i{index}", "shape": [1], "datatype": "FP32", "data": [1.0]} for index in range(count)]


def _parsed(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The heads `oip` parses as JSON, recorded as it parses them."""
    heads: list[bytes] = []
    load = oip.load_request_json

    def counted(head: bytes, *args: Any) -> dict[str, Any]:
        heads.append(head)
        return load(head, *args)

    monkeypatch.setattr(oip, "load_request_json", counted)
    return heads


@pytest.mark.interpreted
@pytest.mark.parametrize("written", ["orjson", "json"])  # compact, and with spaces (`requests`' `json=`)
def test_a_request_of_more_tensors_than_read_is_refused_unparsed(monkeypatch: pytest.MonkeyPatch, written: str) -> None:
    parsed = _parsed(monkeypatch)
    dumps: Callable[[Any], bytes] = orjson.dumps if written == "orjson" else (lambda v: json.dumps(v).encode())
    with pytest.raises(RequestTooLarge, match="over 65,536 tensors"):
        read_rest_request("m", None, dumps({"inputs": _tiny(2 * MAX_STRINGS), "outputs": [{"name": "o"}]}), None)
    assert parsed == []  # (parsed whole before)
    at_limit = read_rest_request("m", None, dumps({"inputs": _tiny(MAX_STRINGS)}), None)  # read as ever
    assert len(parsed) == 1 and len(at_limit.names) > 0


def test_bodies_of_other_shapes_are_parsed_and_counted_as_before() -> None:
    many = _tiny(MAX_STRINGS + 1)
    for body in (
        orjson.dumps({"id": "x", "inputs": many}),  # another first key
        orjson.dumps({"inputs": [{**t, "data": [[[[1.0]]]]} for t in many]}),  # nested deeper than matched
        orjson.dumps({"inputs": _tiny(MAX_STRINGS), "outputs": [{"name": "o"}]}),  # the outputs past the limit
    ):
        with pytest.raises(RequestTooLarge, match="over 65,536 tensors"):
            read_rest_request("m", None, body, None)
    # strings holding what a tensor list looks like are no tensors: read (one input of 70,000 strings)
    text = ['{"name":"i","data":[1]},' * 2] * (MAX_STRINGS + 4_000)
    read = read_rest_request("m", None, orjson.dumps({"inputs": [{"name": "i", "datatype": "BYTES", "data": text}]}),
                             None)  # fmt: skip
    assert read.unscanned and read.digest is not None


# test_oip_rest_error_shape's, bodies up to 32 MiB, spans exported
CONFIG = ERROR_SHAPE_CONFIG.replace("max_body_bytes: 4096", "max_body_bytes: 33554432").replace(
    "exporter: none", "exporter: otlp\n  endpoint: ${OTLP}\n  protocol: grpc"
)


def test_through_a_proxy_the_request_is_refused_and_recorded(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO, logger=ACCESS)
    reached: list[str] = []
    trace_id = "0a1f00000000000000000000000000c1"
    with serving(loop_thread, oip_server(reached)) as url:
        proxy = make_proxy(CONFIG, UPSTREAM=url, OTLP=f"http://127.0.0.1:{otlp.port}")
        headers = {"x-purpose": "assistant", "traceparent": f"00-{trace_id}-00000000000000a1-01"}
        refused = requests.post(f"{proxy.url}/v2/models/m/infer", json={"inputs": _tiny(278_000)}, headers=headers,
                                timeout=120)  # fmt: skip
        assert refused.status_code == 413, refused.text
        assert "an inference request of over 65,536 tensors" in refused.json()["error"]
        few = requests.post(f"{proxy.url}/v2/models/m/infer", json={"inputs": _tiny(2)},
                            headers={"x-purpose": "assistant"}, timeout=60)  # fmt: skip
        assert few.status_code == 200, few.text  # a few: as ever
    assert reached == ["/v2/models/m/infer"]  # the small one only
    span = otlp.by_trace(trace_id)
    assert span.attributes["error.type"] == "request_too_large" and "65,536 tensors" in span.status_message
    lines = [r for r in caplog.records if r.name == ACCESS and getattr(r, "trace_id", None) == trace_id]
    assert len(lines) == 1 and lines[0].status == 413, lines
