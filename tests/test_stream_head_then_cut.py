"""An upstream that answers a streamed call with its 200 head and then breaks off before any of the body: direct, the
openai SDK's `create(stream=True)` returns with that head and its iteration raises `APIConnectionError`, and the SDK
sends nothing again. Where the proxy waits for the reply's first event before the head goes out (the checkpoint is
known only from the reply: its model is not in the upstream's list yet), it answered 502 `upstream_unavailable`
instead, which the SDK retries (`max_retries`, 2 by default): the model was asked three times for one call. The
client gets the upstream's head and then the cut, as it would direct; the record says `upstream_reset`."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.test_unsized_replies_output import Reply, setup_for  # noqa: F401  # (a fixture)


@pytest.mark.parametrize("model", ["m", "unlisted"])  # checkpoint known from the upstream's list; only the reply's
def test_a_stream_cut_after_its_head_is_not_sent_again_by_the_sdk(setup_for: Any, model: str) -> None:  # noqa: F811
    setup = setup_for()
    upstream = setup.upstream
    calls: list[int] = []
    send = upstream._data

    async def data(writer: Any, reply: Reply) -> bool:
        calls.append(1)
        upstream.reply = Reply([], content_type="text/event-stream", cut=True)  # a retry meets the same
        return await send(writer, reply)

    upstream._data = data  # type: ignore[method-assign]
    upstream.reply = Reply([], content_type="text/event-stream", cut=True)  # the head, then the connection reset
    client = openai.OpenAI(base_url=f"{setup.proxy.url}/v1", api_key="k", timeout=10, max_retries=2)
    try:
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        with pytest.raises(openai.APIConnectionError):
            list(raw.parse())
    finally:
        client.close()
    assert len(calls) == 1  # sent once, as direct
    setup.loop_thread.run(setup.proxy.process.runtime.sinks.flush())
    span = setup.otlp.by_trace(raw.headers["x-trace-id"])
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes.get("error.type") == "upstream_reset"
