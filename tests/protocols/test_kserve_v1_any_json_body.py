"""A KServe V1 body that is JSON but no object. KServe's model server hands a custom `kserve.Model` whatever JSON value
the body holds (a top-level list, a string, a number: checked on the real server, below), yet the proxy refused every
such body 400 ("request body must be a JSON object"), so a client of such a model could not go through it. It is now
read as `instances` are: every string in it (and the keys of its objects), its numbers data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from proxy.errors import InvalidRequest
from proxy.protocols import bytes_digest
from proxy.protocols.kserve import read_request
from proxy.protocols.openai import read_request as openai_request
from tests.harness import ProxyHandle, proxy_error
from tests.protocols.test_kserve_v1 import ADDRESS, CONFIG, ECHO, edges, seen
from tests.servers.real import kserve_model_server


@pytest.fixture(scope="module")
def kserve_echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    workdir = tmp_path_factory.mktemp("kserve-any-json")
    with kserve_model_server(workdir, ECHO, "echo") as url:
        yield url, workdir / "seen.jsonl"


@pytest.mark.realserver
def test_a_top_level_list_or_string_is_read_and_decided_on(
    kserve_echo: tuple[str, Path], make_proxy: Callable[..., ProxyHandle], tmp_path: Path
) -> None:
    url, log = kserve_echo
    for body in ([[ADDRESS, 1.5]], f"write to {ADDRESS}", 4111111111111111):
        direct = httpx.post(f"{url}/v1/models/echo:predict", json=body, timeout=60)
        assert direct.json() == {"predictions": [body]}, direct.text  # the real model gets the value itself
    proxy = make_proxy(CONFIG, wait="probed", KSERVE=url, PASSTHROUGH="auto")
    before = len(seen(log))
    for body in ([[ADDRESS, 1.5]], f"write to {ADDRESS}"):
        refused = httpx.post(f"{proxy.url}/v1/models/echo:predict", json=body, headers={"x-purpose": "ads"},
                             timeout=60)  # fmt: skip
        assert refused.status_code == 403, refused.text  # before: 400 "request body must be a JSON object"
        assert proxy_error(refused)["code"] == "purpose_denied", refused.text
    assert len(seen(log)) == before  # nothing reached the model
    allowed = httpx.post(f"{proxy.url}/v1/models/echo:predict", json=[[ADDRESS, 1.5]], timeout=60)
    assert allowed.status_code == 200 and seen(log)[-1] == [[ADDRESS, 1.5]], allowed.text
    assert "pii:email" in allowed.headers["x-data-labels"].split(","), allowed.headers
    plain = httpx.post(f"{proxy.url}/v1/models/echo:predict", json=[[5.1, 3.5]], headers={"x-purpose": "ads"},
                       timeout=60)  # fmt: skip
    assert plain.status_code == 200 and plain.json() == {"predictions": [[[5.1, 3.5]]]}, plain.text
    decided = sorted((r.purpose, r.input_labels, r.decision) for r in edges(tmp_path / "lineage.db"))
    assert decided == [("ads", "", "allow"), ("ads", "pii:email", "deny"), ("care", "pii:email", "allow")], decided


def test_a_body_that_is_no_object_is_read_as_instances_are() -> None:
    listed = read_request("m", "predict", orjson.dumps([[4111111111111111, "bob@example.org", {"col": "x"}]]), None)
    assert listed.texts == ("bob@example.org", "col", "x") and not listed.opaque, listed
    assert listed.digest == bytes_digest(b'[[4111111111111111,"bob@example.org",{"col":"x"}]]')
    text = read_request("m", "predict", b'"YWxpY2VAZXhhbXBsZS5jb20="', "application/json")
    assert text.texts == ("YWxpY2VAZXhhbXBsZS5jb20=", ADDRESS), text  # base64 read decoded too
    numeric = read_request("m", "predict", b"[[1.0, 2.0]]", None)
    assert numeric.texts == () and numeric.digest == bytes_digest(b"[[1.0,2.0]]")
    assert read_request("m", "predict", b"null", None).texts == ()
    # still refused: no JSON at all, a key written twice (in a list too), and a non-object for OpenAI's adapter
    for bad in (b"not json", b'[{"a": "x", "a": "y"}]'):
        with pytest.raises(InvalidRequest):
            read_request("m", "predict", bad, None)
    with pytest.raises(InvalidRequest, match="must be a JSON object"):
        openai_request("chat", b'[{"model": "m"}]')
