"""`OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT` and `OTEL_TRACES_SAMPLER_ARG` are read as the OpenTelemetry specification
says ("Environment Variable Specification": Numeric, Timeout; OTEL_TRACES_SAMPLER_ARG's note): a value that is none of
the variable's, or out of its range, is warned of on stderr and ignored, as if unset (the export timeout the file's or
5 s; the ratio 1.0), and `check` exits 0. The timeout is whole milliseconds, 0 "indefinite" (taken as the longest this
proxy waits, an hour); the ratio a number from 0 to 1 as YAML and JSON write one. Until 2026-12-07 both were read by
Python's float(), which took `١٢` (12), `1_000`, `1e3`, `1500.5`, and what then fell outside was a problem, exit 1: the
sampler's said of `telemetry.sample_ratio`, a key not written. The OpenTelemetry Python SDK's own reading
(`sampling._get_from_env_or_default`: float(), then `TraceIdRatioBased` raising ValueError past 0..1, `nan` at its
`round`) is followed by neither."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.config import parse

BASE = "listen:\n  http: 127.0.0.1:0\nupstreams:\n  - name: u\n    url: http://127.0.0.1:9\nroutes:\n  - model: '*'\n" \
       "    upstream: u\n"  # fmt: skip
RULE = "the OpenTelemetry specification's rule for a value it cannot read"
TIMEOUT = ("warning: {var}: expected whole milliseconds up to 3600000 (0: no timeout, taken as 3600000), got {value!r}: "
           f"ignored, as if unset ({RULE})")  # fmt: skip
RATIO = ("warning: OTEL_TRACES_SAMPLER_ARG: expected a number from 0 to 1, got {value!r}: ignored, as if unset, 1.0: "
         f"every new trace sampled ({RULE})")  # fmt: skip
# each form float() took or refused that is no whole number of milliseconds, or past an hour
NOT_MILLISECONDS = ["nan", "inf", "1_000", "\u0661\u0662", "-5", "+5", "1500.5", "1e3", "0x10", "3600001", "soon"]
NOT_RATIOS = ["nan", "inf", "-inf", "1_000", "\u0661\u0662", "\u0660.\u0665", "2", "-0.5", "0x1", "1e3", "half"]


def check(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "config.yaml"
    path.write_text(BASE)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run([sys.executable, "-m", "proxy", "check", "--config", str(path)], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path, env={**clean, **env})  # fmt: skip


@pytest.mark.parametrize("value", NOT_MILLISECONDS)
def test_a_timeout_that_is_no_milliseconds_is_warned_of_and_ignored(tmp_path: Path, value: str) -> None:
    result = check(tmp_path, OTEL_EXPORTER_OTLP_TIMEOUT=value)
    assert (result.returncode, result.stderr.splitlines()) == (
        0, [TIMEOUT.format(var="OTEL_EXPORTER_OTLP_TIMEOUT", value=value)])  # fmt: skip
    assert result.stdout.startswith(f"{tmp_path / 'config.yaml'}: ok (")
    assert parse(BASE, env={"OTEL_EXPORTER_OTLP_TIMEOUT": value}).telemetry.export_timeout_s == 5.0  # as unset


@pytest.mark.parametrize("value", NOT_RATIOS)
def test_a_sampler_argument_that_is_no_ratio_is_warned_of_and_ignored(tmp_path: Path, value: str) -> None:
    result = check(tmp_path, OTEL_TRACES_SAMPLER="parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG=value)
    assert (result.returncode, result.stderr.splitlines()) == (0, [RATIO.format(value=value)])
    env = {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": value}
    assert parse(BASE, env=env).telemetry.sample_ratio == 1.0  # as unset


@pytest.mark.parametrize(
    ("value", "seconds"), [("2500", 2.5), (" 2500 ", 2.5), ("1", 0.001), ("3600000", 3600.0), ("0", 3600.0)]
)
def test_whole_milliseconds_are_taken_and_0_is_the_longest_wait(tmp_path: Path, value: str, seconds: float) -> None:
    """0 is "indefinite" to the spec, which lets an SDK take "a very long time" for it: here the hour that bounds
    `telemetry.export_timeout_s` (until 2026-12-07 a problem, exit 1). A value is read with its spaces trimmed, as
    every OTEL_* variable is here."""
    result = check(tmp_path, OTEL_EXPORTER_OTLP_TIMEOUT=value)
    assert (result.returncode, result.stderr) == (0, "")
    assert parse(BASE, env={"OTEL_EXPORTER_OTLP_TIMEOUT": value}).telemetry.export_timeout_s == seconds


@pytest.mark.parametrize(("value", "ratio"), [("0.25", 0.25), ("0", 0.0), ("1", 1.0), (".5", 0.5), ("2.5e-1", 0.25)])
def test_a_ratio_is_taken(value: str, ratio: float) -> None:
    env = {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": value}
    assert parse(BASE, env=env).telemetry.sample_ratio == ratio


def test_a_traces_timeout_ignored_leaves_the_general_one(tmp_path: Path) -> None:
    """Ignored "as if unset": the traces variable so, the general one is read, as where the traces one is not set."""
    env = {"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "nan", "OTEL_EXPORTER_OTLP_TIMEOUT": "2500"}
    result = check(tmp_path, **env)
    assert (result.returncode, result.stderr.splitlines()) == (
        0, [TIMEOUT.format(var="OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", value="nan")])  # fmt: skip
    assert parse(BASE, env=env).telemetry.export_timeout_s == 2.5


def test_the_file_key_wins_and_the_variable_is_still_said() -> None:
    config = parse(BASE + "telemetry:\n  export_timeout_s: 7\n", env={"OTEL_EXPORTER_OTLP_TIMEOUT": "nan"})
    assert config.telemetry.export_timeout_s == 7.0
    assert config.warnings == (TIMEOUT.format(var="OTEL_EXPORTER_OTLP_TIMEOUT", value="nan").removeprefix("warning: "),)


BOOLEAN = ("warning: {var}: expected true or false, got {value!r}: read as false (the OpenTelemetry specification's "
           "rule for a boolean)")  # fmt: skip


@pytest.mark.parametrize("value", ["1", "yes", "on", "enabled"])
@pytest.mark.parametrize(
    "var", ["OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_INSECURE", "OTEL_EXPORTER_OTLP_TRACES_INSECURE"]
)
def test_a_boolean_neither_true_nor_false_is_false_and_said(tmp_path: Path, var: str, value: str) -> None:
    """The spec's Boolean: `true` alone (any case) is true; another value than `false` is false, with a warning (it
    was false unsaid: `OTEL_SDK_DISABLED=1` exported every span)."""
    env = {var: value, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    result = check(tmp_path, **env)
    assert (result.returncode, result.stderr.splitlines()) == (0, [BOOLEAN.format(var=var, value=value)])
    telemetry = parse(BASE, env=env).telemetry
    assert telemetry.exporter == "otlp" and telemetry.insecure in (None, False)


@pytest.mark.parametrize("value", ["true", "TRUE", "false", "False"])
def test_true_and_false_in_any_case_are_read_unsaid(tmp_path: Path, value: str) -> None:
    env = {"OTEL_SDK_DISABLED": value, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    result = check(tmp_path, **env)
    assert (result.returncode, result.stderr) == (0, "")
    assert parse(BASE, env=env).telemetry.exporter == ("none" if value.lower() == "true" else "otlp")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("0" * 5000, 3600.0), ("0" * 4999 + "5", 0.005), ("9" * 5000, None), ("1" + "0" * 4400, None)],
    ids=["5000 zeros", "4999 zeros then 5", "5000 nines", "1 then 4400 zeros"],
)
def test_a_timeout_of_thousands_of_digits_is_read_or_warned_of(
    tmp_path: Path, value: str, seconds: float | None
) -> None:
    """Python's int() refuses a text of more than 4300 digits (ValueError): a value so long, of zeros before a number
    or a slip, came out of `check` as a traceback (review revconfig17; float() read it before 2026-12-07, a problem
    then). Zeros before a number are the number; one past an hour is warned of and ignored as any other."""
    result = check(tmp_path, OTEL_EXPORTER_OTLP_TIMEOUT=value)
    warned = [] if seconds is not None else [TIMEOUT.format(var="OTEL_EXPORTER_OTLP_TIMEOUT", value=value)]
    assert (result.returncode, result.stderr.splitlines()) == (0, warned), result.stderr[-300:]
    timeout = parse(BASE, env={"OTEL_EXPORTER_OTLP_TIMEOUT": value}).telemetry.export_timeout_s
    assert timeout == (5.0 if seconds is None else seconds)


@pytest.mark.parametrize("sampler", [None, "always_on", "always_off", "parentbased_always_on"])
def test_a_sampler_argument_beside_no_ratio_sampler_is_not_read(sampler: str | None) -> None:
    """The spec: OTEL_TRACES_SAMPLER_ARG "will only be used if OTEL_TRACES_SAMPLER is set", its input each sampler's:
    beside none, or one taking no argument, it is neither read nor warned of (the README says so; review revconfig17)."""
    env = {"OTEL_TRACES_SAMPLER_ARG": "2", **({"OTEL_TRACES_SAMPLER": sampler} if sampler else {})}
    config = parse(BASE, env=env)
    assert (config.telemetry.sample_ratio, config.warnings) == (0.0 if sampler == "always_off" else 1.0, ())
