"""The `Content-Type`s KServe's model server parses as JSON. It parses `application/octet-stream` as JSON (its
`JSON_HEADERS`), and the body of a binary-mode CloudEvent (the `ce-specversion`, `ce-source`, `ce-type` and `ce-id`
fields, as Knative Eventing sends) whatever its `Content-Type`, when that body is JSON. The proxy took both for raw
bytes it does not read: refused 403 `endpoint_denied` while zones are configured, and with `policy.passthrough:
forward` sent unread, so `{"instances": [["alice@example.com"]]}` reached the real model for a purpose its zone
forbids, recorded without a label. Both are now read as the JSON the model gets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from proxy.errors import InvalidRequest
from proxy.protocols import bytes_digest
from proxy.protocols.kserve import read_request
from tests.harness import ProxyHandle, proxy_error
from tests.protocols.test_kserve_v1 import ADDRESS, CONFIG, ECHO, seen
from tests.servers.real import kserve_model_server

BODY = b'{"instances": [["' + ADDRESS.encode() + b'"]]}'
CLOUDEVENT = {"ce-specversion": "1.0", "ce-source": "test", "ce-type": "predict", "ce-id": "1"}


@pytest.fixture(scope="module")
def kserve_echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    workdir = tmp_path_factory.mktemp("kserve-content-types")
    with kserve_model_server(workdir, ECHO, "echo") as url:
        yield url, workdir / "seen.jsonl"


CASES = [
    ({"content-type": "application/octet-stream"}, "octet-stream"),
    ({"content-type": "text/plain", **CLOUDEVENT}, "binary CloudEvent"),
]


@pytest.mark.realserver
@pytest.mark.parametrize(("headers", "case"), CASES, ids=[case for _, case in CASES])
def test_a_body_kserve_parses_as_json_is_read(
    kserve_echo: tuple[str, Path], make_proxy: Callable[..., ProxyHandle], headers: dict[str, str], case: str
) -> None:
    url, log = kserve_echo
    direct = httpx.post(f"{url}/v1/models/echo:predict", content=BODY, headers=headers, timeout=60)
    assert direct.status_code == 200 and seen(log)[-1] == {"instances": [[ADDRESS]]}, direct.text  # parsed as JSON
    for passthrough in ("forward", "auto"):
        proxy = make_proxy(CONFIG, wait="probed", KSERVE=url, PASSTHROUGH=passthrough)
        before = len(seen(log))
        refused = httpx.post(f"{proxy.url}/v1/models/echo:predict", content=BODY,
                             headers={**headers, "x-purpose": "ads"}, timeout=60)  # fmt: skip
        # before: `forward` 200, the address reaching the model; `auto` 403 endpoint_denied
        assert refused.status_code == 403, (passthrough, refused.text)
        assert proxy_error(refused)["code"] == "purpose_denied", (passthrough, refused.text)
        assert len(seen(log)) == before
        allowed = httpx.post(f"{proxy.url}/v1/models/echo:predict", content=BODY, headers=headers, timeout=60)
        assert allowed.status_code == 200 and "pii:email" in allowed.headers["x-data-labels"], allowed.text
        assert len(seen(log)) == before + 1


def test_raw_bodies_stay_raw() -> None:
    """A body KServe hands its model as raw bytes is still data the proxy does not read when its `Content-Type` says
    neither JSON nor text: without the CloudEvent fields, or with them and a body that is not JSON."""
    assert read_request("m", "predict", BODY, "image/png", {}.get).opaque
    assert read_request("m", "predict", b"\x89PNG", "image/png", {**CLOUDEVENT}.get).opaque
    partial = {"ce-specversion": "1.0", "ce-source": "s", "ce-type": "t"}  # no ce-id: no CloudEvent to KServe
    assert read_request("m", "predict", BODY, "application/x-raw", partial.get).opaque
    raw = read_request("m", "predict", BODY, "text/plain", partial.get)  # the model's raw bytes, read as their text
    assert raw.texts == (BODY.decode(),) and raw.digest == bytes_digest(BODY) and not raw.opaque
    event = read_request("m", "predict", BODY, "text/plain", CLOUDEVENT.get)
    assert not event.opaque and ADDRESS in event.texts
    assert ADDRESS in read_request("m", "predict", BODY, "application/octet-stream").texts
    with pytest.raises(InvalidRequest):  # KServe answers 400 too (`Unrecognized request format`)
        read_request("m", "predict", b"\x89PNG", "application/octet-stream")


# KServe compares a `Content-Type` whole with its `JSON_HEADERS`: `application/json; charset=utf-8` (as many clients
# send it), `Application/JSON` or a `+json` type is none of them, so its model gets the raw bytes, JSON or not; and a
# binary CloudEvent's body that is not JSON reaches it raw whatever its type. The proxy refused such a body 400
# (`not valid JSON`) where KServe served it: it is read as the text its type says it is
RAW_TEXT_CASES = [
    ({"content-type": "application/json; charset=utf-8"}, "charset"),
    ({"content-type": "Application/JSON"}, "capitals"),
    ({"content-type": "application/vnd.api+json"}, "+json"),
    ({"content-type": "application/json", **CLOUDEVENT}, "binary CloudEvent"),
]


@pytest.mark.realserver
@pytest.mark.parametrize(("headers", "case"), RAW_TEXT_CASES, ids=[case for _, case in RAW_TEXT_CASES])
def test_a_json_typed_body_kserve_hands_over_raw_is_read_as_its_text(
    kserve_echo: tuple[str, Path], make_proxy: Callable[..., ProxyHandle], headers: dict[str, str], case: str
) -> None:
    url, log = kserve_echo
    text = f"write to {ADDRESS} today"  # no JSON
    direct = httpx.post(f"{url}/v1/models/echo:predict", content=text, headers=headers, timeout=60)
    assert direct.status_code == 200 and seen(log)[-1] == text, direct.text  # the model got the raw bytes
    proxy = make_proxy(CONFIG, wait="probed", KSERVE=url, PASSTHROUGH="forward")
    before = len(seen(log))
    refused = httpx.post(f"{proxy.url}/v1/models/echo:predict", content=text,
                         headers={**headers, "x-purpose": "ads"}, timeout=60)  # fmt: skip
    assert refused.status_code == 403, refused.text  # before: 400 invalid_request, `not valid JSON`
    error = proxy_error(refused)
    assert error["code"] == "purpose_denied" and "pii:email" in error["message"], error
    assert len(seen(log)) == before
    allowed = httpx.post(f"{proxy.url}/v1/models/echo:predict", content=text, headers=headers, timeout=60)
    assert allowed.status_code == 200 and "pii:email" in allowed.headers["x-data-labels"].split(","), allowed.text
    assert seen(log)[-1] == text


def test_a_json_typed_body_that_is_no_json_is_read_as_text_or_refused_as_kserve_does() -> None:
    """Refused (400) only where KServe's model server parses the body as JSON (and refuses it so too): a
    `Content-Type` it lists, written as it lists it, or none, and no CloudEvent fields."""
    for content_type in ("application/json", "application/octet-stream", None):
        with pytest.raises(InvalidRequest, match="not valid JSON"):
            read_request("m", "predict", b"write to me", content_type, {}.get)
    read = read_request("m", "predict", b"to " + ADDRESS.encode(), "application/json; charset=utf-8", {}.get)
    assert read.texts == ("to " + ADDRESS,) and not read.opaque and not read.unscanned
    assert read.digest == bytes_digest(b"to " + ADDRESS.encode())  # the bytes the model gets
    # bytes that are not UTF-8: read as U+FFFD, the rest read, the call labelled `scan:truncated`
    broken = read_request("m", "predict", b"\xff" + ADDRESS.encode(), "application/json;charset=utf-8", {}.get)
    assert broken.texts == ("\ufffd" + ADDRESS,) and broken.unscanned
    # JSON under such a type: read as JSON, as before (the model gets its text)
    assert ADDRESS in read_request("m", "predict", BODY, "application/json; charset=utf-8", {}.get).texts


# KServe hands its model a `text/plain` body (any `text/*`) as the raw bytes it is: it was data the proxy does not read,
# refused 403 `endpoint_denied` while zones are configured, and with `policy.passthrough: forward` sent unread, so an
# address reached the real model for a purpose its zone forbids, recorded without a label. It is read as its text
TEXT_CASES = [
    ({"content-type": "text/plain"}, "plain"),
    ({"content-type": "Text/CSV; charset=UTF-8"}, "csv"),
    ({"content-type": "text/plain", **CLOUDEVENT}, "binary CloudEvent"),
]


@pytest.mark.realserver
@pytest.mark.parametrize(("headers", "case"), TEXT_CASES, ids=[case for _, case in TEXT_CASES])
def test_a_text_body_kserve_hands_over_raw_is_read_as_its_text(
    kserve_echo: tuple[str, Path], make_proxy: Callable[..., ProxyHandle], headers: dict[str, str], case: str
) -> None:
    url, log = kserve_echo
    text = f"write to {ADDRESS} today"
    direct = httpx.post(f"{url}/v1/models/echo:predict", content=text, headers=headers, timeout=60)
    assert direct.status_code == 200 and seen(log)[-1] == text, direct.text  # the model got the raw bytes
    for passthrough in ("forward", "auto"):
        proxy = make_proxy(CONFIG, wait="probed", KSERVE=url, PASSTHROUGH=passthrough)
        before = len(seen(log))
        refused = httpx.post(f"{proxy.url}/v1/models/echo:predict", content=text,
                             headers={**headers, "x-purpose": "ads"}, timeout=60)  # fmt: skip
        # before: `forward` 200, the address reaching the model unlabelled; `auto` 403 endpoint_denied
        assert refused.status_code == 403, (passthrough, refused.text)
        error = proxy_error(refused)
        assert error["code"] == "purpose_denied" and "pii:email" in error["message"], (passthrough, error)
        assert len(seen(log)) == before
        allowed = httpx.post(f"{proxy.url}/v1/models/echo:predict", content=text, headers=headers, timeout=60)
        assert allowed.status_code == 200, (passthrough, allowed.text)
        assert "pii:email" in allowed.headers["x-data-labels"].split(","), (passthrough, allowed.headers)
        assert seen(log)[-1] == text


def test_a_text_in_a_charset_other_than_utf8_is_read_and_labelled_unscanned() -> None:
    """A text is read as UTF-8, or in the `charset` its type names when Python has a codec for it (decoded so, as the
    model may: tests/protocols/test_kserve_v1_charset.py); one whose type names a charset Python does not know is
    read as UTF-8 and labelled `scan:truncated`, never called clean. The same for a JSON-typed body that is no JSON."""
    utf16 = ADDRESS.encode("utf-16-le")
    for content_type in ("text/plain; charset=utf-16le", 'text/plain;charset="UTF-16LE"',
                         "application/json; charset=utf-16le"):  # fmt: skip
        read = read_request("m", "predict", utf16, content_type, {}.get)
        assert read.texts == (ADDRESS,) and not read.unscanned, content_type  # before 2026-12-04: scan:truncated
        assert not read.opaque and read.digest == bytes_digest(utf16), content_type
    for content_type in ("text/plain; charset=x-unknown", "application/json; charset=x-unknown"):
        read = read_request("m", "predict", utf16, content_type, {}.get)
        assert read.unscanned and not read.opaque and read.digest == bytes_digest(utf16), content_type
    for content_type in ("text/plain", "text/plain; charset=utf-8", "text/plain; charset=US-ASCII",
                         "text/plain; format=flowed"):  # fmt: skip
        read = read_request("m", "predict", ADDRESS.encode(), content_type, {}.get)
        assert read.texts == (ADDRESS,) and not read.unscanned, content_type
    broken = read_request("m", "predict", b"\xff" + ADDRESS.encode(), "text/plain", {}.get)
    assert broken.texts == ("\ufffd" + ADDRESS,) and broken.unscanned
