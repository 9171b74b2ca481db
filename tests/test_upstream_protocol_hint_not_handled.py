"""The start-up warning's hint for an `openai` upstream whose `/v1/models` is 404 asks the server `GET /v2` (what it
is). It was asked inside the `except` block that caught the 404: checkpoints.py is compiled (setup.py), and a compiled
coroutine suspended inside an `except` block leaves its exception as the thread's handled one (see
tests/ingress/test_http_failure_handled.py), so for as long as that GET took (up to the metadata timeout, 10 s) every
call the event loop ran saw `HTTP 404 for /v1/models` in `sys.exc_info()`, and any exception one raised took it as its
`__context__` (a traceback logged for it told of the upstream's listing). The hint is now asked once the block is
left. (Interpreted, a coroutine keeps its own handled exception: this fails on the compiled build alone.)"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading

import pytest
from aiohttp import web

from tests.harness import LoopThread, serving, start_proxy
from tests.test_upstream_protocol_hint import CONFIG, warnings


def test_no_call_meets_the_listings_404_while_the_hint_is_asked(
    loop_thread: LoopThread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "lineage_proxy")
    asked = threading.Event()
    release: list[asyncio.Event] = []

    async def server_metadata(request: web.Request) -> web.Response:
        release.append(asyncio.Event())
        asked.set()
        await release[0].wait()  # the hint's GET /v2 is held while the loop runs other work
        return web.json_response({"name": "other"})

    app = web.Application()
    app.router.add_get("/v2", server_metadata)  # /v1/models: 404

    async def meanwhile() -> tuple[BaseException | None, BaseException | None]:
        handled = sys.exc_info()[1]  # none here, outside any `except`: unless the round's is left over
        try:
            raise LookupError("raised by other work on the loop")
        except LookupError as raised:
            return handled, raised.__context__

    async def released() -> None:
        release[0].set()

    with serving(loop_thread, app) as url:
        # started on the loop, not waited for: its start waits for the round the held GET /v2 is part of
        starting = asyncio.run_coroutine_threadsafe(start_proxy(CONFIG, wait="probed", env={"UPSTREAM": url}),
                                                    loop_thread.loop)  # fmt: skip
        assert asked.wait(10)
        try:
            seen = loop_thread.run(meanwhile())
        finally:
            loop_thread.run(released())
        proxy = starting.result(10)
        loop_thread.run(proxy.process.stop())
    assert seen == (None, None)
    [warning] = warnings(caplog)
    assert "HTTP 404 for /v1/models (GET /v1/models is not found" in warning
