"""A gRPC client on raw HTTP/2 that starts calls and holds back the end of their request message: each call's HEADERS,
then a message's length prefix announcing its size and all of it but the last byte, sent as the listener's flow control
allows (it follows WINDOW_UPDATE, answers SETTINGS and PING, so the connection stays up), the last byte when the test
says (`finish`), or never. What a hostile or broken client does that grpc's own clients cannot be made to do."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

from tests.servers.h2_wire import DATA, HEADERS, frame, header_block

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS, RST_STREAM, PING, GOAWAY, WINDOW_UPDATE = 4, 3, 6, 7, 8
_END_HEADERS = 0x4
_END_STREAM = 0x1
_FRAME = 16_384  # HTTP/2's initial SETTINGS_MAX_FRAME_SIZE


class HostileClient:
    """One connection to `port`. `start(path, size)` opens a stream and sends all of a `size`-byte message but its
    last byte; `ended` says, by stream, how the listener ended it (`RST_STREAM`, or `status`: trailers), once it did."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0, b""))
        self.cond = threading.Condition()
        self.ended: dict[int, str] = {}
        self.closed = False
        self._connection_window = 65_535
        self._stream_windows: dict[int, int] = {}
        self.sent: dict[int, int] = {}  # bytes of DATA sent, by stream
        self._writing: dict[int, int] = {}  # bytes of DATA whose window is taken, being written, by stream (`_count`)
        self.replied: dict[int, int] = {}  # bytes of DATA the listener sent, by stream (its reply messages)
        self._pings = 0  # PING acknowledgements received (`ping`)
        self._initial_window = 65_535
        self._next = 1
        self._send = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    @property
    def initial_window(self) -> int:
        """Each stream's window as the listener's SETTINGS set it."""
        return self._initial_window

    def close(self) -> None:
        self.sock.close()

    def start(self, path: str, size: int, *metadata: tuple[str, bytes]) -> int:
        """A new stream carrying all of a `size`-byte message but its last byte (returns once it is sent, or once the
        listener ended the stream)."""
        stream = self.open(path, *metadata)
        self._message(stream, bytes(size), 30.0)
        return stream

    def open(self, path: str, *metadata: tuple[str, bytes]) -> int:
        """A new stream: its HEADERS only."""
        stream, self._next = self._next, self._next + 2
        head = header_block((":method", b"POST"), (":scheme", b"http"), (":path", path.encode()),
                            (":authority", b"localhost"), ("content-type", b"application/grpc"), ("te", b"trailers"),
                            *metadata)  # fmt: skip
        with self.cond:
            self._stream_windows[stream] = self._initial_window
            self.sent[stream] = 0
        with self._send:
            self.sock.sendall(frame(HEADERS, _END_HEADERS, stream, head))
        return stream

    def push(self, stream: int, message: bytes, kept: int = 1) -> None:
        """All of `message` but its last `kept` bytes on `stream`, sent on a thread of its own as the listener's flow
        control allows, for as long as that takes (`sent`, `stalled`, `pushed` say how far it got)."""
        threading.Thread(target=self._message, args=(stream, message, None, kept), daemon=True).start()

    def pushed(self, stream: int, message: bytes, kept: int = 1) -> bool:
        """All of `message` but its last `kept` bytes is sent on `stream` (its 5-byte prefix counted)."""
        return self.sent[stream] == len(message) + 5 - kept

    def stalled(self, stream: int) -> bool:
        """`stream` has sent all its window lets it: the listener has given it no more."""
        return self._stream_windows[stream] <= 0 and not self._writing.get(stream)

    def finish(self, stream: int, message: bytes, kept: int = 1) -> None:
        """The last `kept` bytes of `message`, which `push` held back, in one DATA frame with the end of the client's
        messages (END_STREAM)."""
        self.data(stream, message[-kept:], end=True)

    def data(self, stream: int, payload: bytes, end: bool = False) -> None:
        """One DATA frame of `payload` on `stream` (with END_STREAM if `end`), once the windows let all of it go."""
        with self.cond:
            sendable = self.cond.wait_for(lambda: self._sendable(stream, len(payload)), 30)
            assert sendable, "the listener gave no window for 30 s"
            self._take(stream, len(payload))
        with self._send:
            self.sock.sendall(frame(DATA, _END_STREAM if end else 0, stream, payload))
        self._count(stream, len(payload))

    def grant(self, stream: int, n: int) -> None:
        """WINDOW_UPDATE of `n` bytes for `stream` and the connection: the listener may send that much more of its
        replies (this client sends none otherwise, so a reply past the windows stalls the listener's write)."""
        increment = n.to_bytes(4, "big")
        with self._send:
            self.sock.sendall(frame(WINDOW_UPDATE, 0, 0, increment) + frame(WINDOW_UPDATE, 0, stream, increment))

    def ping(self, timeout: float = 10.0) -> None:
        """A PING, returning once the listener acknowledged it: it has read every frame sent before it."""
        with self.cond:
            acknowledged = self._pings + 1
        with self._send:
            self.sock.sendall(frame(PING, 0, 0, bytes(8)))
        assert self.wait(lambda: self._pings >= acknowledged, timeout), "the listener did not acknowledge a PING"

    def _message(self, stream: int, message: bytes, timeout: float | None, kept: int = 1) -> None:
        left = b"\x00" + len(message).to_bytes(4, "big") + message[: len(message) - kept]
        view = memoryview(left)
        while view:
            with self.cond:
                ok = self.cond.wait_for(lambda: self._sendable(stream), timeout)
                assert ok, "the listener gave no window for 30 s"
                if self.closed or stream in self.ended:
                    return
                n = min(len(view), _FRAME, self._connection_window, self._stream_windows[stream])
                self._take(stream, n)
            with self._send:
                self.sock.sendall(frame(DATA, 0, stream, bytes(view[:n])))
            self._count(stream, n)
            view = view[n:]

    def _take(self, stream: int, n: int) -> None:
        """The windows for `n` bytes of DATA on `stream`, about to be written (`self.cond` held)."""
        self._connection_window -= n
        self._stream_windows[stream] -= n
        self._writing[stream] = self._writing.get(stream, 0) + n

    def _count(self, stream: int, n: int) -> None:
        """`n` bytes of DATA sent on `stream`, counted once written: a frame the test sends once they are (`finish`, once
        `pushed`) goes after them. Counted as their window was taken, before the write, a final frame could overtake the
        message's last chunk, which then came after END_STREAM: a message cut short, which grpc drops, reading the stream
        as ended without it (a ModelStreamInfer answered as an empty stream, ~1 run in 130)."""
        with self.cond:
            self.sent[stream] += n
            self._writing[stream] -= n
            self.cond.notify_all()

    def _sendable(self, stream: int, size: int = 1) -> bool:
        ended = self.closed or stream in self.ended
        return ended or min(self._connection_window, self._stream_windows[stream]) >= size

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Whether `predicate` (of this client's state) held within `timeout` seconds."""
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def wait_ended(self, streams: list[int], timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.closed or all(s in self.ended for s in streams), timeout)

    def _read(self) -> None:
        def take(n: int) -> bytes:
            data = b""
            while len(data) < n:
                more = self.sock.recv(n - len(data))
                if not more:
                    raise EOFError
                data += more
            return data

        try:
            while True:
                head = take(9)
                kind, flags, stream = head[3], head[4], int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
                payload = take(int.from_bytes(head[:3], "big"))
                with self.cond:
                    if kind == SETTINGS and not flags & 1:
                        for i in range(0, len(payload), 6):
                            if int.from_bytes(payload[i : i + 2], "big") == 4:  # SETTINGS_INITIAL_WINDOW_SIZE
                                new = int.from_bytes(payload[i + 2 : i + 6], "big")
                                for s in self._stream_windows:
                                    self._stream_windows[s] += new - self._initial_window
                                self._initial_window = new
                        with self._send:
                            self.sock.sendall(frame(SETTINGS, 1, 0, b""))
                    elif kind == PING and not flags & 1:
                        with self._send:
                            self.sock.sendall(frame(PING, 1, 0, payload))
                    elif kind == PING:
                        self._pings += 1
                    elif kind == DATA:
                        self.replied[stream] = self.replied.get(stream, 0) + len(payload)
                    elif kind == WINDOW_UPDATE:
                        grant = int.from_bytes(payload, "big") & 0x7FFFFFFF
                        if stream == 0:
                            self._connection_window += grant
                        elif stream in self._stream_windows:
                            self._stream_windows[stream] += grant
                    elif kind == RST_STREAM:
                        self.ended.setdefault(stream, "RST_STREAM")
                    elif kind == HEADERS and flags & 1:  # trailers (END_STREAM): the call's status
                        self.ended.setdefault(stream, "status")
                    elif kind == GOAWAY:
                        pass
                    self.cond.notify_all()
        except (EOFError, OSError):
            with self.cond:
                self.closed = True
                self.cond.notify_all()
