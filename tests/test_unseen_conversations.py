"""A call that goes on with content the proxy did not see (a stored reply by `previous_response_id`, an OIP sequence
it did not see start: another worker's, from before a restart, or forgotten) carries `scan:truncated` with no
detectors configured too: the labels that content held are unknown, not absent, and with no detectors the call
otherwise carried nothing, so a zone on `scan:truncated` could not hold it back."""

from __future__ import annotations

import json

import openai
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from tests.configs import ONE_UPSTREAM
from tests.servers.vllm_like import SERVED
from tests.test_oip_sequences import CONFIG as SEQUENCES
from tests.test_oip_sequences import _text

UNREAD_ZONE = """
  - name: unread
    labels: [scan:truncated]
    allow_purposes: [care, assistant]
"""


def test_a_stored_reply_not_seen_is_unread_content_without_detectors(vllm, make_proxy) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(ONE_UPSTREAM + "zones:" + UNREAD_ZONE, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=10)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.responses.create(model=SERVED, previous_response_id="resp_elsewhere", input="go on",
                                extra_headers={"x-purpose": "ads"})  # fmt: skip
    assert "scan:truncated" in caught.value.message
    assert server.data_requests() == []
    # a call that builds on nothing carries nothing
    reply = client.responses.with_raw_response.create(model=SERVED, input="hello", extra_headers={"x-purpose": "ads"})
    assert reply.http_response.headers["x-data-labels"] == ""


def test_a_sequence_not_seen_to_start_is_unread_content_without_detectors(faithful, make_proxy, tmp_path) -> None:  # type: ignore[no-untyped-def]
    address, log = faithful
    assert "detectors" not in SEQUENCES
    proxy = make_proxy(SEQUENCES.replace("zones:", "zones:" + UNREAD_ZONE), OIP_GRPC=address,
                       STORE=str(tmp_path / "lineage.db"))  # fmt: skip
    client = triton.InferenceServerClient(proxy.grpc)
    with pytest.raises(InferenceServerException) as caught:
        client.infer("echo", _text("and what was the dose?"), sequence_id=7, headers={"x-purpose": "ads"})
    assert caught.value.status() == "StatusCode.PERMISSION_DENIED"
    assert "scan:truncated" in (caught.value.message() or "")
    assert not log.exists() or log.read_text() == ""
    # for a purpose the zone allows it goes on, labelled so
    reply = client.infer("echo", _text("and what was the dose?"), sequence_id=7, headers={"x-purpose": "care"})
    assert reply.as_numpy("TEXT") is not None
    assert [json.loads(line)["model"] for line in log.read_text().splitlines()] == ["echo"]
