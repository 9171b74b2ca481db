"""Configuration: one YAML file parsed once into frozen, typed objects, or every problem with its path.

`model` says what a configuration is, with every default; `loader` turns YAML into one. Nothing else
in the proxy reads YAML or the environment.
"""

from proxy.config.loader import (
    SqliteNameError,
    key_problem,
    load,
    parse,
    parse_address,
    read_key,
    read_retired_keys,
    read_secret,
    sqlite_file,
    store_pairs_problem,
)
from proxy.config.model import (
    BUILTIN_DETECTORS,
    Address,
    Caller,
    Config,
    DetectorSpec,
    Limits,
    Lineage,
    Listen,
    Logging,
    OpenLineage,
    PolicySettings,
    Route,
    Telemetry,
    Tls,
    Upstream,
    UpstreamTls,
    Zone,
)

__all__ = [
    "BUILTIN_DETECTORS",
    "Address",
    "Caller",
    "Config",
    "DetectorSpec",
    "Limits",
    "Lineage",
    "Listen",
    "Logging",
    "OpenLineage",
    "PolicySettings",
    "Route",
    "SqliteNameError",
    "Telemetry",
    "Tls",
    "Upstream",
    "UpstreamTls",
    "Zone",
    "key_problem",
    "load",
    "parse",
    "parse_address",
    "read_key",
    "read_retired_keys",
    "read_secret",
    "sqlite_file",
    "store_pairs_problem",
]
