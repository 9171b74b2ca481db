"""`serve` (and `check`) on a config whose `${VAR}` has no value in the environment, as the demo's sample policy has
`${DEMO_UPSTREAM}` for a first user who copies it: the problem said only `(write ${DEMO_UPSTREAM:-default})`, not
the first cure, setting the variable. It now says both."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CONFIG = """listen: {http: "127.0.0.1:0"}
upstreams: [{name: m, url: "${LP_TEST_UPSTREAM}"}]
routes: [{model: "*", upstream: m}]
lineage: {store: null}
"""


@pytest.mark.parametrize("command", ["serve", "check"])
def test_an_unset_variable_says_to_set_it(tmp_path: Path, command: str) -> None:
    (tmp_path / "proxy.yaml").write_text(CONFIG)
    env = {name: value for name, value in os.environ.items() if name != "LP_TEST_UPSTREAM"}
    result = subprocess.run([sys.executable, "-m", "proxy", command, "--config", "proxy.yaml"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines() == [
        f"lineage-proxy {command}: proxy.yaml: invalid configuration:",
        "  upstreams[0].url: environment variable LP_TEST_UPSTREAM is not set (set it, or write "
        "${LP_TEST_UPSTREAM:-default})",
    ]
