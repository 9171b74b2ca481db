"""A config or baseline file that is not UTF-8 (saved as Latin-1 or UTF-16 by an editor): a problem naming
where, from `check`, a start and a reload alike. It was a UnicodeDecodeError: a traceback from `check`, and
from the `--workers` supervisor's SIGHUP handler, which ended the supervisor (its shared /metrics directory
removed, the workers never told of the reload, and no longer restarted)."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from proxy.config import load
from proxy.errors import ConfigError
from tests.test_workers import Serve

CONFIG = """listen: {http: 127.0.0.1:0, admin: 127.0.0.1:0}
upstreams: [{name: vllm, url: "http://127.0.0.1:9", checkpoint: "org/model@1", region: REGION}]
routes: [{model: "*", upstream: vllm}]
lineage: {store: null}
"""
LATIN_1 = CONFIG.replace("REGION", "\xe9u").encode("latin-1")  # `éu`: 0xe9 then `u`, no UTF-8 sequence


def test_a_config_not_in_utf8_is_a_problem_with_its_location(tmp_path: Path) -> None:
    path = tmp_path / "proxy.yaml"
    path.write_bytes(LATIN_1)
    with pytest.raises(ConfigError) as caught:
        load(path, env={})
    assert caught.value.problems == [
        f"{path}:2:88: not UTF-8 text (byte 0xe9: invalid continuation byte); save the file as UTF-8"
    ]


def test_a_baseline_not_in_utf8_is_a_problem_of_lineage_baseline(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.yaml"
    baseline.write_bytes("flows:\n  - {caller: caf\xe9, purpose: assistant}\n".encode("latin-1"))
    path = tmp_path / "proxy.yaml"
    path.write_text(CONFIG.replace("REGION", "eu").replace("{store: null}", f'{{store: null, baseline: "{baseline}"}}'))
    with pytest.raises(ConfigError) as caught:
        load(path, env={})
    assert caught.value.problems == [
        f"lineage.baseline: {baseline}:2:17: not UTF-8 text (byte 0xe9: invalid continuation byte); save the file as UTF-8"
    ]


def reloads_refused(admin: str) -> float:
    reply = httpx.get(f"http://{admin}/metrics", timeout=10)
    assert reply.status_code == 200, reply.text
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            if sample.name == "lineage_proxy_config_reloads_total" and sample.labels == {"result": "refused"}:
                return sample.value
    return 0.0


def test_a_reload_of_a_config_not_in_utf8_is_refused_by_every_worker(tmp_path: Path) -> None:
    path = tmp_path / "proxy.yaml"
    path.write_text(CONFIG.replace("REGION", "eu"))
    serve = Serve.workers(path, env={"TMPDIR": str(tmp_path)})
    try:
        addresses = serve.ready()
        path.write_bytes(LATIN_1)
        serve.proc.send_signal(signal.SIGHUP)
        serve.wait("reload refused", 2)  # each worker, told by the supervisor
        assert reloads_refused(addresses["admin"]) == 2  # the supervisor's shared series are still there
        assert serve.proc.poll() is None
        assert serve.stop() == 0, "".join(serve.err)
        assert "Traceback" not in "".join(serve.err), "".join(serve.err)
    finally:
        serve.end()
