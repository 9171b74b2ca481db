"""A ModelStreamInfer ended by a denied message is answered once, with the denial's status (`GrpcIngress._abort`):
the message's refusal (`Exchange.refused`, a call of its own) and the stream are both recorded as that status goes
out, after the stream's new flow is written. The refusal's record went out before that wait: at once when its own flow
was known (only the stream's waited), or as its own write ended. A client that left in the wait (its deadline passed)
had the stream recorded so, and the refusal recorded as answered with the denial's status, which never went out."""

from __future__ import annotations

import logging
from typing import Any

import grpc
import pytest
from tritonclient.grpc import service_pb2

from proxy.logs import ACCESS
from tests.ingress.grpc_proxied import proxied
from tests.ingress.test_grpc import SERVICE, _request, _traceparent
from tests.record.test_reply_waiting_for_record_unanswered import GIVES_UP_S, Echoing, stream_gives_up
from tests.record.test_reply_waiting_for_record_unanswered import GRPC_CONFIG as CONFIG
from tests.test_metrics import samples

ZONED = CONFIG + "zones:\n  - {name: health, labels: [health], allow_purposes: [research]}\n"


def labelled(labels: str) -> bytes:
    message = service_pb2.ModelInferRequest.FromString(_request())
    message.parameters["data_labels"].string_param = labels
    data: bytes = message.SerializeToString()
    return data


def test_a_streams_refusal_known_is_recorded_as_the_status_its_client_got_when_the_streams_write_outlasts_it(
    loop_thread: Any, make_proxy: Any, otlp: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ACCESS)
    with proxied(loop_thread, otlp, make_proxy, ZONED, Echoing()) as proxy:
        with grpc.insecure_channel(proxy.grpc) as channel:
            # the refusal's flow (`other` and `health`, denied) written first, by a stream denied at its second
            # message; the stream's own flow of the next (`other` alone) is new: only its write waits
            with pytest.raises(grpc.RpcError) as first:
                list(channel.stream_stream(SERVICE + "ModelStreamInfer")(iter([_request(), labelled("other,health")]),
                                                                         timeout=10))  # fmt: skip
            assert first.value.code() == grpc.StatusCode.PERMISSION_DENIED
            sent = iter([_request(), labelled("other"), labelled("health")])
            caught, lines = stream_gives_up(loop_thread, proxy, channel, sent, _traceparent(0x7A21), caplog)
        assert caught.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        deadline = grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
        # the stream and its denied message, each with the status its client got, not PERMISSION_DENIED, which never
        # went out; each keeps the denial's code it was recorded (and counted) with before the wait
        assert sorted((line.decision, line.code, line.status) for line in lines) == [
            ("allow", "purpose_denied", deadline),
            ("deny", "purpose_denied", deadline),
        ]
        assert all(line.duration_ms >= GIVES_UP_S * 800 for line in lines)  # they ended as the deadline passed
        errors = {labels: n for (name, labels), n in samples(proxy.process.metrics_text()).items()
                  if name == "lineage_proxy_errors_total" and n}  # fmt: skip
        assert errors == {(("type", "purpose_denied"),): 4}  # each call once: the two streams, their two refusals
