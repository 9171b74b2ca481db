"""A listener's or a gRPC upstream's `host:port` written as a URL (`http://127.0.0.1:8001`, as an HTTP
upstream's `url` is written beside it) is a problem `check` names, with the address to write: before, `check`
said ok, a listener then failed to start ("name or service not known") and a gRPC upstream was never reached
(every call UNAVAILABLE, "errors resolving http://...")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.config import parse
from proxy.errors import ConfigError

CONFIG = """
listen: {{http: "{http}", grpc: "{grpc}"}}
upstreams:
  - {{name: triton, grpc: "{upstream}", protocol: oip}}
routes:
  - {{model: "*", upstream: triton}}
"""


def problems(http: str = "127.0.0.1:8080", grpc: str = "127.0.0.1:8081", upstream: str = "127.0.0.1:8001") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(CONFIG.format(http=http, grpc=grpc, upstream=upstream))
    return caught.value.problems


@pytest.mark.parametrize(
    ("written", "write"),
    [
        ("http://127.0.0.1:8001", "127.0.0.1:8001"),
        ("grpc://triton.internal:8001/", "triton.internal:8001"),
        ("https://user:secret@[::1]:8001", "[::1]:8001"),
        # the address after a password holding a `/` or what may be a token: until 2026-12-06 the text before the
        # first `/`, a piece of either (`write 'ops:12'`, `write 'gw'`)
        ("http://ops:12/secret@triton:8001", "triton:8001"),
        ("http://gw/xyz/secret@triton:8001/v2", "triton:8001"),
        # found reviewing smalls4's change (2026-12-06): with no host:port after the `@` (a port mistyped, none) quoted
        # whole, `write 'ops:12'` / `'gw'`; a query or fragment (a key) quoted by the address to write, `write
        # 'triton:8001?key=secret'` (for a token's URL since that change, before it `write 'gw'`)
        # (an address mistyped in turn, `triton:80x`, said as `write 'triton:80x'` until helper urls4's change,
        # 2026-12-06: now only what would load is said, else `host:port`)
        ("http://ops:12/secret@triton:80x", "host:port"),
        ("http://gw/xyz/secret@triton:80x", "host:port"),
        ("http://gw/xyz/secret@", "host:port"),
        ("http://gw/xyz/tok@triton:8001?key=secret", "triton:8001"),
        ("http://u:p@triton:8001#secret", "triton:8001"),
        ("http://triton:8001?key=secret", "triton:8001"),
        # found reviewing urls2's change (2026-12-06): white space after it kept in the address to write
        ("http://gw/xyz/secret@triton:8001 ", "triton:8001"),
    ],
)
def test_a_grpc_upstream_written_as_a_url_is_a_problem(written: str, write: str) -> None:
    [problem] = problems(upstream=written)
    assert problem.startswith("upstreams[0].grpc: expected host:port without a scheme, got ")
    assert problem.endswith(f"(write {write!r})")
    assert "secret" not in problem and "'ops:12'" not in problem and "'gw'" not in problem, problem


NO_HOST = (
    "a host holds no '/', '?', '#' or white space, got {shown!r} (write host:port, the server's name or address and "
    "its port alone: an address holds no path, query or key)"
)


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        # found reviewing smalls4's change (2026-12-06): these loaded, the host `gw/xyz/secret` (never resolved; a
        # token of base64 holds a `/`), `triton?key=secret`, `gate way`
        ("gw/xyz/secret:8001", "***:8001"),
        ("aB3/x+Yz/secret:8001", "***:8001"),
        ("[::1/secret]:8001", "[***]:8001"),
        ("triton?key=secret:8001", "triton?***"),
        ("triton#secret:8001", "triton#***"),
        ("gate way:8001", "gate way:8001"),
        # refused, the host quoted: `expected host:port, got 'gw/xyz/secret:80x'`
        ("gw/xyz/secret:8001?key=secret", "***:8001?***"),
        ("gw/xyz/secret:80x", "***:80x"),
        ("gw/xyz/secret", "***"),
        # found by the reread of 2026-12-06: a `:` in the path after the port, what followed it was shown as the port
        ("triton:8001/user:secret", "***"),
        ("gw/xyz:8001/k:secret", "***"),
        ("gate way:8001/k:secret/x", "***"),
        ("[::1/x]:8001/k:secret", "[***]:8001/***"),
    ],
)
def test_a_host_holding_a_slash_query_or_white_space_is_a_problem_that_hides_it(written: str, shown: str) -> None:
    assert problems(upstream=written) == ["upstreams[0].grpc: " + NO_HOST.format(shown=shown)]


def test_a_listener_holding_a_slash_is_a_problem_that_hides_it() -> None:
    assert problems(http="0.0.0.0/secret:8080") == ["listen.http: " + NO_HOST.format(shown="***:8080")]


def test_a_listener_written_as_a_url_is_a_problem() -> None:
    assert problems(http="http://127.0.0.1:8080", grpc="grpc://0.0.0.0:8081") == [
        "listen.http: expected host:port without a scheme, got 'http://127.0.0.1:8080' (write '127.0.0.1:8080')",
        "listen.grpc: expected host:port without a scheme, got 'grpc://0.0.0.0:8081' (write '0.0.0.0:8081')",
    ]


def test_host_port_forms_still_read() -> None:
    config = parse(CONFIG.format(http="localhost:8080", grpc="[::1]:8081", upstream="triton.internal:8001"))
    assert (config.listen.http.host, config.listen.http.port) == ("localhost", 8080)
    assert config.upstreams[0].grpc == "triton.internal:8001"


URL_FORM, USER = "expected host:port without a scheme", "a host:port holds no user or password"


@pytest.mark.parametrize(
    ("written", "said", "shown", "write"),
    [
        ("http://triton:8001/aB3/x+Yz/secret", URL_FORM, "http://triton:8001/***", "triton:8001"),
        ("grpc://0.0.0.0:8081/v2/secret?x=1", URL_FORM, "grpc://0.0.0.0:8081/***", "0.0.0.0:8081"),
        ("http://u:secret@triton:8001/k/secret", URL_FORM, "http://u:***@triton:8001/***", "triton:8001"),
        ("u:secret@triton:8001/aB3/x+Yz/secret", USER, "u:***@triton:8001/***", "triton:8001"),
    ],
)
@pytest.mark.parametrize("where", ["http", "grpc", "upstream"])
def test_an_address_written_as_a_url_hides_its_path(
    written: str, said: str, shown: str, write: str, where: str
) -> None:
    """Found by the reread of 2026-12-06: the URL form of an address, or one after a user and password, was quoted
    with its path, where a token may sit (`got 'http://triton:8001/aB3/x+Yz/...'`), as the address form's path is not
    (`triton:8001/***`)."""
    path = {"http": "listen.http", "grpc": "listen.grpc", "upstream": "upstreams[0].grpc"}[where]
    assert problems(**{where: written}) == [f"{path}: {said}, got {shown!r} (write {write!r})"]


def test_check_hides_an_addresss_path(tmp_path: Path) -> None:
    """`lineage-proxy check` says it so, through the CLI."""
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.format(http="127.0.0.1:8080", grpc="http://0.0.0.0:8081/aB3/x+Yz/secret",
                                    upstream="127.0.0.1:8001"))  # fmt: skip
    done = check(config)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    said = done.stdout + done.stderr
    assert (
        "listen.grpc: expected host:port without a scheme, got 'http://0.0.0.0:8081/***' (write '0.0.0.0:8081')" in said
    )
    assert "secret" not in said and "x+Yz" not in said, said


def check(config: Path) -> subprocess.CompletedProcess[str]:
    """`lineage-proxy check --config` run as a user runs it, this tree's proxy imported."""
    root = str(Path(__file__).parent.parent)
    return subprocess.run([sys.executable, "-m", "proxy", "check", "--config", str(config)], capture_output=True,
                          text=True, timeout=60, cwd=root, env={**os.environ, "PYTHONPATH": root})  # fmt: skip


@pytest.mark.parametrize(
    ("written", "said", "shown"),
    [
        ("http://ops:12/secret@triton:http", URL_FORM, "http://ops:***@triton:http"),
        ("http://ops:12/secret@triton :8001", URL_FORM, "http://ops:***@triton :8001"),
        ("grpc://gw/xyz/secret@triton:99999", URL_FORM, "grpc://***@triton:99999"),
        ("u:secret@triton:http", USER, "u:***@triton:http"),
        ("u:secret@tri ton:8001", USER, "u:***@tri ton:8001"),
        ("u:secret@triton:\uff18\uff10\uff10\uff11", USER, "u:***@triton:\uff18\uff10\uff10\uff11"),  # (`８００１`)
    ],
)
@pytest.mark.parametrize("where", ["http", "grpc", "upstream"])
def test_the_address_said_to_write_is_one_that_loads(written: str, said: str, shown: str, where: str) -> None:
    """Found reviewing urls3's change (2026-12-06): the address after a userinfo was said to be written as it was when
    it was mistyped in turn (`write 'triton:http'`, `write 'triton :8001'`), and the next `check` refused what this
    one said to write. What would not load is said `write 'host:port'`."""
    path = {"http": "listen.http", "grpc": "listen.grpc", "upstream": "upstreams[0].grpc"}[where]
    assert problems(**{where: written}) == [f"{path}: {said}, got {shown!r} (write 'host:port')"]


@pytest.mark.parametrize(
    ("written", "said"),
    [
        # a `://` in a path after the port: read as a URL from there until urls4's change (2026-12-06), quoting the
        # path before it and saying `write 'x'`
        ("triton:8001/secret://x", NO_HOST.format(shown="***")),
        ("triton:8001/k/secret://triton:8001", NO_HOST.format(shown="***")),
        (
            "u:pw@triton:8001/secret://x",
            "a host:port holds no user or password, got 'u:***@triton:8001/***' (write 'triton:8001')",
        ),
        # a `\` typed for the path's `/`: quoted whole until that change (`\\\\`: one in CONFIG's YAML)
        ("triton:8001\\\\secret", "expected host:port, got 'triton:8001\\\\***'"),
        (
            "http://triton:8001\\\\secret",
            "expected host:port without a scheme, got 'http://triton:8001\\\\***' (write 'host:port')",
        ),
    ],
)
def test_an_address_read_past_its_path_hides_it(written: str, said: str) -> None:
    assert problems(upstream=written) == [f"upstreams[0].grpc: {said}"]


@pytest.mark.parametrize(
    ("config", "path"),
    [
        ("upstreams: [{name: m, url: '%s'}]\n", "upstreams[0].url"),
        ("upstreams: [{name: m, url: 'http://h:1'}]\ntelemetry: {exporter: otlp, endpoint: '%s'}\n",
         "telemetry.endpoint"),
        ("upstreams: [{name: m, url: 'http://h:1'}]\n"
         "telemetry: {exporter: otlp, protocol: http/protobuf, traces_endpoint: '%s'}\n", "telemetry.traces_endpoint"),
        ("upstreams: [{name: m, url: 'http://h:1'}]\nlineage: {store: null, openlineage: {url: '%s'}}\n",
         "lineage.openlineage.url"),
    ],
)  # fmt: skip
@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://collector:4317\\v1\\secret", "http://collector:4317\\***"),
        # found reviewing urls4's change: without a port these loaded, the host `collector\\v1\\secret` to urllib,
        # which yarl refuses (never reached; the path, any token in it, quoted as the host), `[::1]\\...` too
        ("http://collector\\v1\\secret", "http://collector\\***"),
        ("https://api.example.com\\v1\\secret", "https://api.example.com\\***"),
        ("http://[::1]\\secret", "http://[::1]\\***"),
        ("http://collector\\secret:4317", "http://collector\\***"),
    ],
)
def test_a_url_whose_path_begins_with_a_backslash_is_said_so_hidden(
    config: str, path: str, url: str, shown: str
) -> None:
    """Found reviewing urls3's change: `http://collector:4317\\v1\\secret` was said as no http URL, quoted whole (a
    token may be in a path); a `\\` typed for a `/` is said so, what follows it hidden."""
    text = "listen: {http: '127.0.0.1:0'}\nroutes: [{model: '*', upstream: m}]\n" + config % url
    with pytest.raises(ConfigError) as caught:
        parse(text, env={})
    assert caught.value.problems == [
        f"{path}: a path begins with '/', not '\\' (no host:port holds a '\\') in {shown!r}"
    ]


def test_check_says_an_address_to_write_only_when_it_loads(tmp_path: Path) -> None:
    """`lineage-proxy check` says it so, through the CLI."""
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG.format(http="127.0.0.1:8080", grpc="127.0.0.1:8081",
                                    upstream="http://ops:12/secret@triton:http"))  # fmt: skip
    done = check(config)
    said = done.stdout + done.stderr
    assert done.returncode == 1 and "Traceback" not in said and "secret" not in said, said
    assert (
        "upstreams[0].grpc: expected host:port without a scheme, got 'http://ops:***@triton:http' (write 'host:port')"
        in said
    ), said
