"""The OpenTelemetry environment variables users already set, read as `telemetry:` keys the config
file did not write (a key in the file wins).

Why not opentelemetry-sdk's own readers: they come with the SDK, the API and the semantic conventions
packages for what is, here, a dozen lines run once at load; the proxy builds spans itself (spans.py).
The rules follow the specification's "OTLP Exporter Configuration" and "General SDK Configuration":
a signal-specific variable (`..._TRACES_...`) wins over the general one; a general endpoint is a base
URL that gets `/v1/traces` (HTTP), a traces endpoint is used as is; headers and resource attributes
are `key=value` lists with percent-encoded values; the timeout is in milliseconds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import unquote

SAMPLERS = {  # OTEL_TRACES_SAMPLER → the ratio of new traces sampled (None: read OTEL_TRACES_SAMPLER_ARG)
    "always_on": 1.0,
    "always_off": 0.0,
    "traceidratio": None,
    "parentbased_always_on": 1.0,
    "parentbased_always_off": 0.0,
    "parentbased_traceidratio": None,
}
PROTOCOLS = ("grpc", "http/protobuf")
# what begins a target of one of grpc's resolvers: its DNS resolver's, `dns:///collector:4317` (`dns:collector:4317`,
# `dns:/collector:4317` too), a list of IPv4 or IPv6 addresses, `ipv4:10.0.0.5:4317`, `ipv6:[::1]:4317`, a Unix socket,
# `unix:/run/otel.sock`, `unix:///run/otel.sock`, or one of Linux's abstract namespace, `unix-abstract:otel`: forms the
# spec has an OTLP/gRPC endpoint take (any its gRPC client does), which opentelemetry-exporter-otlp-proto-grpc passes on
# to grpc as written (it keeps a URL's `netloc`, and these have none), and `OtlpGrpcSink` too (until 2026-12-06 all but
# `dns:` were refused as no http URL)
GRPC_TARGETS: Final[tuple[str, ...]] = ("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:")


def grpc_target_scheme(endpoint: str) -> str:
    """The scheme of an OTLP/gRPC endpoint that is a target of one of grpc's resolvers (`GRPC_TARGETS`), in lower case,
    else '': in any case, as grpc finds its resolver (`UNIX:/run/otel.sock`, `DNS:///collector:4317`, `IPv4:...` reach
    theirs, grpcio 1.85) and OpenTelemetry's exporter reads it (`urlparse` lowers a scheme; no netloc, so passed on as
    written). Until 2026-12-06 one in capitals was refused as no http URL."""
    scheme, colon, _ = endpoint.partition(":")
    return scheme.lower() if colon and f"{scheme.lower()}:" in GRPC_TARGETS else ""


def target_endpoint(scheme: str) -> str:
    """How an endpoint of a gRPC target's `scheme` is named, by the loader's problems and the span exporter's plaintext
    advice alike: `a unix: endpoint`, `an ipv4: endpoint`."""
    return f"{'an' if scheme.startswith('ipv') else 'a'} {scheme}: endpoint"


# `telemetry.export_timeout_s` at most: a shutdown waits that long for the spans at most. 0 (elsewhere "no timeout")
# failed every export at once, and a time past a thread wait's range (~9.2e9 s) every export and the stop: each lost
# every span while `check` passed it
EXPORT_TIMEOUT_MAX_S = 3600.0

# a number as YAML and JSON write one, in ASCII digits: the config's number keys' text (loader) and a sampler's ratio
DECIMAL: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# the spec's Timeout: a whole number of milliseconds, 0 "indefinite"
MILLISECONDS: Final = re.compile(r"[0-9]+")
# what the spec has an SDK do with a numeric value it cannot read or that is out of range: warn, and go on as if unset
RULE: Final = "the OpenTelemetry specification's rule for a value it cannot read"


def parse_pairs(text: str) -> tuple[tuple[str, str], ...]:
    """`k1=v1,k2=v%202` → (("k1", "v1"), ("k2", "v 2")); a member without `=` or key is skipped, as the
    spec says to skip what cannot be parsed rather than fail."""
    pairs = []
    for member in text.split(","):
        key, sep, value = member.partition("=")
        key = key.strip()
        if sep and key:
            pairs.append((unquote(key), unquote(value.strip())))
    return tuple(pairs)


def _get(env: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """The traces-specific variable, else the general one: (variable name, value), or None."""
    for var in (f"OTEL_EXPORTER_OTLP_TRACES_{name}", f"OTEL_EXPORTER_OTLP_{name}"):
        value = env.get(var, "").strip()
        if value:
            return var, value
    return None


def names_protocol(env: Mapping[str, str]) -> bool:
    """Whether a protocol variable is set (`OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL`): without one, the http/protobuf
    `telemetry_from_env` gives goes with the environment's endpoint, and not with one the config file names."""
    return _get(env, "PROTOCOL") is not None


def export_timeout_s(env: Mapping[str, str], warnings: list[str]) -> float | None:
    """The export timeout `OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT` sets, in seconds, else None. The spec's Timeout: whole
    milliseconds in ASCII digits (float() took `nan`, `1_000`, `١٢`, ` 1e3`), 0 "indefinite", taken as the longest
    this proxy waits (`EXPORT_TIMEOUT_MAX_S`); one that is none, or past that, is warned of and ignored, as if unset
    (the traces variable's so, the general one is read), as the spec's "Numeric" rule has it. Until 2026-12-07 each
    was a problem, or read by float()."""
    for var in ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"):
        text = env.get(var, "").strip()
        if not text:
            continue
        # (its leading zeros dropped before int(), which refuses a text of more than 4300 digits with a ValueError: a
        # value that long, `0` written 5000 times or a slip of 5000 digits, came out of `check` and `serve` as a
        # traceback until 2026-12-07; past 7 digits none is an hour or less)
        digits = text.lstrip("0") or "0"
        if MILLISECONDS.fullmatch(text) and len(digits) <= 7 and int(digits) <= EXPORT_TIMEOUT_MAX_S * 1000:
            # named as set (milliseconds, the variable), not as the key it fills (`telemetry.export_timeout_s`)
            return int(digits) / 1000.0 if int(digits) else EXPORT_TIMEOUT_MAX_S
        most = f"{EXPORT_TIMEOUT_MAX_S * 1000:.0f}"
        warnings.append(f"{var}: expected whole milliseconds up to {most} (0: no timeout, taken as {most}), got "
                        f"{text!r}: ignored, as if unset ({RULE})")  # fmt: skip
    return None


def boolean(var: str, text: str, warnings: list[str]) -> bool:
    """The spec's Boolean: true only for `true`, in any case; anything else is false, and what is not `false` is
    warned of ("a warning SHOULD be logged to inform users about the fallback to false"): `1`, `yes`, `on` were read
    as false unsaid until 2026-12-07."""
    value = text.strip()
    if value.lower() not in ("true", "false"):
        warnings.append(f"{var}: expected true or false, got {value!r}: read as false (the OpenTelemetry "
                        "specification's rule for a boolean)")  # fmt: skip
    return value.lower() == "true"


def sample_ratio(env: Mapping[str, str], warnings: list[str]) -> float:
    """A ratio sampler's `OTEL_TRACES_SAMPLER_ARG`: a number from 0 to 1 as YAML and JSON write one (`DECIMAL`), else
    warned of and 1.0, as unset: the spec's "Invalid or unrecognized input MUST be logged and MUST be otherwise
    ignored". Until 2026-12-07 float() read it (`١٢`, `1_000`, ` nan`) and what was no ratio was said a problem of
    `telemetry.sample_ratio`, a key not written."""
    text = env.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    if not text:
        return 1.0
    if DECIMAL.fullmatch(text) and 0.0 <= float(text) <= 1.0:
        return float(text)
    warnings.append(f"OTEL_TRACES_SAMPLER_ARG: expected a number from 0 to 1, got {text!r}: ignored, as if unset, "
                    f"1.0: every new trace sampled ({RULE})")  # fmt: skip
    return 1.0


def telemetry_from_env(env: Mapping[str, str], warnings: list[str] | None = None) -> tuple[dict[str, Any], list[str]]:
    """`telemetry:` keys as the environment sets them, and its problems (`VAR: message`); what it ignores, as the spec
    has an SDK ignore it, is added to `warnings`."""
    keys: dict[str, Any] = {}
    problems: list[str] = []
    warnings = [] if warnings is None else warnings
    disabled = env.get("OTEL_SDK_DISABLED", "").strip()
    if disabled and boolean("OTEL_SDK_DISABLED", disabled, warnings):
        keys["exporter"] = "none"
    elif env.get("OTEL_TRACES_EXPORTER", "").strip():
        exporter = env["OTEL_TRACES_EXPORTER"].split(",")[0].strip().lower()  # `otlp , console`: the list's first
        if exporter in ("otlp", "console", "none"):
            keys["exporter"] = exporter
        else:
            problems.append(f"OTEL_TRACES_EXPORTER: {exporter!r} is not supported (otlp, console, none)")
    traces = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    general = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if traces:
        keys["traces_endpoint"] = traces
    if general:
        keys["endpoint"] = general
    if traces or general:
        keys.setdefault("exporter", "otlp")  # an endpoint in the environment means: export there
        keys["protocol"] = "http/protobuf"  # the spec's default, unless a protocol variable says otherwise
    found = _get(env, "PROTOCOL")
    if found is not None:
        var, protocol = found
        if protocol in PROTOCOLS:
            keys["protocol"] = protocol
        else:
            problems.append(f"{var}: {protocol!r} is not supported ({', '.join(PROTOCOLS)})")
    found = _get(env, "HEADERS")
    if found is not None:
        keys["headers"] = dict(parse_pairs(found[1]))
    found = _get(env, "COMPRESSION")
    if found is not None:
        var, compression = found
        if compression in ("gzip", "none"):
            keys["compression"] = compression
        else:
            problems.append(f"{var}: {compression!r} is not supported (gzip, none)")
    found = _get(env, "CERTIFICATE")
    if found is not None:
        keys["certificate"] = found[1]
    found = _get(env, "INSECURE")
    if found is not None:
        keys["insecure"] = boolean(*found, warnings)
    timeout_s = export_timeout_s(env, warnings)
    if timeout_s is not None:
        keys["export_timeout_s"] = timeout_s
    attributes = dict(parse_pairs(env.get("OTEL_RESOURCE_ATTRIBUTES", "")))
    service = env.get("OTEL_SERVICE_NAME", "").strip() or attributes.pop("service.name", "")
    attributes.pop("service.name", None)
    if service:
        keys["service_name"] = service
    if attributes:
        keys["resource_attributes"] = attributes
    sampler = env.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    if sampler:
        if sampler not in SAMPLERS:
            problems.append(f"OTEL_TRACES_SAMPLER: {sampler!r} is not supported ({', '.join(SAMPLERS)})")
        else:
            ratio = SAMPLERS[sampler]
            keys["sample_ratio"] = sample_ratio(env, warnings) if ratio is None else ratio
    return keys, problems
