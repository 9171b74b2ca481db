"""KServe V1's liveness, `GET /` (`{"status": "alive"}`): what KServe's own client asks (`InferenceRESTClient(
RESTConfig(protocol="v1")).is_server_live()`). With named routes only (no `"*"`), the proxy answered it 404
`model_not_found` ("no route for model ''"), so that client raised, where the model's readiness next to it was
answered. It now goes to the first `protocol: kserve` upstream, as `/v2/health/live` goes to the first OIP one."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness import ProxyHandle, proxy_error
from tests.protocols.test_kserve_v1 import CONFIG, ECHO
from tests.servers.real import kserve_model_server, need

# KServe's own REST client, in the venv that has the `kserve` package: liveness and readiness over V1
CLIENT = """
import asyncio, sys
from kserve import InferenceRESTClient, RESTConfig

async def main():
    client = InferenceRESTClient(RESTConfig(protocol="v1"))
    try:
        print(await client.is_server_live(sys.argv[1]), await client.is_model_ready(sys.argv[1], "echo"))
    finally:
        await client.close()

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def kserve_echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with kserve_model_server(tmp_path_factory.mktemp("kserve-live"), ECHO, "echo") as url:
        yield url


@pytest.mark.realserver
def test_kserves_client_sees_the_server_live_through_the_proxy(
    kserve_echo: str, make_proxy: Callable[..., ProxyHandle], tmp_path: Path
) -> None:
    (python,) = need("LP_KSERVE_PYTHON")
    script = tmp_path / "client.py"
    script.write_text(CLIENT)

    def client(url: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([python, str(script), url], capture_output=True, text=True, timeout=120)

    direct = client(kserve_echo)
    assert direct.returncode == 0 and direct.stdout.split() == ["True", "True"], direct.stderr
    proxy = make_proxy(CONFIG, wait="probed", KSERVE=kserve_echo, PASSTHROUGH="auto")  # zones, named routes only
    live = httpx.get(f"{proxy.url}/", timeout=30)
    assert live.status_code == 200 and live.json() == {"status": "alive"}, live.text  # before: 404 model_not_found
    through = client(proxy.url)
    assert through.returncode == 0 and through.stdout.split() == ["True", "True"], through.stderr[-2000:]


def test_without_a_kserve_upstream_the_root_stays_unrouted(make_proxy: Callable[..., ProxyHandle]) -> None:
    proxy = make_proxy("""
listen: {http: "127.0.0.1:0"}
upstreams: [{name: vllm, url: "http://127.0.0.1:9"}]
routes: [{model: m, upstream: vllm}]
policy: {anonymous: allow, default_purpose: care}
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
""", wait="none")  # fmt: skip
    missing = httpx.get(f"{proxy.url}/", timeout=30)
    # `/` is TGI's native path too, so the refusal is in TGI's error shape (README: the path decides, whatever the
    # method or body)
    assert missing.status_code == 404 and proxy_error(missing)["code"] == "model_not_found", missing.text
