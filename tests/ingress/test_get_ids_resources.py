"""A labelled GET's reading, the leftovers (helper reqreads, 2026-12-05): a custom route under `/v1/` (not an OpenAI
resource's) had its segments read as ids, so a phone glued to a word there was forwarded for a purpose its zone
forbids; ids are read so only in an OpenAI resource's id segments (`/v1/models/{id}`, `/v1/batches/{id}`, ...). And a
labelled GET's captured input showed its path as read (`m_1733390000`), not as sent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.harness import ProxyHandle, proxy_error
from tests.ingress.test_get_path_read import PHONE
from tests.ingress.test_unusual_http_held import upstream as upstream  # (the fixture: any path answered 200)
from tests.servers.otlp_receiver import OtlpReceiver

DENIED = {"x-purpose": "marketing"}


@pytest.fixture
def phones(make_proxy: Any, upstream: tuple[str, list[bytes]]) -> Iterator[ProxyHandle]:
    yield make_proxy(PHONE, wait="started", UPSTREAM=upstream[0])


def _refused_unforwarded(phones: ProxyHandle, upstream: tuple[str, list[bytes]], path: str) -> None:
    """A labelled GET of `path` (a phone in it) for a purpose the phone's zone forbids: refused, and not forwarded."""
    refused = httpx.get(f"{phones.url}{path}", headers=DENIED, timeout=30)
    assert refused.status_code == 403, refused.text  # before: 200
    assert proxy_error(refused)["code"] == "purpose_denied"
    assert not [r for r in upstream[1] if b"4155551234" in r]


# a custom route or passthrough path under `/v1/` that is not an OpenAI resource, or a segment of one that is no id.
# Before: 200, read as an id and forwarded
CUSTOM = [
    "/v1/predict/tel-4155551234",
    "/v1/predict/call%2D4155551234",
    "/v1/users/bob-4155551234",
    "/v1/chat/tel-4155551234",  # (`chat`'s ids are under `completions`)
    "/v1/threads/thread-1/notes/tel-4155551234",  # (no collection of a thread's)
]


@pytest.mark.parametrize("path", CUSTOM)
def test_a_phone_in_a_custom_route_under_v1_is_refused(
    phones: ProxyHandle, upstream: tuple[str, list[bytes]], path: str
) -> None:
    _refused_unforwarded(phones, upstream, path)


# a collection's name where no collection stands (a namespace's segment, an id's other segment, a collection of another
# resource's): the segment after it is no id. Before (helper revreqreads): 200, read as an id after any collection's name
NO_ID_PLACE = [
    "/v1/chat/messages/tel-4155551234",  # (`chat`'s collection is `completions`)
    "/v1/fine_tuning/runs/tel-4155551234",
    "/v1/batches/b/runs/tel-4155551234",  # (a batch has no runs)
    "/v1/responses/items/tel-4155551234",  # (`items` there is a response's id; the next segment none)
    "/v1/assistants/asst-1/files/tel-4155551234",
]


@pytest.mark.parametrize("path", NO_ID_PLACE)
def test_a_phone_after_a_collections_name_where_no_id_stands_is_refused(
    phones: ProxyHandle, upstream: tuple[str, list[bytes]], path: str
) -> None:
    _refused_unforwarded(phones, upstream, path)


# (hold before and after) an OpenAI resource's id with a timestamp glued by `-`: no phone
IDS = [
    "/v1/models/m-1733390000",
    "/v1/models/org/m-1733390000",
    "/v1/files/file-4155551234/content",
    "/v1/batches/batch-4155551234",
    "/v1/responses/resp-4155551234/input_items",
    "/v1/chat/completions/chatcmpl-4155551234",
    "/v1/fine_tuning/jobs/ftjob-4155551234/events",
    "/v1/threads/thread-4155551234/runs/run-1733390000/steps/step-1733390000",
    "/v1/vector_stores/vs-4155551234/files/file-1733390000",
    "/v1/vector_stores/vs-4155551234/file_batches/vsfb-1733390000/files",
    "/v1/fine_tuning/checkpoints/ft-4155551234/permissions/cp-1733390000",
    "/v1/evals/eval-4155551234/runs/run-1733390000/output_items/oi-1733390000",
    "/v1/conversations/conv-4155551234/items/msg-1733390000",
    "/v1/chat/completions/chatcmpl-4155551234/messages",
]


@pytest.mark.parametrize("path", IDS)
def test_an_openai_resource_id_is_still_no_phone(phones: ProxyHandle, path: str) -> None:
    answered = httpx.get(f"{phones.url}{path}", headers=DENIED, timeout=30)
    assert answered.status_code == 200, answered.text
    assert "x-lineage-decision" not in answered.headers


@pytest.fixture
def captured(make_proxy: Any, upstream: tuple[str, list[bytes]], otlp: OtlpReceiver) -> Iterator[ProxyHandle]:
    spans = f"telemetry: {{exporter: otlp, endpoint: 'http://127.0.0.1:{otlp.port}', capture_content: true}}\n"
    yield make_proxy(PHONE + spans, wait="started", UPSTREAM=upstream[0])


def _captured_path(otlp: OtlpReceiver) -> str:
    (span,) = otlp.wait_for(lambda spans: len(spans) == 1)
    (message,) = json.loads(span.attributes["gen_ai.input.messages"])
    path: str = message["parts"][0]["content"]
    return path


# a labelled GET's captured input shows its path as sent, masked where read values were found (before: as read,
# `m_1733390000`, a path never sent, as its digest was until helper revgetquery)
@pytest.mark.parametrize(
    ("target", "shown"),
    [
        ("/v1/models/m-1733390000?q=alice@example.com", "/v1/models/m-1733390000"),
        ("/v1/models/m%2D1733390000?q=alice@example.com", "/v1/models/m-1733390000"),
        ("/v1/files/file-4155551234/alice@example.com", "/v1/files/file-4155551234/[pii:email]"),
    ],
)
def test_a_labelled_gets_captured_path_is_as_sent(
    captured: ProxyHandle, otlp: OtlpReceiver, target: str, shown: str
) -> None:
    allowed = httpx.get(f"{captured.url}{target}", timeout=30)
    assert allowed.status_code == 200, allowed.text
    assert allowed.headers["x-data-labels"] == "pii:email"
    assert _captured_path(otlp) == shown  # before: `m_1733390000`, `file_4155551234`
