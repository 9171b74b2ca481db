"""Captured content past a call's CAPTURE_MAX_CHARS, read where a consumer reads it (a real proxy, its spans
at a real OTLP receiver): no detected value is captured unmasked where the bound falls, not even half of one."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from proxy.detectors import CAPTURE_MAX_CHARS
from tests.harness import ProxyHandle
from tests.servers.otlp_receiver import OtlpReceiver
from tests.servers.vllm_like import VllmLike

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: u, url: "${UPSTREAM}", protocol: openai, checkpoint: org/w}]
routes: [{model: "*", upstream: u}]
policy: {anonymous: allow, default_purpose: assistant}
detectors: [email]
telemetry: {exporter: otlp, endpoint: "http://127.0.0.1:${OTLP}", capture_content: true}
lineage: {store: null}
"""

# an address of 133 characters, masked to 11: text of them masked still fits the span's 16 KiB, so what is
# captured near the bound is there to read
_LONG_ADDRESS = "a" * 60 + "@" + "b" * 60 + ".example.org"


def _captured(proxy: ProxyHandle, otlp: OtlpReceiver, path: str, body: dict[str, object]) -> str:
    sent = httpx.post(f"{proxy.url}{path}", json=body, timeout=30)
    assert sent.status_code == 200, sent.text
    messages = json.loads(otlp.by_trace(sent.headers["x-trace-id"]).attributes["gen_ai.input.messages"])
    return "\n".join(part["content"] for message in messages for part in message["parts"] if part["type"] == "text")


def _filled(size: int) -> str:
    """Addresses up to `size` characters (each masked when captured), white space to fill the rest."""
    count = size // (len(_LONG_ADDRESS) + 1)
    return (" ".join([_LONG_ADDRESS] * count)).ljust(size)


_ZERO_WIDTH = "\u200b" * 60
# an address as the detectors read it whole (`john.smith@example.org`), written so that its characters take up more
# room than they read: a zero-width space between each; an `@` written as an escape padded with zeros
_STRETCHED = {
    "zero-width": _ZERO_WIDTH.join("john.smith@example.org"),
    "escaped": "john.smith&#" + "0" * 1000 + "64;example.org",
}


@pytest.mark.parametrize("form", sorted(_STRETCHED))
def test_a_value_read_folded_where_the_bound_cuts_its_text_is_not_half_captured(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver, form: str
) -> None:
    """The bound cuts a text inside an address that reads as one only folded. What is captured of a cut text ends
    the 320 characters before the cut (the most a value takes up) earlier: 320 of its own characters, where the
    address's before the cut took up 600 or more, so its start was captured as it stands (`john.smit` between
    zero-width spaces; `john.smith&#000…`)."""
    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, OTLP=str(otlp.port))
    value = _STRETCHED[form]
    before = CAPTURE_MAX_CHARS - 600  # the bound 600 characters into the value
    text = _filled(before - 1) + " " + value
    assert len(text) > CAPTURE_MAX_CHARS
    captured = _captured(
        proxy, otlp, "/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": text}]}
    )
    assert captured.endswith("[not captured: past 65,536 characters a call]"), captured[-200:]
    assert "john" not in captured.replace("\u200b", ""), captured[-200:]


def test_a_value_split_across_parts_where_the_bound_falls_is_not_half_captured(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver
) -> None:
    """An address split across two text parts the model reads run together, its first half in the last part
    captured whole, its second in the part the bound cuts before it shows: the first half was captured as it
    was, the part after it only a marker (a run's part past the bound read as captured, so nothing split
    was seen)."""
    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, OTLP=str(otlp.port))
    first = _filled(CAPTURE_MAX_CHARS - 40) + " write to john.smith@"
    second = "example.org today " + "z" * 2000
    assert len(first) < CAPTURE_MAX_CHARS < len(first) + 320  # the second part's start is not captured
    parts = [{"type": "text", "text": first}, {"type": "text", "text": second}]
    captured = _captured(
        proxy, otlp, "/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": parts}]}
    )
    assert "john.smith" not in captured, captured[-300:]
    assert captured == "[withheld: a detected value is split across content parts]"


def test_a_value_split_over_three_parts_where_the_bound_falls_is_not_half_captured(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver
) -> None:
    """An address split over three text parts run together: its start ending the last part captured whole, the bound
    in the short part after it, the address's end in the part after that. The part the bound cut was looked at as it
    is beside the part captured, but not the one beyond it, so 'john.smith@' + 'mmm…' read as no address and
    'write to john.smith@' was captured beside the marker. The parts beyond a short one are looked at too, as far as a
    window where parts meet reads."""
    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, OTLP=str(otlp.port))
    first = _filled(CAPTURE_MAX_CHARS - 40) + " write to john.smith@"
    second, third = "m" * 40, ".example.org today " + "z" * 2000
    assert len(first) < CAPTURE_MAX_CHARS < len(first) + len(second)  # the bound falls in the second part
    parts = [{"type": "text", "text": text} for text in (first, second, third)]
    captured = _captured(
        proxy, otlp, "/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": parts}]}
    )
    assert "john.smith" not in captured, captured[-300:]
    assert captured == "[withheld: a detected value is split across content parts]"


def test_a_tool_result_as_vllm_reads_it_past_the_bound_withholds_the_content(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver
) -> None:
    """vLLM reads a tool result in an assistant's content as the text part `Tool result: <content>`, run together
    with the text blocks around it: a part that is none of the call's texts, masked on its own. Past
    CAPTURE_MAX_CHARS of such parts it is not looked at, so whether a value is split where it meets the text
    beside it is not known: the content is withheld, not captured with what may be half a value."""
    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, OTLP=str(otlp.port))
    # three results: the call's texts within the bound, all captured whole; as vLLM reads them, past it
    assistant = [
        {"type": "text", "text": "write to john.smith@"},
        *(
            {"type": "tool_result", "tool_use_id": f"t{n}", "content": f"{n}{'z' * 21_820} example.org"}
            for n in range(3)
        ),
        {"type": "text", "text": "done"},
    ]
    body = {
        "model": "m",
        "max_tokens": 16,
        "messages": [{"role": "assistant", "content": assistant}, {"role": "user", "content": "go on"}],
    }
    captured = _captured(proxy, otlp, "/v1/messages", body)
    assert captured == "[withheld: content parts past 65,536 characters could not be checked for split values]"
    # one within the bound is looked at, and captured (nothing split where it meets the text beside it)
    del assistant[2:4]
    assert "john.smith@" in _captured(proxy, otlp, "/v1/messages", body)


def test_a_value_of_a_custom_pattern_where_the_bound_cuts_its_text_is_not_half_captured(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver
) -> None:
    """A custom pattern's value may be longer than the 320 characters a built-in one takes up at most, the ones a
    cut text ends early: a 575-character JWT the bound cuts 500 characters in had its first 180 captured. The
    token it may be (up to white space, 4,096 characters back at most) is not captured either."""
    _, upstream = vllm
    config = CONFIG.replace(
        "detectors: [email]", "detectors: [email, {name: jwt, pattern: 'eyJ[\\w-]+\\.[\\w-]+\\.[\\w-]+'}]"
    )
    proxy = make_proxy(config, UPSTREAM=upstream, OTLP=str(otlp.port))
    token = (
        "eyJhbGciOiJIUzI1NiJ9." + "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0" * 10 + ".SflKxwRJSMeKKF2QT4fw"
    )
    whole = _captured(
        proxy, otlp, "/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": f"a {token} b"}]}
    )
    assert whole == "a [pii:jwt] b"  # the pattern finds it
    text = _filled(CAPTURE_MAX_CHARS - 501) + " " + token
    captured = _captured(
        proxy, otlp, "/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": text}]}
    )
    assert captured.endswith("[not captured: past 65,536 characters a call]"), captured[-200:]
    assert "eyJ" not in captured, captured[-300:]


def test_a_value_of_a_custom_pattern_holding_white_space_where_the_bound_cuts_its_text_is_not_half_captured(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver
) -> None:
    """A custom pattern's value may hold white space: a PEM private key, lines of 64 characters between its BEGIN and
    END lines. A cut text ended before the word the cut fell in, the key's line: the bound 1,000 characters into a
    key had its first 14 lines captured. What the cut may fall in, up to 4,096 characters back, is not captured."""
    _, upstream = vllm
    pattern = r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY-----"
    config = CONFIG.replace("detectors: [email]", f"detectors: [email, {{name: private_key, pattern: '{pattern}'}}]")
    proxy = make_proxy(config, UPSTREAM=upstream, OTLP=str(otlp.port))
    key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )
    lines = key.splitlines()[1:-1]
    assert len(key) > 1600 and len(lines) > 20

    def captured(text: str) -> str:
        body = {"model": "m", "messages": [{"role": "user", "content": text}]}
        return _captured(proxy, otlp, "/v1/chat/completions", body)

    assert captured(f"my key:\n{key}") == "my key:\n[pii:private_key]\n"  # the pattern finds it
    cut = captured(_filled(CAPTURE_MAX_CHARS - 1001) + " my key:\n" + key)
    assert cut.endswith("[not captured: past 65,536 characters a call]"), cut[-200:]
    assert [line for line in lines if line in cut] == [], cut[-300:]
    assert "PRIVATE KEY" not in cut, cut[-300:]


def test_a_value_past_where_a_text_s_fold_reaches_the_bound_is_not_captured(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver
) -> None:
    """A text within CAPTURE_MAX_CHARS whose fold (what the detectors read) is longer than it: `\\ufdfa` reads as 18
    characters, so 4,000 of them read as 72,000, the fold cut at the bound before the address after them. That
    address reads as one only folded (`＠`); the fold found nothing, as the text's own form did, so the text was
    captured whole as it stands, the address with it, unmasked (the call was labelled pii:email all the same). What
    is captured of its own form ends where the fold was cut."""
    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, OTLP=str(otlp.port))
    text = "\ufdfa" * 4000 + " write to john.smith\uff20example.org"
    assert len(text) < CAPTURE_MAX_CHARS
    captured = _captured(
        proxy, otlp, "/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": text}]}
    )
    assert "john" not in captured, captured[-200:]
    assert captured.startswith("\ufdfa" * 3000), captured[:100]  # what was read, captured as it stands
    assert captured.endswith("[not captured: past 65,536 characters a call]"), captured[-200:]


_PEM_PATTERN = r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY-----"


def _long_key(lines: int) -> str:
    """A PEM private key's shape, `lines` lines of 64 base64 characters between its BEGIN and END lines (an 8192-bit
    RSA key has some 100: over 6,000 characters)."""
    body = [f"{n:04d}" + "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj"[:60] for n in range(lines)]
    return "-----BEGIN PRIVATE KEY-----\n" + "\n".join(body) + "\n-----END PRIVATE KEY-----\n"


def test_a_custom_pattern_s_value_longer_than_what_a_cut_leaves_out_is_not_half_captured(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver
) -> None:
    """A custom pattern's value longer than the 4,096 characters (and 320) a cut text leaves out before the cut: a
    PEM key of 100 lines (6,500 characters), the bound 5,000 characters into it, had its first 13 lines captured.
    A text is cut before a value of a custom pattern the cut falls in, however long."""
    _, upstream = vllm
    config = CONFIG.replace(
        "detectors: [email]", f"detectors: [email, {{name: private_key, pattern: '{_PEM_PATTERN}'}}]"
    )
    proxy = make_proxy(config, UPSTREAM=upstream, OTLP=str(otlp.port))
    key = _long_key(100)
    lines = key.splitlines()[1:-1]
    assert len(key) > 6000

    def captured(text: str) -> str:
        body = {"model": "m", "messages": [{"role": "user", "content": text}]}
        return _captured(proxy, otlp, "/v1/chat/completions", body)

    assert captured(f"my key:\n{key}") == "my key:\n[pii:private_key]\n"  # the pattern finds it
    head = _filled(CAPTURE_MAX_CHARS - 5001) + " my key:\n"
    cut = captured(head + key)
    assert cut.endswith("[not captured: past 65,536 characters a call]"), cut[-200:]
    assert [line for line in lines if line in cut] == [], cut[-300:]
    assert "PRIVATE KEY" not in cut, cut[-300:]


def test_parts_shown_by_their_edges_are_charged_what_is_masked_of_them(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver
) -> None:
    """A part past the bound beside a part captured is looked at by its edges (`mask_edges`): 4,096 characters and the
    320 a cut leaves out before them, each side, 8,832 masked, where it was charged 8,192 against the bound's 65,536
    characters: eight such parts were masked, 70,656 characters (with a custom pattern, 136,192), the call's content
    captured. Charged what is masked, the eighth is past the bound: the content is withheld (seven are within it)."""
    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, OTLP=str(otlp.port))

    def body(runs: int) -> dict[str, object]:
        messages: list[dict[str, object]] = [
            {"role": "user", "content": "hi"},  # captured: where it is a part of a run past the bound, so is it
            {"role": "user", "content": _filled(CAPTURE_MAX_CHARS)},
        ]
        for n in range(runs):
            parts = [{"type": "text", "text": "hi"}, {"type": "text", "text": f"{n} " + "z" * 20_000}]
            messages.append({"role": "user", "content": parts})
        return {"model": "m", "messages": messages}

    seven = _captured(proxy, otlp, "/v1/chat/completions", body(7))
    assert seven.startswith("hi\n") and seven.endswith("[not captured: past 65,536 characters a call]"), seven[-100:]
    eight = _captured(proxy, otlp, "/v1/chat/completions", body(8))
    assert eight == "[withheld: content parts past 65,536 characters could not be checked for split values]"


def test_a_custom_pattern_s_value_split_across_parts_is_not_captured(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver
) -> None:
    """A PEM key split across two text parts the model reads run together, no bound near: where the parts meet was
    read in a window widened to the nearest white space, a key's line from there, so 500 characters of it held
    neither its BEGIN nor its END line, and each part, masked on its own, held no key either: both halves were
    captured. With a custom pattern, whose value may be any length, the parts are read joined whole as captured."""
    _, upstream = vllm
    config = CONFIG.replace(
        "detectors: [email]", f"detectors: [email, {{name: private_key, pattern: '{_PEM_PATTERN}'}}]"
    )
    proxy = make_proxy(config, UPSTREAM=upstream, OTLP=str(otlp.port))
    key = _long_key(20)
    half = len(key) // 2
    parts = [{"type": "text", "text": "my key:\n" + key[:half]}, {"type": "text", "text": key[half:] + "thanks"}]
    sent = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": parts}]},
        timeout=30,
    )
    assert sent.status_code == 200, sent.text
    span = otlp.by_trace(sent.headers["x-trace-id"])
    assert "pii:private_key" in span.attributes["lineage.input.labels"]  # the call is labelled so
    messages = json.loads(span.attributes["gen_ai.input.messages"])
    captured = "\n".join(part["content"] for message in messages for part in message["parts"])
    assert "PRIVATE KEY" not in captured and key.splitlines()[3] not in captured, captured[:300]
    assert captured == "[withheld: a detected value is split across content parts]"
    # parts that hold no split value are captured as ever, each masked on its own
    parts = [{"type": "text", "text": f"my key:\n{key}"}, {"type": "text", "text": "thanks"}]
    assert (
        _captured(proxy, otlp, "/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": parts}]})
        == "my key:\n[pii:private_key]\n\nthanks"
    )


def test_a_value_split_across_parts_past_the_scan_limit_of_their_run_is_not_captured_with_a_custom_pattern(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver
) -> None:
    """With a custom pattern the parts run together are read joined whole, but only as far as the scan limit: an
    address split across the last two parts of a run longer than that was not seen and was captured, a half in each
    (where the parts meet, read as without a custom pattern, it is)."""
    _, upstream = vllm
    config = CONFIG.replace(
        "detectors: [email]",
        "detectors: [email, {name: token, pattern: 'sk-[a-z0-9]{20}'}]\nlimits: {scan_max_chars: 8000}",
    )
    proxy = make_proxy(config, UPSTREAM=upstream, OTLP=str(otlp.port))
    parts = [
        {"type": "text", "text": "word " * 1000},
        {"type": "text", "text": "word " * 700},
        {"type": "text", "text": "hello john.smith@exa"},
        {"type": "text", "text": "mple.org bye"},
    ]
    body = {"model": "m", "messages": [{"role": "user", "content": parts}]}
    captured = _captured(proxy, otlp, "/v1/chat/completions", body)
    assert "john" not in captured, captured[-100:]
    assert captured == "[withheld: a detected value is split across content parts]"


def test_a_custom_value_split_across_parts_past_the_scan_limit_of_their_run_is_not_captured(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver
) -> None:
    """A PEM key split mid-line across the last two parts of a run the scan limit cuts: its joined read is cut
    before the key, so where the parts meet is read as well, in windows that stop at a line's end, where no key
    is whole: the call was labelled `pii:private_key` (where parts meet is read farther for custom patterns) and its
    key captured all the same, a half in each part (since 9799b8f). Where the parts meet is read as detection reads it."""
    _, upstream = vllm
    config = CONFIG.replace(
        "detectors: [email]",
        f"detectors: [email, {{name: private_key, pattern: '{_PEM_PATTERN}'}}]\nlimits: {{scan_max_chars: 8000}}",
    )
    proxy = make_proxy(config, UPSTREAM=upstream, OTLP=str(otlp.port))
    key = _long_key(20)
    cut = key.index("\n", len(key) // 2) - 30  # mid-line
    parts = [
        {"type": "text", "text": "word " * 1000},
        {"type": "text", "text": "word " * 700},
        {"type": "text", "text": "my key:\n" + key[:cut]},
        {"type": "text", "text": key[cut:] + "thanks"},
    ]
    sent = httpx.post(
        f"{proxy.url}/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": parts}]},
        timeout=30,
    )
    assert sent.status_code == 200, sent.text
    span = otlp.by_trace(sent.headers["x-trace-id"])
    assert "pii:private_key" in span.attributes["lineage.input.labels"]  # the call is labelled so
    messages = json.loads(span.attributes["gen_ai.input.messages"])
    captured = "\n".join(part["content"] for message in messages for part in message["parts"])
    assert "PRIVATE KEY" not in captured and key.splitlines()[3] not in captured, captured[-300:]
    assert captured == "[withheld: a detected value is split across content parts]"


def test_a_value_split_in_a_run_after_one_the_scan_limit_ends_in_is_not_captured_with_a_custom_pattern(
    vllm: tuple[VllmLike, str], make_proxy: Callable[..., ProxyHandle], otlp: OtlpReceiver
) -> None:
    """The runs are read joined as far as the scan limit: a run that ends exactly there left the runs after it unread,
    and the reading, no longer than the limit, did not say it was cut: an address split across the parts of the next
    message was captured, a half in each."""
    _, upstream = vllm
    config = CONFIG.replace(
        "detectors: [email]",
        "detectors: [email, {name: token, pattern: 'sk-[a-z0-9]{20}'}]\nlimits: {scan_max_chars: 8000}",
    )
    proxy = make_proxy(config, UPSTREAM=upstream, OTLP=str(otlp.port))
    words = ("word " * 800).strip() + "s"  # 4,000 characters, white space only within (no trimmed copy of the run)
    first = [{"type": "text", "text": words}, {"type": "text", "text": words}]  # 8,000 characters joined
    second = [{"type": "text", "text": "hello john.smith@exa"}, {"type": "text", "text": "mple.org bye"}]
    body = {"model": "m", "messages": [{"role": "user", "content": first}, {"role": "user", "content": second}]}
    captured = _captured(proxy, otlp, "/v1/chat/completions", body)
    assert "john" not in captured, captured[-100:]
    assert captured == "[withheld: a detected value is split across content parts]"
