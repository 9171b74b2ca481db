"""The upstream client's former single module, kept so that imports keep working while they move.

The client now lives in `pool.py` (per-upstream pools, `UpstreamPool`, `Response`), `connection.py`
(one socket, `UpstreamClosed`) and `http11.py` (the socket-free reply parser, `UpstreamProtocolError`);
import from those.
"""

from proxy.transport.connection import UpstreamClosed
from proxy.transport.http11 import UpstreamProtocolError
from proxy.transport.pool import Response, UpstreamPool

__all__ = ["Response", "UpstreamClosed", "UpstreamPool", "UpstreamProtocolError"]
