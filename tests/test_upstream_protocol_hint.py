"""An `openai` upstream (the default `protocol:`) in front of MLServer, which serves OIP v2: the start's warning said
only `HTTP 404 for /v1/models`. It now says the listing is not found, what the server is (its answer to GET /v2,
OIP's server metadata, asked once when the warning is said: discovery, never a call) and to set `protocol: oip`,
with the values `protocol:` takes. A server that is no OIP one gets the values and what to look at."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from aiohttp import web

from tests.harness import LoopThread, ProxyHandle, serving

CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: models, url: "${UPSTREAM}"}
routes:
  - {model: "*", upstream: models}
policy: {anonymous: allow, default_purpose: assistant}
telemetry: {exporter: none}
lineage: {store: null}
"""

VALUES = "protocol: is one of openai, oip, kserve, passthrough"


@pytest.fixture
def real_mlserver(iris_mlserver: tuple[str, str]) -> str:
    return iris_mlserver[0]  # the session's (tests/conftest.py): this test only asks it


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "metadata not reachable" in r.getMessage()]


@pytest.mark.realserver
def test_an_openai_upstream_in_front_of_mlserver_is_told_to_set_protocol_oip(
    real_mlserver: str, make_proxy: Callable[..., ProxyHandle], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "lineage_proxy")
    make_proxy(CONFIG, wait="probed", UPSTREAM=real_mlserver)
    [warning] = warnings(caplog)
    assert warning.startswith(f"upstream models: metadata not reachable at {real_mlserver}: HTTP 404 for /v1/models ")
    assert "(GET /v1/models is not found: protocol: openai (the default) lists the models there; the server " in warning
    assert "answers GET /v2 as an OIP v2 server (mlserver " in warning
    assert warning.endswith(f"): set protocol: oip; {VALUES})")


def test_a_server_that_is_no_oip_one_gets_the_values(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "lineage_proxy")
    with serving(loop_thread, web.Application()) as url:  # answers 404 to everything
        make_proxy(CONFIG, wait="probed", UPSTREAM=url)
    [warning] = warnings(caplog)
    assert warning == (f"upstream models: metadata not reachable at {url}: HTTP 404 for /v1/models (GET /v1/models "
                       "is not found: protocol: openai (the default) lists the models there: is the url the server's "
                       f"root, and does it speak that protocol? {VALUES}: oip for OIP v2 servers (MLServer, Triton, "
                       "KServe), passthrough for any other HTTP API)")  # fmt: skip


def test_what_may_be_a_token_before_the_path_s_at_is_not_quoted(
    make_proxy: Callable[..., ProxyHandle], caplog: pytest.LogCaptureFixture
) -> None:
    """A url of a one-label host whose path holds an `@` before a host's name loads (`gw/models/m@default`), though a
    token of lower-case letters holding a `/` gives the same text (the config's words hide it: `shown_url`); its host
    is then the token's first piece, which no server answers, and this warning quoted the token at each start (the
    review of 2026-12-05 found it). The host is `invalid`, a name that never resolves (RFC 6761): no port is asked of
    any server (it was localhost's port 80, which the test did not own); a port the test owns cannot be given, as a
    host with a port is not this case (`_token_at`)."""
    caplog.set_level(logging.WARNING, "lineage_proxy")
    make_proxy(CONFIG, wait="probed", UPSTREAM="http://invalid/xyz/q9s3cr@gateway")
    [warning] = warnings(caplog)
    assert warning.startswith("upstream models: metadata not reachable at http://***@gateway: "), warning
    assert "s3cr" not in warning, warning
