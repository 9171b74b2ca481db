"""`lineage.openlineage.url` is Marquez's: the events reach `<url>/api/v1/lineage`, whatever form the url takes.
openlineage-python's http transport joins its url and endpoint as `urljoin` does, so a url with a path lost it
(`http://gw/marquez` posted to `/api/v1/lineage`) and one naming the endpoint got it twice
(`.../api/v1/lineage` posted to `/api/v1/api/v1/lineage`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from aiohttp import web
from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
from openlineage.client.transport import get_default_factory

from proxy.config import parse
from tests.harness import LoopThread, serving

CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams: [{name: a, url: "http://127.0.0.1:9"}]
routes: [{model: "*", upstream: a}]
policy: {anonymous: allow, default_purpose: assistant}
lineage: {store: null, openlineage: {url: "URL"}}
"""


@pytest.mark.parametrize(
    ("written", "reached"),
    [
        ("", "/api/v1/lineage"),
        ("/", "/api/v1/lineage"),
        ("/marquez", "/marquez/api/v1/lineage"),  # behind a gateway's path
        ("/marquez/", "/marquez/api/v1/lineage"),
        ("/api/v1/lineage", "/api/v1/lineage"),  # the endpoint itself
        ("/marquez/api/v1/lineage/", "/marquez/api/v1/lineage/"),
        ("?team=ml", "/api/v1/lineage"),  # (a query: the path is the one given '/')
    ],
)
def test_an_openlineage_url_reaches_marquez_s_endpoint(loop_thread: LoopThread, written: str, reached: str) -> None:
    paths: list[str] = []

    async def lineage(request: web.Request) -> web.Response:
        paths.append(request.path)
        return web.Response(status=201)

    app = web.Application()
    app.router.add_post("/{tail:.*}", lineage)
    with serving(loop_thread, app) as base:
        config = parse(CONFIG.replace("URL", base + written), env={})
        assert config.lineage.openlineage is not None
        transport = get_default_factory().create(dict(config.lineage.openlineage.transport))
        event = RunEvent(eventType=RunState.COMPLETE, eventTime=datetime.now(UTC).isoformat(),
                         run=Run(runId=str(uuid.uuid4())), job=Job(namespace="ns", name="job"), producer="test")  # fmt: skip
        transport.emit(event)
    assert paths == [reached]
