"""A KServe V1 call with two `Content-Type` fields. The proxy read them joined (`text/plain, application/json`: not
JSON, so raw bytes it does not read), while KServe's model server keeps the last one alone (Starlette's headers in a
dict) and parsed the body as JSON. With `policy.passthrough: forward`, `{"instances": [["alice@example.com"]]}` sent
for a purpose its zone forbids reached the real model as the object, unread and recorded without a label. Such a
request is now refused 400 `invalid_request`, whatever the order."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from proxy.errors import InvalidRequest
from proxy.protocols.kserve import read_request
from tests.harness import ProxyHandle
from tests.protocols.test_kserve_v1 import ADDRESS, CONFIG, ECHO, raw_exchange, seen
from tests.servers.real import kserve_model_server

BODY = b'{"instances":[["' + ADDRESS.encode() + b'"]]}'


@pytest.fixture(scope="module")
def kserve_echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    workdir = tmp_path_factory.mktemp("kserve-content-type-twice")
    with kserve_model_server(workdir, ECHO, "echo") as url:
        yield url, workdir / "seen.jsonl"


def call(port: int, first: bytes, last: bytes, body: bytes = BODY) -> bytes:
    return raw_exchange(port, b"POST /v1/models/echo:predict HTTP/1.1\r\nHost: x\r\nx-purpose: ads\r\n"
                        b"Content-Type: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                        % (first, last, len(body), body))  # fmt: skip


@pytest.mark.realserver
def test_two_content_types_are_refused(kserve_echo: tuple[str, Path], make_proxy: Callable[..., ProxyHandle]) -> None:
    url, log = kserve_echo
    direct = call(int(url.rsplit(":", 1)[1]), b"text/plain", b"application/json")
    assert direct.startswith(b"HTTP/1.1 200") and seen(log)[-1] == {"instances": [[ADDRESS]]}, direct  # JSON to it
    proxy = make_proxy(CONFIG, wait="probed", KSERVE=url, PASSTHROUGH="forward")
    port = int(proxy.url.rsplit(":", 1)[1])
    before = len(seen(log))
    for first, last in ((b"text/plain", b"application/json"), (b"application/json", b"text/plain")):
        answer = call(port, first, last)
        assert answer.startswith(b"HTTP/1.1 400"), answer  # before: 200, the address reaching the model for `ads`
        assert b"invalid_request" in answer and b"Content-Type" in answer, answer
    assert len(seen(log)) == before


@pytest.mark.realserver
def test_two_content_types_the_first_with_parameters_are_refused(
    kserve_echo: tuple[str, Path], make_proxy: Callable[..., ProxyHandle]
) -> None:
    """The fields joined, `text/plain; charset=utf-16; x=y, application/json`, have no comma in the media type: before
    2026-12-04 read as the first alone, the JSON's UTF-8 bytes as UTF-16 (other characters, no address, clean), while
    KServe handed the model the JSON it parsed by the last: the address reached it for a purpose its zone forbids."""
    url, log = kserve_echo
    body = BODY.replace(b"[[", b"[[ ")  # (an even length: whole characters in UTF-16)
    direct = call(int(url.rsplit(":", 1)[1]), b"text/plain; charset=utf-16; x=y", b"application/json", body)
    assert direct.startswith(b"HTTP/1.1 200") and seen(log)[-1] == {"instances": [[ADDRESS]]}, direct
    proxy = make_proxy(CONFIG, wait="probed", KSERVE=url, PASSTHROUGH="forward")
    port = int(proxy.url.rsplit(":", 1)[1])
    before = len(seen(log))
    for first in (b"text/plain; charset=utf-16; x=y", b'text/plain; name="a', b"text/plain; charset=utf-8"):
        answer = call(port, first, b"application/json", body)
        assert answer.startswith(b"HTTP/1.1 400"), answer  # before: 200 for the first, the address reaching the model
        assert b"invalid_request" in answer and b"Content-Type" in answer, answer
    assert len(seen(log)) == before


def test_a_comma_in_a_quoted_parameter_is_one_content_type() -> None:
    read = read_request("m", "predict", BODY, 'application/json; name="a, b"')
    assert ADDRESS in read.texts
    for content_type in ('text/plain; name="a", application/json', 'text/plain; name="a, application/json'):
        with pytest.raises(InvalidRequest, match="several Content-Type"):
            read_request("m", "predict", BODY, content_type)


def test_one_content_type_with_parameters_is_read() -> None:
    assert ADDRESS in read_request("m", "predict", BODY, "application/json; charset=utf-8").texts
    with pytest.raises(InvalidRequest, match="several Content-Type"):
        read_request("m", "predict", BODY, "application/json, application/json")
