"""TLS on the listeners, and callers identified by their client certificate (mTLS), over HTTP with the
openai SDK and over gRPC with tritonclient; a reload swaps the certificate for new connections."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import httpx
import openai
import pytest

from proxy.config import parse
from proxy.errors import ConfigError
from proxy.flow import Call, TraceContext
from proxy.policy import Policy, decide
from tests.certs import Authority
from tests.servers.vllm_like import SERVED
from tests.transport.test_grpc import simple_inputs

SPIFFE = "spiffe://example.org/ns/apps/sa/glasses"

CONFIG = """
listen:
  http: 127.0.0.1:0
  grpc: 127.0.0.1:0
  tls:
    cert: ${CERT}
    key: ${KEY}
    client_ca: ${CA}
    require_client_cert: ${REQUIRE:-false}
upstreams:
  - name: vllm
    url: ${UPSTREAM}
  - name: oip
    grpc: ${OIP_GRPC:-127.0.0.1:1}
    protocol: oip
    checkpoint: simple@1
routes:
  - model: simple
    upstream: oip
  - model: "*"
    upstream: vllm
callers:
  - name: glasses-app
    tls_identity: spiffe://example.org/ns/apps/sa/glasses
    purposes: [assistant]
    default_purpose: assistant
  - name: batch
    tls_identity: CN=batch-job
    purposes: [evaluation]
    default_purpose: evaluation
policy:
  anonymous: deny
lineage:
  store: ${STORE}
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    directory = tmp_path_factory.mktemp("pki")
    ca = Authority(directory)
    return {
        "ca": ca,
        "server": ca.issue("server", common_name="lineage-proxy", server=True),
        "glasses": ca.issue("glasses", common_name="glasses", spiffe_id=SPIFFE),
        "batch": ca.issue("batch", common_name="batch-job"),
        "stranger": ca.issue("stranger", common_name="stranger", spiffe_id="spiffe://example.org/ns/x/sa/y"),
    }


def env(pki, **more: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"CERT": str(pki["server"].cert), "KEY": str(pki["server"].key), "CA": str(pki["ca"].pair.cert), **more}


def sdk(proxy, pki, who: str | None) -> openai.OpenAI:  # type: ignore[no-untyped-def]
    context = ssl.create_default_context(cafile=str(pki["ca"].pair.cert))
    if who:
        context.load_cert_chain(str(pki[who].cert), str(pki[who].key))
    http = httpx.Client(verify=context, timeout=10)
    return openai.OpenAI(base_url=f"https://{proxy.bound.http}/v1", api_key="unused", max_retries=0, http_client=http)


def test_callers_are_identified_by_their_certificate(vllm, make_proxy, pki) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, wait="probed", UPSTREAM=upstream, **env(pki))
    messages = [{"role": "user", "content": "hi"}]
    reply = sdk(proxy, pki, "glasses").chat.completions.with_raw_response.create(model=SERVED, messages=messages)
    assert reply.http_response.headers["x-lineage-decision"] == "allow"
    with pytest.raises(openai.PermissionDeniedError) as wrong_purpose:  # the CN=batch-job caller's purposes
        sdk(proxy, pki, "batch").chat.completions.create(model=SERVED, messages=messages,
                                                         extra_headers={"x-purpose": "assistant"})  # fmt: skip
    assert "caller 'batch'" in wrong_purpose.value.message
    with pytest.raises(openai.AuthenticationError) as anonymous:
        sdk(proxy, pki, None).chat.completions.create(model=SERVED, messages=messages)
    assert "missing API key" in anonymous.value.message
    with pytest.raises(openai.AuthenticationError) as stranger:
        sdk(proxy, pki, "stranger").chat.completions.create(model=SERVED, messages=messages)
    assert "spiffe://example.org/ns/x/sa/y" in stranger.value.message and "names no caller" in stranger.value.message
    assert len(server.data_requests()) == 1


def test_grpc_over_tls_with_a_client_certificate(make_proxy, pki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    from tests.harness import dead_port
    from tests.servers.real import faithful_oip

    with faithful_oip(tmp_path) as (address, _):
        # grpc asks for a client certificate only when it requires one
        proxy = make_proxy(CONFIG, wait="probed", UPSTREAM=f"http://127.0.0.1:{dead_port()}", OIP_GRPC=address,
                           REQUIRE="true", **env(pki))  # fmt: skip

        def client(who: str | None) -> grpcclient.InferenceServerClient:
            return grpcclient.InferenceServerClient(
                f"localhost:{proxy.bound.grpc.port}", ssl=True, root_certificates=str(pki["ca"].pair.cert),
                private_key=str(pki[who].key) if who else None, certificate_chain=str(pki[who].cert) if who else None,
            )  # fmt: skip

        inputs = simple_inputs([2], [2])
        result = client("batch").infer("simple", inputs)
        assert result.as_numpy("SUM").tolist() == [[4]]
        with pytest.raises(InferenceServerException) as refused:  # no certificate: no handshake
            client(None).infer("simple", inputs)
        assert refused.value.status() == "StatusCode.UNAVAILABLE"
        with pytest.raises(InferenceServerException) as stranger:
            client("stranger").infer("simple", inputs)
        assert stranger.value.status() == "StatusCode.UNAUTHENTICATED" and "names no caller" in stranger.value.message()


def _served_certificate(port: int, ca: Path) -> bytes:
    context = ssl.create_default_context(cafile=str(ca))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der


def test_a_reload_swaps_the_certificate_for_new_connections(vllm, make_proxy, pki, loop_thread, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, upstream = vllm
    proxy = make_proxy(CONFIG, wait="probed", UPSTREAM=upstream, **env(pki))
    ca = pki["ca"].pair.cert
    before = _served_certificate(proxy.bound.http.port, ca)
    renewed = pki["ca"].issue("renewed", common_name="lineage-proxy", server=True)
    config = tmp_path / "proxy.yaml"
    values = {**env(pki), "CERT": str(renewed.cert), "KEY": str(renewed.key), "UPSTREAM": upstream,
              "STORE": str(tmp_path / "lineage.db")}  # fmt: skip
    text = CONFIG
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    config.write_text(text)  # the other variables have defaults in the file

    async def reload() -> bool:
        return proxy.process.reload(str(config))

    assert loop_thread.run(reload())
    after = _served_certificate(proxy.bound.http.port, ca)
    assert after != before and after == _der(renewed.cert)


def _der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def test_a_bad_certificate_is_a_config_problem(pki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    broken = tmp_path / "broken.crt"
    broken.write_text("not a certificate")
    with pytest.raises(ConfigError) as caught:
        parse(CONFIG, env={**env(pki), "CERT": str(broken), "UPSTREAM": "http://127.0.0.1:1", "STORE": "x.db"})
    assert any(problem.startswith("listen.tls: cannot use the certificate") for problem in caught.value.problems)


def test_a_grpc_upstream_over_tls_with_the_proxys_client_certificate(make_proxy, pki, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import tritonclient.grpc as grpcclient

    from tests.servers.real import faithful_oip

    ca = pki["ca"]
    upstream_cert = ca.issue("model-server", common_name="model.internal", server=True)
    proxy_cert = ca.issue("proxy-client", common_name="lineage-proxy")
    config = f"""
listen: {{http: 127.0.0.1:0, grpc: 127.0.0.1:0}}
upstreams:
  - name: triton
    grpc: ${{OIP_GRPC}}
    protocol: oip
    tls: {{ca: "{ca.pair.cert}", cert: "{proxy_cert.cert}", key: "{proxy_cert.key}"}}
routes: [{{model: "*", upstream: triton}}]
policy: {{anonymous: allow, default_purpose: assistant}}
lineage: {{store: "${{STORE}}"}}
"""
    with faithful_oip(tmp_path, (str(upstream_cert.cert), str(upstream_cert.key), str(ca.pair.cert))) as (address, log):
        proxy = make_proxy(config, wait="reachable", OIP_GRPC=address.replace("127.0.0.1", "localhost"))
        client = grpcclient.InferenceServerClient(proxy.grpc)
        inputs = simple_inputs([2], [2])
        result = client.infer("simple", inputs)
        assert result.as_numpy("SUM").tolist() == [[4]]
        assert '"model": "simple"' in log.read_text()  # it reached the upstream, over TLS with the proxy's certificate


def test_an_https_upstream_checked_against_its_ca_with_the_proxys_client_certificate(
    make_proxy, pki, loop_thread
) -> None:  # type: ignore[no-untyped-def]
    from aiohttp import web

    from tests.servers.vllm_like import VllmLike

    ca = pki["ca"]
    upstream_cert = ca.issue("https-upstream", common_name="model.internal", server=True)
    proxy_cert = ca.issue("proxy-https-client", common_name="lineage-proxy")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca.pair.cert))
    context.load_cert_chain(str(upstream_cert.cert), str(upstream_cert.key))
    context.verify_mode = ssl.CERT_REQUIRED  # the model server only talks to callers with a certificate
    server = VllmLike()

    async def start() -> tuple[web.AppRunner, int]:
        runner = web.AppRunner(server.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    runner, port = loop_thread.run(start())
    try:
        config = f"""
listen: {{http: 127.0.0.1:0}}
upstreams:
  - name: vllm
    url: https://localhost:{port}
    tls: {{ca: "{ca.pair.cert}", cert: "{proxy_cert.cert}", key: "{proxy_cert.key}"}}
routes: [{{model: "*", upstream: vllm}}]
policy: {{anonymous: allow, default_purpose: assistant}}
lineage: {{store: "${{STORE}}"}}
"""
        proxy = make_proxy(config)
        reply = httpx.post(f"{proxy.url}/v1/chat/completions", timeout=10,
                           json={"model": SERVED, "messages": [{"role": "user", "content": "over tls"}]})  # fmt: skip
        assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"].endswith("over tls")
        assert reply.headers["x-lineage-checkpoint"] == "meta-llama/Llama-3.1-8B-Instruct"  # discovery over TLS too
    finally:
        loop_thread.run(runner.cleanup())


# -- a call refused as anonymous where callers are named by their client certificates says a certificate would do:
# a TLS listener's call that showed none was told only "missing API key: send 'Authorization: Bearer <key>'", a cure
# for a caller that has no key; a call carrying no data (a listing) is told what a call with data is, the
# certificate that names no caller included (it said only "missing API key"). Where no caller has a
# `tls_identity`, the reason is as it was.

MISSING_KEY = "missing API key: send 'Authorization: Bearer <key>'"
EITHER = MISSING_KEY + ", or a client certificate that names a caller (callers[].tls_identity)"
STRANGER = MISSING_KEY + " (the client certificate 'spiffe://example.org/ns/x/sa/y' names no caller)"


def listing(proxy, pki, who: str | None) -> httpx.Response:  # type: ignore[no-untyped-def]
    context = ssl.create_default_context(cafile=str(pki["ca"].pair.cert))
    if who:
        context.load_cert_chain(str(pki[who].cert), str(pki[who].key))
    return httpx.get(f"https://{proxy.bound.http}/v1/models", verify=context, timeout=10)


def test_a_call_without_key_or_certificate_is_told_either_identifies_it(vllm, make_proxy, pki) -> None:  # type: ignore[no-untyped-def]
    server, upstream = vllm
    proxy = make_proxy(CONFIG, wait="probed", UPSTREAM=upstream, **env(pki))
    with pytest.raises(openai.AuthenticationError) as anonymous:
        sdk(proxy, pki, None).chat.completions.create(model=SERVED, messages=[{"role": "user", "content": "hi"}])
    assert anonymous.value.body["message"] == EITHER  # type: ignore[index]
    listed = listing(proxy, pki, None)
    assert listed.status_code == 401 and listed.json()["error"]["message"] == EITHER
    stranger = listing(proxy, pki, "stranger")
    assert stranger.status_code == 401 and stranger.json()["error"]["message"] == STRANGER
    assert listing(proxy, pki, "glasses").status_code == 200
    assert server.data_requests() == []


def test_without_callers_named_by_certificate_the_reason_is_as_it_was() -> None:
    policy = Policy.compile(parse("""
listen: {http: 127.0.0.1:0}
upstreams: [{name: llm, url: "http://127.0.0.1:9"}]
routes: [{model: "*", upstream: llm}]
callers: [{name: app, api_key_sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}]
policy: {anonymous: deny}
""", env={}))  # fmt: skip
    decision = decide(Call("openai", "chat", "m", TraceContext(1, 1)), policy)
    assert decision.reason == MISSING_KEY


def test_the_readme_quotes_the_reason_as_it_is_given() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8").replace("\n", " ")
    assert f"`{EITHER}`" in readme
