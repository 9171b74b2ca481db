"""A passphrase-protected key, on the listener or towards an upstream: refused with that reason, by `check`
and by the config load a start or a reload makes, never by OpenSSL asking for the passphrase on the terminal
(where `check`, or `serve`'s event loop at a reload, would wait for one)."""

from __future__ import annotations

import fcntl
import os
import select
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from proxy.config import parse
from proxy.errors import ConfigError
from tests.certs import Authority, Pair

ROOT = Path(__file__).resolve().parent.parent  # the checkout these tests run: its `proxy`, wherever run from
ENCRYPTED = "the key is encrypted (passphrase-protected)"


def encrypted(pair: Pair) -> Path:
    """`pair`'s key, written again under the passphrase `secret`."""
    key = serialization.load_pem_private_key(pair.key.read_bytes(), None)
    path = pair.key.with_suffix(".encrypted.key")
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(b"secret")))  # fmt: skip
    return path


def config(*, listener: tuple[Path, Path] | None = None, upstream: tuple[Path, Path] | None = None) -> str:
    tls = f'\n  tls: {{cert: "{listener[0]}", key: "{listener[1]}"}}' if listener else ""
    up_tls = f', tls: {{cert: "{upstream[0]}", key: "{upstream[1]}"}}' if upstream else ""
    return (f'listen:\n  http: "127.0.0.1:0"{tls}\n'
            f'upstreams:\n  - {{name: llama, url: "https://127.0.0.1:8000"{up_tls}}}\n'
            'routes:\n  - {model: "*", upstream: llama}\nlineage: {store: null}\n')  # fmt: skip


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(text, env={})
    return caught.value.problems


def test_listener_key_encrypted_is_named(tmp_path: Path) -> None:
    server = Authority(tmp_path).issue("server", common_name="localhost", server=True)
    [problem] = problems(config(listener=(server.cert, encrypted(server))))
    assert problem.startswith("listen.tls: cannot use the certificate, key or client_ca: ") and ENCRYPTED in problem


def test_upstream_key_encrypted_is_named(tmp_path: Path) -> None:
    client = Authority(tmp_path).issue("client", common_name="proxy")
    [problem] = problems(config(upstream=(client.cert, encrypted(client))))
    assert problem.startswith("upstreams[0].tls: cannot use the ca, cert or key: ") and ENCRYPTED in problem


def test_check_on_a_terminal_does_not_ask_for_the_passphrase(tmp_path: Path) -> None:
    server = Authority(tmp_path).issue("server", common_name="localhost", server=True)
    path = tmp_path / "proxy.yaml"
    path.write_text(config(listener=(server.cert, encrypted(server))))
    primary, secondary = os.openpty()

    def terminal() -> None:  # the child's controlling terminal, as an operator's shell gives it
        os.setsid()
        fcntl.ioctl(secondary, termios.TIOCSCTTY, 0)

    process = subprocess.Popen([sys.executable, "-m", "proxy", "check", "--config", str(path)], stdin=secondary,
                               stdout=secondary, stderr=secondary, preexec_fn=terminal,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    os.close(secondary)
    shown = b""
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:  # until the terminal closes: the process has exited
            ready, _, _ = select.select([primary], [], [], deadline - time.monotonic())
            if not ready:
                break
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: no process holds the terminal any more
                break
            if not chunk:
                break
            shown += chunk
        code: int | None = process.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        code = None  # still waiting (for a passphrase)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(primary)
    text = shown.decode(errors="replace")
    assert "pass phrase" not in text.lower(), text
    assert code == 1 and ENCRYPTED in text, (code, text)
