"""Which caller a client certificate identifies: a certificate with a SPIFFE ID is that workload and
nothing else; only a certificate without one is identified by its common name (`CN=<name>`)."""

from __future__ import annotations

import ssl
from pathlib import Path

import grpc
import httpx
import pytest

from proxy.tls import identities_from_auth_context, identities_from_peercert
from tests.certs import Authority, Pair
from tests.servers.vllm_like import SERVED

CONFIG = """
listen:
  http: 127.0.0.1:0
  grpc: 127.0.0.1:0
  tls:
    cert: ${CERT}
    key: ${KEY}
    client_ca: ${CA}
    require_client_cert: true
upstreams:
  - name: vllm
    url: ${UPSTREAM}
routes:
  - model: "*"
    upstream: vllm
callers:
  - name: glasses
    tls_identity: CN=glasses-app
    purposes: [assistant]
    default_purpose: assistant
policy:
  anonymous: deny
lineage:
  store: ${STORE}
"""


def test_a_spiffe_id_hides_the_common_name() -> None:
    evil = {"subject": ((("commonName", "glasses-app"),),),
            "subjectAltName": (("DNS", "evil.example.org"), ("URI", "spiffe://example.org/evil-workload"))}  # fmt: skip
    assert identities_from_peercert(evil) == ("spiffe://example.org/evil-workload",)
    plain = {"subject": ((("commonName", "glasses-app"),),), "subjectAltName": (("URI", "https://example.org/x"),)}
    assert identities_from_peercert(plain) == ("CN=glasses-app",)  # a URI that is no SPIFFE ID does not count
    # what grpc gives: every SAN in x509_subject_alternative_name, the URI SANs alone in peer_uri
    auth = {"transport_security_type": [b"ssl"], "x509_subject": [b"CN=glasses-app"],
            "x509_common_name": [b"glasses-app"], "peer_dns": [b"evil.example.org"],
            "x509_subject_alternative_name": [b"evil.example.org", b"spiffe://example.org/evil-workload"],
            "peer_uri": [b"spiffe://example.org/evil-workload"]}  # fmt: skip
    assert identities_from_auth_context(auth) == ("spiffe://example.org/evil-workload",)
    assert identities_from_auth_context({**auth, "peer_uri": []}) == ("CN=glasses-app",)


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Pair | Authority]:
    ca = Authority(tmp_path)
    return {
        "ca": ca,
        "server": ca.issue("server", common_name="lineage-proxy", server=True),
        "app": ca.issue("app", common_name="glasses-app"),
        "evil": ca.issue("evil", common_name="glasses-app", spiffe_id="spiffe://example.org/evil-workload"),
    }


def test_a_certificate_with_a_spiffe_id_naming_no_caller_is_not_its_common_names_caller(vllm, make_proxy, pki) -> None:  # type: ignore[no-untyped-def]
    """The review's case (tlscn.yaml): SAN spiffe://example.org/evil-workload + CN=glasses-app was
    identified as the `CN=glasses-app` caller."""
    server, upstream = vllm
    ca, own = pki["ca"], pki["server"]
    proxy = make_proxy(CONFIG, wait="probed", UPSTREAM=upstream, CERT=str(own.cert), KEY=str(own.key),
                       CA=str(ca.pair.cert))  # fmt: skip

    def chat(who: Pair) -> httpx.Response:
        context = ssl.create_default_context(cafile=str(ca.pair.cert))
        context.load_cert_chain(str(who.cert), str(who.key))
        with httpx.Client(verify=context, timeout=10) as client:
            return client.post(f"https://{proxy.bound.http}/v1/chat/completions",
                               json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip

    assert chat(pki["app"]).headers["x-lineage-decision"] == "allow"
    refused = chat(pki["evil"])
    assert refused.status_code == 401, refused.text
    assert "'spiffe://example.org/evil-workload' names no caller" in refused.json()["error"]["message"]
    assert len(server.data_requests()) == 1

    def live(who: Pair) -> grpc.StatusCode:
        credentials = grpc.ssl_channel_credentials(ca.pair.cert.read_bytes(), who.key.read_bytes(),
                                                   who.cert.read_bytes())  # fmt: skip
        with grpc.secure_channel(f"localhost:{proxy.bound.grpc.port}", credentials) as channel:
            try:
                channel.unary_unary("/inference.GRPCInferenceService/ServerLive")(b"", timeout=10)
            except grpc.RpcError as exc:
                return exc.code()  # type: ignore[no-any-return]
        return grpc.StatusCode.OK

    assert live(pki["evil"]) == grpc.StatusCode.UNAUTHENTICATED
