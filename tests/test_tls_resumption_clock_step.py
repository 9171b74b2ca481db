"""A TLS session from before a change of client authentication is not resumed (proxy.tls.ListenerTls) whatever the
wall clock did in between. The refusal compared the session's time with the reload's, both wall times: a clock
stepped back (NTP correcting a VM's clock) between the session and a reload that took its client CA away put the
reload before the session, and the session resumed, the identity a removed CA proved accepted unchecked."""

from __future__ import annotations

import asyncio
import ssl
import time

import pytest

from proxy.tls import ListenerTls
from tests.test_reload_tls import GLASSES, LOOPS, Answer, Pki, client_context, handshake, pki, run_on, tls

__all__ = ["pki"]  # the module's PKI fixture, shared


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
@pytest.mark.parametrize("loop_name", list(LOOPS))
def test_a_session_from_before_a_client_ca_change_is_not_resumed_after_a_clock_step_back(
    pki: Pki, loop_name: str, version: ssl.TLSVersion, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def main() -> None:
        listener = ListenerTls(tls(pki, pki.ca1))
        server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", 0, ssl=listener.context)
        port = server.sockets[0].getsockname()[1]
        context = client_context(pki, pki.glasses1, version)
        try:
            said, session, _ = await asyncio.to_thread(handshake, port, context)
            assert said == GLASSES and session is not None
            wall = time.time
            monkeypatch.setattr(time, "time", lambda: wall() - 3600)  # the wall clock stepped back an hour
            assert listener.reload(tls(pki, pki.ca2))  # CA1 taken away
            said, _, _ = await asyncio.to_thread(handshake, port, context, session)
            assert said == "refused"
            said, _, _ = await asyncio.to_thread(handshake, port, client_context(pki, pki.glasses2, version))
            assert said == GLASSES  # a full handshake with a CA2 certificate is served
        finally:
            server.close()
            await server.wait_closed()

    run_on(loop_name, main())
