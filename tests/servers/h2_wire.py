"""An HTTP/2 listener speaking just enough of the protocol to see what a gRPC client sends, frame by frame, and to
answer with header blocks a gRPC server would refuse to send: what the tests of the wire itself need (a gRPC
server reads a cancel as an end of messages at first, and writes only what its own checks let through)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

END, RESET = "END_STREAM", "RST_STREAM"
_PREFACE = 24  # bytes of the client's connection preface
DATA, HEADERS = 0, 1
_END_STREAM, _END_HEADERS = 0x1, 0x4


def frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def _integer(value: int) -> bytes:
    """An HPACK integer with a 7-bit prefix (a string's length, not Huffman-coded)."""
    if value < 127:
        return bytes([value])
    out, value = bytearray([127]), value - 127
    while value >= 128:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def header_block(*fields: tuple[str, bytes]) -> bytes:
    """Each field as an HPACK literal without indexing, its name new: any bytes as its value."""
    return b"".join(b"\x00" + _integer(len(n)) + n.encode() + _integer(len(v)) + v for n, v in fields)


def grpc_reply(stream: int, message: bytes, initial: tuple[tuple[str, bytes], ...] = (),
               trailing: tuple[tuple[str, bytes], ...] = ()) -> bytes:  # fmt: skip
    """A whole gRPC reply on `stream`: its headers (with `initial`), one message, its trailers (OK, with
    `trailing`)."""
    head = header_block((":status", b"200"), ("content-type", b"application/grpc"), *initial)
    tail = header_block(("grpc-status", b"0"), *trailing)
    return (
        frame(HEADERS, _END_HEADERS, stream, head)
        + frame(DATA, 0, stream, b"\x00" + len(message).to_bytes(4, "big") + message)
        + frame(HEADERS, _END_HEADERS | _END_STREAM, stream, tail)
    )


class H2Listener:
    """Listens on port 0; keeps, by stream, what each frame the client sends says (`DATA <length>`, HEADERS, END_STREAM
    when one ends the client's side, RST_STREAM); acknowledges SETTINGS and PING, so the client's connection stays
    up. With `reply`, answers a stream once the client's side of it ended, with the bytes `reply(stream)` gives;
    else never. A stream is kept by its id on the first connection, by its id plus the connection's number shifted
    past any id (`1 << 31`) on later ones: the proxy asks an upstream's metadata on a connection of its own, whose
    streams' ids are those of its calls' connection too."""

    def __init__(self, reply: Callable[[int], bytes] | None = None) -> None:
        self._reply = reply
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.streams: dict[int, list[str]] = {}
        self.cond = threading.Condition()
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()

    def wait_for_stream(self, seen: set[int], said: str) -> int:
        """The first stream not in `seen` with a frame that says `said` (added to `seen`)."""
        with self.cond:
            found = self.cond.wait_for(
                lambda: next((n for n, frames in self.streams.items() if n not in seen and said in frames), None), 10
            )
        assert found is not None, f"no new stream with {said}: {self.streams}"
        seen.add(found)
        return found

    def wait_for(self, stream: int, said: str) -> list[str]:
        """The stream's frames, once one says `said`."""
        with self.cond:
            assert self.cond.wait_for(lambda: said in self.streams[stream], 10), self.streams[stream]
            return list(self.streams[stream])

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self._sockets.append(sock)
            threading.Thread(target=self._read, args=(sock, len(self._sockets) - 2), daemon=True).start()

    def _read(self, sock: socket.socket, connection: int) -> None:
        def take(size: int) -> bytes:
            data = b""
            while len(data) < size:
                more = sock.recv(size - len(data))
                if not more:
                    raise EOFError
                data += more
            return data

        try:
            take(_PREFACE)
            sock.sendall(frame(4, 0, 0, b""))  # our SETTINGS: none changed
            while True:
                head = take(9)
                kind, flags, stream = head[3], head[4], int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
                payload = take(int.from_bytes(head[:3], "big"))
                if kind == 4 and not flags & 1:
                    sock.sendall(frame(4, 1, 0, b""))
                elif kind == 6 and not flags & 1:
                    sock.sendall(frame(6, 1, 0, payload))
                said = {DATA: f"DATA {len(payload)}", HEADERS: "HEADERS", 3: RESET}.get(kind)
                if said is None:
                    continue
                with self.cond:
                    frames = self.streams.setdefault(stream + (connection << 31), [])
                    frames.append(said)
                    ended = kind in (DATA, HEADERS) and bool(flags & _END_STREAM)
                    if ended:
                        frames.append(END)
                    self.cond.notify_all()
                if ended and self._reply is not None:
                    sock.sendall(self._reply(stream))
        except (EOFError, OSError):
            return
