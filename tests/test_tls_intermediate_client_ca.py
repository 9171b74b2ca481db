"""`listen.tls.client_ca` naming an intermediate CA (the one that issues the callers' certificates, so that only its
clients are admitted, not everything its root signed) is trusted as it is named, on the HTTP listener as on the
gRPC one. The HTTP listener refused every client certificate (`unable to get local issuer certificate`: OpenSSL's
chain had to end at a self-signed root), silently, while the gRPC listener admitted the same certificates: one
client was a caller over gRPC and could not connect over HTTPS. A certificate from the root that is not under that
intermediate is still refused, and a reload that adds such a client_ca to a listener started without one takes it."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import grpc
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.certs import Authority, Pair
from tests.servers.vllm_like import SERVED

CONFIG = """
listen:
  http: 127.0.0.1:0
  grpc: 127.0.0.1:0
  tls:
    cert: ${CERT}
    key: ${KEY}
CLIENT_CA
upstreams:
  - name: vllm
    url: ${UPSTREAM}
routes:
  - model: "*"
    upstream: vllm
CALLERS
lineage:
  store: ${STORE}
"""
CLIENT_CA = "    client_ca: ${CLIENT_CA}\n    require_client_cert: true"
CALLERS = """callers:
  - name: batch
    tls_identity: CN=batch-job
    purposes: [evaluation]
    default_purpose: evaluation
policy:
  anonymous: deny"""
BY_KEY = """callers:
  - name: ops
    api_key_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    purposes: [evaluation]"""


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _signed(subject: str, issuer: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool,
            key: ec.EllipticCurvePrivateKey) -> x509.Certificate:  # fmt: skip
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


def _client(directory: Path, name: str, issuer: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey,
            chain: bytes) -> Pair:  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    pair = Pair(directory / f"{name}.crt", directory / f"{name}.key")
    pair.cert.write_bytes(_pem(_signed("batch-job", issuer, issuer_key, ca=False, key=key)) + chain)
    pair.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return pair


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | Pair | Authority]:
    directory = tmp_path_factory.mktemp("pki")
    root = Authority(directory, "root CA")
    intermediate_key = ec.generate_private_key(ec.SECP256R1())
    intermediate = _signed("clients CA", root.cert, root.key, ca=True, key=intermediate_key)
    (directory / "clients-ca.crt").write_bytes(_pem(intermediate))
    return {
        "root": root,
        "server": root.issue("server", common_name="lineage-proxy", server=True),
        "client_ca": directory / "clients-ca.crt",
        # the client sends its chain (its certificate, then the intermediate), as SPIRE's and cert-manager's do
        "member": _client(directory, "member", intermediate, intermediate_key, _pem(intermediate)),
        "outsider": _client(directory, "outsider", root.cert, root.key, b""),
    }


def values(pki, upstream: str, **more: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"CERT": str(pki["server"].cert), "KEY": str(pki["server"].key), "CLIENT_CA": str(pki["client_ca"]),
            "UPSTREAM": upstream, **more}  # fmt: skip


def over_https(pki, proxy, who: str) -> int | str:  # type: ignore[no-untyped-def]
    context = ssl.create_default_context(cafile=str(pki["root"].pair.cert))
    context.load_cert_chain(str(pki[who].cert), str(pki[who].key))
    try:
        reply = httpx.post(f"https://{proxy.bound.http}/v1/chat/completions", verify=context, timeout=10,
                           json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    except httpx.TransportError as exc:
        return type(exc).__name__
    return reply.status_code


def over_grpc(pki, proxy, who: str) -> bool:  # type: ignore[no-untyped-def]
    credentials = grpc.ssl_channel_credentials(
        pki["root"].pair.cert.read_bytes(), pki[who].key.read_bytes(), pki[who].cert.read_bytes()
    )
    with grpc.secure_channel(f"localhost:{proxy.bound.grpc.port}", credentials) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=2)
        except grpc.FutureTimeoutError:
            return False
        return True


def test_an_intermediate_client_ca_admits_its_clients_on_both_listeners(vllm, make_proxy, pki) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    text = CONFIG.replace("CLIENT_CA", CLIENT_CA).replace("CALLERS", CALLERS)
    proxy = make_proxy(text, **values(pki, upstream))
    assert over_https(pki, proxy, "member") == 200
    assert over_https(pki, proxy, "outsider") == "RemoteProtocolError"  # the root's, not the intermediate's
    assert over_grpc(pki, proxy, "member")  # (as it was)


def test_a_reload_adding_an_intermediate_client_ca_admits_its_clients(
    vllm, make_proxy, loop_thread, pki, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    proxy = make_proxy(CONFIG.replace("CLIENT_CA", "").replace("CALLERS", BY_KEY), **values(pki, upstream))
    text = CONFIG.replace("CLIENT_CA", CLIENT_CA).replace("CALLERS", CALLERS)
    for name, value in values(pki, upstream, STORE=str(tmp_path / "l.db")).items():
        text = text.replace("${" + name + "}", value)
    path = tmp_path / "with-ca.yaml"
    path.write_text(text)

    async def reload() -> bool:
        done = bool(proxy.process.reload(str(path)))
        await proxy.process.settled()
        return done

    assert loop_thread.run(reload())
    assert over_https(pki, proxy, "member") == 200
    assert over_https(pki, proxy, "outsider") == "RemoteProtocolError"
