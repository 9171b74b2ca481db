"""An expired listener certificate is refused by `check`, at start and by a reload (which keeps the one in
force): OpenSSL loads one, every client then fails its handshake (`certificate has expired`), and the
proxy, which only sees handshakes fail, said nothing. A certificate not yet valid is left alone (a clock
a second behind its issuer's would otherwise refuse every fresh renewal)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from proxy.config import parse
from proxy.errors import ConfigError
from tests.certs import Authority, Pair
from tests.servers.vllm_like import SERVED

CONFIG = """
listen:
  http: 127.0.0.1:0
  tls:
    cert: ${CERT}
    key: ${KEY}
upstreams:
  - name: vllm
    url: ${UPSTREAM}
routes:
  - model: "*"
    upstream: vllm
policy:
  anonymous: allow
lineage:
  store: ${STORE}
"""


def server_certificate(ca: Authority, name: str, not_before: dt.datetime, not_after: dt.datetime) -> Pair:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lineage-proxy")]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(ca.key, hashes.SHA256())
    )
    pair = Pair(ca.directory / f"{name}.crt", ca.directory / f"{name}.key")
    # a chain file, as issuers hand them: the leaf, then its CA
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + ca.pair.cert.read_bytes())
    pair.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return pair


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pair | Authority]:
    ca = Authority(tmp_path_factory.mktemp("pki"))
    now = dt.datetime.now(dt.UTC)
    day = dt.timedelta(days=1)
    return {
        "ca": ca,
        "valid": server_certificate(ca, "valid", now - day, now + day),
        "expired": server_certificate(ca, "expired", now - 10 * day, now - day),
        "early": server_certificate(ca, "early", now + dt.timedelta(minutes=1), now + day),
    }


def values(pair: Pair, **more: str) -> dict[str, str]:
    return {"CERT": str(pair.cert), "KEY": str(pair.key), "UPSTREAM": "http://127.0.0.1:1", "STORE": "x.db", **more}


def test_an_expired_certificate_is_a_config_problem(pki) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as caught:
        parse(CONFIG, env=values(pki["expired"]))
    assert [problem for problem in caught.value.problems if "listen.tls" in problem] == [
        "listen.tls: cannot use the certificate, key or client_ca: the certificate expired at "
        f"{_not_after(pki['expired'].cert):%Y-%m-%d %H:%M:%S} UTC (its notAfter): every client would refuse it; renew it"
    ]
    parse(CONFIG, env=values(pki["valid"]))
    parse(CONFIG, env=values(pki["early"]))  # not yet valid: loaded (its clock may be the one behind)


def _not_after(path: Path) -> dt.datetime:
    return x509.load_pem_x509_certificate(path.read_bytes()).not_valid_after_utc


def served(pki, port: int) -> bytes:  # type: ignore[no-untyped-def]
    context = ssl.create_default_context(cafile=str(pki["ca"].pair.cert))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
    ):
        return conn.getpeercert(binary_form=True) or b""


def test_a_reload_to_an_expired_certificate_is_refused_and_the_old_one_served(
    vllm, make_proxy, loop_thread, pki, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    proxy = make_proxy(CONFIG, UPSTREAM=upstream, CERT=str(pki["valid"].cert), KEY=str(pki["valid"].key))
    text = CONFIG
    for name, value in values(pki["expired"], UPSTREAM=upstream, STORE=str(tmp_path / "l.db")).items():
        text = text.replace("${" + name + "}", value)
    path = tmp_path / "expired.yaml"
    path.write_text(text)

    async def reload() -> bool:
        return bool(proxy.process.reload(str(path)))

    assert not loop_thread.run(reload())
    leaf = x509.load_pem_x509_certificate(pki["valid"].cert.read_bytes())  # the first of the chain file
    assert served(pki, proxy.bound.http.port) == leaf.public_bytes(serialization.Encoding.DER)
    context = ssl.create_default_context(cafile=str(pki["ca"].pair.cert))
    reply = httpx.get(f"https://{proxy.bound.http}/v1/models", verify=context, timeout=10)  # the client's view
    assert reply.status_code == 200 and reply.json()["data"][0]["id"] == SERVED
