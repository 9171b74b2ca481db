"""TLS on the listeners: the HTTP listener's context, which a reload replaces for new connections, and
the identity a client certificate proves (mTLS callers).

A caller's identity is its certificate's SPIFFE ID (a `spiffe://` URI SAN, as SPIRE and Istio issue) or,
for a certificate that carries none, its subject common name as `CN=<name>`; `callers[].tls_identity`
names one. A certificate with a SPIFFE ID is that workload and nothing else: its common name is free
text its issuer may copy from a request, so it never identifies such a certificate. Only URI SANs are
SPIFFE IDs: a DNS or e-mail SAN whose text reads `spiffe://…` is a name its issuer may have copied too.
A certificate naming several identities (two SPIFFE IDs; or none and two common names) identifies no
caller (`Policy.caller`): an X.509-SVID carries exactly one URI SAN, and which of several names counted
would otherwise depend on their order and on the listener.

Both listeners hand `_identities` the same two things, read from the certificate by their TLS stack:
its URI SANs and all its subject's common names (Python's `getpeercert()` on HTTP; grpc's `peer_uri`
and `x509_subject` on gRPC, whose `x509_subject_alternative_name` mixes every SAN type and whose
`x509_common_name` is the first common name only).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import re
import ssl
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from proxy.config import Tls, Upstream, UpstreamTls
from proxy.files import off_loop


def server_context(tls: Tls) -> ssl.SSLContext:
    """The listener's context (TLS 1.2+); raises OSError/ssl.SSLError when a file is missing or bad."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # a CA in `client_ca` is trusted as such, an intermediate too (as grpc's listener does): without this, a bundle
    # naming the issuing intermediate alone (to admit its clients and not the rest of its root's) refused every client
    # over HTTPS. Set on every context: a connection keeps the listening context's verify flags (`ListenerTls`)
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.load_cert_chain(tls.cert, tls.key, password=_no_password)
    check_not_expired(Path(tls.cert).read_bytes())
    if tls.client_ca:
        context.load_verify_locations(cafile=tls.client_ca)
        context.verify_mode = ssl.CERT_REQUIRED if tls.require_client_cert else ssl.CERT_OPTIONAL
    return context


def check_pair(cert: bytes, key: bytes) -> None:
    """Raises ssl.SSLError (an OSError) unless `cert` and `key`, a listener's files as read, are a PEM
    certificate (chain) and the key that matches it: what grpc's core would otherwise reject only at the next
    handshake, keeping its old pair and saying so on stderr alone. Checked by OpenSSL itself, on copies in a
    private temporary directory; an encrypted key is refused (a listener has no password to give)."""
    with tempfile.TemporaryDirectory(prefix="lineage-proxy-tls-") as directory:  # mode 0700
        cert_file, key_file = Path(directory, "tls.crt"), Path(directory, "tls.key")
        cert_file.write_bytes(cert)
        key_file.write_bytes(key)
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_file, key_file, password=_no_password)
    check_not_expired(cert)


def check_not_expired(cert: bytes, refused_by: str = "every client") -> None:
    """Raises ssl.SSLError when a certificate the proxy shows (the first of a PEM chain: the listener's, or its own
    client certificate for an upstream) has expired: OpenSSL loads one, and every peer then fails its handshake
    (`certificate has expired`) while the proxy, which sees only handshakes that fail, says nothing. Refused by
    `check`, at start and by a reload (which keeps the old one)."""
    validity = _validity(cert)
    if validity is None:
        return  # not a form read here: OpenSSL, which loaded it, is the judge
    not_after = validity[1]
    if not_after < dt.datetime.now(dt.UTC):
        raise ssl.SSLError(ssl.SSL_ERROR_SSL, f"the certificate expired at {not_after:%Y-%m-%d %H:%M:%S} UTC (its notAfter): "
                           f"{refused_by} would refuse it; renew it")  # fmt: skip


EXPIRY_WARNING_DAYS = 30  # a certificate whose notAfter is this close is warned of by `check`, at start and by a reload


def not_after(cert: bytes) -> dt.datetime | None:
    """The notAfter of the first certificate in PEM `cert`; None when it cannot be read here."""
    validity = _validity(cert)
    return validity[1] if validity is not None else None


def expiry_warnings(path: str, file: str, pem: bytes, consequence: str, *, first_refused: bool = False) -> list[str]:
    """Warnings for the certificates in `file` (config key `path`; its contents `pem`) whose notAfter is past or
    within `EXPIRY_WARNING_DAYS`, naming the file, which certificate of it, the date and what then fails
    (`consequence`). `first_refused`: the first one expired is a problem (`check_not_expired`), not a warning."""
    now = dt.datetime.now(dt.UTC)
    soon = now + dt.timedelta(days=EXPIRY_WARNING_DAYS)
    found = [_validity(match[0]) for match in _PEM.finditer(pem)]
    warnings = []
    for index, validity in enumerate(found):
        if validity is None or validity[1] > soon or (first_refused and index == 0 and validity[1] < now):
            continue
        which = f"certificate {index + 1} of {len(found)}" if len(found) > 1 else "certificate"
        when = f"{validity[1]:%Y-%m-%d %H:%M:%S} UTC"
        if validity[1] < now:
            warnings.append(f"{path}: the {which} in {file} expired at {when} (its notAfter): {consequence} now")
        else:
            days = (validity[1] - now).days
            left = f"in {days} days" if days != 1 else "in 1 day"
            warnings.append(f"{path}: the {which} in {file} expires at {when} ({left if days else 'within a day'}): "
                            f"{consequence} from then on; renew it (a reload reads the renewed file)")  # fmt: skip
    return warnings


_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.DOTALL)


def _validity(cert: bytes) -> tuple[dt.datetime, dt.datetime] | None:
    """The notBefore and notAfter of the first certificate in PEM `cert` (X.509's DER: Certificate ->
    TBSCertificate -> [version], serial, signature, issuer, validity); None when it cannot be read so."""
    match = _PEM.search(cert)
    if match is None:
        return None
    try:
        der = base64.b64decode(b"".join(match[1].split()), validate=True)
        _, body, _ = _tlv(der, 0)  # Certificate
        _, at, _ = _tlv(der, body)  # TBSCertificate: its fields from `at`
        tag, start, end = _tlv(der, at)
        if tag == 0xA0:  # [0] version
            tag, start, end = _tlv(der, end)
        for _field in range(3):  # serialNumber (read above), signature, issuer
            tag, start, end = _tlv(der, end)
        if tag != 0x30:
            return None
        times = []
        position = start
        for _time in range(2):
            tag, value, position = _tlv(der, position)
            times.append(_time_value(tag, der[value:position].decode("ascii")))
        return times[0], times[1]
    except (binascii.Error, IndexError, ValueError, UnicodeDecodeError):
        return None


def _tlv(der: bytes, at: int) -> tuple[int, int, int]:
    """The DER element at `at`: its tag, where its value begins and where it ends."""
    tag, length = der[at], der[at + 1]
    at += 2
    if length & 0x80:
        size = length & 0x7F
        length = int.from_bytes(der[at : at + size], "big")
        at += size
    if at + length > len(der):
        raise ValueError("truncated")
    return tag, at, at + length


def _time_value(tag: int, text: str) -> dt.datetime:
    if tag == 0x17:  # UTCTime: YYMMDDHHMMSSZ, years 1950-2049
        moment = dt.datetime.strptime(text, "%y%m%d%H%M%SZ")
        if moment.year >= 2050:
            moment = moment.replace(year=moment.year - 100)
    elif tag == 0x18:  # GeneralizedTime: YYYYMMDDHHMMSSZ
        moment = dt.datetime.strptime(text, "%Y%m%d%H%M%SZ")
    else:
        raise ValueError("not a time")
    return moment.replace(tzinfo=dt.UTC)


def _no_password() -> bytes:
    """The password callback of every key the proxy loads. Without one OpenSSL asks for an encrypted key's
    passphrase on the terminal, where `check` (or `serve`, its event loop blocked, at a reload) would wait for
    it; with no terminal it fails as `[Errno 22] Invalid argument`, which names no cause."""
    raise ssl.SSLError("the key is encrypted (passphrase-protected): the proxy has no passphrase to give; "
                       "store the key unencrypted, readable by the proxy alone")  # fmt: skip


ListenerFiles = tuple[bytes, bytes, bytes | None]  # a listener's certificate, key and client CA (None: none), as read


def listener_files(tls: Tls) -> ListenerFiles:
    """The contents of the listener's certificate, key and client CA files as read now (OSError when one
    cannot be read): what a reload compares to tell a file renewed in place."""
    ca = Path(tls.client_ca).read_bytes() if tls.client_ca else None
    return Path(tls.cert).read_bytes(), Path(tls.key).read_bytes(), ca


class ListenerRead:
    """The listener's TLS files as a reload reads them, on the thread that loads its config (`ProxyProcess.reload_soon`):
    their contents and the context made from them, or why they cannot be used (OSError/ssl.SSLError, raised by
    `ListenerTls.reload` and `files_now`). Read on the event loop, a file slow to come (a hung mount, a FIFO) held
    every call and the stop itself for as long."""

    files: ListenerFiles | None
    context: ssl.SSLContext | None
    error: OSError | None

    def __init__(self, tls: Tls) -> None:
        self.files, self.context, self.error = None, None, None
        try:
            self.files = listener_files(tls)
            self.context = server_context(tls)
        except OSError as exc:  # ssl.SSLError is an OSError
            self.error = exc

    def files_now(self) -> ListenerFiles:
        """The files' contents (OSError when one could not be read)."""
        if self.files is None:
            assert self.error is not None
            raise self.error
        return self.files


class ListenerTls:
    """The HTTP listener's TLS, replaced by a reload for every new connection.

    The listener keeps the context it was created with; its `sni_callback`, which OpenSSL calls on every
    handshake (with or without SNI) before the certificate is chosen or a client certificate asked for,
    hands the connection the context of the config in force: certificate, key and client CA. The verify
    mode is copied into a connection before that callback, so it is set on the listening context too.
    Checked with real handshakes on uvloop and asyncio (tests/test_reload_tls.py).

    A session resumed from before a change of client authentication would carry the identity its first
    handshake proved, unchecked against the new CA: such a resumption is refused with a handshake
    failure (a client that drops the session then makes a full handshake).
    """

    def __init__(self, tls: Tls) -> None:
        self.files = listener_files(tls)  # as last read
        self.context = server_context(tls)
        self._required = tls.require_client_cert
        self._current = self.context
        self._auth_changed = 0  # epoch second of the last change of client authentication (0: none)
        # the latest epoch second a handshake began at (its session's time is that second or the next): a change of
        # client authentication is taken as after it, as a wall clock stepped back since (NTP) would put the change
        # before sessions made under the old one, and let them resume
        self._latest = 0
        self.context.sni_callback = self._select

    def reload(self, tls: Tls, read: ListenerRead | None = None) -> bool:
        """New handshakes use `tls`, its files as `read` (off the event loop; None: read now) found them
        (OSError/ssl.SSLError, and nothing changed, when one cannot be used); connections already open keep
        theirs. True when client authentication changed: the client CA bundle's contents, or whether a
        certificate is required."""
        if read is None:
            read = ListenerRead(tls)
        if read.error is not None:
            raise read.error
        assert read.files is not None and read.context is not None
        files, context = read.files, read.context
        changed = (files[2], tls.require_client_cert) != (self.files[2], self._required)
        if changed:
            self._auth_changed = max(int(time.time()), self._latest + 1)
        self.files, self._required = files, tls.require_client_cert
        self.context.verify_mode = context.verify_mode
        self._current = context
        return changed

    def _select(self, connection: ssl.SSLObject, server_name: str | None, listening: ssl.SSLContext) -> int | None:
        # An exception here would abort the handshake with a traceback on stderr: refuse it plainly instead.
        try:
            now = int(time.time())
            if now > self._latest:
                self._latest = now
            if connection.session_reused and self._auth_changed:
                session = connection.session
                if session is None or session.time <= self._auth_changed:
                    return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE
            if self._current is not listening:
                connection.context = self._current
        except Exception:
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        return None


# what a handshake's failure (OpenSSL's reason) most often means, said beside it
_HANDSHAKE_HINTS = {
    "TLSV1_ALERT_UNKNOWN_CA": "the client does not trust the CA that issued listen.tls.cert: give it that CA (and put "
                              "any intermediate after the certificate in listen.tls.cert)",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the client refused the listener's certificate (does it name the host the client "
                                   "asked for?)",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the client says the listener's certificate has expired (or its clock is wrong)",
    "CERTIFICATE_VERIFY_FAILED": "the client's certificate was refused: it does not chain to listen.tls.client_ca, or "
                                 "has expired",
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "the client sent no certificate, which listen.tls.require_client_cert requires",
    "HTTP_REQUEST": "a plain HTTP request: the client speaks http:// to the TLS listener",
    "UNSUPPORTED_PROTOCOL": "the client offers only TLS older than 1.2, the listener's minimum",
    "WRONG_VERSION_NUMBER": "not a TLS client, or one offering only TLS older than 1.2",
}  # fmt: skip
_SOURCE_LINE = re.compile(r" \(_ssl\.c:\d+\)$")
_LABEL = re.compile(r"[^a-z0-9_]")


def handshake_failure(exc: Exception) -> tuple[str, str]:
    """A failed TLS handshake's reason, as a metric label (OpenSSL's reason, lower case: a bounded set; `timeout`
    for one not completed in time), and as words for the log: the error, and what it most often means."""
    if not isinstance(exc, ssl.SSLError):
        return "timeout", f"not completed within limits.header_timeout_s ({exc})"
    reason = exc.reason or type(exc).__name__
    text = _SOURCE_LINE.sub("", str(exc))
    hint = _HANDSHAKE_HINTS.get(reason)
    return _LABEL.sub("_", reason.lower()), f"{text} ({hint})" if hint else text


def identities_from_peercert(peercert: dict[str, Any] | None) -> tuple[str, ...]:
    """What a verified client certificate (Python's `getpeercert()` form) proves."""
    if not peercert:
        return ()
    uris = [value for kind, value in peercert.get("subjectAltName", ()) if kind == "URI"]
    names = [value for rdn in peercert.get("subject", ()) for key, value in rdn if key == "commonName"]
    return _identities(uris, names)


def identities_from_auth_context(auth: dict[str, Iterable[bytes]]) -> tuple[str, ...]:
    """The same from a grpc.aio `context.auth_context()` of a verified peer."""
    if not auth.get("transport_security_type"):
        return ()
    uris = [v.decode(errors="replace") for v in _whole_uris(auth)]  # URI SANs only
    # read only for a certificate without a SPIFFE ID
    names = (name for subject in auth.get("x509_subject", ()) for name in _subject_common_names(subject))
    return _identities(uris, names)


def _whole_uris(auth: dict[str, Iterable[bytes]]) -> list[bytes]:
    """The peer's URI SANs, as grpc hands them (`peer_uri`): each only up to its first NUL byte (its `peer_spiffe_id`
    too), so `spiffe://td/alice\\0.evil`, a name a CA may sign, was alice's SPIFFE ID over gRPC and no caller's over
    HTTPS, which reads names whole. One that the certificate grpc verified (`x509_pem_cert`) holds followed by a NUL
    is given that NUL back: a SPIFFE ID no caller has (`check` refuses a NUL in `tls_identity`)."""
    uris = list(auth.get("peer_uri", ()))
    pems = list(auth.get("x509_pem_cert", ()))
    if not uris or not pems:
        return uris
    der = _ders.get(pems[0])
    if der is None:
        try:
            der = ssl.PEM_cert_to_DER_cert(pems[0].decode("ascii", "replace"))
        except ValueError:
            der = b""
        if len(_ders) >= _SUBJECTS_KEPT:
            _ders.clear()  # bounded, as `_subjects`
        _ders[pems[0]] = der
    return [uri + b"\0" if uri + b"\0" in der else uri for uri in uris]


_ders: dict[bytes, bytes] = {}  # a client certificate's PEM (as grpc hands it) -> its DER


# grpc's `x509_subject` is OpenSSL's RFC 2253 form: the last RDN first, `,` between RDNs and `+` within
# one, each attribute `SN=value` with `,+"\<>;` (and a leading `#` or space, a trailing space) escaped
# as `\c`, and control and non-ASCII bytes as `\XX`
_ATTRIBUTE = re.compile(rb"(?:[^,+\\]|\\.)+", re.DOTALL)
_ESCAPE = re.compile(rb"\\([0-9A-Fa-f]{2}|.)", re.DOTALL)


def _unescape(match: re.Match[bytes]) -> bytes:
    escaped = match[1]
    return bytes.fromhex(escaped.decode()) if len(escaped) == 2 else escaped


_SUBJECTS_KEPT = 1024  # subjects whose common names are remembered: a call's costs one dict lookup
_subjects: dict[bytes, tuple[str, ...]] = {}


def _subject_common_names(subject: bytes) -> tuple[str, ...]:
    """Every common name in an RFC 2253 subject, in the certificate's order (as `getpeercert()` lists them)."""
    names = _subjects.get(subject)
    if names is None:
        names = tuple(reversed([_ESCAPE.sub(_unescape, part[3:]).decode(errors="replace")
                                for part in _ATTRIBUTE.findall(subject) if part.startswith(b"CN=")]))  # fmt: skip
        if len(_subjects) >= _SUBJECTS_KEPT:
            _subjects.clear()  # bounded: clients with endless distinct certificates cannot grow it
        _subjects[subject] = names
    return names


def _identities(uris: list[str], names: Iterable[str]) -> tuple[str, ...]:
    """What a certificate names: its SPIFFE IDs when it has any (from its URI SANs: `uris`), else its
    common names as `CN=<name>`. More than one identifies no caller (`Policy.caller`)."""
    spiffe = tuple(u for u in uris if u.startswith("spiffe://"))
    return spiffe or tuple(f"CN={n}" for n in names)


def client_context(tls: UpstreamTls | None) -> ssl.SSLContext:
    """The context for TLS to an upstream: its certificate checked (against `ca`, else the system's
    CAs), and the proxy's own certificate shown when the upstream asks for one."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca if tls else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls is not None and tls.cert and tls.key:
        context.load_cert_chain(tls.cert, tls.key, password=_no_password)
    return context


def client_context_in_thread(tls: UpstreamTls | None) -> asyncio.Future[ssl.SSLContext]:
    """`client_context(tls)` made on a daemon thread of its own, its outcome the future's (an upstream's next
    connection after a reload: `ConnectionPool._context`; `files.off_loop`: a file that never comes, a hung mount or a
    FIFO, held the stop for good on the loop's executor)."""
    return off_loop(lambda: client_context(tls), "lineage-proxy-upstream-tls")


def upstream_tls_problem(exc: OSError) -> str:
    """Why an upstream's TLS files cannot be used, in the words `check` says it in (`upstreams[].tls`)."""
    if exc.filename is not None:  # (the ssl module's errors name no file)
        return f"cannot read {exc.filename!r}: {exc.strerror or exc}"
    return f"cannot use the ca, cert or key: {exc}"


UpstreamFiles = tuple[bytes | None, bytes | None, bytes | None]  # an upstream's ca, key and cert, as read


def upstream_tls_files(tls: UpstreamTls) -> UpstreamFiles:
    """The contents of an upstream's TLS files as read now: (ca, key, cert). OSError when one cannot be read."""
    return tuple(Path(path).read_bytes() if path else None for path in (tls.ca, tls.key, tls.cert))  # type: ignore[return-value]


def grpc_channel_credentials(files: tuple[bytes | None, bytes | None, bytes | None]) -> Any:
    """grpc's credentials for a TLS channel to an upstream, from `upstream_tls_files`."""
    import grpc

    ca, key, cert = files
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


def read_tls(upstreams: Iterable[Upstream]) -> dict[str, UpstreamFiles | OSError]:
    """The TLS files of each gRPC upstream with TLS, as read now (or why one cannot be read): what a reload reads
    off the event loop for `GrpcChannels.use`, and the start before it serves."""
    read: dict[str, UpstreamFiles | OSError] = {}
    for upstream in upstreams:
        if upstream.grpc and upstream.tls is not None:
            try:
                read[upstream.name] = upstream_tls_files(upstream.tls)
            except OSError as exc:
                read[upstream.name] = exc
    return read


def read_usable_tls(upstreams: tuple[Upstream, ...]) -> dict[str, UpstreamFiles | OSError]:
    """`read_tls` for a reload (a worker's, and its `--workers` supervisor's: `server.as_reloaded`), each upstream's
    files read then checked as `check` checks them (`client_context`): one read but unusable (a renewal half written since its config was checked) is why, as one unread is (the reload is
    refused: `server._unread`). grpc takes any bytes, and a channel's every handshake failed (UNAVAILABLE)."""
    read = read_tls(upstreams)
    for upstream in upstreams:
        if upstream.tls is not None and upstream.name in read and not isinstance(read[upstream.name], OSError):
            try:
                client_context(upstream.tls)
            except OSError as exc:  # (ssl.SSLError is one)
                read[upstream.name] = exc
    return read
