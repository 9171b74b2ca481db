"""A gRPC stream's purpose was checked against `policy.known_purposes` only as the stream opened: a SIGHUP reload that
put the list in force (or took the stream's purpose from it) let an open stream go on sending its messages to the model
under a purpose the proxy now refuses, although a reload that tightened a stream's zone already decided its later
messages. Its next message is now refused as the stream's opening would be (400 INVALID_ARGUMENT, unknown purpose),
never forwarded, and recorded as such a refusal is: its caller's, under `(unknown purpose)`."""

from __future__ import annotations

import queue
import signal
import sqlite3
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from tests.harness import ServeProcess
from tests.servers.real import faithful_oip

CONFIG = """
listen: {http: 127.0.0.1:0, grpc: 127.0.0.1:0}
upstreams:
  - {name: oip, grpc: "UPSTREAM", protocol: oip, checkpoint: held@1}
routes:
  - {model: "*", upstream: oip}
policy:
  anonymous: allow
POLICY
telemetry:
  exporter: none
lineage:
  store: STORE
"""


def simple_inputs(a: int, b: int) -> list[grpcclient.InferInput]:
    inputs = []
    for name, value in (("A", a), ("B", b)):
        tensor = grpcclient.InferInput(name, [1, 1], "INT32")
        tensor.set_data_from_numpy(np.array([[value]], dtype=np.int32))
        inputs.append(tensor)
    return inputs


def test_an_open_streams_next_message_is_refused_once_a_reload_makes_its_purpose_unknown(tmp_path: Path) -> None:
    with faithful_oip(tmp_path) as (address, log):
        store = tmp_path / "lineage.db"
        config = tmp_path / "proxy.yaml"
        text = CONFIG.replace("UPSTREAM", address).replace("STORE", str(store))
        config.write_text(text.replace("POLICY\n", ""))
        root = str(Path(__file__).resolve().parent.parent)
        serve = ServeProcess(str(config), env={"PYTHONPATH": root})  # this checkout's proxy, not an installed one
        try:
            client = grpcclient.InferenceServerClient(serve.addresses["grpc"])
            results: queue.Queue[object] = queue.Queue()
            client.start_stream(callback=lambda result, error: results.put(error or result),
                                headers={"x-purpose": "ads"})  # fmt: skip
            client.async_stream_infer("simple", simple_inputs(1, 1))
            first = results.get(timeout=10)
            assert not isinstance(first, InferenceServerException), first
            assert first.as_numpy("SUM").tolist() == [[2]]  # type: ignore[attr-defined]
            config.write_text(text.replace("POLICY", "  known_purposes: [support]"))
            serve.signal(signal.SIGHUP)
            serve.wait_log("reloaded ")
            client.async_stream_infer("simple", simple_inputs(2, 2))
            error = results.get(timeout=10)
            client.stop_stream()
            assert isinstance(error, InferenceServerException), error
            assert "INVALID_ARGUMENT" in str(error.status()) and "unknown purpose 'ads'" in error.message(), error
            assert len(log.read_text().splitlines()) == 1  # the refused message never reached the model
        finally:
            assert serve.stop() == 0, "".join(serve.stderr)
    imported = [line for line in serve.stderr if "Traceback" in line]
    assert not imported, "".join(serve.stderr)
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT caller, purpose, decision, rule, count FROM edges ORDER BY decision").fetchall()
    assert rows == [("anonymous", "ads", "allow", "", 1),
                    ("anonymous", "(unknown purpose)", "deny", "policy.known_purposes", 1)], rows  # fmt: skip
