"""The same fields sent to vLLM's chat API and to its Responses API are read alike: both render their input with
the model's chat template, passing it the same `chat_template_kwargs`, and both take `structured_outputs`. Read
as user data on the Responses path (string values under framing keys, keys and numbers skipped), a document's
`url` or a card number there reached the template unread, where the same field on the chat path is refused."""

from __future__ import annotations

import orjson
import pytest

from proxy.config import DetectorSpec
from proxy.detectors import Detectors
from proxy.protocols.openai import read_request

ALICE = "alice@example.com"
DETECTORS = Detectors([DetectorSpec("email"), DetectorSpec("credit_card")])


@pytest.mark.parametrize(
    ("extra", "found"),
    [
        ({"chat_template_kwargs": {"documents": [{"title": "t", "url": ALICE}]}}, "pii:email"),
        ({"chat_template_kwargs": {"account": 4111111111111111}}, "pii:credit_card"),
        ({"chat_template_kwargs": {ALICE: True}}, "pii:email"),
        ({"structured_outputs": {"json": {"type": "object", "properties": {ALICE: {"type": "string"}}}}},
         "pii:email"),
        ({"structured_outputs": {"choice": [4111111111111111, "no"]}}, "pii:credit_card"),
    ],
)  # fmt: skip
def test_a_field_both_apis_take_is_read_alike(extra: dict[str, object], found: str) -> None:
    chat = read_request("chat", orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}))
    responses = read_request("responses", orjson.dumps({"model": "m", "input": "hi", **extra}))
    assert DETECTORS.scan_all(chat.texts) == DETECTORS.scan_all(responses.texts) == {found}
