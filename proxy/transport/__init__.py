"""Transports: sockets, connection pools and streams. Nothing here knows a wire protocol's meaning."""


# the transports' errors live here, not beside their code: a compiled module (setup.py) cannot define a
# subclass of a built-in error such as ConnectionError
class UpstreamProtocolError(ConnectionError):
    """The upstream's reply is not valid HTTP/1.1."""


class MetadataTooLarge(ConnectionError):
    """An upstream's metadata reply (discovery, readiness, a merged listing) over `pool.METADATA_MAX_BYTES`: not
    read further, its connection closed."""


class UpstreamClosed(ConnectionError):
    """The upstream closed the connection before the reply was complete."""


class UpstreamConnectTimeout(ConnectionError):
    """No connection to the upstream within its `connect_timeout_s`: the TCP connect, or the TLS handshake of an
    `https://` upstream, did not finish. The upstream is unreachable (502), not slow to answer (`timeout_s`, 504)."""
