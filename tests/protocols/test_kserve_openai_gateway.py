"""OpenAI upstreams in front of KServe's OpenAI data plane: a gateway's url, the SDK's base URL, and what a call pays.

`headers_to_model: true` written on an `openai` upstream whose url does not end in `/openai` (a gateway in front of
KServe's OpenAI data plane, `http://gw/kserve-llm`) was taken and ignored: its calls' header fields reached the model
unread, and so did the `X-Forwarded-For` the proxy adds. Written, it now says its server hands them to its model; not
written, an OpenAI server (vLLM) still has none read. An upstream url ending in `/v1`, the openai SDK's base URL
(`http://kserve-host:8080/openai/v1`), had every call sent to `.../v1/v1/...` without a word: `check` and `serve` warn of
it. And an OpenAI call's header fields are built into text only where its route may send it to KServe, not for every
OpenAI call once a KServe upstream is configured."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from proxy.config import parse
from proxy.protocols import Request
from tests.harness import ProxyHandle, offline_pipeline
from tests.protocols.test_kserve_openai_prefix import ADDRESS
from tests.protocols.test_kserve_openai_upstream import KSERVE_OPENAI
from tests.servers.real import kserve_model_server, nginx_gateway


def _upstream(url: str, extra: str = "", protocol: str = "openai") -> str:
    return f"""
listen: {{http: "127.0.0.1:0"}}
upstreams: [{{name: u, url: "{url}", protocol: {protocol}{extra}}}]
routes: [{{model: "*", upstream: u}}]
policy: {{anonymous: allow}}
telemetry: {{exporter: none}}
"""


SAID = ", headers_to_model: true"


@pytest.mark.parametrize(
    ("url", "extra", "protocol", "handed"),
    [
        ("http://gw/kserve-llm", SAID, "openai", True),  # before: False, the key taken and ignored
        ("http://gw/kserve-llm", "", "openai", False),  # an OpenAI server's default: none read
        ("http://vllm-host:8000", "", "openai", False),
        ("https://x.openai.azure.com/openai", SAID, "openai", True),  # said of Azure's prefix too: taken as said
        ("http://kserve-host:8080/openai", SAID, "openai", True),
        ("http://kserve-host:8080/openai", "", "openai", True),
        ("http://mlserver:8080", SAID, "oip", True),
        ("http://relay:8080", SAID, "passthrough", False),  # no passthrough call's fields are read: the client told
    ],
)
def test_headers_to_model_true_written_on_an_openai_upstream_has_its_fields_read(
    url: str, extra: str, protocol: str, handed: bool
) -> None:
    assert parse(_upstream(url, extra, protocol)).upstreams[0].fields_to_model is handed


@pytest.mark.parametrize(
    ("url", "protocol", "same"),
    [
        ("http://kserve-host:8080/openai", "openai", True),  # true is its default: written or not, the same upstream
        ("http://mlserver:8080", "oip", True),
        ("http://kserve-host:8080", "kserve", True),
        ("http://relay:8080", "passthrough", True),  # no passthrough call's fields are read, true or not
        ("http://gw/kserve-llm", "openai", False),  # true says what the default does not: a reload applies it
    ],
)
def test_an_upstream_is_equal_with_or_without_a_true_that_changes_nothing(url: str, protocol: str, same: bool) -> None:
    """A reload keeps an upstream equal to the one in force (its pool, its checkpoint book); its derived fields follow
    from what it compares, so equal upstreams are read alike."""
    written, unwritten = (parse(_upstream(url, extra, protocol)).upstreams[0] for extra in (SAID, ""))
    assert (written == unwritten) is same
    assert (written.fields_to_model == unwritten.fields_to_model) is same


@pytest.fixture(scope="module")
def kserve_behind_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """KServe's model server with an OpenAI model (`llm`) behind nginx, which serves its OpenAI data plane at
    `/kserve-llm` (`/kserve-llm/v1/chat/completions` to `/openai/v1/chat/completions`); the gateway's url and the file
    the model writes the header fields it is handed to."""
    workdir = tmp_path_factory.mktemp("kserve-gateway")
    with kserve_model_server(workdir, KSERVE_OPENAI, "llm") as url:
        gateway_dir = workdir / "nginx"
        gateway_dir.mkdir()
        with nginx_gateway(gateway_dir, "/kserve-llm", f"{url}/openai") as gateway:
            yield gateway, workdir / "handed.jsonl"


GATEWAY = """
listen: {http: "127.0.0.1:0"}
upstreams: [{name: gw, url: "${GATEWAY}", headers_to_model: true}]
routes: [{model: llm, upstream: gw}]
policy: {anonymous: allow, default_purpose: care}
zones: [{name: personal, labels: ["pii:email"], allow_purposes: [care]}]
detectors: [email]
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""


@pytest.mark.realserver
def test_an_openai_upstream_said_to_hand_its_model_the_fields_has_them_read(
    kserve_behind_gateway: tuple[str, Path], make_proxy: Callable[..., ProxyHandle]
) -> None:
    """Through a gateway at `/kserve-llm`, `X-Note: alice@example.com` reached KServe's model for a purpose the zone
    forbids, with `headers_to_model: true` written: it is refused now, and the calls that go on carry no
    `X-Forwarded-For` for the model to be handed."""
    gateway, handed = kserve_behind_gateway
    proxy = make_proxy(GATEWAY, wait="probed", GATEWAY=gateway)
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="x", max_retries=0)
    messages: Any = [{"role": "user", "content": "hi"}]
    before = handed.read_text().count("\n") if handed.exists() else 0
    with pytest.raises(openai.PermissionDeniedError, match="pii:email"):  # before: answered by the model
        client.chat.completions.create(model="llm", messages=messages,
                                       extra_headers={"x-note": f"for {ADDRESS}", "x-purpose": "ads"})  # fmt: skip
    reply = client.chat.completions.create(model="llm", messages=messages, extra_headers={"x-note": "fine"})
    assert reply.choices[0].message.content == "echo: hi"
    lines = handed.read_text().splitlines()
    assert len(lines) == before + 1, lines  # the refused call never came
    fields = json.loads(lines[-1])
    assert fields.get("x-note") == "fine" and "x-forwarded-for" not in fields, fields


@pytest.mark.parametrize(
    ("url", "protocol", "written"),
    [
        ("http://kserve-host:8080/openai/v1", "openai", "http://kserve-host:8080/openai"),
        ("http://kserve-host:8080/openai/v1/", "openai", "http://kserve-host:8080/openai"),
        ("https://api.example.com/v1", "openai", "https://api.example.com"),
        ("http://vllm-host:8000", "openai", None),
        ("http://gw/v1beta", "openai", None),
        ("http://gw/v10", "openai", None),
        ("http://gw/v1/llm", "openai", None),
        ("http://triton:8000/v1", "oip", None),  # OIP's paths begin /v2: no /v1 doubled
    ],
)
def test_an_openai_upstream_url_ending_in_v1_is_warned_of(url: str, protocol: str, written: str | None) -> None:
    """Before: no word; each call went to `.../v1/v1/...` (KServe: 404)."""
    warned = [w for w in parse(_upstream(url, protocol=protocol)).warnings if "ends in /v1" in w]
    if written is None:
        assert warned == []
        return
    path = url.split("://")[1].partition("/")[2].rstrip("/")
    assert warned == [
        f"upstreams[0].url: {url.rstrip('/')!r} ends in /v1, as the openai SDK's base URL does, but the proxy puts a "
        f"call's own path after the url: /v1/chat/completions would go to /{path}/v1/chat/completions; write "
        f"{written!r}, unless a gateway there strips the /v1 it is given"
    ]


def test_check_warns_of_an_openai_upstream_url_ending_in_v1(tmp_path: Path) -> None:
    """A warning, not a problem: a gateway that strips its route's `/v1` serves such a url rightly."""
    path = tmp_path / "c.yaml"
    path.write_text(_upstream("http://kserve-host:8080/openai/v1"))
    done = subprocess.run([sys.executable, "-m", "proxy", "check", "--config", str(path)], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "warning: upstreams[0].url: 'http://kserve-host:8080/openai/v1' ends in /v1" in done.stderr, done.stderr
    assert "/openai/v1/v1/chat/completions; write 'http://kserve-host:8080/openai'" in done.stderr, done.stderr


BOTH = """
listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: vllm, url: "http://vllm-host:8000", region: us}
  - {name: kserve, url: "http://kserve-host:8080", protocol: kserve, region: eu}
routes: [{model: small, upstream: vllm}, {model: llm, upstream: kserve}]
policy: {anonymous: allow, default_purpose: care}
zones: [{name: personal, labels: ["pii:email"], allow_purposes: [care]}%s]
detectors: [email]
telemetry: {exporter: none}
"""
REROUTE = ', {name: eu-only, labels: [eu-data], allow_purposes: [care], regions: [eu], on_deny: "reroute:kserve"}'


@pytest.mark.parametrize(
    ("zones", "model", "built"),
    [
        ("", "small", 0),  # routed to vLLM, and no zone reroutes to KServe: no text built (before: built, dropped)
        ("", "llm", 1),
        (REROUTE, "small", 1),  # a zone may send it to KServe after the decision: read before it
    ],
)
def test_an_openai_calls_fields_are_built_only_where_it_may_reach_kserve(zones: str, model: str, built: int) -> None:
    pipeline = offline_pipeline(parse(BOTH % zones))
    builds: list[int] = []

    def fields() -> str | None:
        builds.append(1)
        return f"x-note: for {ADDRESS}"

    headers = {"x-purpose": "ads"}
    call = pipeline.call(Request(model, "chat", texts=("hi",)), "openai", headers.get,
                         pipeline.trace(headers.get), fields=fields)  # fmt: skip
    assert len(builds) == built
    assert ("pii:email" in call.detected) is bool(built)
