"""An `https://` upstream whose port accepts the connection but never completes the TLS handshake (a hung TLS
terminator, a port that is not the TLS one) is not reached within `connect_timeout_s`: the call is answered 502
`upstream_unavailable` naming that bound, as a gRPC upstream's is (tests/ingress/test_grpc_upstream_connect_timeout.py)
and as README's table has it for an upstream not reached. It was answered 504 `upstream_timeout`, "did not answer
within 600s" after one second, a limit that never ran, and the metadata probe's warning ended in nothing
("metadata not reachable: ")."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator

import openai
import pytest

CONFIG = """
listen:
  http: 127.0.0.1:0
upstreams:
  - name: vllm
    url: https://127.0.0.1:${PORT}
    connect_timeout_s: 0.5
    timeout_s: 600
routes:
  - model: "*"
    upstream: vllm
policy:
  anonymous: allow
lineage:
  store: ${STORE}
"""


@pytest.fixture
def mute() -> Iterator[int]:
    """A port that accepts connections and never says a word (no ServerHello)."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    done.set()
    listener.close()
    for conn in held:
        conn.close()


def test_an_upstream_tls_handshake_that_never_ends_is_an_unreachable_upstream(
    make_proxy, mute: int, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.WARNING, "lineage_proxy")
    proxy = make_proxy(CONFIG, wait="none", PORT=str(mute))
    client = openai.OpenAI(base_url=f"http://{proxy.bound.http}/v1", api_key="unused", max_retries=0, timeout=10)
    began = time.monotonic()
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], extra_headers={"x-purpose": "assistant"}
        )
    assert time.monotonic() - began < 5
    assert (failed.value.status_code, failed.value.code) == (502, "upstream_unavailable")
    assert "no connection within connect_timeout_s 0.5 (TCP connect and TLS handshake)" in failed.value.message
    warnings = [r.getMessage() for r in caplog.records if "metadata not reachable" in r.getMessage()]
    assert warnings and all(not message.endswith(": ") for message in warnings), warnings


def test_a_plain_http_upstream_that_never_answers_is_said_to_give_no_answer_in_time(
    make_proxy, mute: int, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    """Its metadata request ran out of time: the warning said `TimeoutError` alone (a hung server, README's first
    steps: `serve` waits for it, then says why it serves before it answered)."""
    caplog.set_level(logging.WARNING, "lineage_proxy")
    hung = CONFIG.replace("https://", "http://").replace("timeout_s: 600", "timeout_s: 1")
    make_proxy(hung, wait="probed", PORT=str(mute))
    warnings = [r.getMessage() for r in caplog.records if "metadata not reachable" in r.getMessage()]
    assert warnings, caplog.text
    assert warnings[0] == (f"upstream vllm: metadata not reachable at http://127.0.0.1:{mute}: no answer within 1s "
                           "(its timeout_s, at most 10s for metadata)")  # fmt: skip
