"""A URI SAN holding a NUL byte (`spiffe://td/alice\\0.evil`, which a CA may sign for a name it was asked for:
the NUL-prefix attack on X.509 names) is that whole name on both listeners. grpc hands the proxy every SAN only up to
its first NUL (`peer_uri`, even its own `peer_spiffe_id`, read `spiffe://td/alice`), so over gRPC the certificate was
the caller `alice`, whose SPIFFE ID it does not carry, while HTTPS, which reads the whole name, said it names no
caller. The README has a certificate be one caller on the HTTP and gRPC listeners alike."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography import x509

from tests.certs import Authority, Pair
from tests.harness import ServeProcess
from tests.test_identity_certificates import CONFIG, Served, caller


def _with_sans(ca: Authority, name: str, sans: list[x509.GeneralName]) -> Pair:
    """A client certificate `ca` signs with exactly these SANs (`cryptography` encodes a NUL as it is given)."""
    return ca.issue(name, common_name="nobody", extra_sans=sans)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp("nul")
    ca = Authority(directory)
    uri = x509.UniformResourceIdentifier
    certs = {
        "nul": _with_sans(ca, "nul", [uri("spiffe://td/alice\x00.evil")]),
        # alice's whole, beside a longer one that begins with it: two SPIFFE IDs, as on HTTPS
        "nul-and-whole": _with_sans(ca, "nul-and-whole", [uri("spiffe://td/alice\x00.evil"), uri("spiffe://td/alice")]),
        "whole": _with_sans(ca, "whole", [uri("spiffe://td/alice")]),
    }
    server = ca.issue("server", common_name="lineage-proxy", server=True)
    path = directory / "proxy.yaml"
    path.write_text(CONFIG.format(server=server, ca=ca.pair.cert, odd=""))
    serve = ServeProcess(str(path), env={"UPSTREAM": "http://127.0.0.1:9", "STORE": str(directory / "l.db")})
    try:
        yield Served(serve, ca, certs)
    finally:
        serve.stop()


@pytest.mark.parametrize(("who", "expected"), [("nul", "nobody"), ("nul-and-whole", "nobody"), ("whole", "alice")])
def test_a_nul_in_a_uri_san_is_read_whole_on_both_listeners(served: Served, who: str, expected: str) -> None:
    assert caller(served, who) == expected
