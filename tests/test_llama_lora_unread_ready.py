"""A llama-server whose `/lora-adapters` fails (a 5xx, a reset, a timeout) while its model list answers is up: the
whole discovery round failed, so `/readyz` answered 503 naming it and `lineage_proxy_upstream_up` said 0, and an
orchestrator took a serving model out of rotation for a failure of the proxy's own bookkeeping. It is ready now; the
failure is logged (once) and counted (`lineage_proxy_upstream_metadata_incomplete`), and what serves its calls is
still never taken to be the base model alone: the checkpoints read before are kept (none yet: unknown, refused under
`block`), and the list is asked again soon, as an upstream not reached is."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from tests.harness import LoopThread, serving
from tests.servers.vllm_like import VllmLike
from tests.test_llama_lora import ADAPTERS, CONFIG, DEFAULT, LLAMA_SERVER


def _series(text: str, name: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f'{name}{{upstream="llamacpp"}}'))


def test_lora_adapters_unread_leave_the_upstream_ready_and_are_said_and_counted(
    loop_thread: LoopThread, make_proxy: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lineage_proxy.checkpoints")
    server = VllmLike(models=[LLAMA_SERVER])
    app = server.app()
    answers: list[Any] = [500]

    async def adapters(request: web.Request) -> web.Response:
        answer = answers[0]
        return web.Response(status=answer) if isinstance(answer, int) else web.json_response(answer)

    app.router.add_get("/lora-adapters", adapters)
    approved = tmp_path / "approved.yaml"
    approved.write_text(
        f"version: 1\nflows:\n  - {{caller: anonymous, purpose: assistant, checkpoints: ['{DEFAULT}']}}\n"
    )
    with serving(loop_thread, app) as url:
        proxy = make_proxy(CONFIG, wait="probed", UPSTREAM=url, BASELINE=str(approved))
        ready = httpx.get(f"{proxy.url}/readyz", timeout=10)
        assert ready.status_code == 200 and ready.json() == {"status": "ready", "upstreams_down": []}, ready.text
        metrics = httpx.get(f"{proxy.url}/metrics", timeout=10).text
        assert _series(metrics, "lineage_proxy_upstream_up").endswith(" 1")
        assert _series(metrics, "lineage_proxy_upstream_metadata_incomplete").endswith(" 1")
        said = [r.getMessage() for r in caplog.records if "could not be read" in r.getMessage()]
        assert len(said) == 1 and "LoRA adapters (/lora-adapters)" in said[0] and "500" in said[0], said
        # what serves is not known: never the base alone; under `block` the call is refused, the model not reached
        body = {"model": "gemma", "messages": [{"role": "user", "content": "hi"}]}
        refused = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, timeout=10)
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "checkpoint_unknown", refused.text
        assert "LoRA adapters" in refused.json()["error"]["message"]
        assert server.data_requests() == []

        answers[0] = ADAPTERS  # read at the next round, soon (backing off from 50 ms, as for an upstream not reached)
        book = proxy.process.book
        deadline = time.monotonic() + 10
        while book.incomplete["llamacpp"] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not book.incomplete["llamacpp"]
        served = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, timeout=10)
        assert served.status_code == 200 and served.headers["x-lineage-checkpoint"] == DEFAULT, served.text
        metrics = httpx.get(f"{proxy.url}/metrics", timeout=10).text
        assert _series(metrics, "lineage_proxy_upstream_metadata_incomplete").endswith(" 0")
        assert any("read whole again" in r.getMessage() for r in caplog.records)
