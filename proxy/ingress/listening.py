"""This process's listening sockets on a port, found by their descriptors.

A reload that starts a new gRPC server on the listener's port (SO_REUSEPORT) asks the old one to stop; grpc stops its
listening socket on one of its own threads, a moment later (under load, after the reload had returned in 4 of 150
reloads measured). Until then the kernel hands that socket a share of new connections, which grpc, stopping, closes at
once (the client sees a reset). The reload waits for it (`GrpcIngress._closed`). Linux's /proc/self/fd names a
descriptor's socket; elsewhere nothing is found and nothing waited for. (Reading /proc/net/tcp instead took 5 ms a
read here, whatever the number of sockets.)"""

from __future__ import annotations

import os
import socket

Listeners = dict[int, int]  # descriptor -> the inode of its socket


def _inode(fd: int) -> int | None:
    """The inode of descriptor `fd`'s socket; None for a closed descriptor or one of another kind."""
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # closed, or no /proc
        return None
    return int(target[8:-1]) if target.startswith("socket:[") else None


def _listens(fd: int, port: int | None) -> bool:
    """Whether descriptor `fd` is a TCP socket listening (on `port`, unless None)."""
    try:
        with socket.socket(fileno=os.dup(fd)) as sock:  # a second descriptor, closed here: the socket is left as it is
            if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
                return False
            if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                return False
            return port is None or sock.getsockname()[1] == port
    except OSError:  # closed meanwhile
        return False


def sockets() -> set[int]:
    """The inodes of this process's open sockets (none without Linux's /proc): what `listening` leaves out when given
    them, taken before a server opens its own."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return set()
    return {inode for inode in map(_inode, map(int, names)) if inode is not None}


def listening(port: int, opened_since: set[int] | None = None) -> Listeners:
    """This process's TCP sockets listening on `port`, IPv4 or IPv6 (none without Linux's /proc); `opened_since`:
    those of them opened since it was taken (`sockets`), a server's own, not another listener's on the same port
    number at another address (the HTTP listener's, `http: 10.0.0.2:8000` beside `grpc: 10.0.0.1:8000`)."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return {}
    found: Listeners = {}
    for name in names:
        fd = int(name)
        inode = _inode(fd)
        if inode is not None and (opened_since is None or inode not in opened_since) and _listens(fd, port):
            found[fd] = inode
    return found


def still_listening(listeners: Listeners) -> bool:
    """Whether any of `listeners` (as `listening` found them) is still open and listening."""
    return any(_inode(fd) == inode and _listens(fd, None) for fd, inode in listeners.items())
