"""A ModelStreamInfer's later message after a SIGHUP reload that put `policy.known_purposes` in force (its purpose not
listed) and also no longer lets its caller in (here `anonymous: deny`) is refused as the stream's opening would now be:
`Pipeline.check_purpose` checks the key first, so the refusal is the key's (401, UNAUTHENTICATED), and it is recorded
as that refusal of an opening is (`Exchange.finish`): denied before it was read, no data gone anywhere, so no lineage
edge, its code the key's. 136a664 decided every refusal met there as an unknown purpose's (`Exchange.unknown_purpose`),
and the key's refusal was recorded as a `policy.known_purposes` denial, with an edge under `(unknown purpose)`."""

from __future__ import annotations

import queue
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.harness import LoopThread
from tests.ingress.grpc_proxied import Answering, proxied, traced
from tests.ingress.test_grpc_stream_purpose_reload_gone import CONFIG as GONE
from tests.ingress.test_grpc_stream_purpose_reload_gone import HEADER, ended_as_left, message, opened, reloaded
from tests.servers.otlp_receiver import OtlpReceiver
from tests.test_reload import reload

# the reload: `policy.known_purposes` in force (the stream's purpose not listed), its caller no longer let in
RELOADED = GONE.replace("POLICY", "  known_purposes: [support]").replace("anonymous: allow", "anonymous: deny")


def inputs(value: int) -> list[grpcclient.InferInput]:
    made = []
    for name in ("A", "B"):
        tensor = grpcclient.InferInput(name, [1, 1], "INT32")
        tensor.set_data_from_numpy(np.array([[value]], dtype=np.int32))
        made.append(tensor)
    return made


def test_a_later_message_refused_for_its_key_after_a_reload_is_recorded_as_the_keys_refusal_not_a_purposes(
    faithful: tuple[str, Path], otlp: OtlpReceiver, make_proxy: Any, loop_thread: LoopThread, tmp_path: Path
) -> None:
    address, log = faithful
    store = tmp_path / "lineage.db"  # (make_proxy's ${STORE})
    proxy = make_proxy(
        GONE.replace("POLICY\n", ""), wait="none", UPSTREAM=address, OTLP=f"http://127.0.0.1:{otlp.port}"
    )
    trace_id, traceparent = traced(1, 0x7A10)
    client = grpcclient.InferenceServerClient(proxy.grpc)
    try:
        results: queue.Queue[Any] = queue.Queue()
        client.start_stream(callback=lambda result, error: results.put(error or result),
                            headers={"x-purpose": "ads", "traceparent": traceparent})  # fmt: skip
        client.async_stream_infer("simple", inputs(1))
        first = results.get(timeout=10)
        assert not isinstance(first, InferenceServerException), first
        assert reload(proxy, loop_thread, reloaded(tmp_path, proxy.process, otlp, RELOADED))
        client.async_stream_infer("simple", inputs(2))
        error = results.get(timeout=10)
        client.stop_stream()
    finally:
        client.close()
    assert isinstance(error, InferenceServerException), error
    assert "UNAUTHENTICATED" in str(error.status()), error  # the key's refusal, as the stream's opening would get
    assert len(log.read_text().splitlines()) == 1  # the refused message never reached the model
    loop_thread.run(proxy.process.runtime.sinks.flush())
    spans = otlp.wait_for(lambda spans: len([s for s in spans if s.trace_id == trace_id]) == 2)
    got = sorted((s.attributes["lineage.decision"], s.attributes.get("lineage.rule", ""),
                  s.attributes.get("lineage.purpose", "")) for s in spans if s.trace_id == trace_id)  # fmt: skip
    # the stream, and its refused message: the key's refusal (before: rule policy.known_purposes, `(unknown purpose)`)
    assert got == [("allow", "", "ads"), ("deny", "", "")], got
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT caller, purpose, decision, rule, count FROM edges ORDER BY decision").fetchall()
    # before: also ("anonymous", "(unknown purpose)", "deny", "policy.known_purposes", 1), a flow the call never made
    assert rows == [("anonymous", "ads", "allow", "", 1)], rows


def test_a_later_message_refused_for_its_key_after_a_reload_is_recorded_when_its_client_left(
    loop_thread: LoopThread, otlp: OtlpReceiver, make_proxy: Any, tmp_path: Path
) -> None:
    """The same refusal met as its client left (`_Ends.unsent`, driven as test_grpc_stream_purpose_reload_gone drives
    it): recorded as the key's refusal, its status the client's leaving (before: no record at all, as an unknown
    purpose's was before 136a664)."""
    with proxied(loop_thread, otlp, make_proxy, GONE.replace("POLICY\n", ""), Answering()) as proxy:
        process = proxy.process
        ex = opened(process)
        assert reload(proxy, loop_thread, reloaded(tmp_path, process, otlp, RELOADED))
        refusal = ex.readmit(message(), HEADER, process.ref.current)
        assert refusal is not None and refusal.code == "invalid_api_key", refusal
        spans, trace_id = ended_as_left(loop_thread, otlp, process, ex)
    got = sorted((s.attributes["lineage.decision"], s.attributes.get("lineage.rule", ""), s.attributes["error.type"])
                 for s in spans if s.trace_id == trace_id)  # fmt: skip
    assert got == [("allow", "", "client_disconnected"), ("deny", "", "client_disconnected")], got
    with sqlite3.connect(str(process.config.lineage.store)) as db:
        rows = db.execute("SELECT caller, purpose, decision, rule, count FROM edges ORDER BY decision").fetchall()
    assert rows == [("anonymous", "ads", "allow", "", 1)], rows
