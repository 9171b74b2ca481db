"""A ModelStreamInfer's later message refused because a SIGHUP reload put `policy.known_purposes` in force (its purpose
now unknown: `Exchange._purpose_unknown`) is a call of its own (`Exchange.refused`). It was decided only by the refusal
it was finished with, as a stream's refused opening is (`Exchange.finish`); but a stream whose client left before the
refusal was answered finishes it with a string (`_Ends.close`, `_Ends._gone`: `client_disconnected`): grpc could not
pass on a reply the relay was writing as the message was refused (`_Ends.unsent`, grpc's ExecuteBatchError), and then
no status went out. That message left no record at all: no span, no edge. It is now decided as it is refused, and
recorded, however it ends: a denial under `(unknown purpose)`, its cause the rule, its status the client's leaving.

Which of grpc's two ways of saying the client left (its handler's cancel, answered as the refusal; or the failed write)
a departure meets is a race inside grpc; the test drives the second one directly: the stream opened and forwarded by
the proxy's own pipeline, the real reload, the later message read as `_pump` reads it, the call ended by `_Ends.close`
as the ingress ends it, and the records read from the real store and OTLP receiver."""

from __future__ import annotations

import concurrent.futures
import sqlite3
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc._cython import cygrpc
from tritonclient.grpc import service_pb2

import proxy.protocols.oip_grpc as oip_grpc
from proxy.exchange import Exchange
from proxy.protocols import GRPC_ADAPTERS
from tests.harness import LoopThread
from tests.ingress.grpc_proxied import Answering, proxied
from tests.servers.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.test_reload import reload

CONFIG = """
listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}
upstreams: [{name: triton, grpc: "${UPSTREAM}", protocol: oip, checkpoint: held@1}]
routes: [{model: "*", upstream: triton}]
policy:
  anonymous: allow
POLICY
telemetry: {exporter: otlp, endpoint: "${OTLP}"}
lineage: {store: "${STORE}"}
"""
HEADER = {"x-purpose": "ads"}.get


class Context:
    """What `_Ends` asks of grpc's servicer context when the client is gone: no deadline of its own."""

    @staticmethod
    def time_remaining() -> float | None:
        return None


def message() -> bytes:
    request = service_pb2.ModelInferRequest(model_name="held")
    request.inputs.add(name="A", datatype="INT32", shape=[1]).contents.int_contents.append(1)
    data: bytes = request.SerializeToString()
    return data


def opened(process: Any) -> Exchange:
    """A ModelStreamInfer opened through the proxy's own pipeline: its first message allowed and sent on."""
    adapter = GRPC_ADAPTERS[0]
    target = adapter.match("POST", oip_grpc.MODEL_STREAM_INFER)
    assert target is not None
    pipe = process.ref.current
    ex = Exchange(pipe, adapter, target, pipe.trace(HEADER))
    ex.admit(message(), HEADER, (), deferred=True)
    ex.forwarded()
    return ex


def reloaded(tmp_path: Path, process: Any, otlp: OtlpReceiver, text: str) -> Path:
    """`text` (CONFIG edited) as a config file for `process`'s own upstream, OTLP receiver and store."""
    path = tmp_path / "reloaded.yaml"
    path.write_text(text.replace("${UPSTREAM}", process.config.upstreams[0].grpc or "")
                    .replace("${OTLP}", f"http://127.0.0.1:{otlp.port}")
                    .replace("${STORE}", str(process.config.lineage.store)))  # fmt: skip
    return path


def ended_as_left(
    loop_thread: LoopThread, otlp: OtlpReceiver, process: Any, ex: Exchange
) -> tuple[list[ReceivedSpan], str]:
    """`ex`, its later message refused, ended as the ingress ends it when the relay's write of a reply failed (grpc's
    error for a client gone); then the spans received and the refused message's trace id, once it has two spans."""
    refused = ex.refused
    assert refused is not None
    ends = process._grpc._ends(ex, Context())
    ends.unsent = True

    async def close() -> None:
        await ends.close(cygrpc.ExecuteBatchError("the client is gone"))

    with pytest.raises(concurrent.futures.CancelledError):  # told grpc as a cancel (`_Ends.close`)
        loop_thread.run(close())
    loop_thread.run(process.runtime.sinks.flush())
    trace_id = f"{refused.trace.trace_id:032x}"
    return otlp.wait_for(lambda spans: len([s for s in spans if s.trace_id == trace_id]) == 2), trace_id


def test_a_message_refused_for_a_purpose_a_reload_made_unknown_is_recorded_when_its_client_left(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any, tmp_path: Path
) -> None:
    with proxied(loop_thread, otlp, make_proxy, CONFIG.replace("POLICY\n", ""), Answering()) as proxy:
        process = proxy.process
        ex = opened(process)  # the stream's first message, allowed and sent on
        text = CONFIG.replace("POLICY", "  known_purposes: [support]")
        assert reload(proxy, loop_thread, reloaded(tmp_path, process, otlp, text))
        refusal = ex.readmit(message(), HEADER, process.ref.current)  # its next message, as `_pump` reads it
        assert refusal is not None and "unknown purpose 'ads'" in refusal.message
        # the relay's write of a reply failed (grpc's error for a client gone): the stream ends as the ingress ends it
        spans, trace_id = ended_as_left(loop_thread, otlp, process, ex)
    cancelled = grpc.StatusCode.CANCELLED.value[0]
    # the stream, and its refused message (before: no span for it)
    got = sorted((s.attributes["lineage.decision"], s.attributes.get("lineage.rule", ""), s.attributes["error.type"],
                  s.attributes["rpc.grpc.status_code"]) for s in spans if s.trace_id == trace_id)  # fmt: skip
    assert got == [("allow", "", "client_disconnected", cancelled),
                   ("deny", "policy.known_purposes", "client_disconnected", cancelled)], got  # fmt: skip
    with sqlite3.connect(str(process.config.lineage.store)) as db:
        rows = db.execute("SELECT caller, purpose, decision, rule, count FROM edges ORDER BY decision").fetchall()
    assert rows == [("anonymous", "ads", "allow", "", 1),
                    ("anonymous", "(unknown purpose)", "deny", "policy.known_purposes", 1)], rows  # fmt: skip
