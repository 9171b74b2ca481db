"""Where a call may reach KServe's OpenAI data plane (a zone may reroute to a `protocol: kserve` upstream), the fields
of its body the adapter that read it does not read are read apart (`kserve.openai_fields`), by what that adapter reads
of each operation (`openai.CONTENT_KEYS`). Every operation of every adapter whose calls are so read is in that table:
TGI's `generate` was not, and each TGI call there failed 500 `internal_error` (2026-12-04). And an Ollama call's
fields are read as Ollama's adapter reads them, not as an OpenAI call's of the same operation: its `options` (a
`seed`) and a generate's `context` (token ids) were read as fields of the caller's own, their numbers as text, so a
32-bit seed was a phone number and four token ids a card, refused where a zone forbids them (2026-12-04)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from ollama import Client, ResponseError

from proxy.protocols import HTTP_ADAPTERS, Target
from proxy.protocols.kserve import openai_fields
from proxy.protocols.openai import CONTENT_KEYS
from tests import test_ollama_native as native
from tests.harness import ProxyHandle
from tests.servers.ollama import MODEL, Ollama

ollama = native.ollama

CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: ollama, url: "${UPSTREAM}", protocol: openai, region: us}
  - {name: kserve-eu, url: "${UPSTREAM}", protocol: kserve, region: eu, checkpoint: "held@1"}
routes:
  - {model: "*", upstream: ollama}
policy: {anonymous: allow, default_purpose: care}
zones:
  - {name: phones, labels: ["pii:phone", "pii:credit_card"], allow_purposes: [care]}
  - {name: residents, labels: [eu-resident], allow_purposes: [care], regions: [eu], on_deny: "reroute:kserve-eu"}
detectors: [phone, credit_card]
lineage: {store: "${STORE}"}
"""


def _targets(value: Any) -> Iterator[Target]:
    if isinstance(value, Target):
        yield value
        if value.later is not None:
            yield value.later
    elif isinstance(value, dict):
        for item in value.values():
            yield from _targets(item)
    elif isinstance(value, (list, tuple, frozenset, set)):
        for item in value:
            yield from _targets(item)


def operations() -> list[tuple[str, str]]:
    """(adapter's provider, operation) of every target with data an HTTP adapter whose calls `openai_fields` reads
    (`adapter.name == "openai"`, as the ingress decides) can match: every Target in its module."""
    found = set()
    for adapter in HTTP_ADAPTERS:
        if adapter.name != "openai":
            continue
        module = sys.modules[type(adapter).__module__]
        for value in vars(module).values():
            for target in _targets(value):
                if target.carries_data:
                    found.add((adapter.provider or "", target.operation))
    return sorted(found)


def test_the_operations_are_found() -> None:
    found = operations()
    assert {("openai", "chat"), ("openai", "rerank"), ("tgi", "generate"), ("ollama", "text_completion")} <= set(found)


@pytest.mark.parametrize(("provider", "operation"), operations())
def test_every_operation_has_its_body_fields_read(provider: str, operation: str) -> None:
    assert operation in CONTENT_KEYS
    body = b'{"model": "m", "user": "u", "bob@example.com": 1}'  # (every key is read, its name a field's of its own)
    text, whole = openai_fields(body, operation, provider)
    assert whole and text is not None and {"u", "bob@example.com"} <= set(text.splitlines())


@pytest.fixture
def proxy(ollama: Ollama, make_proxy: Callable[..., ProxyHandle]) -> ProxyHandle:
    return make_proxy(CONFIG, wait="probed", UPSTREAM=ollama.url)


def said(message: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": message}]


def test_an_ollama_chats_seed_is_no_phone(ollama: Ollama, proxy: ProxyHandle) -> None:
    client = Client(host=proxy.url, headers={"x-purpose": "ads"})
    reply = client.chat(MODEL, said("hello"), options={"seed": 2147483647, "num_predict": 8})
    assert reply.done
    assert [path for path, _ in ollama.received] == ["/api/chat"]


def test_an_ollama_generates_context_is_no_card(ollama: Ollama, proxy: ProxyHandle) -> None:
    client = Client(host=proxy.url, headers={"x-purpose": "ads"})
    reply = client.generate(MODEL, "hello", context=[4111, 1111, 1111, 1111])
    assert reply.done
    assert [path for path, _ in ollama.received] == ["/api/generate"]


def test_a_phone_in_an_ollama_chat_is_still_refused(ollama: Ollama, proxy: ProxyHandle) -> None:
    client = Client(host=proxy.url, headers={"x-purpose": "ads"})
    with pytest.raises(ResponseError) as refused:
        client.chat(MODEL, said("call 415-555-2671"), options={"seed": 7})
    assert refused.value.status_code == 403 and "zone phones" in refused.value.error
    assert ollama.received == []
