"""A client certificate is the same caller over HTTPS and gRPC, through a real `lineage-proxy serve`:
only a URI SAN is a SPIFFE ID (a DNS or e-mail SAN that reads `spiffe://…` is not, and was the caller
`alice` over gRPC while HTTPS said `bob`), and a certificate naming several identities (two SPIFFE IDs, or
two common names) identifies nobody on either listener (it was whichever named a caller, and the two
listeners disagreed on two common names)."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, replace

import grpc
import httpx
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from tritonclient.grpc import service_pb2

from proxy.config import Caller, parse
from proxy.flow import Call, TraceContext
from proxy.policy import Policy, decide
from proxy.tls import identities_from_auth_context, identities_from_peercert
from tests.certs import Authority, Pair
from tests.harness import ServeProcess
from tests.servers.vllm_like import SERVED

CN, URI = NameOID.COMMON_NAME, x509.UniformResourceIdentifier
# common names a caller may carry that RFC 2253 (grpc's `x509_subject`) escapes: each the caller `odd<i>`
ODD_NAMES = ("bob, O=x", "a+b", 'q"uote', "back\\slash", "#hash", " lead", "trail ", "CN=bob", "semi;<>", "bøb ☃")

CONFIG = """
listen:
  http: 127.0.0.1:0
  grpc: 127.0.0.1:0
  tls:
    cert: {server.cert}
    key: {server.key}
    client_ca: {ca}
    require_client_cert: true
upstreams:
  - name: llm
    url: ${{UPSTREAM}}
routes:
  - model: "*"
    upstream: llm
callers:
  - name: bob
    tls_identity: CN=bob
    purposes: [evaluation]
  - name: alice
    tls_identity: spiffe://td/alice
    purposes: [evaluation]
{odd}
policy:
  anonymous: deny
lineage:
  store: ${{STORE}}
"""


@dataclass(frozen=True)
class Served:
    serve: ServeProcess
    ca: Authority
    certs: dict[str, Pair]


def issue(ca: Authority, name: str, subject: list[tuple[x509.ObjectIdentifier, str]],
          sans: list[x509.GeneralName] | None = None) -> Pair:  # fmt: skip
    """A client certificate with exactly this subject (several CNs allowed) and these SANs."""
    return ca.issue(name, subject=subject, extra_sans=sans)


POLICY = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: llm, url: "http://127.0.0.1:9"}]
routes: [{model: "*", upstream: llm}]
policy: {anonymous: deny}
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp("identity")
    ca = Authority(directory)
    certs = {
        "bob": issue(ca, "bob", [(CN, "bob")]),
        "alice": issue(ca, "alice", [(CN, "alice-cn")], [URI("spiffe://td/alice")]),
        # F1: no URI SAN; a DNS or e-mail SAN whose text is alice's SPIFFE ID
        "dns": issue(ca, "dns", [(CN, "bob")], [x509.DNSName("spiffe://td/alice")]),
        "email": issue(ca, "email", [(CN, "bob")], [x509.RFC822Name("spiffe://td/alice")]),
        "dns-and-email": issue(
            ca,
            "dns-and-email",
            [(CN, "bob")],
            [x509.DNSName("spiffe://td/alice"), x509.RFC822Name("spiffe://td/alice")],
        ),
        # F2: several identities
        "two-cns": issue(ca, "two-cns", [(CN, "nobody"), (CN, "bob")]),
        "two-cns-known-first": issue(ca, "two-cns-known-first", [(CN, "bob"), (CN, "nobody")]),
        "two-spiffe-ids": issue(
            ca, "two-spiffe-ids", [(CN, "bob")], [URI("spiffe://td/nobody"), URI("spiffe://td/alice")]
        ),
        "two-spiffe-ids-known-first": issue(
            ca, "two-spiffe-ids-known-first", [(CN, "bob")], [URI("spiffe://td/alice"), URI("spiffe://td/nobody")]
        ),
        # one SPIFFE ID among other URIs and names: still that one workload
        "spiffe-among-others": issue(
            ca,
            "spiffe-among-others",
            [(CN, "bob")],
            [x509.DNSName("a.example"), URI("https://td/x"), URI("spiffe://td/alice")],
        ),
        "no-cn": issue(ca, "no-cn", [(NameOID.ORGANIZATION_NAME, "bob")]),
    }
    odd = ""
    for index, name in enumerate(ODD_NAMES):
        certs[f"odd{index}"] = issue(ca, f"odd{index}", [(NameOID.ORGANIZATION_NAME, "o"), (CN, name)])
        odd += f"  - name: odd{index}\n    tls_identity: {json.dumps('CN=' + name)}\n    purposes: [evaluation]\n"
    server = ca.issue("server", common_name="lineage-proxy", server=True)
    path = directory / "proxy.yaml"
    path.write_text(CONFIG.format(server=server, ca=ca.pair.cert, odd=odd))
    # the calls are refused before any upstream: one that is never reached will do
    serve = ServeProcess(str(path), env={"UPSTREAM": "http://127.0.0.1:9", "STORE": str(directory / "l.db")})
    try:
        yield Served(serve, ca, certs)
    finally:
        serve.stop()


def over_https(served: Served, who: str) -> tuple[int, str]:
    context = ssl.create_default_context(cafile=str(served.ca.pair.cert))
    pair = served.certs[who]
    context.load_cert_chain(str(pair.cert), str(pair.key))
    with httpx.Client(verify=context, timeout=10) as client:
        reply = client.post(f"https://localhost:{served.serve.addresses['http'].rsplit(':', 1)[1]}/v1/chat/completions",
                            headers={"x-purpose": "assistant"},
                            json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
    return reply.status_code, reply.json()["error"]["message"]


def over_grpc(served: Served, who: str) -> tuple[grpc.StatusCode, str]:
    pair = served.certs[who]
    credentials = grpc.ssl_channel_credentials(served.ca.pair.cert.read_bytes(), pair.key.read_bytes(),
                                               pair.cert.read_bytes())  # fmt: skip
    request = service_pb2.ModelInferRequest(model_name="simple").SerializeToString()
    port = served.serve.addresses["grpc"].rsplit(":", 1)[1]
    with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        try:
            infer(request, metadata=[("x-purpose", "assistant")], timeout=10)
        except grpc.RpcError as exc:
            return exc.code(), exc.details()  # type: ignore[no-any-return]
    raise AssertionError(f"{who}: the call was not refused")


def caller(served: Served, who: str) -> str:
    """The caller `who`'s certificate is over both listeners (each refuses the call, naming it), and
    asserted the same on both."""
    status, message = over_https(served, who)
    code, details = over_grpc(served, who)
    if status == 401:
        assert code == grpc.StatusCode.UNAUTHENTICATED, (who, message, code, details)
        assert "missing API key" in message and "missing API key" in details, (message, details)
        return "nobody"
    assert (status, code) == (403, grpc.StatusCode.PERMISSION_DENIED), (who, status, message, code, details)
    https_caller = message.split("'")[1]
    assert message.startswith("caller ") and details.startswith(f"caller '{https_caller}' "), (message, details)
    return https_caller


@pytest.mark.parametrize("who", ["dns", "email", "dns-and-email"])
def test_a_dns_or_email_san_reading_a_spiffe_id_is_no_spiffe_id_on_either_listener(served: Served, who: str) -> None:
    assert caller(served, who) == "bob"  # gRPC said `alice`


@pytest.mark.parametrize("who", ["two-cns", "two-cns-known-first", "two-spiffe-ids", "two-spiffe-ids-known-first"])
def test_a_certificate_naming_several_identities_identifies_nobody_on_either_listener(served: Served, who: str) -> None:
    """Two SPIFFE IDs were taken for the first naming a caller (`alice`) on both listeners; two CNs for any
    naming one over HTTPS (`bob`), for the first over gRPC. Now none, and the refusal says why; nor does
    the common name count for a certificate with two SPIFFE IDs (its CN is bob's)."""
    assert caller(served, who) == "nobody"
    _, message = over_https(served, who)
    assert "the client certificate names 2 identities" in message, message
    _, details = over_grpc(served, who)
    assert "the client certificate names 2 identities" in details, details


@pytest.mark.parametrize(("who", "expected"), [("bob", "bob"), ("alice", "alice"), ("spiffe-among-others", "alice"),
                                               ("no-cn", "nobody")])  # fmt: skip
def test_one_identity_is_its_caller_on_both_listeners(served: Served, who: str, expected: str) -> None:
    assert caller(served, who) == expected


@pytest.mark.parametrize("index", range(len(ODD_NAMES)))
def test_a_common_name_with_characters_rfc_2253_escapes_is_its_caller_on_both_listeners(
    served: Served, index: int
) -> None:
    """grpc gives every common name only in its subject's RFC 2253 form, which the gRPC side reads back."""
    assert caller(served, f"odd{index}") == f"odd{index}"


def test_both_forms_give_the_same_identities() -> None:
    """The two readers side by side, on what Python's ssl and grpc 1.85 give for the same certificates."""
    dns = {"subject": ((("commonName", "bob"),),), "subjectAltName": (("DNS", "spiffe://td/alice"),)}
    assert identities_from_peercert(dns) == ("CN=bob",)
    auth = {"transport_security_type": [b"ssl"], "x509_subject": [b"CN=bob"], "x509_common_name": [b"bob"],
            "x509_subject_alternative_name": [b"spiffe://td/alice"], "peer_dns": [b"spiffe://td/alice"]}  # fmt: skip
    assert identities_from_auth_context(auth) == ("CN=bob",)
    two = {"subject": ((("commonName", "nobody"),), (("commonName", "bob"),))}
    assert identities_from_peercert(two) == ("CN=nobody", "CN=bob")
    auth = {"transport_security_type": [b"ssl"], "x509_subject": [b"CN=bob,CN=nobody"], "x509_common_name": [b"nobody"]}
    assert identities_from_auth_context(auth) == ("CN=nobody", "CN=bob")
    escaped = {"transport_security_type": [b"ssl"], "x509_subject": [b"CN=b\\C3\\B8b\\, O\\=x+O=o"]}
    assert identities_from_auth_context(escaped) == ("CN=bøb, O=x",)
    assert identities_from_auth_context({"transport_security_type": [b"ssl"], "x509_subject": [b"O=bob"],
                                         "x509_common_name": [b""]}) == ()  # fmt: skip


def test_policy_caller_takes_a_certificate_s_identity_only_when_it_is_the_only_one() -> None:
    callers = (Caller("bob", tls_identity="CN=bob"), Caller("alice", tls_identity="spiffe://td/alice"))
    policy = replace(Policy.compile(parse(POLICY)), callers_by_identity={c.tls_identity: c for c in callers})  # type: ignore[misc]
    assert policy.caller(None, ("CN=bob",)).name == "bob"  # type: ignore[union-attr]
    assert policy.caller(None, ("spiffe://td/alice",)).name == "alice"  # type: ignore[union-attr]
    assert policy.caller(None, ("CN=nobody", "CN=bob")) is None
    assert policy.caller(None, ("CN=bob", "CN=nobody")) is None
    assert policy.caller(None, ("spiffe://td/alice", "spiffe://td/alice")) is None
    decision = decide(
        Call("openai", "chat", "m", TraceContext(1, 2), None, "evaluation", peer=("CN=x", "CN=bob")), policy
    )
    assert decision.code == "invalid_api_key" and "names 2 identities" in (decision.reason or ""), decision
