"""A TCP listener on a free loopback port for upstreams written at the socket level: each connection it accepts is
handed to `answer` on a thread of its own."""

from __future__ import annotations

import socket
import threading


class ConnectionThreads:
    """Listening from construction on `port`; `answer(conn)` serves one connection (a subclass's); `close` stops."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self.answer, args=(conn,), daemon=True).start()

    def answer(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.sock.close()
