"""An OpenLineage transport URL's password never reaches the log: a real `lineage-proxy serve` whose backend
refuses its events (401, which requests reports quoting the URL it posted to, userinfo included) logs the
outage and, at shutdown, the counts it could not send, naming the transport as `http://user:***@host`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
import requests
import urllib3
from aiohttp import web
from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
from openlineage.client.transport import Transport, get_default_factory

from proxy.config import parse
from proxy.config.loader import token_hidden
from proxy.logs import JsonFormatter, TextFormatter
from proxy.record import openlineage
from proxy.record.openlineage import _HIDING_IN, OpenLineageRecorder, _describe, _without_userinfo, log
from tests.harness import LoopThread, ServeProcess, serving
from tests.servers.vllm_like import SERVED

PASSWORD = "OLPASS-s8-secret"

CONFIG = """
listen: {{http: 127.0.0.1:0}}
upstreams: [{{name: llm, url: "${{UPSTREAM}}"}}]
routes: [{{model: "*", upstream: llm}}]
policy: {{anonymous: allow, default_purpose: assistant}}
lineage:
  store: ${{STORE}}
  openlineage:
    transport: {{type: http, url: "http://oluser:{password}@127.0.0.1:{port}", retry: {{total: 0}}}}
"""


@pytest.fixture
def refusing(loop_thread: LoopThread) -> Iterator[int]:
    """A lineage backend that refuses every event with 401."""

    async def lineage(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=401)

    app = web.Application()
    app.router.add_post("/api/v1/lineage", lineage)
    with serving(loop_thread, app) as url:
        yield int(url.rsplit(":", 1)[1])


def test_a_transport_url_s_password_is_in_no_log_line(vllm: Any, refusing: int, tmp_path: Path) -> None:
    _, upstream = vllm
    path = tmp_path / "proxy.yaml"
    path.write_text(CONFIG.format(password=PASSWORD, port=refusing))
    serve = ServeProcess(str(path), env={"UPSTREAM": upstream, "STORE": str(tmp_path / "l.db")})
    try:
        reply = httpx.post(f"{serve.url}/v1/chat/completions", timeout=10,
                           json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
        assert reply.status_code == 200, reply.text
        outage = serve.wait_log("cannot send events to")
        # the transport as `user:***@`, and the error requests raised (which quotes the URL) kept, redacted
        assert f"http http://oluser:***@127.0.0.1:{refusing} (401 Client Error" in outage, outage
        assert f"for url: http://127.0.0.1:{refusing}/api/v1/lineage" in outage, outage
    finally:
        assert serve.stop() == 0
    shutdown = serve.wait_log("could not be sent to")
    assert f"to http http://oluser:***@127.0.0.1:{refusing} before shutdown" in shutdown, shutdown
    assert not [line for line in serve.stderr if PASSWORD in line], "".join(serve.stderr)


@pytest.mark.parametrize(("url", "shown"), [
    ("http://oluser:pw@marquez:5000", "http http://oluser:***@marquez:5000"),
    ("https://tok3n@marquez:5000/x?y=1", "http https://***@marquez:5000/x?y=1"),  # a bare userinfo may be a token
    ("http://u:p@ss@marquez:5000", "http http://u:***@marquez:5000"),  # up to the authority's last @
    ("http://marquez:5000/api?user=a@b", "http http://marquez:5000/api?user=a@b"),  # no userinfo: as written
    ("http://localhost/xyz/q9s3cr@gateway", "http http://***@gateway"),  # what may be a token (`token_hidden`)
])  # fmt: skip
def test_describe_hides_a_url_s_userinfo_secret(url: str, shown: str) -> None:
    assert _describe({"type": "http", "url": url, "auth": {"type": "api_key", "apiKey": "k"}}) == shown
    assert _describe({"type": "file", "log_file_path": "/var/ol.jsonl"}) == "file /var/ol.jsonl"


BASE = "listen: {http: '127.0.0.1:0'}\nroutes: [{model: '*', upstream: m}]\nupstreams: [{name: m, url: 'http://h:1'}]\n"
TOKEN_URL = "http://localhost/xyz/q9s3cr@gateway"  # loads (as `http://gw/models/m@default` does): host `localhost`


def test_what_may_be_a_token_before_a_one_label_hosts_path_at_is_in_no_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # the transport as the config's words show it, and requests' own error text (its path and host quoted) as the
    # recorder logs it; a composite's inner transport too. Before 2026-12-06 both quoted `q9s3cr`
    transport = {"type": "composite", "transports": [{"type": "http", "url": TOKEN_URL}]}
    settings = parse(BASE + f"lineage: {{store: null, openlineage: {{transport: {json.dumps(transport)}}}}}\n", env={})
    assert settings.lineage.openlineage is not None
    recorder = OpenLineageRecorder(settings.lineage.openlineage)
    pool = urllib3.HTTPConnectionPool("localhost", 80)
    error = requests.ConnectionError(urllib3.exceptions.MaxRetryError(pool, "/xyz/q9s3cr@gateway/api/v1/lineage"))
    caplog.set_level(logging.WARNING, "lineage_proxy.openlineage")
    log.warning("openlineage: cannot send events to %s (%s)", _describe({"type": "http", "url": TOKEN_URL}), error)
    caplog.set_level(logging.DEBUG, "openlineage")  # openlineage-python's own: the transport's URL and config
    get_default_factory().create(_without_userinfo(transport)).close()
    caplog.set_level(logging.WARNING, "openlineage")
    asyncio.run(recorder.stop())
    log.warning("after the stop: %s", TOKEN_URL)  # its filter gone with it
    said = [record.getMessage() for record in caplog.records if record.name == log.name]
    built = [record.getMessage() for record in caplog.records if record.name.startswith("openlineage.")]
    assert any("endpoint `http://***/***/api/v1/lineage`" in line for line in built), built  # urljoin keeps /xyz/
    assert not any("q9s3cr" in line for line in built), built
    assert said[0].startswith("openlineage: cannot send events to http http://***@gateway (HTTPConnectionPool(host="), (
        said
    )
    assert "url: /***@gateway/api/v1/lineage" in said[0] and "q9s3cr" not in said[0], said
    assert said[1] == f"after the stop: {TOKEN_URL}"


def test_what_may_be_a_token_is_in_no_line_of_the_http_clients_and_the_composite_while_the_recorder_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # a composite goes on past a transport that fails (`continue_on_failure: true`, the default) and logs its error's
    # text at warning; urllib3 logs each retry, quoting the path (the session's retries are mounted on the url: one
    # ending in a `/` prefixes the endpoint's), and httpx2 each request of an async_http transport at info. Before
    # the review of 2026-12-06 those three quoted `q9s3cr` (unfiltered loggers). `invalid` never resolves (RFC 6761)
    url = "http://invalid/xyz/q9s3cr@gateway/"
    parts = [{"type": "http", "url": url, "retry": {"total": 1, "backoff_factor": 0}}, {"type": "console"}]
    transport = {"type": "composite", "transports": parts}
    settings = parse(BASE + f"lineage: {{store: null, openlineage: {{transport: {json.dumps(transport)}}}}}\n", env={})
    assert settings.lineage.openlineage is not None
    recorder = OpenLineageRecorder(settings.lineage.openlineage)
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, "urllib3.util.retry")  # (each retry's path at debug: until the reread, quoted)
    event = RunEvent(eventType=RunState.COMPLETE, eventTime=datetime.now(UTC).isoformat(),
                     run=Run(runId=str(uuid.uuid4())), job=Job(namespace="ns", name="job"), producer="test")  # fmt: skip
    get_default_factory().create(_without_userinfo(transport)).emit(event)
    mocked = httpx2.MockTransport(lambda request: httpx2.Response(201))
    with httpx2.Client(transport=mocked) as client:  # (a reachable backend's, as an async_http transport's client)
        client.post(f"{url}api/v1/lineage", content=b"{}")
    asyncio.run(recorder.stop())
    lines = [(record.name, record.getMessage()) for record in caplog.records]
    names = {name for name, _ in lines}
    clients = {"urllib3.connectionpool", "urllib3.util.retry", "httpx2"}
    assert {*clients, "openlineage.client.transport.composite"} <= names, lines
    assert not [line for line in lines if "q9s3cr" in line[1] or "'invalid'" in line[1]], lines
    assert any("POST http://***@gateway/api/v1/lineage" in said for name, said in lines if name == "httpx2"), lines


def test_what_may_be_a_token_is_in_no_traceback_of_a_json_log_line(caplog: pytest.LogCaptureFixture) -> None:
    # the composite logs its failed transport's error with its traceback at debug (requests' text, the path and host);
    # the recorder's filter hides it in the record's traceback text, which the JSON lines did not read (they formatted
    # the exception again: until the review of 2026-12-06 `"exception"` quoted `q9s3cr`)
    url = "http://invalid/xyz/q9s3cr@gateway/v1"
    transport = {"type": "composite", "transports": [{"type": "http", "url": url}, {"type": "console"}]}
    settings = parse(BASE + f"lineage: {{store: null, openlineage: {{transport: {json.dumps(transport)}}}}}\n", env={})
    assert settings.lineage.openlineage is not None
    recorder = OpenLineageRecorder(settings.lineage.openlineage)
    caplog.set_level(logging.DEBUG, "openlineage.client.transport.composite")
    event = RunEvent(eventType=RunState.COMPLETE, eventTime=datetime.now(UTC).isoformat(),
                     run=Run(runId=str(uuid.uuid4())), job=Job(namespace="ns", name="job"), producer="test")  # fmt: skip
    get_default_factory().create(_without_userinfo(transport)).emit(event)
    asyncio.run(recorder.stop())
    [failed] = [record for record in caplog.records if record.exc_info]
    assert "Caused by NameResolutionError" in JsonFormatter().format(failed), failed.exc_text
    assert "q9s3cr" not in JsonFormatter().format(failed) + TextFormatter().format(failed)


@pytest.mark.parametrize(("text", "url", "shown"), [
    # a host of one letter or two is hidden where it stands as a host, not in every word holding it: until the review
    # of 2026-12-06 `the sender thread` read `t***e sender t***read` while the recorder ran
    ("the sender thread: host='h', h:80, //h/", "http://h/xyz/q9s3cr@gw", "the sender thread: host='***', ***:80, //***/"),
    ("gwen's gw-2 gw.example gw, discarding connection: gw.", "http://gw/xyz/q9s3cr@default",
     "gwen's gw-2 gw.example gw, discarding connection: ***."),
    # a host spelled as a word is hidden where the words name it, not in the library's words holding that word: until
    # 2026-12-06 urllib3's `Name or *** not known`, OpenSSL's `certificate is not *** for` (those of a TLS handshake:
    # tests/test_upstream_tls_token_host.py)
    ("Failed to resolve 'service' ([Errno -2] Name or service not known)", "http://service/xyz/q9s3cr@gw",
     "Failed to resolve '***' ([Errno -2] Name or service not known)"),
    ("Connection to valid timed out. (connect timeout=5); Resetting dropped connection: valid",
     "http://valid/xyz/q9s3cr@gw", "Connection to *** timed out. (connect timeout=5); Resetting dropped connection: ***"),
    ("Starting new HTTPS connection (1): known:443; NameResolutionError(\"<...>: Failed to resolve \\'known\\' (...)\")",
     "https://known/xyz/q9s3cr@gw",
     "Starting new HTTPS connection (1): ***:443; NameResolutionError(\"<...>: Failed to resolve \\'***\\' (...)\")"),
    # as urllib3 and httpx2 write it, in lower case (until that review quoted: `desktop-7qk2m`)
    ("HTTPConnectionPool(host='desktop-7qk2m', port=80)", "http://DESKTOP-7QK2M/xyz/q9s3cr@gw",
     "HTTPConnectionPool(host='***', port=80)"),
])  # fmt: skip
def test_a_one_label_host_before_what_may_be_a_token_is_hidden_as_a_host(text: str, url: str, shown: str) -> None:
    assert token_hidden(text, url) == shown


@contextlib.contextmanager
def _recording_to_stderr(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A recorder of a transport URL holding what may be a token, its filter on `log`, whose lines go to stderr by
    a handler of logging's own (not propagated: pytest's own handler raises in `handleError`)."""
    settings = parse(BASE + f"lineage: {{store: null, openlineage: {{transport: {{type: http, url: '{TOKEN_URL}'}}}}}}\n",
                     env={})  # fmt: skip
    assert settings.lineage.openlineage is not None
    recorder = OpenLineageRecorder(settings.lineage.openlineage)
    handler = logging.StreamHandler()
    monkeypatch.setattr(log, "propagate", False)
    log.addHandler(handler)
    try:
        yield
    finally:
        log.removeHandler(handler)
        asyncio.run(recorder.stop())


def test_a_log_call_whose_arguments_do_not_fit_its_format_goes_to_handle_error_with_what_may_be_a_token_hidden(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # the recorder's filter formatted the record itself: a call of too few arguments for its format raised TypeError in
    # the caller's code (a library's thread), where logging without the filter gives it to the handler's `handleError`
    # (its format and arguments printed to stderr). Until 2026-12-06 it raised
    with _recording_to_stderr(monkeypatch):
        token = TOKEN_URL
        log.warning("cannot send events to %s (%s)", token)
        log.warning("cannot send events to %(url)s (%(why)s)", {"url": token, "error": ValueError(token)})
    printed = capsys.readouterr().err
    assert printed.count("--- Logging error ---") == 2, printed
    assert "Arguments: ('http://***@gateway',)" in printed, printed
    assert "Arguments: {'url': 'http://***@gateway', 'error': ValueError('http://***@gateway')}" in printed, printed
    assert "q9s3cr" not in printed, printed


def test_a_log_call_whose_message_is_not_a_string_and_whose_arguments_do_not_fit_it_hides_what_may_be_a_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # the review's find (helper revsmalls3): a message that is not a string (an exception, as `log.error(error, ...)`)
    # was left as it was when its arguments did not fit it: `handleError` printed its repr, `Message:
    # ValueError('http://localhost/xyz/q9s3cr@gateway')`, the token in it
    with _recording_to_stderr(monkeypatch):
        log.warning(ValueError(TOKEN_URL), "an argument for no placeholder")
    printed = capsys.readouterr().err
    assert printed.count("--- Logging error ---") == 1, printed
    assert "Message: ValueError('http://***@gateway')" in printed, printed
    assert "q9s3cr" not in printed, printed


class SlowToStop(Transport):
    """A transport whose own thread, as async_http's worker, is still posting an event when the stop gives up waiting
    for the sender: its close (by the sender) waits for that thread, which logs its failure as async_http's does,
    quoting the URL, once `go` is set."""

    kind = "slow-to-stop"

    def __init__(self, url: str) -> None:
        self.url = url
        self.go = threading.Event()
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._post, daemon=True)
        self.thread.start()

    def emit(self, event: Any) -> None:
        pass

    def _post(self) -> None:
        assert self.go.wait(30)
        logging.getLogger("openlineage.client.transport.async_http").error(
            "Failed to emit event (event_id) %s to %s due to exception", "e-1", self.url
        )

    def close(self, timeout: float = -1) -> bool:
        self.closing.set()
        self.thread.join()
        return True


def test_what_may_be_a_token_is_in_no_line_a_transport_s_thread_logs_after_a_stop_that_gave_up_waiting(
    loop_thread: LoopThread, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # the stop waits STOP_WAIT_S for the sender, which closes the transport, then gives up; the filter came off the
    # loggers with it, while the transport's thread went on and logged its failure: until 2026-12-06 quoting `q9s3cr`.
    # It stays until the sender thread ends (the close waited for the transport's thread), then comes off
    monkeypatch.setattr(openlineage, "STOP_WAIT_S", 0.05)  # the stop gives up on the sender (held in the close)
    transport = {"type": "async_http", "url": TOKEN_URL}
    settings = parse(BASE + f"lineage: {{store: null, openlineage: {{transport: {json.dumps(transport)}}}}}\n", env={})
    assert settings.lineage.openlineage is not None
    slow = SlowToStop(TOKEN_URL)
    recorder = OpenLineageRecorder(settings.lineage.openlineage, transport=slow)
    caplog.set_level(logging.ERROR, "openlineage.client.transport.async_http")

    async def run() -> None:
        recorder.start()
        await recorder.stop()

    try:
        loop_thread.run(run())
        assert slow.closing.wait(30) and recorder._thread.is_alive()  # the stop is over; the close is not
    finally:
        slow.go.set()
    recorder._thread.join(30)
    assert not recorder._thread.is_alive()
    [failed] = [record.getMessage() for record in caplog.records if record.name.endswith("async_http")]
    assert failed == "Failed to emit event (event_id) e-1 to http://***@gateway due to exception", failed
    assert TOKEN_URL not in openlineage._HIDING.urls  # shown again once the sender ended


class _Racing(list[logging.Filter]):
    """A logger's filters whose first read (iterated, copied or searched) lets another thread add its own filter
    (`addFilter`, which takes no lock of the recorder's) just after it: at the point where a read-then-replace loses it."""

    def __init__(self, logger: logging.Logger, theirs: logging.Filter) -> None:
        super().__init__(logger.filters)
        self.logger, self.theirs, self.raced = logger, theirs, False

    def race(self) -> None:
        if not self.raced:
            self.raced = True
            thread = threading.Thread(target=self.logger.addFilter, args=(self.theirs,))
            thread.start()
            thread.join()

    def __iter__(self) -> Iterator[logging.Filter]:
        read = list(super().__iter__())
        self.race()
        return iter(read)

    def __contains__(self, item: object) -> bool:
        found = super().__contains__(item)
        self.race()
        return found


@pytest.mark.parametrize("when", ["start", "stop"])
def test_a_filter_another_thread_adds_to_a_library_logger_as_the_recorder_hides_or_shows_is_kept(
    monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    # the recorder put its filter on and took it off by replacing each logger's list (`[*filters, hiding]`) under a lock
    # of its own, which a library's `addFilter` does not take: one added between the read and the replace was lost
    # until 2026-12-06. (A process's first recorder hiding a URL: the filter not yet on the loggers)
    monkeypatch.setattr(openlineage, "_HIDING", fresh := openlineage._Hiding())
    logger, theirs = logging.getLogger("urllib3.connectionpool"), logging.Filter("theirs")
    settings = parse(BASE + f"lineage: {{store: null, openlineage: {{transport: {{type: http, url: '{TOKEN_URL}'}}}}}}\n",
                     env={})  # fmt: skip
    assert settings.lineage.openlineage is not None
    try:
        if when == "start":
            logger.filters = racing = _Racing(logger, theirs)
        recorder = OpenLineageRecorder(settings.lineage.openlineage)
        if when == "stop":
            logger.filters = racing = _Racing(logger, theirs)
        asyncio.run(recorder.stop())
        racing.race()  # (if nothing read the list: added all the same)
        assert theirs in list.__iter__(logger.filters), logger.filters
        assert TOKEN_URL not in fresh.urls
    finally:
        for each in _HIDING_IN:
            each.filters = [
                found for found in list.__iter__(each.filters) if found is not theirs and found is not fresh
            ]
