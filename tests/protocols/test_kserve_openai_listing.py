"""The OpenAI model list in front of KServe's model server, and KServe's OpenAI data plane given as `protocol: openai`.

The list (`GET /v1/models`, `GET /openai/v1/models`) was answered from `protocol: openai` upstreams alone when there was
one: a config with both left KServe's OpenAI models out, and in a KServe-only config `/v1/models` was V1's list alone
(`{"models": [...]}`), in which the openai SDK's `models.list()` found no model. Both paths now list every model OpenAI
calls are routed to (KServe's from its OpenAI data plane, `/openai/v1/models`); `/v1/models`, V1's path too, carries
V1's names beside them under V1's key, `models`. A KServe server with no OpenAI model answers its OpenAI list 404: that
is no model, not a failure. An `openai` upstream whose url ends in `/openai`, KServe's prefix, sent the call's header
fields and `X-Forwarded-For` to the model unread; they are read now, as for a `protocol: kserve` upstream, and `check`
says to write that."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from proxy.config import parse
from proxy.errors import ConfigError
from tests.harness import LoopThread, ProxyHandle, dead_port, serving
from tests.protocols.test_kserve_openai_prefix import ADDRESS
from tests.protocols.test_kserve_openai_upstream import KSERVE_OPENAI
from tests.protocols.test_kserve_v1 import ECHO
from tests.servers.real import kserve_model_server
from tests.servers.vllm_like import SERVED, VllmLike


@pytest.fixture(scope="module")
def kserve_llm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """KServe's model server with a V1 model (`echo`) and an OpenAI one (`llm`); the file its OpenAI model writes the
    header fields it is handed to."""
    workdir = tmp_path_factory.mktemp("kserve-listing")
    with kserve_model_server(workdir, KSERVE_OPENAI, "llm") as url:
        yield url, workdir / "handed.jsonl"


@pytest.fixture(scope="module")
def kserve_v1_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """KServe's model server with a V1 model alone (`echo`): it makes no `/openai` routes."""
    with kserve_model_server(tmp_path_factory.mktemp("kserve-v1-only"), ECHO, "echo") as url:
        yield url


BOTH = """
listen: {http: "127.0.0.1:0"}
upstreams: [{name: vllm, url: "${VLLM}"}, {name: kserve, url: "${KSERVE}", protocol: kserve}]
routes: [{model: "${SERVED}", upstream: vllm}, {model: llm, upstream: kserve}, {model: echo, upstream: kserve}]
policy: {anonymous: allow, default_purpose: care}
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""


@pytest.mark.realserver
@pytest.mark.parametrize("base", ["/v1", "/openai/v1"])
def test_a_config_with_openai_and_kserve_upstreams_lists_both_models(
    kserve_llm: tuple[str, Path], loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle], base: str
) -> None:
    url, _ = kserve_llm
    with serving(loop_thread, VllmLike().app()) as vllm:
        proxy = make_proxy(BOTH, wait="probed", VLLM=vllm, KSERVE=url, SERVED=SERVED)
        client = openai.OpenAI(base_url=f"{proxy.url}{base}", api_key="x", max_retries=0)
        assert [model.id for model in client.models.list()] == [SERVED, "llm"]  # before: [SERVED]
        listed = httpx.get(f"{proxy.url}{base}/models", timeout=30).json()
    if base == "/v1":  # V1's path: KServe's V1 names too, where V1's clients read them
        assert sorted(listed["models"]) == ["echo", "llm"], listed
    else:
        assert "models" not in listed, listed


KSERVE_ONLY = """
listen: {http: "127.0.0.1:0"}
upstreams: [{name: kserve, url: "${KSERVE}", protocol: kserve}]
routes: [{model: llm, upstream: kserve}, {model: echo, upstream: kserve}]
policy: {anonymous: allow, default_purpose: care}
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""


@pytest.mark.realserver
def test_a_kserve_only_config_lists_its_openai_models_on_v1_and_v1s_names_beside(
    kserve_llm: tuple[str, Path], make_proxy: Callable[..., ProxyHandle]
) -> None:
    """An openai SDK pointed at the proxy's `/v1` got `[]` (V1's `{"models": [...]}` has no `data`)."""
    url, _ = kserve_llm
    proxy = make_proxy(KSERVE_ONLY, wait="probed", KSERVE=url)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0)
    assert [model.id for model in client.models.list()] == ["llm"]  # before: []
    listed = httpx.get(f"{proxy.url}/v1/models", timeout=30)
    assert listed.status_code == 200 and listed.headers["x-trace-id"], listed.text
    assert listed.json()["object"] == "list" and sorted(listed.json()["models"]) == ["echo", "llm"], listed.text


ONLY_V1 = """
listen: {http: "127.0.0.1:0"}
upstreams: [{name: kserve, url: "${KSERVE}", protocol: kserve}]
routes: [{model: echo, upstream: kserve}]
policy: {anonymous: allow, default_purpose: care}
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""


@pytest.mark.realserver
def test_a_kserve_server_with_no_openai_model_lists_none_rather_than_failing(
    kserve_v1_only: str, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """KServe makes its `/openai` routes only for an OpenAI model: without one, `/openai/v1/models` is its 404, which
    the proxy passed on (`openai.NotFoundError` from `models.list()`)."""
    direct = httpx.get(f"{kserve_v1_only}/openai/v1/models", timeout=30)
    assert direct.status_code == 404, direct.text  # the real server's answer
    proxy = make_proxy(ONLY_V1, wait="probed", KSERVE=kserve_v1_only)
    for base in ("/openai/v1", "/v1"):
        client = openai.OpenAI(base_url=f"{proxy.url}{base}", api_key="x", max_retries=0)
        assert list(client.models.list()) == [], base  # before, on /openai/v1: openai.NotFoundError
    assert httpx.get(f"{proxy.url}/v1/models", timeout=30).json() == {"object": "list", "data": [], "models": ["echo"]}
    assert httpx.get(f"{proxy.url}/readyz", timeout=30).status_code == 200


PREFIXED = """
listen: {http: "127.0.0.1:0"}
upstreams: [{name: hf, url: "${KSERVE}/openai", protocol: openai}]
routes: [{model: llm, upstream: hf}]
policy: {anonymous: allow, default_purpose: care}
zones: [{name: personal, labels: ["pii:email"], allow_purposes: [care]}]
detectors: [email]
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""


@pytest.mark.realserver
def test_an_openai_upstream_at_kserves_prefix_has_its_calls_fields_read(
    kserve_llm: tuple[str, Path], make_proxy: Callable[..., ProxyHandle]
) -> None:
    """KServe hands its OpenAI model the call's header fields whatever the upstream's `protocol:` says: given as
    `protocol: openai` with url `.../openai`, `X-Note: alice@example.com` reached the model for a purpose the zone
    forbids, and so did `X-Forwarded-For` with the client's address."""
    url, handed = kserve_llm
    proxy = make_proxy(PREFIXED, wait="probed", KSERVE=url)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0)
    messages: Any = [{"role": "user", "content": "hi"}]
    before = handed.read_text().count("\n") if handed.exists() else 0
    with pytest.raises(openai.PermissionDeniedError, match="pii:email"):  # before: it reached the model
        client.chat.completions.create(model="llm", messages=messages,
                                       extra_headers={"x-note": f"for {ADDRESS}", "x-purpose": "ads"})  # fmt: skip
    reply = client.chat.completions.with_raw_response.create(model="llm", messages=messages)
    assert reply.parse().choices[0].message.content == "echo: hi"
    lines = handed.read_text().splitlines()
    assert len(lines) == before + 1, lines  # the refused call never came
    assert "x-forwarded-for" not in json.loads(lines[-1]), lines[-1]  # the client's address is no model's data


def _upstream(url: str, extra: str = "") -> str:
    return f"""
listen: {{http: "127.0.0.1:0"}}
upstreams: [{{name: u, url: "{url}"{extra}}}]
routes: [{{model: "*", upstream: u}}]
policy: {{anonymous: allow}}
telemetry: {{exporter: none}}
"""


@pytest.mark.parametrize(
    ("url", "extra", "handed", "warned"),
    [
        ("http://kserve-host:8080/openai", "", True, True),
        ("http://kserve-host:8080/openai/", "", True, True),
        ("http://kserve-host:8080/openai", ", headers_to_model: false", False, False),  # a server that is not KServe
        ("http://kserve-host:8080/openai", ", headers_to_model: true", True, False),  # said: nothing to warn of
        ("https://x.openai.azure.com/openai", "", False, False),  # Azure OpenAI: the same prefix, no fields handed
        ("https://x.services.ai.azure.com/openai", "", False, False),
        ("http://vllm-host:8000", "", False, False),
        ("http://host/openai-gateway", "", False, False),
    ],
)
def test_which_openai_upstreams_are_kserves_openai_data_plane(url: str, extra: str, handed: bool, warned: bool) -> None:
    config = parse(_upstream(url, extra))
    assert config.upstreams[0].fields_to_model is handed
    assert [w for w in config.warnings if "protocol: kserve" in w] == (
        [f"upstreams[0].url: {url.rstrip('/')!r} ends in /openai, KServe's OpenAI data plane, which hands its model "
         "every header field of a call: they are read as the call's data, and no X-Forwarded-For is sent; write "
         "protocol: kserve with url 'http://kserve-host:8080' (its V1 models too), or headers_to_model: false if this "
         "server is not KServe's"] if warned else []
    )  # fmt: skip


def test_check_warns_of_an_openai_upstream_at_kserves_prefix(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(_upstream("http://kserve-host:8080/openai"))
    done = subprocess.run([sys.executable, "-m", "proxy", "check", "--config", str(path)], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "warning: upstreams[0].url: 'http://kserve-host:8080/openai' ends in /openai" in done.stderr, done.stderr
    assert "write protocol: kserve with url 'http://kserve-host:8080'" in done.stderr, done.stderr


def test_headers_to_model_false_is_refused_on_an_openai_upstream_elsewhere() -> None:
    with pytest.raises(ConfigError, match=r"upstreams\[0\]\.headers_to_model: only an oip upstream"):
        parse(_upstream("http://vllm-host:8000", ", headers_to_model: false"))


ELSEWHERE = """
listen: {http: "127.0.0.1:0"}
upstreams: [{name: vllm, url: "${VLLM}"}, {name: kserve, url: "${KSERVE}", protocol: kserve}]
routes: [{model: echo, upstream: kserve}, {model: "*", upstream: vllm}]
policy: {anonymous: allow, default_purpose: care}
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""


@pytest.mark.realserver
def test_v1s_names_leave_out_a_model_routed_to_an_openai_upstream(
    kserve_llm: tuple[str, Path], loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle]
) -> None:
    """`llm`, which KServe lists, is routed by `"*"` to vllm: OpenAI's list left it out, but V1's names kept it (vllm,
    not asked for V1's list, counted as an upstream that did not answer), so a V1 client was offered a model whose
    calls reach vllm."""
    url, _ = kserve_llm
    with serving(loop_thread, VllmLike().app()) as vllm:
        proxy = make_proxy(ELSEWHERE, wait="probed", VLLM=vllm, KSERVE=url, SERVED=SERVED)
        listed = httpx.get(f"{proxy.url}/v1/models", timeout=30).json()
    assert "llm" not in [entry["id"] for entry in listed["data"]], listed
    assert listed["models"] == ["echo"], listed  # before: ["echo", "llm"]


@pytest.mark.parametrize(
    ("url", "handed"),
    [
        ("http://kserve.eastus.cloudapp.azure.com/openai", True),  # AKS's public name: any server, a KServe here
        ("https://x.openai.azure.com./openai", False),  # Azure OpenAI's name written whole
        ("https://x.cognitiveservices.azure.com/openai", False),
    ],
)
def test_azures_openai_hosts_alone_are_taken_for_azure(url: str, handed: bool) -> None:
    """Any host under `.azure.com` was taken for Azure OpenAI, so a KServe on AKS (`cloudapp.azure.com`) given as
    `protocol: openai` had its calls' fields unread and was told the client's address, without a warning."""
    config = parse(_upstream(url))
    assert config.upstreams[0].fields_to_model is handed  # before: False for the AKS host
    assert any("ends in /openai, KServe's OpenAI data plane" in w for w in config.warnings) is handed


def test_a_kserve_upstream_that_is_down_is_left_out_of_the_listing_once(
    loop_thread: LoopThread, make_proxy: Callable[..., ProxyHandle], caplog: pytest.LogCaptureFixture
) -> None:
    """The rest is answered, and the upstream that did not answer is said once: it was asked again for V1's list (a
    second log line, and a second wait for one that hangs)."""
    with serving(loop_thread, VllmLike().app()) as vllm:
        proxy = make_proxy(BOTH, wait="probed", VLLM=vllm, KSERVE=f"http://127.0.0.1:{dead_port()}", SERVED=SERVED)
        with caplog.at_level(logging.WARNING, logger="proxy"):
            listed = httpx.get(f"{proxy.url}/v1/models", timeout=30)
    assert listed.status_code == 200 and listed.headers["x-trace-id"], listed.text
    assert SERVED in [entry["id"] for entry in listed.json()["data"]] and listed.json()["models"] == [], listed.text
    said = [r.getMessage() for r in caplog.records if "upstream kserve did not answer" in r.getMessage()]
    assert len(said) == 1, said  # before: 2


def test_headers_to_model_false_is_taken_on_azures_openai_prefix() -> None:
    """An url ending in /openai that is not KServe's may say its models get no field (README), Azure's too: it was
    refused, by a message naming that very case."""
    config = parse(_upstream("https://x.openai.azure.com/openai", ", headers_to_model: false"))
    assert config.upstreams[0].fields_to_model is False and not config.upstreams[0].headers_to_model
