"""A config string no UTF-8 text can hold (a YAML `"\\ud800"` escape, which PyYAML reads as the lone surrogate it
names; a `${VAR}` whose value has a byte that is not UTF-8) is a problem at its path, from `check`, a start and a
reload alike. It passed every check: `check` said the config was ok, and `check --explain` ended in a traceback
(UnicodeEncodeError) printing the decision's reason; what was served wrote the string out as `?` or percent
escapes, never as the config said."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.config import load
from proxy.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CONFIG = r"""listen: {http: 127.0.0.1:0}
upstreams: [{name: u, url: "http://127.0.0.1:9", checkpoint: "org/w\ud800", region: "eu\udc00"}]
routes: [{model: "m\ud800", upstream: u}, {model: "*", upstream: u}]
policy: {anonymous: allow, default_purpose: p}
zones: [{name: z, labels: [pii], regions: ["us\ud800"], allow_purposes: [p]}]
telemetry: {resource_attributes: {"\ud83d\ude00": x}}
lineage: {store: null}
"""
WHY = ", a lone surrogate, which no UTF-8 text can hold: write the character itself, or one \\U escape"
PROBLEMS = [
    "upstreams[0].checkpoint: holds '\\ud800' (character 6)" + WHY,
    "upstreams[0].region: holds '\\udc00' (character 3)" + WHY,
    "routes[0].model: holds '\\ud800' (character 2)" + WHY,
    "zones[0].regions[0]: holds '\\ud800' (character 3)" + WHY,
    "telemetry.resource_attributes: the key '\\ud83d\\ude00' holds '\\ud83d' (character 1)" + WHY,
]


def test_each_string_no_utf8_can_hold_is_a_problem_at_its_path(tmp_path: Path) -> None:
    path = tmp_path / "proxy.yaml"
    path.write_text(CONFIG)
    with pytest.raises(ConfigError) as caught:
        load(path, env={})
    problems = caught.value.problems
    assert len(problems) == len(PROBLEMS)
    for problem, expected in zip(problems, PROBLEMS, strict=True):
        assert problem.startswith(expected), problem


def test_an_environment_value_not_utf8_is_a_problem_at_its_path(tmp_path: Path) -> None:
    path = tmp_path / "proxy.yaml"
    path.write_text(CONFIG.replace('org/w\\ud800', "${CHECKPOINT}").replace("\\ud800", "").replace("\\udc00", "")
                    .replace("\\ud83d\\ude00", "x"))  # fmt: skip
    assert load(path, env={"CHECKPOINT": "org/w"}).upstreams[0].checkpoint == "org/w"
    with pytest.raises(ConfigError) as caught:
        load(path, env={"CHECKPOINT": os.fsdecode(b"org/w\xe9")})  # a Latin-1 byte, as Python reads it: '\udce9'
    assert caught.value.problems == [
        "upstreams[0].checkpoint: holds '\\udce9' (character 6)" + WHY + ' ("\\U0001F600"), not a pair of \\u ones '
        "(its environment variable's value is not UTF-8)"
    ]


def test_check_lists_them_and_explain_prints_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "proxy.yaml"
    path.write_text(CONFIG)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this tree's proxy, not the one installed
    for explain in ([], ["--explain", "--labels", "pii"]):
        done = subprocess.run([sys.executable, "-m", "proxy", "check", "--config", str(path), *explain],
                              capture_output=True, text=True, env=env, timeout=60, check=False)  # fmt: skip
        out = done.stdout + done.stderr
        assert done.returncode == 1 and "Traceback" not in out, out
        assert all(problem in out for problem in PROBLEMS), out


def test_a_baseline_string_no_utf8_can_hold_is_a_problem_at_its_line(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text('flows:\n  - {caller: app, purpose: p, checkpoints: ["org/w\\ud800"]}\n')
    path = tmp_path / "proxy.yaml"
    path.write_text(CONFIG.replace("\\ud800", "").replace("\\udc00", "").replace("\\ud83d\\ude00", "x")
                    .replace("lineage: {store: null}", f"lineage: {{store: null, baseline: {baseline}}}"))  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        load(path, env={})
    assert caught.value.problems == [
        f"lineage.baseline: {baseline}:2:45: holds '\\ud800' (character 6)" + WHY + ' ("\\U0001F600"), not a pair '
        "of \\u ones"
    ]


def test_an_otel_variable_not_utf8_is_a_problem_of_its_telemetry_key(tmp_path: Path) -> None:
    """OTEL_* variables fill `telemetry:` (proxy/config/otel_env.py): the service name every span carries, the
    headers every export sends."""
    path = tmp_path / "proxy.yaml"
    path.write_text(CONFIG.replace("\\ud800", "").replace("\\udc00", "").replace('"\\ud83d\\ude00"', "x")
                    .replace("telemetry: {", "telemetry: {exporter: otlp, "))  # fmt: skip
    assert load(path, env={"OTEL_SERVICE_NAME": "svc"}).telemetry.service_name == "svc"
    with pytest.raises(ConfigError) as caught:
        load(path, env={"OTEL_SERVICE_NAME": os.fsdecode(b"svc\xe9")})
    assert caught.value.problems == [
        "telemetry.service_name: holds '\\udce9' (character 4)" + WHY + ' ("\\U0001F600"), not a pair of \\u ones '
        "(from an OTEL_* variable whose value is not UTF-8)"
    ]
