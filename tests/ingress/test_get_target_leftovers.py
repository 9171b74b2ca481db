"""What a GET's target carries, the leftovers of its reading (helper getquery, 2026-12-05): a listing's query
(`GET /v1/models?q=alice@example.com`) reached the upstream unread, the listing skipped whole; a value whose `&` and `=`
are escaped (`?q=alice%26x%3D%40example.com`) was not read cut as the same query unescaped is; an id under an API's
prefix with a timestamp glued by `-` (`/v1/models/m-1733390000`) was a phone number; a labelled GET's target was parsed
twice."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from proxy.detectors import Detectors
from proxy.protocols import passthrough
from tests.harness import EMAIL_ZONE, LLAMACPP_HEAD, ProxyHandle, proxy_error
from tests.ingress.test_get_path_read import PHONE
from tests.ingress.test_unusual_http_held import CONFIG, _raw
from tests.ingress.test_unusual_http_held import upstream as upstream  # (the fixture: any path answered 200)

DENIED = {"x-purpose": "marketing"}


@pytest.fixture
def proxy(make_proxy: Any, upstream: tuple[str, list[bytes]]) -> Iterator[ProxyHandle]:
    yield make_proxy(CONFIG, wait="started", UPSTREAM=upstream[0])


# a listing's path is an API's own, not scanned; its query is, as any GET's: before, `target.listing` skipped both
@pytest.mark.parametrize("query", ["q=alice@example.com", "q=alice%40example.com", "limit=20&after=alice@example.com"])
def test_a_forbidden_address_in_a_listing_query_is_refused(
    proxy: ProxyHandle, upstream: tuple[str, list[bytes]], query: str
) -> None:
    refused = httpx.get(f"{proxy.url}/v1/models?{query}", headers=DENIED, timeout=30)
    assert refused.status_code == 403, refused.text  # before: 200, the listing forwarded with its query
    assert refused.headers["x-lineage-decision"] == "deny"
    assert proxy_error(refused)["code"] == "purpose_denied"
    line = f"GET /v1/models?{query} HTTP/1.1\r\nHost: x\r\nx-purpose: marketing\r\nConnection: close\r\n\r\n"
    assert _raw(proxy.url, line.encode()).startswith(b"HTTP/1.1 403 ")
    assert not [r for r in upstream[1] if b"alice" in r]


def test_an_allowed_labelled_listing_query_is_a_call_carrying_data(
    proxy: ProxyHandle, upstream: tuple[str, list[bytes]]
) -> None:
    allowed = httpx.get(f"{proxy.url}/v1/models?q=alice@example.com", timeout=30)
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["x-lineage-decision"] == "allow"
    assert allowed.headers["x-data-labels"] == "pii:email"
    assert [r for r in upstream[1] if r.startswith(b"GET /v1/models?q=alice@example.com\r\n")]


# (holds before and after) a listing's query without a label, and one its caller declares a label for (an SDK's
# `default_headers`), carry no data: the listing is answered as before, no decision
def test_a_listing_without_a_label_found_carries_no_data(proxy: ProxyHandle) -> None:
    for headers in (DENIED, {**DENIED, "x-data-labels": "pii:email"}):
        answered = httpx.get(f"{proxy.url}/v1/models?limit=20", headers=headers, timeout=30)
        assert answered.status_code == 200, answered.text
        assert "x-lineage-decision" not in answered.headers
    client = openai.OpenAI(
        base_url=f"{proxy.url}/v1", api_key="k", default_headers={**DENIED, "x-data-labels": "pii:email"}
    )
    assert list(client.models.list()) == []


# the value a server hands its app is `alice&x=@example.com`: split on `&` and `=`, then each name and value
# percent-decoded (as before); read joined as `?q=alice&x=@example.com` is (refused before), it holds the address
ESCAPED = ["q=alice%26x%3D%40example.com", "alice%26x%3D%40example.com", "q=alice%26x%3D@example.com"]


@pytest.mark.parametrize("query", ESCAPED)
def test_an_address_cut_by_escaped_separators_is_refused(
    proxy: ProxyHandle, upstream: tuple[str, list[bytes]], query: str
) -> None:
    refused = httpx.get(f"{proxy.url}/predict?{query}", headers=DENIED, timeout=30)
    assert refused.status_code == 403, refused.text  # before: 200, forwarded
    assert proxy_error(refused)["code"] == "purpose_denied"
    assert not [r for r in upstream[1] if b"example" in r]


def test_escaped_separators_read_as_a_server_reads_them() -> None:
    # (holds before and after) split first, then each name and value decoded: one value, `&` and `=` in it
    assert passthrough.query_pairs("/p?q=alice%26x%3D%40example.com") == [("q", "alice&x=@example.com")]
    texts = passthrough.query_texts("/p?q=alice%26x%3D%40example.com")
    assert texts[:2] == ("q", "alice&x=@example.com")
    assert "qalicex@example.com" in texts  # (before: only `qalice&x=@example.com`, no address)
    # the joined reading is as before where no value holds an escaped `&` or `=`
    assert passthrough.query_texts("/p?q=alice&x=@example.com")[-1] == "qalicex@example.com"
    assert passthrough.query_texts("/p?q=a+b") == ("q", "a b", "q=a b", "qa b")
    assert passthrough.query_texts("/p?q=") == ("q",)


@pytest.fixture
def phones(make_proxy: Any, upstream: tuple[str, list[bytes]]) -> Iterator[ProxyHandle]:
    yield make_proxy(PHONE, wait="started", UPSTREAM=upstream[0])


# an id whose digits are glued by `-` to a part holding a letter, as an underscore glues them (`m_1733390000`, no phone
# to the detectors): a model's or file's name with a timestamp. Before: `pii:phone`, refused 403 for this purpose
# (under `/v1/` only: `/api/m-1733390000/x`, `/slots/1733390000-x`, a custom app's route, are read as sent since helper
# revgetquery, `test_get_path_ids_bounds`)
IDS = ["/v1/models/m-1733390000", "/v1/files/file-4155551234/content"]


@pytest.mark.parametrize("path", IDS)
def test_an_id_with_a_timestamp_glued_by_a_dash_is_no_phone(
    phones: ProxyHandle, upstream: tuple[str, list[bytes]], path: str
) -> None:
    answered = httpx.get(f"{phones.url}{path}", headers=DENIED, timeout=30)
    assert answered.status_code == 200, answered.text  # before: 403 purpose_denied (pii:phone)
    assert "x-lineage-decision" not in answered.headers


# (holds before and after) a phone written as one, alone in its segment or after words, is still one
@pytest.mark.parametrize(
    "path", ["/v1/x/555-123-4567", "/api/x-415-555-1234", "/v1/x/4155551234", "/predict/1-4155551234"]
)
def test_a_phone_in_a_path_is_still_refused(phones: ProxyHandle, upstream: tuple[str, list[bytes]], path: str) -> None:
    refused = httpx.get(f"{phones.url}{path}", headers=DENIED, timeout=30)
    assert refused.status_code == 403, refused.text
    assert proxy_error(refused)["code"] == "purpose_denied"


# an id beside a label found elsewhere: the call carries data (the address), but not a phone
def test_an_id_beside_an_address_is_labelled_by_the_address_alone(phones: ProxyHandle) -> None:
    allowed = httpx.get(f"{phones.url}/v1/models/m-1733390000?q=alice@example.com", timeout=30)
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["x-data-labels"] == "pii:email"  # before: pii:email,pii:phone


@pytest.mark.interpreted
def test_a_labelled_get_target_is_read_once(
    proxy: ProxyHandle, upstream: tuple[str, list[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    read = passthrough.get_texts

    def counted(target: str) -> tuple[str, ...]:
        calls.append(target)
        return read(target)

    monkeypatch.setattr(passthrough, "get_texts", counted)
    allowed = httpx.get(f"{proxy.url}/predict?q=alice@example.com", timeout=30)
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["x-lineage-decision"] == "allow"
    assert calls == ["/predict?q=alice@example.com"]  # before: twice (`Exchange.query_read`, `QueryAdapter.read`)


@pytest.mark.interpreted
@pytest.mark.parametrize(
    ("target", "declared", "labels"),
    [
        ("/predict?q=alice@example.com", None, "pii:email"),  # its gate found the address: not read again
        ("/predict?q=hello", "pii:email", "pii:email"),  # declared: its gate reads nothing, the call reads it
        ("/predict?q=hello", None, None),  # nothing found: no data, no call to read it
    ],
)
def test_a_get_target_is_scanned_once(
    proxy: ProxyHandle, monkeypatch: pytest.MonkeyPatch, target: str, declared: str | None, labels: str | None
) -> None:
    """A GET's target is scanned once: the gate that finds its labels (`Exchange.query_read`) hands them to the call
    (`Pipeline.call(found=...)`), whose reading (`Pipeline._detected`) read the same texts again (helper records: two
    scans of a labelled GET, one of a GET carrying none; on a POST, one)."""
    scans: list[str] = []
    scan = Detectors.scan

    def counted(self: Detectors, text: str, *args: Any, **kwargs: Any) -> frozenset[str]:
        scans.append(text)
        return scan(self, text, *args, **kwargs)

    monkeypatch.setattr(Detectors, "scan", counted)
    headers = {"x-data-labels": declared} if declared is not None else {}
    answered = httpx.get(f"{proxy.url}{target}", headers=headers, timeout=30)
    assert answered.status_code == 200, answered.text
    assert answered.headers.get("x-data-labels") == labels
    assert len(scans) == 1, scans  # before: 2 for the address found


LLAMA = LLAMACPP_HEAD + EMAIL_ZONE


@pytest.mark.realserver
def test_a_listing_query_against_llama_cpp(llama: str, make_proxy: Any) -> None:
    proxy = make_proxy(LLAMA, UPSTREAM=llama)
    refused = httpx.get(f"{proxy.url}/v1/models?q=alice@example.com", headers=DENIED, timeout=60)
    assert refused.status_code == 403, refused.text  # before: 200, llama.cpp's list
    assert proxy_error(refused)["code"] == "purpose_denied"
    allowed = httpx.get(f"{proxy.url}/v1/models?q=alice@example.com", timeout=60)
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["x-data-labels"] == "pii:email"
    assert [m["id"] for m in allowed.json()["data"]] == ["smollm2"]
    # (holds before and after) the SDK's listing, a label declared in its default headers: no data, its list
    sdk = openai.OpenAI(
        base_url=f"{proxy.url}/v1", api_key="k", default_headers={**DENIED, "x-data-labels": "pii:email"}
    )
    assert [m.id for m in sdk.models.list()] == ["smollm2"]
