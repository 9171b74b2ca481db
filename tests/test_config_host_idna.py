"""A host's name its readers cannot look up is refused by `lineage-proxy check`, at each key, with the cure. Python's
sockets (getaddrinfo, uvloop, http.client: an upstream's url, an OTLP/HTTP endpoint, listen.http, listen.admin) write a
name in IDNA 2003 and refuse a label over 63 characters, right-to-left letters mixed with others or ended by a digit,
and a non-ASCII label beginning `xn--`: each loaded until 2026-12-07 and failed at each connect or at the start. A name
no IDNA writes (requests, httpx2 and yarl use IDNA 2008; grpc's resolver takes no name not ASCII) is refused at every
key; one IDNA 2008 writes loads where those read it, and an ASCII one with a long label, which grpc and httpx2 find
where a hosts file lists it, at grpc's keys and an async_http transport (requests refuses it: an http transport). A
percent-escape in a name (`tri%74on`), which grpc and requests decode and the others do not, is said so with the name
decoded. Measured reader by reader: /tmp/s53/cfg9/ns/readers.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROUTES = 'routes: [{model: "*", upstream: u}]\n'
# each key class's config: the host in every key of it, and the keys in the order `check` says them
SOCKETS = (
    'listen: {http: "%(h)s:8080", admin: "%(h)s:9464"}\nupstreams: [{name: u, url: "http://%(h)s:8000"}]\n' + ROUTES
    + 'telemetry: {protocol: http/protobuf, endpoint: "http://%(h)s:4318/v1/traces"}\n'
)  # fmt: skip
SOCKET_KEYS = [("listen.http", "%s:8080"), ("listen.admin", "%s:9464"),
               ("upstreams[0].url", "%s:8000", "http://%s:8000"),
               ("telemetry.endpoint", "%s:4318", "http://%s:4318/v1/traces")]  # fmt: skip
GRPC = (
    'listen: {http: "127.0.0.1:0", grpc: "%(h)s:8081"}\nupstreams: [{name: u, protocol: oip, grpc: "%(h)s:8001"}]\n'
    + ROUTES + 'telemetry: {protocol: grpc, endpoint: "%(h)s:4317", traces_endpoint: "http://%(h)s:4317"}\n'
)  # fmt: skip
GRPC_KEYS = [("listen.grpc", "%s:8081"), ("upstreams[0].grpc", "%s:8001"), ("telemetry.endpoint", "%s:4317"),
             ("telemetry.traces_endpoint", "%s:4317", "http://%s:4317")]  # fmt: skip
OPENLINEAGE = (
    'listen: {http: "127.0.0.1:0"}\nupstreams: [{name: u, url: "http://127.0.0.1:8000"}]\n' + ROUTES
    + 'lineage: {openlineage: {transport: {type: composite, transports: [{type: http, url: "http://%(h)s:5000"}, '
    '{type: async_http, url: "http://%(h)s:5000"}]}}}\n'
)  # fmt: skip
OPENLINEAGE_KEYS = [(f"lineage.openlineage.transport.transports[{n}].url", "%s:5000", "http://%s:5000") for n in (0, 1)]
ASYNC_HTTP = OPENLINEAGE.replace('{type: http, url: "http://%(h)s:5000"}, ', "")
CLASSES = {"sockets": (SOCKETS, SOCKET_KEYS), "grpc": (GRPC, GRPC_KEYS), "openlineage": (OPENLINEAGE, OPENLINEAGE_KEYS)}

LONG = "a" * 64 + ".example"
LONG_IDN = "ä" * 64 + ".example"
LENGTH = (
    "a host's name is labels of 63 characters at most, an IDN's in its xn-- form (DNS's limit), got {!r} (write {!r})"
)
BIDI = "right-to-left letters mixed with others, or a digit ending them"
NO_IDNA = "no IDNA writes this name ({}), so no resolver finds it, got {!r} (write {!r})"
IDNA_2003 = (
    "Python's sockets write a name in IDNA 2003, which refuses this one ({}), got {!r} (write its IDNA 2008 form, {!r})"
)
ESCAPED = ("a host's name holds no percent-escape (grpc and requests decode one, Python's sockets and httpx do not: "
           "each would reach another host), got {!r} (write {!r})")  # fmt: skip


def _check(tmp_path: Path, config: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "proxy.yaml").write_text(config, encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "proxy", "check", "--config", "proxy.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def _said(key: tuple[str, ...], host: str, said: str, write: str) -> str:
    """The line `check` says for `host` at `key` (its path, the host:port said, the URL quoted where it is one)."""
    path, shown, *url = key
    line = f"  {path}: {said.format(shown % host, write % host if '%s' in write else write)}"
    return line + (f" in {url[0] % host!r}" if url else "")


@pytest.mark.parametrize("keys", list(CLASSES), ids=list(CLASSES))
@pytest.mark.parametrize(
    ("host", "said", "write"),
    [
        (LONG_IDN, LENGTH, "host:port"),  # (its xn-- form's label is 69 characters)
        ("aא.example", NO_IDNA.replace("{}", BIDI, 1), "host:port"),
        ("xn--ä.example", NO_IDNA.replace("{}", "a label beginning xn-- is written in ASCII alone", 1), "host:port"),
        ("tri%74on", ESCAPED, "triton:{port}"),
        ("tri%2eton", ESCAPED, "tri.ton:{port}"),
    ],
    ids=["long idn label", "bidi mixed", "xn-- not ascii", "escaped", "escaped dot"],
)
def test_a_name_no_reader_looks_up_is_refused_at_every_key(
    tmp_path: Path, keys: str, host: str, said: str, write: str
) -> None:
    config, where = CLASSES[keys]
    result = _check(tmp_path, config % {"h": host})
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    expected = ["lineage-proxy check: proxy.yaml: invalid configuration:"]
    for key in where:
        port = key[1].rpartition(":")[2]
        expected.append(_said(key, host, said, write.format(port=port)))
    assert result.stderr.splitlines() == expected


@pytest.mark.parametrize(
    ("host", "said", "write"),
    [
        (LONG, LENGTH, "host:port"),
        ("שלום1.example", IDNA_2003.replace("{}", BIDI, 1), "xn--1-9hcuf1d.example:{port}"),
    ],
    ids=["long ascii label", "bidi digit last"],
)
def test_a_name_python_sockets_cannot_write_is_refused_where_they_read_it(
    tmp_path: Path, host: str, said: str, write: str
) -> None:
    result = _check(tmp_path, SOCKETS % {"h": host})
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    expected = ["lineage-proxy check: proxy.yaml: invalid configuration:"]
    for key in SOCKET_KEYS:
        expected.append(_said(key, host, said, write.format(port=key[1].rpartition(":")[2])))
    assert result.stderr.splitlines() == expected


def test_a_long_ascii_label_is_refused_at_an_openlineage_http_transport(tmp_path: Path) -> None:
    """requests (urllib3) writes an ASCII name with Python's idna codec and refuses it; async_http's httpx2 does not."""
    result = _check(tmp_path, OPENLINEAGE % {"h": LONG})
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines() == [
        "lineage-proxy check: proxy.yaml: invalid configuration:",
        _said(OPENLINEAGE_KEYS[0], LONG, LENGTH, "host:port"),
    ]


@pytest.mark.parametrize(
    ("keys", "host"),
    [("grpc", LONG), ("async_http", LONG), ("grpc", "שלום1.example"), ("openlineage", "שלום1.example")],
    ids=["long ascii label-grpc", "long ascii label-async_http", "bidi digit last-grpc", "bidi digit last-openlineage"],
)
def test_a_name_other_readers_look_up_loads_where_they_read_it(tmp_path: Path, keys: str, host: str) -> None:
    """grpc (either resolver) and httpx2 find `aaa...a.example` where a hosts file lists it; requests, httpx2 and yarl
    write `שלום1.example` in IDNA 2008 (`xn--1-9hcuf1d.example`), as its DNS lists it."""
    config = ASYNC_HTTP if keys == "async_http" else CLASSES[keys][0]
    result = _check(tmp_path, config % {"h": host})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("keys", list(CLASSES))
@pytest.mark.parametrize(
    "host",
    ["a" * 63 + ".example", "ä" * 30 + ".example", "שלום.example", "bücher.example", "xn--bcher-kva.example"],
    ids=["label of 63", "idn label of 30", "right-to-left", "idn", "idn written"],
)
def test_a_name_every_reader_looks_up_loads(tmp_path: Path, keys: str, host: str) -> None:
    result = _check(tmp_path, CLASSES[keys][0] % {"h": host})
    assert result.returncode == 0, result.stderr


NO_NAME = "a host's name is labels of letters, digits, '-' and '_' between single dots, got {!r} (write {!r})"


@pytest.mark.parametrize("keys", list(CLASSES), ids=list(CLASSES))
@pytest.mark.parametrize("host", ["tri%zzon", "127.0.0.1%eth0"], ids=["no escape", "ipv4 zone"])
def test_a_percent_that_is_no_escape_is_said_as_no_name_at_every_key(tmp_path: Path, keys: str, host: str) -> None:
    """A `%` that begins no escape is in no name, said as main says it: decoding changes nothing (`unquote`), and the
    name said to write was looked at again, a percent in it, until `check` failed with a RecursionError."""
    config, where = CLASSES[keys]
    result = _check(tmp_path, config % {"h": host})
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    expected = ["lineage-proxy check: proxy.yaml: invalid configuration:"] + [
        _said(key, host, NO_NAME, "host:port") for key in where
    ]
    assert result.stderr.splitlines() == expected


@pytest.mark.parametrize(
    ("keys", "host"),
    [("sockets", "%61" + "a" * 63 + ".example"), ("sockets", "%D7%A9%D7%9C%D7%95%D7%9D1.example"),
     ("grpc", "%D7%90a.example")],
    ids=["long ascii label", "bidi digit last", "bidi mixed"],
)  # fmt: skip
def test_an_escaped_name_that_decodes_to_one_refused_is_said_without_it(tmp_path: Path, keys: str, host: str) -> None:
    """The name decoded is said to write only where it would load at every key: `%61` and 63 `a` decode to a label of
    64, which Python's sockets cannot write (said `aaa...a.example:8080` to write, which the next check refused)."""
    config, where = CLASSES[keys]
    result = _check(tmp_path, config % {"h": host})
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    expected = ["lineage-proxy check: proxy.yaml: invalid configuration:"] + [
        _said(key, host, ESCAPED, "host:port") for key in where
    ]
    assert result.stderr.splitlines() == expected


UNMAPPED = ("{} writes a name not ASCII in IDNA 2008 as written, lowercased, none of it mapped, which refuses this one, "
            "got {{!r}} (write {{!r}})")  # fmt: skip
REQUESTS = UNMAPPED.format("requests (urllib3, splitting at '.' alone)")
HTTPX = UNMAPPED.format("httpx2")


@pytest.mark.parametrize(
    ("host", "write", "both"),
    [
        ("\uff42ücher.example", "xn--bcher-kva.example:5000", True),  # (a full-width b)
        ("שלום\uff11.example", "xn--1-9hcuf1d.example:5000", True),  # (a full-width 1)
        ("☃.example", "xn--n3h.example:5000", True),  # (IDNA 2003 writes it, IDNA 2008 not)
        ("bücher。example", "xn--bcher-kva.example:5000", False),  # (an ideographic full stop: httpx2 splits there)
    ],
    ids=["full-width letter", "full-width digit", "symbol", "ideographic dot"],
)
def test_a_name_an_openlineage_client_cannot_write_is_refused_at_its_transport(
    tmp_path: Path, host: str, write: str, both: bool
) -> None:
    """requests (urllib3's parse_url) and httpx2 write a name not ASCII with `idna.encode(name.lower())`, without the
    UTS 46 mapping `_idna_problem` asks of a name (`uts46=True`): each such name loaded and raised InvalidURL at each
    send. Said with the ASCII form every reader sends as written."""
    result = _check(tmp_path, OPENLINEAGE % {"h": host})
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    expected = [
        "lineage-proxy check: proxy.yaml: invalid configuration:",
        _said(OPENLINEAGE_KEYS[0], host, REQUESTS, write),
    ]
    if both:
        expected.append(_said(OPENLINEAGE_KEYS[1], host, HTTPX, write))
    assert result.stderr.splitlines() == expected
    cured = _check(tmp_path, OPENLINEAGE % {"h": write.rpartition(":")[0]})
    assert cured.returncode == 0, cured.stderr
