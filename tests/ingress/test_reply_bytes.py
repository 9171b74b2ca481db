"""The bytes of a buffered reply on the client's connection: the head, then the body, which goes in the same
write as the head when small and after it when large, whatever its size around that bound; keep-alive holds
across them, and a reply to HEAD has the head only. The head's field block, made from the reply's names as the
parser lower-cased them and its Connection tokens kept by their bytes, is the reference's block for any Connection
values (bytes not UTF-8 too)."""

from __future__ import annotations

import asyncio
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.harness import LoopThread, proxy_before
from tests.ingress.test_header_blocks import NAMES, reference_reply, reply_block
from tests.ingress.test_reply_head_fields import CONFIG

SIZES = [0, 5, 65535, 65536, 65537, 200_000]


def body(size: int) -> bytes:
    return bytes(range(97, 123)) * (size // 26) + b"z" * (size % 26)


async def start_origin() -> tuple[asyncio.Server, int]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                last = head.split(b" ", 2)[1].rsplit(b"/", 1)[1]
                if not last.isdigit():  # the proxy's own probes (model discovery)
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    continue
                size = int(last)
                writer.write(b"HTTP/1.1 200 Fine\r\nX-Size: %d\r\nContent-Length: %d\r\n\r\n" % (size, size))
                if not head.startswith(b"HEAD "):
                    writer.write(body(size))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def read_reply(sock: socket.socket, buffer: bytearray, head_only: bool) -> tuple[list[bytes], bytes]:
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed before the reply's head"
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = 0 if head_only else int(next(line for line in lines if line.startswith(b"Content-Length:")).split()[1])
    buffer[:] = rest
    while len(buffer) < length:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed before the reply's body"
        buffer += chunk
    data = bytes(buffer[:length])
    del buffer[:length]
    return lines, data


@pytest.fixture
def proxy_port(make_proxy, loop_thread: LoopThread):  # type: ignore[no-untyped-def]
    with proxy_before(loop_thread, make_proxy, CONFIG, start_origin) as port:
        yield port


def test_head_then_body_whatever_its_size_on_one_connection(proxy_port: int) -> None:
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=10) as sock:
        buffer = bytearray()
        for method in ("GET", "HEAD"):
            for size in SIZES:
                sock.sendall(f"{method} /v1/files/{size} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                lines, data = read_reply(sock, buffer, head_only=method == "HEAD")
                assert lines[0] == b"HTTP/1.1 200 Fine"
                assert b"X-Size: %d" % size in lines and b"Content-Length: %d" % size in lines
                assert any(line.startswith(b"x-trace-id: ") for line in lines)
                assert data == (b"" if method == "HEAD" else body(size))
        assert not buffer  # nothing after the last reply


# Connection values with tokens naming other fields, on one line or several, and bytes that are not UTF-8 (cut
# short too, where a ',' joining two lines ends the sequence)
VALUES = st.sampled_from([b"", b"1", b"keep-alive", b"close", b"x-a, X-B", b"keep-alive, x-a", b"Server ,, te",
                          b"http://10.0.0.5:8000/x", b"caf\xc3\xa9", b"\xff", b"\xe2\x84", b"\xaa, x-b", b"\xe2\x84\xaa"])  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(raw=st.lists(st.tuples(NAMES, VALUES), max_size=12), base=st.sampled_from([None, "", "http://10.0.0.5:8000"]))
def test_the_head_s_field_block_is_the_reference_s_block(raw: list[tuple[bytes, bytes]], base: str | None) -> None:
    names = [name.lower() for name, _ in raw]
    lineage = [("x-trace-id", "ab"), ("x-lineage-decision", "allow")]
    connection = [value.decode("utf-8", "surrogateescape") for name, value in raw if name.lower() == b"connection"]
    expected = reference_reply(raw, lineage, base, connection, b"location" in names)
    for _ in range(2):  # the second time, the tokens kept
        assert reply_block(raw, lineage, base) == expected
