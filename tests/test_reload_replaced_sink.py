"""A reload that replaces the OpenLineage sink stops the old one in the background, so the reload is not held up
by a backend that hangs. A shutdown soon after must still wait for that stop (bounded, as a sink's own stop is):
`asyncio.run` cancels what is left at its end, and the old sink's last events were then lost without the warning
that says so."""

from __future__ import annotations

import logging
import threading
import uuid
from pathlib import Path
from typing import Any, ClassVar

import attr
import pytest
from openlineage.client.transport import Config, Transport

from proxy.record.openlineage import OpenLineageRecorder
from tests.harness import LoopThread
from tests.record.test_openlineage import chat, config, sink


@attr.define
class StuckConfig(Config):
    backend: str = ""

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> StuckConfig:
        return cls(backend=str(params.get("backend", "")))


class Backend:
    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()


class StuckTransport(Transport):
    """A backend that takes the first event and never answers (until the test ends)."""

    kind = "stuck"
    config_class = StuckConfig
    backends: ClassVar[dict[str, Backend]] = {}

    def __init__(self, config: StuckConfig) -> None:
        self.backend = StuckTransport.backends[config.backend]

    def emit(self, event: Any) -> None:
        self.backend.entered.set()
        self.backend.release.wait(60)


def stuck(name: str) -> str:
    return f"{{snapshot_interval_s: 600, transport: {{type: {__name__}.StuckTransport, backend: {name}}}}}"


def test_a_shutdown_after_a_reload_waits_for_the_replaced_sink_to_stop(
    vllm: Any, make_proxy: Any, loop_thread: LoopThread, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, upstream = vllm
    name = uuid.uuid4().hex
    backend = StuckTransport.backends[name] = Backend()
    proxy = make_proxy(config(stuck(name)), UPSTREAM=upstream)
    old = sink(proxy)
    try:
        chat(proxy)  # the new flow's event: the sender hangs in it
        assert backend.entered.wait(10)
        chat(proxy, **{"x-data-labels": "health"})  # queued behind it
        replaced = tmp_path / "replaced.yaml"
        jsonl = tmp_path / "events.jsonl"
        replaced.write_text(config(f'{{transport: {{type: file, log_file_path: "{jsonl}", append: true}}}}')
                            .replace("${UPSTREAM}", upstream).replace("${STORE}", str(tmp_path / "lineage.db")))  # fmt: skip

        async def reload() -> bool:
            return bool(proxy.process.reload(str(replaced)))

        assert loop_thread.run(reload())
        assert sink(proxy) is not old and isinstance(sink(proxy), OpenLineageRecorder)
        with caplog.at_level(logging.WARNING, logger="lineage_proxy.openlineage"):
            loop_thread.run(proxy.process.stop())  # the old sender still hangs: its stop gives up, and says so
        (line,) = [r.getMessage() for r in caplog.records if "not sent to" in r.getMessage()]
        assert "at shutdown" in line and "StuckTransport" in line
    finally:
        backend.release.set()
