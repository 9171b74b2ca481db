"""What the README says of revocation, held to: the listeners check no CRL (nor OCSP). A client certificate its
CA has revoked, with that CA's CRL in the `client_ca` file, still completes a handshake on both listeners and
identifies its caller: short-lived certificates, and a reload without the CA or the caller, are what cut one off."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from proxy.config import Tls
from proxy.ingress.grpc import _certificates
from proxy.tls import identities_from_auth_context, identities_from_peercert, server_context
from tests.certs import Authority, Pair


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    directory = tmp_path_factory.mktemp("pki")
    ca = Authority(directory)
    revoked = ca.issue("revoked", common_name="batch-job")
    now = dt.datetime.now(dt.UTC)
    serial = x509.load_pem_x509_certificate(revoked.cert.read_bytes()).serial_number
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now - dt.timedelta(minutes=1))
        .next_update(now + dt.timedelta(days=1))
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(now - dt.timedelta(minutes=1))
            .build()
        )
        .sign(ca.key, hashes.SHA256())
    )
    client_ca = directory / "client-ca-with-crl.pem"
    client_ca.write_bytes(ca.pair.cert.read_bytes() + crl.public_bytes(serialization.Encoding.PEM))
    return {
        "ca": ca,
        "server": ca.issue("server", common_name="lineage-proxy", server=True),
        "revoked": revoked,
        "client_ca": client_ca,
    }


def test_a_revoked_client_certificate_is_accepted_over_https(pki) -> None:  # type: ignore[no-untyped-def]
    server: Pair = pki["server"]
    listening = server_context(Tls(str(server.cert), str(server.key), str(pki["client_ca"]), True))
    client = ssl.create_default_context(cafile=str(pki["ca"].pair.cert))
    client.load_cert_chain(str(pki["revoked"].cert), str(pki["revoked"].key))
    ends = [ssl.MemoryBIO() for _ in range(4)]  # client -> server, server -> client
    near = client.wrap_bio(ends[1], ends[0], server_hostname="127.0.0.1")
    far = listening.wrap_bio(ends[0], ends[1], server_side=True)
    done = [False, False]
    for _ in range(10):  # the handshake's flights, passed in memory
        for index, side in enumerate((near, far)):
            if not done[index]:
                try:
                    side.do_handshake()
                    done[index] = True
                except ssl.SSLWantReadError:
                    pass
    assert done == [True, True]
    assert identities_from_peercert(far.getpeercert()) == ("CN=batch-job",)


def test_a_revoked_client_certificate_is_accepted_over_grpc(pki) -> None:  # type: ignore[no-untyped-def]
    server: Pair = pki["server"]
    seen: list[tuple[str, ...]] = []

    async def main() -> None:
        async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            seen.append(identities_from_auth_context(context.auth_context()))
            return request

        listener = grpc.aio.server()
        handler = grpc.method_handlers_generic_handler("t.T", {"Echo": grpc.unary_unary_rpc_method_handler(echo)})
        listener.add_generic_rpc_handlers((handler,))
        tls = Tls(str(server.cert), str(server.key), str(pki["client_ca"]), True)
        certificates, _ = _certificates(tls)  # as the proxy's gRPC listener makes its credentials
        credentials = grpc.dynamic_ssl_server_credentials(
            certificates, lambda: None, require_client_authentication=True
        )
        port = listener.add_secure_port("127.0.0.1:0", credentials)
        await listener.start()
        try:
            own = grpc.ssl_channel_credentials(
                pki["ca"].pair.cert.read_bytes(), pki["revoked"].key.read_bytes(), pki["revoked"].cert.read_bytes()
            )
            async with grpc.aio.secure_channel(f"127.0.0.1:{port}", own) as channel:
                assert await channel.unary_unary("/t.T/Echo")(b"x", timeout=10) == b"x"
        finally:
            await listener.stop(None)

    asyncio.run(main())
    assert seen == [("CN=batch-job",)]
