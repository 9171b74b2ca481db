"""A custom pattern's value split across a call's parts (a chat message's text parts, which the model reads run
together). Where parts meet was read in windows stretching to the nearest white space, so a value holding white space
or newlines was not found split: a PEM key split mid-line across two text parts, its pattern one of 64-character
lines, went on unlabelled to the model, for a purpose its zone forbids. With a custom pattern configured, where parts
meet is read again for custom patterns alone, 4,096 characters either side, under a limit of its own (262,144
characters a call, not charged against `limits.scan_max_chars`), past which the call is `scan:truncated`."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from proxy.config import parse
from proxy.detectors import TRUNCATED
from proxy.protocols.openai import read_request
from tests.harness import offline_pipeline, proxy_error
from tests.servers.vllm_like import SERVED

# a PEM private key as it is written: 64-character lines of base64 between its BEGIN and END lines
_PEM = r"-----BEGIN PRIVATE KEY-----\n(?:[0-9A-Za-z+/]{64}\n)+-----END PRIVATE KEY-----"

CONFIG = f"""
listen: {{http: 127.0.0.1:0}}
upstreams: [{{name: vllm, url: "${{UPSTREAM}}"}}]
routes: [{{model: "*", upstream: vllm}}]
policy: {{anonymous: allow, default_purpose: assistant}}
zones:
  - name: secrets
    labels: [pii:private_key]
    allow_purposes: [assistant]
detectors: [email, {{name: private_key, pattern: '{_PEM}'}}]
lineage: {{store: null}}
"""


def _key(lines: int) -> str:
    """A PEM private key's shape: `lines` lines of 64 base64 characters."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    body = "".join(f"{(alphabet[n % 64 :] + alphabet[: n % 64])}\n" for n in range(lines))
    return "-----BEGIN PRIVATE KEY-----\n" + body + "-----END PRIVATE KEY-----"


def _parts(*texts: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "text", "text": text} for text in texts]}]


def test_a_pem_key_split_mid_line_across_parts_is_refused_where_its_zone_forbids_the_purpose(
    vllm: Any, make_proxy: Any
) -> None:
    server, url = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=url)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-unused", max_retries=0)
    key = _key(26)  # a 2048-bit RSA key's 26 lines
    cut = key.index("\n", len(key) // 2) - 30  # mid-line: neither half holds a line whole there
    messages: Any = _parts("keep this safe:\n" + key[:cut], key[cut:] + "\nthanks")
    with pytest.raises(openai.PermissionDeniedError) as refused:
        client.chat.completions.create(model=SERVED, messages=messages, extra_headers={"x-purpose": "marketing"})
    assert proxy_error(refused.value.response)["code"] == "purpose_denied"
    assert not server.data_requests()  # nothing reached the model
    allowed = client.chat.completions.with_raw_response.create(model=SERVED, messages=messages)
    assert allowed.http_response.headers["x-data-labels"].split(",") == ["pii:private_key"]


def test_where_parts_meet_is_read_for_custom_patterns_as_far_as_the_scan_reads(vllm: Any, make_proxy: Any) -> None:
    """33 messages of two parts without white space, each read whole where its parts meet (each part within 4,096
    characters of the other): 262,145 characters read there for the custom pattern, which the scan's default limit
    (1,000,000) reads whole; before, that reading's limit was 262,144 and such a call `scan:truncated` with a custom
    pattern, read whole without one. A call past the scan's limit is `scan:truncated` as ever."""
    _, url = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=url)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-unused", max_retries=0)

    def labels(messages: int) -> list[str]:
        # (each message its own: runs alike are read once)
        sent_messages = [message for n in range(messages) for message in _parts(f"{n:04d}" + "z" * 3996, "z" * 4000)]
        sent_messages += _parts("z" * 3056, "z" * 3057)
        sent = client.chat.completions.with_raw_response.create(model=SERVED, messages=sent_messages)  # type: ignore[arg-type]
        return [label for label in sent.http_response.headers["x-data-labels"].split(",") if label]

    assert labels(32) == []  # 32 * 8000 + 3056 + 3057 + 32 = 262,145 characters where parts meet
    assert labels(140) == [TRUNCATED]  # 1,126,113 characters of text: past the scan's limit


_CUSTOM = {
    "pem": (_PEM, _key(20)),
    # values holding spaces or newlines, longer than where parts meet was read around each side (256 characters and on
    # to white space)
    "spaced": (r"ACCOUNTS:(?: \d{4} \d{4} \d{4} \d{4};){30}", "ACCOUNTS:" + " 4111 1111 1111 1111;" * 30),
    "lines": (
        r"(?m)^BEGIN RECORD$(?:\n[A-Z]+: [^\n]+)+\nEND RECORD$",
        "BEGIN RECORD\n" + "".join(f"FIELD: value number {n} of the record\n" for n in range(20)) + "END RECORD",
    ),
    "long token": (r"tok_[0-9a-f]{600}", "tok_" + "0123456789abcdef" * 37 + "01234567"),
    "lookahead": (r"case #\d{6}(?=\s)", "case #123456"),
}


def _pipeline(detectors: str) -> Any:
    return offline_pipeline(
        parse(f"""
listen: {{http: 127.0.0.1:0}}
upstreams: [{{name: u, url: http://127.0.0.1:1}}]
routes: [{{model: "*", upstream: u}}]
policy: {{anonymous: allow, default_purpose: assistant}}
detectors: {detectors}
telemetry: {{exporter: none}}
lineage: {{store: null}}
""")
    )


def _detected(pipeline: Any, *texts: str) -> frozenset[str]:
    body = {"model": "m", "messages": _parts(*texts)}
    return pipeline._detected(read_request("chat", orjson.dumps(body)))  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", sorted(_CUSTOM))
def test_a_custom_value_is_found_split_at_every_offset_as_whole(name: str) -> None:
    pattern, value = _CUSTOM[name]
    pipeline = _pipeline(f"[email, {{name: secret, pattern: '{pattern}'}}]")
    text = "here it is:\n" + value + "\nthat is all"
    assert _detected(pipeline, text) == {"pii:secret"}
    start = text.index(value)
    missed = [
        at for at in range(start + 1, start + len(value)) if _detected(pipeline, text[:at], text[at:]) != {"pii:secret"}
    ]
    assert missed == []


def test_a_custom_value_of_4096_characters_is_found_split_at_either_end() -> None:
    """The longest value found split anywhere: 4,096 characters, its split one character from its start or its end."""
    pipeline = _pipeline(f"[{{name: secret, pattern: '{_PEM}'}}]")
    key = _key(62)
    assert 4000 < len(key) <= 4096
    text = "x " * 3000 + key + " y" * 3000
    start = text.index(key)
    for at in (start + 1, start + len(key) // 2, start + len(key) - 1):
        assert _detected(pipeline, text[:at], text[at:]) == {"pii:secret"}
