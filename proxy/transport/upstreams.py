"""HTTP upstream connections: one keep-alive pool per upstream, with its own timeouts.

`timeout_s` bounds the wait for the upstream's response headers and for each chunk after them (not the
whole reply: a long generation that keeps streaming is not cut off); `connect_timeout_s` the connect.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from proxy.checkpoints import MetadataStatus
from proxy.config import Upstream


class UpstreamPool:
    """aiohttp ClientSessions by upstream name; created on first use, closed together."""

    def __init__(self) -> None:
        self._sessions: dict[str, tuple[Upstream, aiohttp.ClientSession]] = {}
        self._retired: list[aiohttp.ClientSession] = []

    def session(self, upstream: Upstream) -> aiohttp.ClientSession:
        entry = self._sessions.get(upstream.name)
        if entry is not None:
            if entry[0] is upstream:
                return entry[1]
            if entry[0] == upstream:  # an identical upstream after a reload keeps its pool
                self._sessions[upstream.name] = (upstream, entry[1])
                return entry[1]
            self._retired.append(entry[1])  # changed on reload: new pool; the old one closes at shutdown
        connector = aiohttp.TCPConnector(
            limit=upstream.max_connections,
            limit_per_host=upstream.max_connections,
            keepalive_timeout=60,
            enable_cleanup_closed=False,
            ttl_dns_cache=300,
        )
        session = aiohttp.ClientSession(
            base_url=None,
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=upstream.connect_timeout_s, sock_read=upstream.timeout_s
            ),
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Content-Type"),
            cookie_jar=aiohttp.DummyCookieJar(),
            raise_for_status=False,
        )
        self._sessions[upstream.name] = (upstream, session)
        return session

    async def get_json(self, upstream: Upstream, path: str) -> Any:
        """A metadata GET for checkpoint discovery and readiness; MetadataStatus on non-2xx."""
        assert upstream.url is not None
        headers = {"Authorization": f"Bearer {upstream.api_key}"} if upstream.api_key else {}
        timeout = aiohttp.ClientTimeout(total=min(upstream.timeout_s, 10.0), sock_connect=upstream.connect_timeout_s)
        async with self.session(upstream).get(upstream.url + path, headers=headers, timeout=timeout) as resp:
            body = await resp.read()
            if resp.status >= 300:
                raise MetadataStatus(resp.status, path)
            try:
                return orjson.loads(body) if body else None
            except orjson.JSONDecodeError:
                return None

    async def close(self) -> None:
        for session in [s for _, s in self._sessions.values()] + self._retired:
            await session.close()
        self._sessions.clear()
        self._retired.clear()
