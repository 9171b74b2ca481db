"""Certificates near their notAfter are warned of, and the proxy's own client certificate for an upstream is
refused once expired, as the listener's is.

A listener certificate, a CA in `client_ca`, or the proxy's client certificate for an upstream whose notAfter is
within 30 days is named (config key, file, date) by `check` (exit 0), at start and by a reload; nothing said so
before, and the first sign was every handshake failing. An expired client certificate for an upstream passed
`check` and every start, and each call then failed at the upstream's handshake. The listener certificate's
notAfter is `lineage_proxy_tls_certificate_expiry_timestamp_seconds` (no such series without TLS)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from proxy.cli import main
from proxy.config import parse
from proxy.errors import ConfigError
from tests.certs import Pair
from tests.harness import ServeProcess

ROOT = Path(__file__).resolve().parents[1]
DAY = dt.timedelta(days=1)

CONFIG = """
listen:
  http: 127.0.0.1:0
  tls:
    cert: ${CERT}
    key: ${KEY}
    client_ca: ${CLIENT_CA}
upstreams:
  - name: vllm
    url: ${UPSTREAM}
    tls:
      cert: ${UPSTREAM_CERT}
      key: ${UPSTREAM_KEY}
routes:
  - model: "*"
    upstream: vllm
policy:
  anonymous: allow
lineage:
  store: null
"""


def certificate(directory: Path, name: str, not_after: dt.datetime, issuer: tuple[x509.Certificate, Any] | None = None
                ) -> tuple[Pair, x509.Certificate, Any]:  # fmt: skip
    """A CA (no `issuer`: self-signed) or a certificate `issuer` signs, written with its key; a signed one's file is
    a chain, as issuers hand them: it, then its CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - 400 * DAY)
        .not_valid_after(not_after)
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                        critical=False)  # fmt: skip
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    pair = Pair(directory / f"{name}.crt", directory / f"{name}.key")
    chain = issuer[0].public_bytes(serialization.Encoding.PEM) if issuer else b""
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + chain)
    pair.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return pair, cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("pki")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    soon, later = now + 10 * DAY + dt.timedelta(hours=1), now + 90 * DAY
    _, ca_cert, ca_key = certificate(directory, "ca", now + 365 * DAY)
    issuer = (ca_cert, ca_key)
    bundle = directory / "bundle.crt"  # a client_ca bundle: a CA good for long, one expiring soon, one expired
    bundle.write_bytes(b"".join(certificate(directory, name, moment)[0].cert.read_bytes()
                                for name, moment in (("long", later), ("soon", soon), ("gone", now - DAY))))  # fmt: skip
    return {
        "now": now,
        "soon": soon,
        "later": later,
        "listener_soon": certificate(directory, "listener-soon", soon, issuer)[0],
        "listener_later": certificate(directory, "listener-later", later, issuer)[0],
        "client_soon": certificate(directory, "client-soon", soon, issuer)[0],
        "client_expired": certificate(directory, "client-expired", now - DAY, issuer)[0],
        "good_ca": directory / "long.crt",
        "bundle": bundle,
    }


def values(pki: dict[str, Any], listener: str, client: str, client_ca: str = "good_ca") -> dict[str, str]:
    pair: Pair = pki[listener]
    own: Pair = pki[client]
    return {
        "CERT": str(pair.cert), "KEY": str(pair.key), "CLIENT_CA": str(pki[client_ca]),
        "UPSTREAM": "https://127.0.0.1:1", "UPSTREAM_CERT": str(own.cert), "UPSTREAM_KEY": str(own.key),
    }  # fmt: skip


def written(text: str, env: dict[str, str], path: Path) -> Path:
    for name, value in env.items():
        text = text.replace("${" + name + "}", value)
    path.write_text(text)
    return path


def when(moment: dt.datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def test_certificates_near_their_end_are_warned_of(pki: dict[str, Any]) -> None:
    config = parse(CONFIG, env=values(pki, "listener_soon", "client_soon", "bundle"))
    soon, now = when(pki["soon"]), when(pki["now"] - DAY)
    renew = "from then on; renew it (a reload reads the renewed file)"
    assert list(config.warnings) == [
        f"listen.tls.cert: the certificate 1 of 2 in {pki['listener_soon'].cert} expires at {soon} (in 10 days): "
        f"clients refuse the listener's certificate {renew}",
        f"listen.tls.client_ca: the certificate 2 of 3 in {pki['bundle']} expires at {soon} (in 10 days): client "
        f"certificates it issued are refused {renew}",
        f"listen.tls.client_ca: the certificate 3 of 3 in {pki['bundle']} expired at {now} (its notAfter): client "
        "certificates it issued are refused now",
        f"upstreams[0].tls.cert: the certificate 1 of 2 in {pki['client_soon'].cert} expires at {soon} (in 10 days): "
        f"the upstream refuses the proxy's client certificate {renew}",
    ]
    assert parse(CONFIG, env=values(pki, "listener_later", "listener_later")).warnings == ()


def test_an_expired_client_certificate_for_an_upstream_is_a_config_problem(pki: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(CONFIG, env=values(pki, "listener_later", "client_expired"))
    expired = x509.load_pem_x509_certificate(pki["client_expired"].cert.read_bytes()).not_valid_after_utc
    assert caught.value.problems == [
        f"upstreams[0].tls: cannot use the ca, cert or key: the certificate expired at {when(expired)} (its notAfter): "
        "the upstream would refuse it; renew it"
    ]


def test_check_says_the_warnings_and_passes(pki: dict[str, Any], tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = written(CONFIG, values(pki, "listener_soon", "listener_later"), tmp_path / "proxy.yaml")
    assert main(["check", "--config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"{path}: ok")
    assert err == (f"warning: listen.tls.cert: the certificate 1 of 2 in {pki['listener_soon'].cert} expires at "
                   f"{when(pki['soon'])} (in 10 days): clients refuse the listener's certificate from then on; renew it "
                   "(a reload reads the renewed file)\n")  # fmt: skip


SERVED = """
listen:
  http: 127.0.0.1:0
  admin: 127.0.0.1:0
  tls:
    cert: ${CERT}
    key: ${KEY}
upstreams:
  - name: vllm
    url: http://127.0.0.1:1
routes:
  - model: "*"
    upstream: vllm
policy:
  anonymous: allow
lineage:
  store: null
"""
GAUGE = "lineage_proxy_tls_certificate_expiry_timestamp_seconds"


def gauge(text: str) -> list[float]:
    return [float(line.split()[1]) for line in text.splitlines() if line.startswith(GAUGE + " ")]


def test_start_and_reload_warn_and_the_gauge_follows(pki: dict[str, Any], tmp_path: Path) -> None:
    config = tmp_path / "proxy.yaml"
    written(SERVED, values(pki, "listener_soon", "listener_later"), config)
    proxy = ServeProcess(str(config), env={"PYTHONPATH": str(ROOT)})
    try:
        line = proxy.wait_log("listen.tls.cert: the certificate 1 of 2 in")
        assert " WARNING " in line and f"expires at {when(pki['soon'])} (in 10 days)" in line
        metrics = f"http://{proxy.addresses['admin']}/metrics"
        assert gauge(httpx.get(metrics, timeout=10).text) == [pki["soon"].timestamp()]
        written(SERVED, values(pki, "listener_later", "listener_later"), config)  # renewed: the gauge moves on
        proxy.signal(signal.SIGHUP)
        proxy.wait_log("reloaded")
        assert gauge(httpx.get(metrics, timeout=10).text) == [pki["later"].timestamp()]
        written(SERVED, values(pki, "listener_soon", "listener_later"), config)  # applied, and said
        proxy.signal(signal.SIGHUP)
        line = proxy.wait_log("reload: listen.tls.cert: the certificate 1 of 2 in")
        assert " WARNING " in line and f"expires at {when(pki['soon'])} (in 10 days)" in line
    finally:
        assert proxy.stop() == 0
    assert sum("listen.tls.cert" in line for line in proxy.stderr) == 2  # at start, at the second reload


def test_no_gauge_without_tls(make_proxy, vllm) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    text = SERVED.replace("  tls:\n    cert: ${CERT}\n    key: ${KEY}\n", "").replace("http://127.0.0.1:1", upstream)
    proxy = make_proxy(text)
    assert gauge(proxy.process.metrics_text()) == []
