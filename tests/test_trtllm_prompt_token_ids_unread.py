"""TensorRT-LLM's `prompt_token_ids` and `prompt_token_ids_b64` on a chat or Responses call are the prompt its model
reads, in place of the messages, and the proxy cannot read token ids: `scan:truncated` (review revfields15,
2026-12-07).

trtllm-serve's `ChatCompletionRequest` takes both from any caller (`openai_server`: `if request.prompt_token_ids is not
None: prompt = request.prompt_token_ids`, else the chat template over the messages; the base64 one, int32s, decoded
into it when not empty; its Responses API the same, `_relayed_prompt_token_ids`), and its disaggregated server sets
one on every generation call it sends, beside `disaggregated_params` (`_get_gen_request`), the messages there cut to the
last at its option (`strip_gen_message_history`). Helper fields15 left `disaggregated_params` unread for the generation
call's prompt being read; that prompt is these token ids. Before, they were not looked at: a call whose messages said
`hello` went on unlabelled, for any purpose, whatever its token ids spelt (a completion's `prompt` of token ids was
`scan:truncated` already).

Failing before (h-fields15): 6 of 7 (2 end to end through the openai SDK to the vLLM-like server, 200 where 403; 4
reading); the control (an empty base64 string, which the server skips, and a null) passes before and after (on main it
fails too, `disaggregated_params` read there)."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from proxy.protocols.openai import read_request
from tests.servers.vllm_like import SERVED
from tests.test_anthropic_unread_content import CONFIG

# as trtllm-serve's disaggregated server sends a generation call (the context server's reply's token ids)
GENERATION = {
    "disaggregated_params": {"request_type": "generation_only", "first_gen_tokens": [9707], "ctx_request_id": 5,
                             "disagg_request_id": 5, "ctx_info_endpoint": "10.0.0.7:8001"},
}  # fmt: skip
TOKENS = {
    "token ids": {"prompt_token_ids": [1, 9038, 2501, 29871, 13]},
    "token ids in base64": {"prompt_token_ids_b64": "AQAAAHYjAADFCQAAH3QAAA0AAAA="},
}


@pytest.mark.parametrize("extra", TOKENS.values(), ids=TOKENS.keys())
def test_a_generation_calls_token_ids_are_unread(vllm, make_proxy, extra) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    client = openai.OpenAI(base_url=f"{make_proxy(CONFIG, UPSTREAM=upstream).url}/v1", api_key="unused", max_retries=0,
                           timeout=10)  # fmt: skip
    messages: Any = [{"role": "user", "content": "hello"}]
    with pytest.raises(openai.PermissionDeniedError) as refused:  # (before: 200, unlabelled)
        client.chat.completions.create(
            model=SERVED, messages=messages, extra_body={**GENERATION, **extra}, extra_headers={"x-purpose": "ads"}
        )
    assert "scan:truncated" in refused.value.message
    assert server.data_requests() == []


@pytest.mark.parametrize("operation", ["chat", "responses"])
@pytest.mark.parametrize("extra", TOKENS.values(), ids=TOKENS.keys())
def test_read_so_by_each_api(operation: str, extra: dict[str, Any]) -> None:
    content = {"messages": [{"role": "user", "content": "hello"}]} if operation == "chat" else {"input": "hello"}
    request = read_request(operation, orjson.dumps({"model": "m", **content, **extra}))
    assert request.unscanned is True


def test_no_token_ids_is_read_as_before() -> None:
    """A control: an empty base64 string (trtllm-serve decodes it only when not empty) and a null are no prompt."""
    body = {"model": "m", "messages": [{"role": "user", "content": "hello"}], "prompt_token_ids": None,
            "prompt_token_ids_b64": "", **GENERATION}  # fmt: skip
    request = read_request("chat", orjson.dumps(body))
    assert request.unscanned is False and request.texts == ("hello",)
