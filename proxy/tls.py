"""TLS on the listeners: server contexts that can take a new certificate on reload, and the identity a
client certificate proves (mTLS callers).

A caller's identity is its certificate's SPIFFE ID (a `spiffe://` URI SAN, as SPIRE and Istio issue)
or, failing that, its subject common name as `CN=<name>`; `callers[].tls_identity` names one.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from proxy.config import Tls, UpstreamTls


def server_context(tls: Tls) -> ssl.SSLContext:
    """The listener's context (TLS 1.2+); raises OSError/ssl.SSLError when a file is missing or bad."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls.cert, tls.key)
    if tls.client_ca:
        context.load_verify_locations(cafile=tls.client_ca)
        context.verify_mode = ssl.CERT_REQUIRED if tls.require_client_cert else ssl.CERT_OPTIONAL
    return context


def reload_context(context: ssl.SSLContext, tls: Tls) -> None:
    """A new certificate and key for the same context: new handshakes use them, open connections keep
    theirs. (A client CA can be added this way, not removed: that takes a restart.)"""
    context.load_cert_chain(tls.cert, tls.key)
    if tls.client_ca:
        context.load_verify_locations(cafile=tls.client_ca)


def identities_from_peercert(peercert: dict[str, Any] | None) -> tuple[str, ...]:
    """What a verified client certificate (Python's `getpeercert()` form) proves, SPIFFE IDs first."""
    if not peercert:
        return ()
    uris = [value for kind, value in peercert.get("subjectAltName", ()) if kind == "URI"]
    names = [value for rdn in peercert.get("subject", ()) for key, value in rdn if key == "commonName"]
    return _identities(uris, names)


def identities_from_auth_context(auth: dict[str, Iterable[bytes]]) -> tuple[str, ...]:
    """The same from a grpc.aio `context.auth_context()` of a verified peer."""
    if not auth.get("transport_security_type") or not auth.get("x509_common_name", auth.get("x509_pem_cert")):
        return ()
    sans = [v.decode() for v in auth.get("x509_subject_alternative_name", ())]
    names = [v.decode() for v in auth.get("x509_common_name", ())]
    return _identities([v for v in sans if v.startswith("spiffe://")], names)


def _identities(uris: list[str], names: list[str]) -> tuple[str, ...]:
    return (*(u for u in uris if u.startswith("spiffe://")), *(f"CN={n}" for n in names))


def grpc_certificate_configuration(tls: Tls) -> Any:
    """grpc's server certificate configuration for `tls` (files read now)."""
    import grpc

    root = Path(tls.client_ca).read_bytes() if tls.client_ca else None
    pair = (Path(tls.key).read_bytes(), Path(tls.cert).read_bytes())
    return grpc.ssl_server_certificate_configuration([pair], root_certificates=root)


def client_context(tls: UpstreamTls | None) -> ssl.SSLContext:
    """The context for TLS to an upstream: its certificate checked (against `ca`, else the system's
    CAs), and the proxy's own certificate shown when the upstream asks for one."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca if tls else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls is not None and tls.cert and tls.key:
        context.load_cert_chain(tls.cert, tls.key)
    return context


def grpc_channel_credentials(tls: UpstreamTls) -> Any:
    """grpc's credentials for a TLS channel to an upstream (files read now)."""
    import grpc

    return grpc.ssl_channel_credentials(
        root_certificates=Path(tls.ca).read_bytes() if tls.ca else None,
        private_key=Path(tls.key).read_bytes() if tls.key else None,
        certificate_chain=Path(tls.cert).read_bytes() if tls.cert else None,
    )
