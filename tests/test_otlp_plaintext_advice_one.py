"""The span exporter's advice for a TLS handshake that met a plain-HTTP collector is `errors.plaintext_hint`'s, the
upstream's own words with the collector's names: before 2026-12-05 `export._advice` held a second copy of the check,
which looked at the failure alone, so a handshake failure carried as another error's cause went without advice."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import pytest

from proxy.errors import plaintext_hint
from proxy.record.export import OtlpHttpSink, SinkOptions, _short
from tests.servers.otlp_http_receiver import OtlpHttpReceiver

ADVICE = " (the collector answered in plain HTTP, not TLS: if it serves http, write its endpoint with http://)"


@pytest.fixture
def handshake_failure() -> Iterator[ssl.SSLError]:
    """What an https:// OTLP/HTTP sink meets at a collector serving plain HTTP, as OpenSSL says it."""
    receiver = OtlpHttpReceiver()
    port = receiver.start()
    sink = OtlpHttpSink(f"https://127.0.0.1:{port}", 5.0, b"", b"", SinkOptions())
    try:
        with pytest.raises(ssl.SSLError) as caught:
            sink._exchange(b"")
        yield caught.value
    finally:
        sink.close()
        receiver.stop()


def test_a_handshake_failure_is_advised(handshake_failure: ssl.SSLError) -> None:
    assert _short(handshake_failure).endswith(ADVICE)
    assert plaintext_hint(handshake_failure, "collector", "endpoint") == ADVICE


def test_a_handshake_failure_as_a_cause_is_advised(handshake_failure: ssl.SSLError) -> None:
    try:
        raise OSError("the export's connection failed") from handshake_failure
    except OSError as wrapped:
        assert _short(wrapped).endswith(ADVICE)


def test_the_upstreams_words_are_kept(handshake_failure: ssl.SSLError) -> None:
    assert plaintext_hint(handshake_failure) == (
        " (the upstream answered in plain HTTP, not TLS: if it serves http, write its url with http://)"
    )
