"""`serve --workers N`: a reload that changes `logging:` applies to the supervisor's own lines too. The workers
applied it and the supervisor kept the format and level it started with, so after a reload to
`format: json` its lines (a worker's death and restart, the line an operator alerts on) were still text among
the workers' JSON objects: a log pipeline parsing one JSON object a line dropped or choked on them."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import orjson

from tests.test_workers import Serve

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: origin, url: "UPSTREAM"}]
routes: [{model: "*", upstream: origin}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: "STORE"}
limits: {drain_timeout_s: 2}
logging: {format: FORMAT}
"""


def test_a_reload_to_json_logging_applies_to_the_supervisors_lines(vllm, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    config = tmp_path / "proxy.yaml"
    text = CONFIG.replace("UPSTREAM", upstream).replace("STORE", str(tmp_path / "lineage.db"))
    config.write_text(text.replace("FORMAT", "text"))
    serve = Serve.workers(config, env={"TMPDIR": str(tmp_path)})
    try:
        serve.ready()
        serve.wait("lineage_proxy: serving http=", 3)  # both workers and the supervisor, in text
        config.write_text(text.replace("FORMAT", "json"))
        serve.proc.send_signal(signal.SIGHUP)
        serve.wait('"message":"reloaded ', 2)  # each worker, in JSON now
        os.kill(serve.children()[0], signal.SIGKILL)
        line = serve.wait("restarting it")[0]
        serve.wait('"message":"serving http=', 1)  # the replacement, in JSON as its siblings
        assert serve.stop() == 0, "".join(serve.err)
    finally:
        serve.end()
    record = orjson.loads(line)  # the supervisor's line, one JSON object as every other line
    assert record["process"] == "supervisor" and record["level"] == "error", record
    reloaded = next(at for at, each in enumerate(serve.err) if '"message":"reloaded ' in each)
    for each in serve.err[reloaded:]:
        orjson.loads(each)  # every line after the reload: JSON (the supervisor's last ones included)
