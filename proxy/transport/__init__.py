"""Transports: sockets, connection pools and streams. Nothing here knows a wire protocol's meaning."""
