"""Certificates the TLS tests make for themselves: a CA, a server certificate for 127.0.0.1, and client
certificates carrying a SPIFFE ID and a common name (what SPIRE or Istio would issue)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> Pair:
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Pair(cert_path, key_path)


class Authority:
    def __init__(self, directory: Path, name: str = "lineage test CA") -> None:
        self.directory = directory
        self.key = _key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pair = _write(directory, name.replace(" ", "-"), self.cert, self.key)

    def issue(self, name: str, *, common_name: str = "", spiffe_id: str | None = None, server: bool = False,
              subject: list[tuple[x509.ObjectIdentifier, str]] | None = None,
              extra_sans: list[x509.GeneralName] | None = None) -> Pair:  # fmt: skip
        """A certificate this CA signs: subject CN=`common_name`, or exactly `subject` (several CNs allowed);
        SANs: a server's loopback names, `spiffe_id` as a URI, then `extra_sans`."""
        key = _key()
        now = dt.datetime.now(dt.UTC)
        sans: list[x509.GeneralName] = []
        if server:
            sans += [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
        if spiffe_id:
            sans.append(x509.UniformResourceIdentifier(spiffe_id))
        sans += extra_sans or []
        names = subject if subject is not None else [(NameOID.COMMON_NAME, common_name)]
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(oid, value) for oid, value in names]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return _write(self.directory, name, builder.sign(self.key, hashes.SHA256()), key)
