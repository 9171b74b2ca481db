"""A Responses input item that names a stored item by id is content the proxy cannot read (`scan:truncated`),
whether it spells its optional `type` (`{"type": "item_reference", "id": ...}`) or not (`{"id": ...}`): the
API's item reference leaves `type` out, and the server puts the stored item there all the same."""

from __future__ import annotations

import openai
import pytest

from tests.configs import ONE_UPSTREAM
from tests.servers.vllm_like import SERVED

CONFIG = (
    ONE_UPSTREAM
    + """
zones:
  - name: unread
    labels: [scan:truncated]
    allow_purposes: [assistant]
detectors: [email]
"""
)


@pytest.mark.parametrize("reference", [{"type": "item_reference", "id": "msg_stored"}, {"id": "msg_stored"}])
def test_an_item_named_by_id_is_unread_content(vllm, make_proxy, reference) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="unused", max_retries=0, timeout=10)
    given = [reference, {"role": "user", "content": "go on"}]
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client.responses.create(model=SERVED, input=given, extra_headers={"x-purpose": "ads"})  # type: ignore[arg-type]
    assert "scan:truncated" in caught.value.message
    assert server.data_requests() == []
    reply = client.responses.with_raw_response.create(model=SERVED, input=given)  # type: ignore[arg-type]
    assert reply.http_response.headers["x-data-labels"] == "scan:truncated"
    # a message item with an id of its own is read as any message is
    kept = [{"type": "message", "id": "msg_1", "role": "user", "content": "hello"}]
    reply = client.responses.with_raw_response.create(model=SERVED, input=kept, extra_headers={"x-purpose": "ads"})  # type: ignore[arg-type]
    assert reply.http_response.headers["x-data-labels"] == ""
