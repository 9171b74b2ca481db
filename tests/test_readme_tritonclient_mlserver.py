"""The README's tritonclient example for MLServer runs as written against the real MLServer through the proxy
(JSON tensors, `binary_data=False`), and what it says of tritonclient's default binary tensors holds: MLServer
refuses them itself (422), with or without the proxy in front."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.harness import ProxyHandle

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")

CONFIG = """
listen: {http: "127.0.0.1:0"}
upstreams:
  - {name: mlserver, url: "${UPSTREAM}", protocol: oip}
routes:
  - {model: "*", upstream: mlserver}
policy: {anonymous: allow}
telemetry: {exporter: none}
lineage: {store: "${STORE}"}
"""


@pytest.fixture
def real_mlserver(iris_mlserver: tuple[str, str]) -> str:
    return iris_mlserver[0]  # the session's (tests/conftest.py): this test only asks it


def example() -> str:
    [block] = [b for b in re.findall(r"```python\n(.*?)```", README, re.DOTALL) if "tritonclient.http" in b]
    assert "binary_data=False" in block
    return block


def binary_call(host: str) -> None:
    client = httpclient.InferenceServerClient(host)
    features = httpclient.InferInput("predict", [1, 4], "FP64")
    features.set_data_from_numpy(np.array([[5.1, 3.5, 1.4, 0.2]]))  # tritonclient's default: binary
    client.infer("iris", [features], headers={"x-purpose": "assistant"})


@pytest.mark.realserver
def test_the_readme_example_runs_against_mlserver_through_the_proxy(
    real_mlserver: str, make_proxy: Callable[..., ProxyHandle]
) -> None:
    proxy = make_proxy(CONFIG, wait="probed", UPSTREAM=real_mlserver)
    host = proxy.url.removeprefix("http://")
    code = example()
    assert '"127.0.0.1:8080"' in code
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code.replace('"127.0.0.1:8080"', repr(host)), "README.md", "exec"), {})
    assert out.getvalue() == "[[0]] iris\n"  # setosa
    for where in (real_mlserver.removeprefix("http://"), host):  # MLServer itself, and through the proxy
        with pytest.raises(InferenceServerException) as refused:
            binary_call(where)
        assert refused.value.status() == "422", str(refused.value)
