"""KServe's OpenAI data plane hands its model the whole request object, fields it does not know kept, and the raw
request (`OpenAIDataPlane.create_chat_completion(request, raw_request, context)`), so a body's fields that no other
server reads (`user`, `metadata`, `safety_identifier`, ..., `NOT_DATA`) reach a KServe model. They were never read:
`{"user": "alice@example.com"}` reached a `protocol: kserve` upstream's model for a purpose the zone forbids. They are
read now for a call that may reach KServe, as its header fields are (never digested nor captured), and not for one
going to a vLLM."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.harness import LoopThread, ProxyHandle, serving
from tests.protocols.test_kserve_openai_prefix import ADDRESS, kserve_openai
from tests.protocols.test_kserve_openai_upstream import REAL_CONFIG, kserve_llm  # noqa: F401  (a fixture)
from tests.servers.vllm_like import SERVED, VllmLike

MIXED = """
listen: {http: "127.0.0.1:0"}
upstreams: [{name: vllm, url: "${VLLM}", protocol: openai}, {name: kserve, url: "${KSERVE}", protocol: kserve}]
routes: [{model: "${SERVED}", upstream: vllm}, {model: other, upstream: kserve}]
policy: {anonymous: allow, default_purpose: care}
zones: [{name: personal, labels: ["pii:email", "pii:credit_card", "pii:ip_address", "pii:phone"], allow_purposes: [care]}]
detectors: [email, credit_card, ip_address, phone]
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""
MESSAGES: Any = [{"role": "user", "content": "hi"}]
# fields the OpenAI adapter does not read, each carrying what the zone forbids for `ads`
FIELDS: dict[str, dict[str, Any]] = {
    "user": {"user": ADDRESS},
    "safety_identifier": {"safety_identifier": ADDRESS},
    "metadata": {"metadata": {"note": f"for {ADDRESS}"}},
    "a number of the caller's own": {"account": 4111111111111111},
    "a key of the caller's own": {ADDRESS: True},
    # an object of the caller's own, which KServe keeps whole: the OpenAI adapter reads it as content, a member named
    # as framing (a link's `url`, a `type`) and its numbers not
    "a member of the caller's object named as framing": {"context": {"url": ADDRESS}},
    "a number in the caller's object": {"context": {"account": 4111111111111111}},
    # a value written as a header field's line is a value, not that field: read as a User-Agent, an address after a
    # product's `/` was taken for its version, and a cookie's number for a time (`oip.header_labels`), both unread
    "a value written as a User-Agent": {"user": "user-agent: client/203.0.113.7"},
    "a value written as a cookie": {"metadata": {"phone": "cookie: ts=1512555012"}},
}


@pytest.mark.parametrize("field", list(FIELDS))
def test_an_openai_calls_body_fields_are_read_where_kserve_hands_them_to_its_model(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle], field: str
) -> None:
    vllm, kserve = VllmLike(), VllmLike(models=[{"id": "other", "object": "model", "created": 1, "owned_by": "kserve"}])
    with serving(loop_thread, vllm.app()) as plain, serving(loop_thread, kserve_openai(kserve)) as kserving:
        proxy = make_proxy(MIXED, wait="probed", VLLM=plain, KSERVE=kserving, SERVED=SERVED)
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0)
        ads = {"x-purpose": "ads"}
        # a vLLM reads none of them (its chat template prints no `user`): not read there
        reply = client.chat.completions.with_raw_response.create(
            model=SERVED, messages=MESSAGES, extra_headers=ads, extra_body=FIELDS[field]
        )
        assert reply.headers["x-data-labels"] == "", reply.headers
        # before: forwarded, unlabelled, to the KServe model that is handed them
        with pytest.raises(openai.PermissionDeniedError, match="pii:"):
            client.chat.completions.create(
                model="other", messages=MESSAGES, extra_headers=ads, extra_body=FIELDS[field]
            )
        reply = client.chat.completions.with_raw_response.create(
            model="other", messages=MESSAGES, extra_body=FIELDS[field]
        )
        assert reply.headers["x-data-labels"] in ("pii:email", "pii:credit_card", "pii:ip_address", "pii:phone"), (
            reply.headers
        )  # one of them
        plain_call = client.chat.completions.with_raw_response.create(model="other", messages=MESSAGES)
        assert plain_call.headers["x-data-labels"] == ""
    assert len(kserve.data_requests()) == 2 and len(vllm.data_requests()) == 1


@pytest.mark.realserver
def test_a_user_field_reaches_the_real_kserve_server_only_where_read(
    kserve_llm: tuple[str, Path],  # noqa: F811  (the fixture imported above)
    make_proxy: Callable[..., ProxyHandle],
) -> None:
    """KServe's own model server (its OpenAI routes as `register_openai_endpoints` adds them: the data plane needs
    vLLM) is handed the body whole: `user` is refused for `ads` and labelled for `care`, and the model got it."""
    url, log = kserve_llm
    proxy = make_proxy(REAL_CONFIG, wait="probed", KSERVE=url)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0)
    before = log.read_text().count("\n") if log.exists() else 0
    with pytest.raises(openai.PermissionDeniedError, match="pii:email"):
        client.chat.completions.create(model="llm", messages=MESSAGES, user=ADDRESS, extra_headers={"x-purpose": "ads"})
    reply = client.chat.completions.with_raw_response.create(model="llm", messages=MESSAGES, user=ADDRESS)
    assert reply.headers["x-data-labels"] == "pii:email", reply.headers
    lines = log.read_text().splitlines()
    assert len(lines) == before + 1 and json.loads(lines[-1])["user"] == ADDRESS  # the model got it; the denied one not


def test_body_fields_past_the_reading_limit_are_labelled_unread(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """Past 10,000 strings (`_MAX_SCAN_STRINGS`) the body's other fields are not read: what is not read is
    `scan:truncated`, as a request's own texts past the limit are. Before, the rest went on unlabelled for any purpose:
    an address in `user`, or a card sent as a number, after a `metadata` of 5,000 keys and values."""
    kserve = VllmLike(models=[{"id": "other", "object": "model", "created": 1, "owned_by": "kserve"}])
    metadata = {f"k{index}": "v" for index in range(5_000)}  # 10,000 strings, read
    with serving(loop_thread, kserve_openai(kserve)) as kserving:
        proxy = make_proxy(MIXED, wait="probed", VLLM=kserving, KSERVE=kserving, SERVED=SERVED)
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0)
        for after in ({"user": ADDRESS}, {"account": 4111111111111111}):  # a string, and a number (a V1 parameter's)
            reply = client.chat.completions.with_raw_response.create(
                model="other", messages=MESSAGES, extra_body={"metadata": metadata, **after}
            )
            assert reply.headers["x-data-labels"] == "scan:truncated", reply.headers
        within = dict(list(metadata.items())[:4_999])  # one string fewer: read, no more
        reply = client.chat.completions.with_raw_response.create(
            model="other", messages=MESSAGES, extra_body={"metadata": within, "user": ADDRESS}
        )
        assert reply.headers["x-data-labels"] == "pii:email", reply.headers
    assert len(kserve.data_requests()) == 3


# an ordinary call's numeric parameters as clients send them: a random 32-bit `seed` (most have 9 or 10 digits), its
# largest, a 64-bit one, and the token limits beside them
SEEDS = (2147483647, 3735928559, 123456789, 4111111111111111)


@pytest.mark.parametrize("seed", SEEDS)
def test_a_calls_numeric_parameters_are_no_text_where_kserve_is_handed_them(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle], seed: int
) -> None:
    """A parameter every server takes as a number (`seed`, `max_tokens`, ...) is that parameter, not text: read as a
    field of the caller's own, `seed=2147483647` (or any of nine digits or more) was a phone number, and a call to a
    KServe route refused `pii:phone` for a purpose the zone forbids phones for, where the same call to vLLM went on."""
    kserve = VllmLike(models=[{"id": "other", "object": "model", "created": 1, "owned_by": "kserve"}])
    with serving(loop_thread, kserve_openai(kserve)) as kserving:
        proxy = make_proxy(MIXED, wait="probed", VLLM=kserving, KSERVE=kserving, SERVED=SERVED)
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0)
        reply = client.chat.completions.with_raw_response.create(
            model="other",
            messages=MESSAGES,
            seed=seed,
            max_tokens=1024,
            max_completion_tokens=100_000_000,
            temperature=0.7,
            extra_headers={"x-purpose": "ads"},
        )
        assert reply.headers["x-data-labels"] == "", reply.headers
        # the same number in a field of the caller's own is still read: a custom model may read it as a phone's
        with pytest.raises(openai.PermissionDeniedError, match="pii:phone"):
            client.chat.completions.create(
                model="other", messages=MESSAGES, extra_headers={"x-purpose": "ads"}, extra_body={"account": 2147483647}
            )
    assert len(kserve.data_requests()) == 1


# a field of the caller's own named as another API's content or template field (a chat's `tools`, a Responses call's
# `input`): no server of this API reads it, KServe's request object keeps it
def _completion(client: openai.OpenAI, extra: dict[str, Any], **headers: str) -> Any:
    return client.completions.with_raw_response.create(
        model="other", prompt="hi", extra_body=extra, extra_headers=headers
    )


def _chat(client: openai.OpenAI, extra: dict[str, Any], **headers: str) -> Any:
    return client.chat.completions.with_raw_response.create(
        model="other", messages=MESSAGES, extra_body=extra, extra_headers=headers
    )


def _embedding(client: openai.OpenAI, extra: dict[str, Any], **headers: str) -> Any:
    return client.embeddings.with_raw_response.create(
        model="other", input="hi", extra_body=extra, extra_headers=headers
    )


ANOTHER_APIS: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "a completion's tools": (_completion, {"tools": [{"type": "function", "function": {"url": ADDRESS}}]}),
    "a completion's messages": (_completion, {"messages": [{"role": "user", "content": [{"url": ADDRESS}]}]}),
    "a chat's input": (_chat, {"input": {"url": ADDRESS}}),
    "a chat's prompt": (_chat, {"prompt": [{"type": ADDRESS}]}),
    "a chat's instructions": (_chat, {"instructions": [{"file_id": ADDRESS}]}),
    "an embedding's response_format": (_embedding, {"response_format": {"url": ADDRESS}}),
}


@pytest.mark.parametrize("field", list(ANOTHER_APIS))
def test_a_field_named_as_another_apis_content_is_read_whole(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle], field: str
) -> None:
    """Only a call's own content and what its own API's templates print are left to the OpenAI adapter: `tools` beside
    a text completion's `prompt` is a field of the caller's own, which the adapter reads as content (a member named as
    framing, `url`, `type`, `file_id`, not), and KServe keeps in the request object it hands its model. Before, the
    keys of every API were left to the adapter: `{"tools": [{"function": {"url": "alice@example.com"}}]}` beside a
    prompt reached the KServe model unread, for any purpose."""
    call, extra = ANOTHER_APIS[field]
    kserve = VllmLike(models=[{"id": "other", "object": "model", "created": 1, "owned_by": "kserve"}])
    with serving(loop_thread, kserve_openai(kserve)) as kserving:
        proxy = make_proxy(MIXED, wait="probed", VLLM=kserving, KSERVE=kserving, SERVED=SERVED)
        client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.PermissionDeniedError, match="pii:email"):
            call(client, extra, **{"x-purpose": "ads"})
        assert call(client, extra).headers["x-data-labels"] == "pii:email"
    assert len(kserve.data_requests()) == 1


@pytest.mark.realserver
def test_a_32_bit_seed_reaches_the_real_kserve_server_for_a_purpose_phones_are_forbidden_for(
    kserve_llm: tuple[str, Path],  # noqa: F811  (the fixture imported above)
    make_proxy: Callable[..., ProxyHandle],
) -> None:
    """KServe's own model server is handed the `seed` as the number it is; a phone number in a field of the caller's
    own is still refused (before: both refused `pii:phone`)."""
    url, log = kserve_llm
    config = REAL_CONFIG.replace('"pii:email"', '"pii:email", "pii:phone"').replace("[email]", "[email, phone]")
    proxy = make_proxy(config, wait="probed", KSERVE=url)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0)
    ads = {"x-purpose": "ads"}
    before = log.read_text().count("\n") if log.exists() else 0
    reply = client.chat.completions.with_raw_response.create(
        model="llm", messages=MESSAGES, seed=2147483647, extra_headers=ads
    )
    assert reply.headers["x-data-labels"] == "", reply.headers
    with pytest.raises(openai.PermissionDeniedError, match="pii:phone"):
        client.chat.completions.create(model="llm", messages=MESSAGES, extra_headers=ads, extra_body={"n0": 2147483647})
    lines = log.read_text().splitlines()
    assert len(lines) == before + 1 and json.loads(lines[-1])["seed"] == 2147483647
