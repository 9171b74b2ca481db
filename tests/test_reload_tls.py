"""A reload applies the whole of `listen.tls` to new connections: certificate, key, client CA and whether
a client certificate is required (proxy.tls.ListenerTls, checked with real handshakes on uvloop and
asyncio), and the gRPC listener takes a new server for it; connections and TLS sessions from before a change
of client authentication do not outlive it. What cannot be applied without a restart is refused, with the
old config kept."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import uvloop

from proxy.config import Tls
from proxy.tls import ListenerTls, identities_from_peercert
from tests.certs import Authority, Pair
from tests.servers.vllm_like import SERVED

GLASSES = "spiffe://example.org/glasses"


class Pki:
    def __init__(self, directory: Path) -> None:
        self.server_ca = Authority(directory, "server CA")
        self.server = self.server_ca.issue("server", common_name="lineage-proxy", server=True)
        self.renewed = self.server_ca.issue("renewed", common_name="lineage-proxy", server=True)
        (directory / "one").mkdir()
        (directory / "two").mkdir()
        self.ca1 = Authority(directory / "one", "client CA one")
        self.ca2 = Authority(directory / "two", "client CA two")
        self.glasses1 = self.ca1.issue("glasses", common_name="glasses", spiffe_id=GLASSES)
        self.glasses2 = self.ca2.issue("glasses", common_name="glasses", spiffe_id=GLASSES)
        self.stranger1 = self.ca1.issue("stranger", common_name="stranger", spiffe_id="spiffe://example.org/x")
        self.stranger2 = self.ca2.issue("stranger", common_name="stranger", spiffe_id="spiffe://example.org/x")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def tls(pki: Pki, ca: Authority | None, *, require: bool = False, server: Pair | None = None) -> Tls:
    pair = server or pki.server
    return Tls(str(pair.cert), str(pair.key), str(ca.pair.cert) if ca else None, require)


# -- ListenerTls on its own: a listener on each event loop, real handshakes


class Answer(asyncio.Protocol):
    """Writes back what the client's certificate proved, as the HTTP listener reads it."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        proved = identities_from_peercert(transport.get_extra_info("peercert"))
        transport.write((",".join(proved) or "-").encode() + b"\n")  # type: ignore[attr-defined]


def client_context(pki: Pki, who: Pair | None, version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.server_ca.pair.cert))
    if version is not None:
        context.maximum_version = context.minimum_version = version
    if who is not None:
        context.load_cert_chain(str(who.cert), str(who.key))
    return context


def handshake(
    port: int, context: ssl.SSLContext, session: ssl.SSLSession | None = None
) -> tuple[str, ssl.SSLSession | None, bytes]:
    """(what the server says the certificate proved, or `refused`; the session; the server's certificate)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="localhost", session=session) as conn:
                served = conn.getpeercert(binary_form=True) or b""
                line = conn.recv(1024)  # TLS 1.3: a refused client certificate shows here, after the handshake
                if not line:
                    return "refused", None, served
                return line.decode().strip(), conn.session, served
        except (ssl.SSLError, ConnectionError):
            return "refused", None, b""


LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "uvloop": uvloop.new_event_loop,
    "asyncio": asyncio.new_event_loop,
}


def run_on(loop_name: str, main: Coroutine[Any, Any, None]) -> None:
    """Run `main` to its end on a new event loop of that kind."""
    loop = LOOPS[loop_name]()
    try:
        loop.run_until_complete(main)
    finally:
        loop.close()


@pytest.mark.parametrize("loop_name", list(LOOPS))
def test_a_reload_replaces_certificate_client_ca_and_verify_mode_for_new_handshakes(pki: Pki, loop_name: str) -> None:
    der = {pair: ssl.PEM_cert_to_DER_cert(pair.cert.read_text()) for pair in (pki.server, pki.renewed)}

    async def main() -> None:
        listener = ListenerTls(tls(pki, pki.ca1))
        server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", 0, ssl=listener.context)
        port = server.sockets[0].getsockname()[1]

        async def call(who: Pair | None) -> tuple[str, bytes]:
            said, _, served = await asyncio.to_thread(handshake, port, client_context(pki, who))
            return said, served

        try:
            assert await call(pki.glasses1) == (GLASSES, der[pki.server])
            assert (await call(None))[0] == "-"  # optional: no certificate, no identity
            assert (await call(pki.glasses2))[0] == "refused"  # a CA not trusted yet

            assert listener.reload(tls(pki, pki.ca2, require=True, server=pki.renewed))  # client auth changed
            assert await call(pki.glasses2) == (GLASSES, der[pki.renewed])
            assert (await call(pki.glasses1))[0] == "refused"  # the CA a reload took away
            assert (await call(None))[0] == "refused"  # now required

            assert listener.reload(tls(pki, None))  # no client CA: no certificate is asked for
            assert await call(pki.glasses1) == ("-", der[pki.server])
            assert await call(pki.glasses2) == ("-", der[pki.server])

            assert not listener.reload(tls(pki, None, server=pki.renewed))  # only the certificate: no auth change
            assert await call(None) == ("-", der[pki.renewed])
        finally:
            server.close()
            await server.wait_closed()

    run_on(loop_name, main())


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
@pytest.mark.parametrize("loop_name", list(LOOPS))
def test_a_session_from_before_a_client_ca_change_is_not_resumed(
    pki: Pki, loop_name: str, version: ssl.TLSVersion
) -> None:
    """Resuming a TLS session skips the client certificate check: the identity a CA1 certificate proved
    would outlive CA1's removal. Such a resumption is refused; resumption without a change still works."""

    async def main() -> None:
        listener = ListenerTls(tls(pki, pki.ca1))
        server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", 0, ssl=listener.context)
        port = server.sockets[0].getsockname()[1]
        context = client_context(pki, pki.glasses1, version)
        try:
            said, session, _ = await asyncio.to_thread(handshake, port, context)
            assert said == GLASSES and session is not None
            said, again, _ = await asyncio.to_thread(handshake, port, context, session)
            assert said == GLASSES and again is not None  # resumed (or not), identified: nothing changed

            assert not listener.reload(tls(pki, pki.ca1, server=pki.renewed))  # a renewed server certificate
            said, again, _ = await asyncio.to_thread(handshake, port, context, again)
            assert said == GLASSES and again is not None

            assert listener.reload(tls(pki, pki.ca2))
            said, _, _ = await asyncio.to_thread(handshake, port, context, again)
            assert said == "refused"
        finally:
            server.close()
            await server.wait_closed()

    run_on(loop_name, main())


def test_resumption_is_what_the_refusal_is_about(pki: Pki) -> None:
    """The client above does resume when nothing changed (else the refusal test would prove nothing)."""

    async def main() -> None:
        listener = ListenerTls(tls(pki, pki.ca1))
        server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", 0, ssl=listener.context)
        port = server.sockets[0].getsockname()[1]
        context = client_context(pki, pki.glasses1, ssl.TLSVersion.TLSv1_2)

        def twice() -> bool:
            _, session, _ = handshake(port, context)
            with (
                socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
                context.wrap_socket(raw, server_hostname="localhost", session=session) as conn,
            ):
                conn.recv(1024)
                return conn.session_reused

        try:
            assert await asyncio.to_thread(twice)
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(main())


# -- the proxy: reloads with SIGHUP's code path, real clients

CONFIG = """
listen:
  http: 127.0.0.1:0GRPC
  tls:
    cert: SERVER_CERT
    key: SERVER_KEY
CLIENT_CA
upstreams:
  - name: vllm
    url: ${UPSTREAM}
routes:
  - model: "*"
    upstream: vllm
callers:
CALLERS
policy:
  anonymous: deny
lineage:
  store: ${STORE}
"""
BY_CERTIFICATE = f"""  - name: glasses
    tls_identity: {GLASSES}
    purposes: [assistant]
    default_purpose: assistant"""
BY_KEY = """  - name: ops
    api_key_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"""


def config(
    pki: Pki, ca: Authority | None, *, require: bool = False, grpc: bool = False, listen_tls: bool = True
) -> str:
    client_ca = f"    client_ca: {ca.pair.cert}\n    require_client_cert: {str(require).lower()}" if ca else ""
    text = (CONFIG.replace("GRPC", "\n  grpc: 127.0.0.1:0" if grpc else "")
            .replace("SERVER_CERT", str(pki.server.cert)).replace("SERVER_KEY", str(pki.server.key))
            .replace("CLIENT_CA", client_ca).replace("CALLERS", BY_CERTIFICATE if ca else BY_KEY))  # fmt: skip
    if not listen_tls:
        text = text.replace(text[text.index("  tls:") : text.index("upstreams:")], "")
    return text


def reload(proxy, loop_thread, path: Path, text: str, **values: str) -> bool:  # type: ignore[no-untyped-def]
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    path.write_text(text)

    async def run() -> bool:
        done = bool(proxy.process.reload(str(path)))
        await proxy.process.settled()  # the gRPC listener's new server is serving
        return done

    return loop_thread.run(run())


def https(pki: Pki, who: Pair | None) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(pki.server_ca.pair.cert))
    if who is not None:
        context.load_cert_chain(str(who.cert), str(who.key))
    return httpx.Client(verify=context, timeout=10)


def chat(client: httpx.Client, proxy) -> httpx.Response:  # type: ignore[no-untyped-def]
    return client.post(f"https://{proxy.bound.http}/v1/chat/completions",
                       json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip


def test_a_reload_to_another_client_ca_revokes_the_old_one(
    vllm, make_proxy, loop_thread, pki: Pki, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """The review's case (tls1.yaml → tls2.yaml): a certificate from CA1 was still accepted and identified."""
    server, upstream = vllm
    proxy = make_proxy(config(pki, pki.ca1), UPSTREAM=upstream)
    assert chat(https(pki, pki.glasses1), proxy).headers["x-lineage-decision"] == "allow"
    assert reload(proxy, loop_thread, tmp_path / "ca2.yaml", config(pki, pki.ca2), UPSTREAM=upstream,
                  STORE=str(tmp_path / "lineage.db"))  # fmt: skip
    with pytest.raises(httpx.TransportError):
        chat(https(pki, pki.glasses1), proxy)
    assert chat(https(pki, pki.glasses2), proxy).headers["x-lineage-decision"] == "allow"
    assert len(server.data_requests()) == 2


def test_an_open_connection_does_not_outlive_a_client_ca_change(
    vllm, make_proxy, loop_thread, pki: Pki, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(config(pki, pki.ca1), UPSTREAM=upstream)
    client = https(pki, pki.glasses1)  # keeps its connection open between calls
    assert chat(client, proxy).status_code == 200
    assert reload(proxy, loop_thread, tmp_path / "ca2.yaml", config(pki, pki.ca2), UPSTREAM=upstream,
                  STORE=str(tmp_path / "lineage.db"))  # fmt: skip
    with pytest.raises(httpx.TransportError):  # the old connection was closed; a new one is refused
        chat(client, proxy)
    assert len(server.data_requests()) == 1


def test_a_reload_that_requires_a_client_certificate_refuses_handshakes_without_one(
    vllm, make_proxy, loop_thread, pki: Pki, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    proxy = make_proxy(config(pki, pki.ca1), UPSTREAM=upstream)
    assert chat(https(pki, None), proxy).status_code == 401  # optional: anonymous, and anonymous is denied
    assert reload(proxy, loop_thread, tmp_path / "required.yaml", config(pki, pki.ca1, require=True),
                  UPSTREAM=upstream, STORE=str(tmp_path / "lineage.db"))  # fmt: skip
    with pytest.raises(httpx.TransportError):
        chat(https(pki, None), proxy)
    assert chat(https(pki, pki.glasses1), proxy).status_code == 200


def test_a_reload_that_drops_the_client_ca_asks_for_no_certificate(
    vllm, make_proxy, loop_thread, pki: Pki, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Dropping `client_ca` was ignored: certificates were still asked for and checked against it."""
    _, upstream = vllm
    proxy = make_proxy(config(pki, pki.ca1), UPSTREAM=upstream)
    with pytest.raises(httpx.TransportError):  # a certificate from a CA the listener does not trust
        chat(https(pki, pki.glasses2), proxy)
    assert reload(proxy, loop_thread, tmp_path / "none.yaml", config(pki, None), UPSTREAM=upstream,
                  STORE=str(tmp_path / "lineage.db"))  # fmt: skip
    reply = chat(https(pki, pki.glasses2), proxy)  # never asked for, so never checked: the call is anonymous
    assert reply.status_code == 401 and "missing API key" in reply.json()["error"]["message"]


def test_what_a_restart_would_apply_is_refused_and_the_old_config_stays(
    vllm, make_proxy, loop_thread, pki: Pki, tmp_path: Path, caplog
) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    proxy = make_proxy(config(pki, pki.ca1, require=True, grpc=True), UPSTREAM=upstream)
    caplog.set_level(logging.ERROR, logger="lineage_proxy")
    values = {"UPSTREAM": upstream, "STORE": str(tmp_path / "lineage.db")}
    path = tmp_path / "next.yaml"
    assert not reload(proxy, loop_thread, path, config(pki, pki.ca1, grpc=True, listen_tls=False).replace(
        BY_CERTIFICATE, BY_KEY), **values)  # fmt: skip
    refusals = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert refusals == ["reload refused; the old config stays in force. listen.tls was added or removed: restart to "
                        "apply it"]  # fmt: skip
    assert proxy.process.config.listen.tls is not None and proxy.process.config.listen.tls.require_client_cert
    with pytest.raises(httpx.TransportError):  # still required on HTTP too: nothing of the refused config applied
        chat(https(pki, None), proxy)


ADMITTED = "admitted"


def live(pki: Pki, proxy, who: Pair | None, channel: grpc.Channel | None = None) -> grpc.StatusCode | str:  # type: ignore[no-untyped-def]
    """A data-free gRPC call (ServerLive) as `who`, on `channel` (kept open by the caller) or a new one:
    its status, or ADMITTED when the proxy identified the caller and went on to look for a gRPC upstream
    (these tests configure none)."""
    if channel is None:
        with grpc_channel(pki, proxy, who) as fresh:
            return live(pki, proxy, who, fresh)
    try:
        channel.unary_unary("/inference.GRPCInferenceService/ServerLive")(b"", timeout=10)
    except grpc.RpcError as exc:
        if "no gRPC upstream is configured" in (exc.details() or ""):
            return ADMITTED
        return exc.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def grpc_channel(pki: Pki, proxy, who: Pair | None) -> grpc.Channel:  # type: ignore[no-untyped-def]
    credentials = grpc.ssl_channel_credentials(pki.server_ca.pair.cert.read_bytes(),
                                               who.key.read_bytes() if who else None,
                                               who.cert.read_bytes() if who else None)  # fmt: skip
    return grpc.secure_channel(f"localhost:{proxy.bound.grpc.port}", credentials)


def test_the_grpc_listener_takes_a_new_client_ca_on_reload(
    vllm, make_proxy, loop_thread, pki: Pki, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    proxy = make_proxy(config(pki, pki.ca1, require=True, grpc=True), UPSTREAM=upstream)
    assert live(pki, proxy, pki.stranger1) == grpc.StatusCode.UNAUTHENTICATED  # the handshake passed; no caller
    assert live(pki, proxy, pki.stranger2) == grpc.StatusCode.UNAVAILABLE  # no handshake
    assert reload(proxy, loop_thread, tmp_path / "ca2.yaml", config(pki, pki.ca2, require=True, grpc=True),
                  UPSTREAM=upstream, STORE=str(tmp_path / "lineage.db"))  # fmt: skip
    assert live(pki, proxy, pki.stranger1) == grpc.StatusCode.UNAVAILABLE
    assert live(pki, proxy, pki.stranger2) == grpc.StatusCode.UNAUTHENTICATED


def test_an_open_grpc_connection_does_not_outlive_a_client_ca_change(
    vllm, make_proxy, loop_thread, pki: Pki, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A gRPC connection kept the identity its handshake proved after the client CA that signed it was
    dropped: grpc cannot close a connection, so a reload now gives the listener a new server and the old
    one sends its connections GOAWAY; the client's next call needs a new handshake, which fails."""
    _, upstream = vllm
    proxy = make_proxy(config(pki, pki.ca1, require=True, grpc=True), UPSTREAM=upstream)
    with grpc_channel(pki, proxy, pki.glasses1) as channel:
        assert live(pki, proxy, pki.glasses1, channel) == ADMITTED
        assert reload(proxy, loop_thread, tmp_path / "ca2.yaml", config(pki, pki.ca2, require=True, grpc=True),
                      UPSTREAM=upstream, STORE=str(tmp_path / "lineage.db"))  # fmt: skip
        # a new handshake, refused (UNAVAILABLE); or, when the call went out on the old connection before the
        # client read its GOAWAY, grpc's core had read it but not handed it to the proxy when the old server
        # stopped, and ended it itself (CANCELLED; README, TLS)
        assert live(pki, proxy, pki.glasses1, channel) in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    assert live(pki, proxy, pki.glasses2) == ADMITTED


def test_the_grpc_listener_takes_require_client_cert_on_reload(
    vllm, make_proxy, loop_thread, pki: Pki, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """It was refused (the gRPC listener asked for certificates as it started): now applied both ways."""
    _, upstream = vllm
    proxy = make_proxy(config(pki, pki.ca1, require=True, grpc=True), UPSTREAM=upstream)
    values = {"UPSTREAM": upstream, "STORE": str(tmp_path / "lineage.db")}
    assert live(pki, proxy, None) == grpc.StatusCode.UNAVAILABLE  # no certificate: no handshake
    assert reload(proxy, loop_thread, tmp_path / "optional.yaml", config(pki, pki.ca1, require=False, grpc=True),
                  **values)  # fmt: skip
    assert live(pki, proxy, None) == grpc.StatusCode.UNAUTHENTICATED  # a handshake; no key, no certificate: anonymous
    assert reload(proxy, loop_thread, tmp_path / "required.yaml", config(pki, pki.ca1, require=True, grpc=True),
                  **values)  # fmt: skip
    assert live(pki, proxy, None) == grpc.StatusCode.UNAVAILABLE
    assert live(pki, proxy, pki.glasses1) == ADMITTED


def served_certificate(pki: Pki, port: int) -> bytes:
    context = client_context(pki, None)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as conn,
    ):
        return conn.getpeercert(binary_form=True) or b""


def renewable(pki: Pki, directory: Path, grpc: bool) -> tuple[str, Path, Path]:
    """A config whose listener certificate and key are files the test renews in place."""
    cert, key = directory / "tls.crt", directory / "tls.key"
    cert.write_bytes(pki.server.cert.read_bytes())
    key.write_bytes(pki.server.key.read_bytes())
    text = config(pki, pki.ca1, grpc=grpc)
    return text.replace(str(pki.server.cert), str(cert)).replace(str(pki.server.key), str(key)), cert, key


def test_a_certificate_renewed_in_place_is_served_after_a_reload(
    vllm, make_proxy, loop_thread, pki: Pki, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """cert-manager and the like renew the files under the same names: SIGHUP now loads them (it did only
    when `listen.tls` named other files)."""
    _, upstream = vllm
    text, cert, key = renewable(pki, tmp_path, grpc=False)
    proxy = make_proxy(text, UPSTREAM=upstream)
    assert served_certificate(pki, proxy.bound.http.port) == ssl.PEM_cert_to_DER_cert(pki.server.cert.read_text())
    cert.write_bytes(pki.renewed.cert.read_bytes())
    key.write_bytes(pki.renewed.key.read_bytes())
    assert reload(proxy, loop_thread, tmp_path / "same.yaml", text, UPSTREAM=upstream, STORE=str(tmp_path / "l.db"))
    assert served_certificate(pki, proxy.bound.http.port) == ssl.PEM_cert_to_DER_cert(pki.renewed.cert.read_text())
    assert chat(https(pki, pki.glasses1), proxy).headers["x-lineage-decision"] == "allow"


def test_files_renewed_in_place_are_served_by_the_grpc_listener_after_a_reload(
    vllm, make_proxy, loop_thread, pki: Pki, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """The gRPC listener read its files again only when `listen.tls` named other ones, so such a reload was
    refused: now its new server reads them."""
    _, upstream = vllm
    text, cert, key = renewable(pki, tmp_path, grpc=True)
    proxy = make_proxy(text, UPSTREAM=upstream)
    values = {"UPSTREAM": upstream, "STORE": str(tmp_path / "l.db")}
    original, renewed = (ssl.PEM_cert_to_DER_cert(p.cert.read_text()) for p in (pki.server, pki.renewed))
    assert served_certificate(pki, proxy.bound.grpc.port) == original
    assert reload(proxy, loop_thread, tmp_path / "same.yaml", text, **values)  # nothing renewed: fine
    cert.write_bytes(pki.renewed.cert.read_bytes())
    key.write_bytes(pki.renewed.key.read_bytes())
    assert reload(proxy, loop_thread, tmp_path / "same.yaml", text, **values)
    assert served_certificate(pki, proxy.bound.grpc.port) == renewed
    assert served_certificate(pki, proxy.bound.http.port) == renewed
    assert live(pki, proxy, None) == grpc.StatusCode.UNAUTHENTICATED  # a handshake, then no key: anonymous


class Hung:
    """Files replaced by FIFOs nobody writes (`made`: replaced already), as files on a mount that hangs: a read of one
    waits for good (in the kernel). `release` lets a loop stuck reading one go (it reads an empty file)."""

    def __init__(self, *files: Path, made: bool = False) -> None:
        self.files = files
        for file in files if not made else ():
            file.unlink()
            os.mkfifo(file)

    def release(self, loop_thread) -> None:  # type: ignore[no-untyped-def]
        for _ in range(2 * len(self.files)):  # a stuck loop reads them one after the other
            for file in self.files:
                with contextlib.suppress(OSError):  # ENXIO: nobody reads it now
                    os.close(os.open(file, os.O_WRONLY | os.O_NONBLOCK))
            with contextlib.suppress(TimeoutError):
                loop_thread.run(asyncio.sleep(0), timeout=1)
                return


@pytest.mark.parametrize("change", ["renewed", "new server"])
def test_the_grpc_listener_takes_the_files_its_reload_read_off_the_event_loop(
    vllm, make_proxy, loop_thread, pki: Pki, tmp_path: Path, change: str
) -> None:  # type: ignore[no-untyped-def]
    """The reload read the listener's files off the event loop, and the gRPC listener then read them again on it (its
    certificate and key renewed in place: `_renewed_certificates`; a new server for other changes: `_open`): files on
    a mount that hung in between held every call and the stop for good. It now takes the bytes the reload read."""
    _, upstream = vllm
    text, cert, key = renewable(pki, tmp_path, grpc=True)
    proxy = make_proxy(text, UPSTREAM=upstream)
    path = tmp_path / "same.yaml"
    path.write_text((text + ("limits: {max_body_bytes: 2000000}\n" if change == "new server" else ""))
                    .replace("${UPSTREAM}", upstream).replace("${STORE}", str(tmp_path / "l.db")))  # fmt: skip
    cert.write_bytes(pki.renewed.cert.read_bytes())
    key.write_bytes(pki.renewed.key.read_bytes())
    new, files = proxy.process._load(str(path))  # a SIGHUP's load, off the loop (here the test's thread)
    hung = Hung(cert, key)  # their mount hangs from now on

    async def apply() -> bool:
        done = proxy.process.apply(new, str(path), files)
        await proxy.process.settled()
        return done

    try:
        assert loop_thread.run(apply(), timeout=20)
    except TimeoutError:
        pytest.fail("the event loop read the listener's files again, and waits on them")
    finally:
        hung.release(loop_thread)
    renewed = ssl.PEM_cert_to_DER_cert(pki.renewed.cert.read_text())
    assert served_certificate(pki, proxy.bound.grpc.port) == renewed
    assert served_certificate(pki, proxy.bound.http.port) == renewed
    assert live(pki, proxy, None) == grpc.StatusCode.UNAUTHENTICATED  # a handshake, then no key: anonymous
