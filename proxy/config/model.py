"""The configuration as frozen, typed data; each default is written here once, as a field default.

The loader and the tests take their defaults from these classes, so what a YAML file leaves out and
what the code assumes cannot drift apart.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from proxy.baseline import Baseline

_NOT_IN_A_NAME = re.compile(r"[^A-Za-z0-9._-]")


def host_sidecar() -> str:
    """`lineage.sidecar` when the config names none: this host's name, as a name is written (a character a name does
    not take as '-', at most 128 characters); 'unnamed' when nothing of it is left."""
    name = _NOT_IN_A_NAME.sub("-", socket.gethostname()).lstrip("._-")[:128]
    return name or "unnamed"


BUILTIN_DETECTORS = ("email", "phone", "credit_card", "ip_address", "iban")
# the upstream protocols whose servers hand their model a call's header fields with its request (MLServer's
# `parameters.headers`, KServe's `predict(payload, headers)`; Triton those its forward pattern names)
FIELDS_TO_MODEL = frozenset({"oip", "kserve"})
# hosts of Azure OpenAI (`x.openai.azure.com`) and Azure AI Foundry (`x.cognitiveservices.azure.com`,
# `x.services.ai.azure.com`), whose OpenAI API is under `/openai` too and hands a model no header fields; those alone:
# other hosts under `.azure.com` are anyone's servers (AKS's `x.eastus.cloudapp.azure.com`: a KServe too)
_AZURE = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")


def kserve_openai_url(protocol: str, url: str | None, *, azure_too: bool = False) -> bool:
    """Whether an upstream is KServe's OpenAI data plane given as a plain OpenAI server: `protocol: openai` with the
    url's path ending in KServe's prefix, `/openai` (`http://kserve-host:8080/openai`). KServe hands its model the
    call's header fields (`context["headers"]`); Azure's hosts serve the same prefix and hand none (`azure_too`: an
    OpenAI server under that prefix, Azure's too, whose `headers_to_model: false` is not refused)."""
    if protocol != "openai" or url is None:
        return False
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")  # a name written whole (`x.openai.azure.com.`) is that host
    except ValueError:  # a url refused, with its reason, where it is read (`http://[::1`)
        return False
    return parts.path.rstrip("/").endswith("/openai") and (azure_too or not host.endswith(_AZURE))


# what Triton writes before its --http-header-forward-pattern and --grpc-header-forward-pattern (command_line_parser.cc,
# "According to HTTP specification header names are case-insensitive"), and what a pattern writes to match by case
CASE_INSENSITIVE, CASE_SENSITIVE = "(?i)", "(?-i)"


def forward_pattern(pattern: str) -> re.Pattern[str]:
    """`upstreams[].headers_to_model` as a Triton forward pattern, as the proxy matches it against a field's name (`search`:
    Triton's `RE2::PartialMatch`, unanchored) without regard to case, as Triton does unless the pattern starts
    `(?-i)`: the proxy reads names lowered (gRPC's are; HTTP's are lowered), so such a pattern, its `(?-i)` dropped,
    reads a field Triton would pass over for its case, rather than miss one it hands on. Raises `re.error`."""
    return re.compile(pattern.removeprefix(CASE_SENSITIVE), re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Tls:
    """TLS on the http and grpc listeners; with `client_ca`, callers may present certificates (mTLS)."""

    cert: str  # PEM certificate chain file
    key: str  # PEM private key file
    client_ca: str | None = None  # PEM bundle that client certificates are verified against
    require_client_cert: bool = False  # with client_ca: refuse handshakes without a valid certificate


@dataclass(frozen=True, slots=True)
class Listen:
    http: Address
    grpc: Address | None = None
    admin: Address | None = None
    tls: Tls | None = None


@dataclass(frozen=True, slots=True)
class UpstreamTls:
    """How the proxy checks an upstream over TLS, and the client certificate it shows (mTLS)."""

    ca: str | None = None  # PEM bundle the upstream's certificate is checked against; None: the system's
    cert: str | None = None  # the proxy's client certificate chain (PEM), when the upstream asks for one
    key: str | None = None
    server_name: str | None = None  # the name the certificate must carry, when not the URL's host


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str
    protocol: str = "openai"  # a dialect in proxy.protocols.DIALECTS
    url: str | None = None  # HTTP base URL, no trailing slash
    grpc: str | None = None  # host:port of an OIP v2 gRPC server
    region: str | None = None
    checkpoint: str | None = None  # a pin; else discovered
    timeout_s: float = 600.0
    connect_timeout_s: float = 5.0
    api_key: str | None = None  # the upstream's own key, sent as Authorization: Bearer
    max_connections: int = 256
    max_queue: int = 1024  # calls waiting for one of its connections; past this, 503 overloaded at once
    discovery_interval_s: float = 60.0
    provider: str | None = None  # gen_ai.provider.name (vllm, tgi, llama.cpp, triton, ...); else discovered
    # TLS: an https:// url always; a gRPC upstream when this is set. None with https: the system's CAs
    tls: UpstreamTls | None = None
    # the server hands its model a call's header fields (MLServer, KServe), so they are read as its data; false (an OIP
    # upstream, or an OpenAI one whose url ends in `/openai`): a Triton without a header forward pattern, or a server
    # that is not KServe's, which hands its model none, and they are not read; a string (an OIP upstream only): a
    # Triton's forward pattern, and only the fields it names are read (`fields_named`); None (not written): the
    # protocol's way (`fields_by_default`). True written on an `openai` upstream elsewhere (a gateway in front of KServe's
    # OpenAI data plane, `http://gw/kserve-llm`) says its server hands them too; written where it is the protocol's way
    # it is kept as None, so an upstream compares equal (a reload sees no change) whether or not it was written
    headers_to_model: bool | str | None = None
    # its model is handed the call's header fields (`headers_to_model` true, or not written on an `oip` or `kserve`
    # upstream, or on an `openai` one whose url is KServe's OpenAI data plane's, `kserve_openai_url`; a pattern naming
    # `X-Forwarded-For`): it is told nothing of the client (no `X-Forwarded-For`), as the client's address would reach
    # the model as data, and the proxy's own entry read as such labels every call `pii:ip_address` (derived: set by
    # `__post_init__`, as is `fields_named`)
    fields_to_model: bool = field(init=False, compare=False)
    # the fields its model is handed, by name (`forward_pattern`), where `headers_to_model` is a pattern; None: all
    fields_named: re.Pattern[str] | None = field(init=False, compare=False)

    def __post_init__(self) -> None:
        said = self.headers_to_model
        named = forward_pattern(said) if isinstance(said, str) else None
        by_default = fields_by_default(self.protocol, self.url)
        # true changes nothing but on an `openai` upstream elsewhere; on a protocol whose calls' fields are never read
        # (a passthrough one) nothing is read, the client told, as without it: kept as None, equal (a reload keeps it)
        if said is True and (by_default or self.protocol != "openai"):
            object.__setattr__(self, "headers_to_model", None)
            said = None
        handed = by_default if said is None else said is True
        told = named is not None and named.search("x-forwarded-for") is not None and self.protocol in FIELDS_TO_MODEL
        object.__setattr__(self, "fields_named", named)
        object.__setattr__(self, "fields_to_model", handed or told)


def fields_by_default(protocol: str, url: str | None) -> bool:
    """Whether an upstream whose `headers_to_model` is not written hands its model a call's header fields: MLServer and
    KServe's model server (`FIELDS_TO_MODEL`), and KServe's OpenAI data plane given as `protocol: openai`
    (`kserve_openai_url`); not another OpenAI server (vLLM, llama.cpp), whose calls' fields are then never read."""
    return protocol in FIELDS_TO_MODEL or kserve_openai_url(protocol, url)


@dataclass(frozen=True, slots=True)
class Route:
    model: str  # exact model name, or "*"
    upstream: str
    purposes: frozenset[str] | None = None  # None: any purpose


@dataclass(frozen=True, slots=True)
class Caller:
    name: str
    api_key_sha256: str | None = None
    purposes: frozenset[str] | None = None  # None: any purpose
    labels: frozenset[str] = frozenset()
    default_purpose: str | None = None
    # a client certificate that identifies this caller (mTLS): its SPIFFE ID (URI SAN) or its subject
    # common name as `CN=<name>`
    tls_identity: str | None = None


@dataclass(frozen=True, slots=True)
class Zone:
    name: str
    labels: frozenset[str]
    allow_purposes: frozenset[str]
    regions: frozenset[str] | None = None
    reroute_to: str | None = None  # on_deny: reroute:<upstream>; None means block
    # refuse the zone's calls (503 record_unavailable) while neither the store nor its journal takes edges
    require_record: bool = False


@dataclass(frozen=True, slots=True)
class PolicySettings:
    mode: str = "enforce"  # enforce | audit
    anonymous: str = "deny"  # deny | allow
    default_purpose: str | None = None
    # a body-carrying call to a path no adapter reads (its data cannot be scanned or labelled by content):
    # forward | refuse | auto (refuse when zones are configured, or, where the path names no model, when a route
    # limits its purposes; else forward)
    passthrough: str = "auto"
    # None: a call may send any label. A tuple: the labels (and shell-style patterns, `team-*`) a call may send
    # besides the config's own (zones', callers', detectors'); any other is refused, 400: a misspelt label would
    # otherwise be data no zone holds (`proxy.labels.KnownLabels`)
    known_labels: tuple[str, ...] | None = None
    # None: a call may name any purpose. A tuple: the purposes (and patterns) an `x-purpose` may name besides the
    # config's own (zones', callers', routes', the defaults); any other is refused, 400, and recorded under
    # UNKNOWN_PURPOSE: a purpose new on every call was a new row of the lineage store each (`Pipeline.check_purpose`)
    known_purposes: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class DetectorSpec:
    name: str
    pattern: str | None = None  # None: a built-in detector, one of BUILTIN_DETECTORS


@dataclass(frozen=True, slots=True)
class Telemetry:
    service_name: str = "lineage-proxy"
    exporter: str = "none"  # otlp | console | none
    endpoint: str | None = None
    protocol: str = "grpc"  # grpc | http/protobuf
    sample_ratio: float = 1.0
    capture_content: bool = False
    queue_size: int = 4096
    export_timeout_s: float = 5.0
    resource_attributes: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()  # sent with every export (a hosted backend's API key)
    compression: str = "none"  # gzip | none
    certificate: str | None = None  # PEM CA bundle to verify the backend with (https / TLS gRPC)
    insecure: bool | None = None  # gRPC: plaintext; None: by the endpoint's scheme
    traces_endpoint: str | None = None  # a traces-specific URL, used as is (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
    metrics: bool = True  # Prometheus /metrics; false: no per-call instruments and no /metrics


@dataclass(frozen=True, slots=True)
class OpenLineage:
    """Lineage flows as OpenLineage RunEvents (proxy/record/openlineage.py). `transport` goes to
    openlineage-python's transport factory as written, so every transport it has (http to Marquez, kafka,
    file, console) is configured the way its own docs say; the loader turns `url:` into the http one."""

    transport: Mapping[str, Any] = field(default_factory=dict, hash=False)
    namespace: str = "lineage-proxy"  # the jobs' namespace (one job per checkpoint)
    snapshot_interval_s: float = 60.0  # how often counts of the flows seen since go out
    queue_size: int = 1024  # events waiting for the backend; beyond it they are dropped and counted
    # where the count events not sent at stop are written, to be sent at the next start (a directory, one file a stop)
    spool: str = "./lineage-openlineage-spool"
    spool_max_events: int = 100_000  # count events a stop writes there at most; beyond, dropped, counted and said


@dataclass(frozen=True, slots=True)
class Lineage:
    store: str | None = "./lineage.db"  # None: no edge store
    retention_days: float = 30.0
    flush_interval_s: float = 1.0
    head_log_interval_s: float = 3600.0  # how often the chain's head is logged (and at start and stop); 0: only then
    baseline: str | None = None  # the approved-flows file (proxy/baseline.py); None: flows are not verified
    on_unapproved: str = "warn"  # warn | block: what a call whose flow the baseline does not cover gets
    openlineage: OpenLineage | None = None  # None: no OpenLineage export
    # a file holding the key that signs the store's hash chain (HMAC-SHA256); None: plain sha256 links
    integrity_key_file: str | None = None
    # the keys integrity_key_file replaced, oldest first: entries signed before a rotation are checked with them
    integrity_retired_key_files: tuple[str, ...] = ()
    # a PostgreSQL store (postgresql://...): a file holding its password (else the URL's, else PGPASSWORD)
    password_file: str | None = None
    # a PostgreSQL store: the local SQLite journal its writes go to while the database is away
    journal: str = "./lineage-journal.db"
    journal_max_rows: int = 1_000_000  # edge writes the journal holds at most; beyond, counts wait in memory
    # which sidecar (deployment) this proxy is in a fleet writing one store: recorded with every edge it writes, read
    # once at start (a reload keeps it); default: the host name
    sidecar: str = field(default_factory=host_sidecar)


@dataclass(frozen=True, slots=True)
class Logging:
    """What the proxy writes to stderr: `json` is one object a line for log pipelines; the access log
    (one line per call, never its content) is off by default."""

    format: str = "text"  # text | json
    level: str = "info"  # debug | info | warning | error (`--log-level` wins)
    access: bool = False
    # the client's address (the TCP peer) in the access line and the span (`client.address`, `client.port`)
    client_address: bool = True


@dataclass(frozen=True, slots=True)
class Limits:
    max_body_bytes: int = 64 * 1024 * 1024
    scan_max_chars: int = 1_000_000
    drain_timeout_s: float = 30.0
    buffer_max_bytes: int = 16 * 1024 * 1024
    # a keep-alive connection idle this long is closed; so is one whose request head is not complete within
    # header_timeout_s of its first byte: slow or idle clients cannot pin connections
    idle_timeout_s: float = 15.0
    header_timeout_s: float = 10.0
    max_header_bytes: int = 32 * 1024  # the request head (431 past it), and at most max_headers fields
    max_headers: int = 100
    max_connections: int = 4096  # per process; more get 503 overloaded at once, so calls in flight go on
    # calls at once on one gRPC connection (HTTP/2's SETTINGS_MAX_CONCURRENT_STREAMS): a client's further calls wait
    # in its channel for one to end (HTTP/1.1 has one call a connection at a time)
    max_concurrent_streams: int = 128
    # request bodies held in memory at once, all of a process's connections together: a body that would take
    # them past it gets 503 overloaded (max_connections bodies of max_body_bytes would be 256 GiB)
    bodies_max_bytes: int = 1024 * 1024 * 1024
    # what grpc reads ahead of the proxy on one gRPC stream (its HTTP/2 receive window, fixed): on the listener (a
    # client's requests) and on each upstream channel (the upstream's replies). A stream whose other side reads nothing
    # holds at most this; one stream moves at most this a round trip. grpc sized it from the bandwidth-delay product it
    # measured, without bound: a non-reading stream held 18-66 MiB on loopback, about 0.5 GiB at 80 ms round trip
    grpc_stream_window_bytes: int = 32 * 1024 * 1024
    # calls at once on the gRPC listener, all its connections together (counted by the proxy, `GrpcIngress.service`):
    # past it a new call is refused RESOURCE_EXHAUSTED, unread (a health check may take HEALTH_RESERVE more, a watch
    # WATCH_RESERVE of them). The window is at most bodies_max_bytes /
    # this (`transport.grpc_channels.call_window`), so what it reads ahead of the proxy, all calls together, is at most bodies_max_bytes:
    # with max_connections x max_concurrent_streams calls of a 32 MiB window each, a client's streams that the proxy
    # did not read held ~35 MiB each (64 streams took a `serve` process from 64 MiB to 2.3 GiB), without bound
    grpc_max_calls: int = 512
    # gRPC: how long a call's request message (a unary call's request, a stream's first message) has from the call's
    # start to arrive whole; past it the call ends DEADLINE_EXCEEDED, recorded. A message still arriving is grpc's
    # alone (the proxy sees neither its size nor its bytes): a client that never finished one held it, and its call's
    # place among grpc_max_calls, for good (8 calls of 60 MiB but their last byte held 547 MiB in a `serve` process)
    grpc_request_timeout_s: float = 60.0
    # gRPC: the request messages the listener asks grpc for before their calls are decided (a unary call's, a stream's
    # first), each counted at the most it may take (grpc's receive limit: max_body_bytes and a quarter), at most this
    # at once (one always); a further call waits its turn (`GrpcIngress._request`). grpc reads a message whole before
    # the proxy sees it, opening its window to what the message's prefix announces: 512 calls sending all but the last
    # byte of 80 MiB messages held ~40 GiB for grpc_request_timeout_s. A call not yet read holds only its window
    grpc_arriving_max_bytes: int = 1024 * 1024 * 1024
    # gRPC: an upstream's reply message at most, as grpc takes it on the proxy's channel (`grpc.max_receive_message_length`);
    # None: max_body_bytes, what a request message may be. grpc reads a message whole before the proxy sees it: an
    # upstream (buggy or hostile) answering with one of gigabytes had the proxy hold all of it. Past it the call ends
    # RESOURCE_EXHAUSTED, recorded `reply_too_large`
    grpc_max_reply_bytes: int | None = None
    # `serve --workers N`: a worker that has not turned its event loop for this long (stopped, its loop blocked) is
    # killed (SIGKILL: a loop that does not turn cannot drain) and restarted by its supervisor (`workers.Watchdog`);
    # 0: never
    worker_stall_s: float = 30.0


@dataclass(frozen=True, slots=True)
class Config:
    listen: Listen
    upstreams: tuple[Upstream, ...]
    routes: tuple[Route, ...]
    callers: tuple[Caller, ...] = ()
    zones: tuple[Zone, ...] = ()
    policy: PolicySettings = PolicySettings()
    detectors: tuple[DetectorSpec, ...] = ()
    telemetry: Telemetry = Telemetry()
    lineage: Lineage = Lineage()
    limits: Limits = Limits()
    logging: Logging = Logging()
    baseline: Baseline | None = None  # lineage.baseline as read when the config was: a reload re-reads it
    source: str = field(default="<memory>", compare=False)
    # the sha256 of the file's bytes as read (before `${VAR}` expansion), its first 12 hex digits (`sha256sum`'s): which
    # config a process runs, in its reload lines and `lineage_proxy_config_info` ("": not read from text)
    digest: str = field(default="", compare=False)
    # what is wrong soon rather than now (a certificate near its notAfter): said by `check`, at start and by a reload
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def upstream(self, name: str) -> Upstream:
        for upstream in self.upstreams:
            if upstream.name == name:
                return upstream
        raise KeyError(name)
