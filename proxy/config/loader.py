"""YAML into the model, or every problem with its path.

Unknown keys are errors, so a typo never silently turns a restriction off. A key the file leaves out
takes the model's field default: this module writes none of its own, so the two cannot disagree.
"""

from __future__ import annotations

import codecs
import contextlib
import copy
import difflib
import errno
import hashlib
import importlib.util
import ipaddress
import math
import os
import re
import shlex
import struct
import tempfile
import time
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import MISSING, fields
from functools import partial
from pathlib import Path
from typing import Any, Final, TypeVar, cast
from urllib.parse import SplitResult, unquote, unquote_to_bytes, urlsplit

import idna
import yaml

from proxy.baseline import Baseline, BaselineError, load_baseline
from proxy.config.model import (
    BUILTIN_DETECTORS,
    CASE_SENSITIVE,
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
    forward_pattern,
    host_sidecar,
    kserve_openai_url,
)
from proxy.config.otel_env import (
    DECIMAL,
    EXPORT_TIMEOUT_MAX_S,
    grpc_target_scheme,
    names_protocol,
    target_endpoint,
    telemetry_from_env,
)
from proxy.config.yamlfile import (
    StrictLoader,
    WrittenFloat,
    WrittenInt,
    not_utf8,
    shown_key,
    surrogate,
    surrogates,
    written,
    yaml_hint,
)
from proxy.errors import ConfigError
from proxy.files import read_bytes
from proxy.labels import MAX_LABELS, is_label

# `limits.worker_stall_s`, when not 0: no less than the stall a `--workers` /readyz reports (`server.STALL_S`)
WORKER_STALL_MIN_S: Final = 5.0
T = TypeVar("T")


class Verbatim(str):
    """A value taken from the environment as it is (an `OTEL_*` variable's): not config text, so a `${` in it is
    no variable to expand (`Authorization=Basic a${b`)."""


# The packages openlineage-python's transports import only when one is built (at serve's first event, too late
# for `check` to say so): each kind's modules and the pip name that installs them. Keyed by the type a config gives
# (the transport class's `kind`, as openlineage-python's factory reads it: `msk-iam`, `amazon_datazone_api`)
_TRANSPORT_NEEDS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "kafka": (("confluent_kafka", "confluent-kafka"),),
    "msk-iam": (("confluent_kafka", "confluent-kafka"), ("aws_msk_iam_sasl_signer", "aws-msk-iam-sasl-signer-python")),
    "amazon_datazone_api": (("boto3", "boto3"),),
    "gcplineage": (("google.cloud.datacatalog_lineage_v1", "google-cloud-datacatalog-lineage"),),
}


def _missing_packages(transport: Mapping[str, Any]) -> list[str]:
    """The pip names a transport needs and this machine lacks: a composite's, each of its transports'; a transform's,
    its transport's; nested ones too (one a transform held was not looked into until 2026-12-05)."""
    kind = transport.get("type")
    if kind == "transform":
        held = transport.get("transport")
        return _missing_packages(held) if isinstance(held, Mapping) else []
    if kind == "composite":
        nested = transport.get("transports")
        inner = nested.values() if isinstance(nested, Mapping) else nested if isinstance(nested, list) else ()
        return sorted({name for item in inner if isinstance(item, Mapping) for name in _missing_packages(item)})
    missing = []
    for module, name in _TRANSPORT_NEEDS.get(kind, ()) if isinstance(kind, str) else ():
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:  # a parent package missing (google.cloud)
            found = False
        if not found:
            missing.append(name)
    return missing


# openlineage-python's transports that send to their `url` with an HTTP client (requests, httpx2)
_URL_TRANSPORTS: Final = ("http", "async_http")


def _composite_urls(path: str, transport: Mapping[str, Any]) -> Iterator[tuple[str, Any, str]]:
    """The url and type of each http or async_http transport a composite transport (its `transports`) or a transform
    one (its `transport`) holds, nested ones too, with its path: each is read by its HTTP client as the top one's is
    (`_without_userinfo`), yet openlineage-python's config classes check none (a URL whose password holds a `/`
    loaded, host `ops`, until 2026-12-05; an async_http one, or one a transform transport held, until the review)."""
    kind = transport.get("type")
    nested = transport.get("transports") if kind == "composite" else transport.get("transport")
    if kind == "transform" and isinstance(nested, Mapping):
        items: Iterable[tuple[str, Any]] = [(f"{path}.transport", nested)]
    elif kind == "composite" and isinstance(nested, Mapping):
        items = ((f"{path}.transports.{key}", item) for key, item in nested.items())
    elif kind == "composite" and isinstance(nested, list):
        items = ((f"{path}.transports[{index}]", item) for index, item in enumerate(nested))
    else:
        return
    for where, item in items:
        if isinstance(item, Mapping) and item.get("type") in _URL_TRANSPORTS:
            yield f"{where}.url", item.get("url"), item["type"]
        elif isinstance(item, Mapping):
            yield from _composite_urls(where, item)


# a host's name (a name may hold an `_`, as a compose service's does, `otel_collector`, and end in a `.`; and letters
# not ASCII, an IDN's, `bücher.example`, which every reader takes), or an IPv4 address, its digits and dots: labels
# none empty (`.triton`, `tri..ton`: Python's idna codec refuses them before any lookup, and no DNS query holds one),
# each of letters, digits, `_` and `-`, one at either end too (`triton-`, `-triton`: a compose service's name may be,
# `[a-zA-Z0-9._-]+`, and getaddrinfo and grpc find such a name where a resolver lists it: refused earlier on 2026-12-06,
# they load again)
_HOST_NAME = r"[\w-]+(?:\.[\w-]+)*\.?"
# what follows the `@` of a userinfo: a host, a name or an IPv6 address in brackets, and its port
# (until the review of 2026-12-05 an IDN's after `ops:12/34@` loaded)
_HOST_PORT = re.compile(rf"(?:\[[0-9A-Fa-f:.]+\]|{_HOST_NAME})(?::[0-9]{{0,5}})?")
_NAMED = re.compile(_HOST_NAME)
# what an address's host may be shown holding where it is no host (`_host_problem`): a name's characters, a list's `,`
# and an IPv6 address's pieces, none a token's (`+`, `=`, `/`, said `***`); and what of it, past its first `:`, is
# shown: pieces of four hex digits at most, two `:` or more among them, an IPv6 address's (`2001:db8:::1`), not one
# piece, a password's as much (`admin:s3cret:8001`, and one of hex digits, `admin:1234:8001`, `root:cafe:8001`), said
# `admin:***:8001`; or the port written again (`c:4317:4317`)
_HOST_SHOWN = re.compile(r"[\w.,:%-]*")
_HEX_PIECES = re.compile(r"[0-9A-Fa-f.]{0,4}(?::[0-9A-Fa-f.]{0,4})*")
# a host whose port is mistyped (`triton:80x`, `triton:800000`; `triton:` is `_HOST_PORT`'s): after a path's `@`, as much
# a userinfo's end as a host:port (`_slashed_userinfo`: read as a path's, `http://ops:12/s3cret@triton:80x` would load,
# host `ops`, the password sent as the path). One holding no digit is no port's (Vertex AI's `@20240620:rawPredict`), nor
# one of more than 7 characters (a port's 5 and 2 more) or holding a `:` (but for one doubled, `@triton::1`): a digest's
# (`m@sha256:9f86d0...`) or a time's (`@2024-06-20T12:00:00Z`), which load. But digits alone are a port's, of any length
# or script (`@triton:80800800`, `@triton:８００１`: `int` reads them, no URL reader does), and so is a scheme's name
# (`@triton:http`, the port's service name to a resolver, where a path's word after a `:` is a method's or a tag's,
# `:rawPredict`, `:latest`), with white space around the host or its `:` too (`@triton :8001`), which no path holds
# unescaped; and a fullwidth `：` before such a port, as a CJK input method writes it with its digits (`@triton：８００１`).
# So too white space within the host (`@tri ton:8001`), a `:` after a port of digits (`@triton:8001:`), and gRPC's
# scheme's name for a port (`@triton:grpc`, one a gRPC upstream's user meant): no API's path holds white space
# unescaped, nor a `:` after a tag's digits (a time's has two more digits after it, `T12:00:00Z`), nor the word `grpc`;
# and any `:` after such a port, doubled or after its scheme's name (`@triton:8001::`, `@triton:grpc:`: until
# 2026-12-06 they loaded, host `ops`, where one `:` after the digits was refused)
_MISTYPED_PORT = re.compile(
    r"\s*(?:\[[0-9A-Fa-f:.]+\]|\w(?:[\w.-]*\w)?(?:\s+\w(?:[\w.-]*\w)?)*\.?)\s*"
    r"(?:[:\uff1a]\s*(?:\d+|(?i:https?|grpcs?))(?:\s*[:\uff1a])*\s*|::?(?=[^/?#@:]*\d)[^/?#@:]{1,7})"
)
# a key of libpq's key=value pairs where one is (`_conninfo_pairs`): at the start or after white space, before a `=`
_CONNINFO_KEY: Final = re.compile(r"(?:^|(?<=\s))(\w+)\s*=")
# a URL's scheme and its `://` (RFC 3986's `scheme`), which begins an address written as a URL (`parse_address`): not
# any `://`, one in a path (`triton:8001/s3cret://x`, read from there, quoted the path before it and said `write 'x'`)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
# what no host's name holds, nor an IPv6 address: a listener's or a gRPC upstream's address holding one is a URL's path,
# query or fragment, or a token (`parse_address`)
_NO_HOSTS = re.compile(r"[/?#\s]")
# what no URL's host holds either (`http://triton :8001`: `_split`)
_SPACED = re.compile(r"\s")
# what follows a PostgreSQL URL's userinfo: a host[:port], or a list of them libpq tries in turn (`db1:5432,db2`), a
# host a name, an IPv6 address or a socket's directory (`%2Fvar%2Frun%2Fpostgresql`: until the review of 2026-12-05 no
# host); and with `_LIBPQ_HOSTS` (`_query_at`) an empty one too, libpq's default (`@/lineage`, `@:5432/`, `db1,,db2`)
_LIBPQ_HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[\w.%%-]%s)(?::[0-9]{0,5})?"
_HOST_LIST = re.compile(rf"{_LIBPQ_HOST % '+'}(?:,{_LIBPQ_HOST % '+'})*")
_LIBPQ_HOSTS = re.compile(rf"{_LIBPQ_HOST % '*'}(?:,{_LIBPQ_HOST % '*'})*")
# a name of digits and dots alone that is no IPv4 address of four numbers, and no port after it (`20240620`, `001`,
# `1.5`): a resolver reads it as an IPv4 address in fewer numbers, which no one writes for a host, while a version after
# a path's `@` is one (Vertex AI's `.../models/claude-3-5-sonnet@20240620`). With a port it is a host's (`@127.1:8000`,
# `@2130706433:8000`, 127.0.0.1 to a resolver: no version has a port; until 2026-12-05 it loaded, host `ops`)
_NUMBERED = re.compile(r"[0-9.]+")
_IPV4 = re.compile(r"(?:[0-9]{1,3}\.){3}[0-9]{1,3}\.?(?::[0-9]{0,5})?")
# a host's name of two labels or more, its last of letters (no top-level domain is digits: `m@v1.5` is a version), or an
# IPv4 address: what follows a token's `@` (`aB3/x+Yz/Q9@api.example.com`), no model's tag (`m@default`)
_DOTTED_HOST = re.compile(r"(?:\w(?:[\w-]*\w)?\.)+(?:[^\W\d_]+|xn--[\w-]+)\.?|(?:[0-9]{1,3}\.){3}[0-9]{1,3}\.?")
# a host's name of one label, no port: what a token holding a `/` begins with as a reader reads it (`aB3/x+Yz/Q9@gw`)
_ONE_LABEL = re.compile(r"\w(?:[\w-]*\w)?")
# how people write a host's name with capitals: all in them (`GPUBOX`, `DESKTOP-7QK2M`, a Windows machine's own), or
# each word begun by one (`Gateway`, `Gpu_Box`): no token's mark (`_base64_marked`), where base64 has them anywhere
_CASED_NAME = re.compile(r"[^a-z]+|[A-Z]?[a-z0-9]*(?:[-_][A-Z]?[a-z0-9]*)*")
# how to write a user:password holding each of `/?#` (`_slashed_userinfo`: the reader ends the authority at the first),
# and where an `@` after it is: its code, and the part of a URL it begins
_MARKS: Final = {"/": ("%2F", "path"), "?": ("%3F", "query"), "#": ("%23", "fragment")}
_AT_FORMS: Final = {"path": "scheme://host/a%40b", "query": "scheme://host/?a%40b", "fragment": "scheme://host/#a%40b"}


def _slashed_userinfo(url: str) -> tuple[int, int] | None:
    """Where a `user:password@` whose password or user holds a `/`, `?` or `#` written unescaped begins, and where its
    `@` is: a URL reader ends the authority at the first of them (urllib's, yarl's, urllib3's), so
    `http://ops:12/34@collector:4318` is host `ops`, port 12 and path `/34@collector:4318` (the credentials dropped, the
    wrong host used; one of letters, `ops:s3cr/et@`, a port it refuses). Taken for one when a piece of what follows
    (split at `/`, `?` and `#` alike: `12/34?56`, `12?34/56`) ends in an `@` then a host[:port] (or a host whose port
    is mistyped, `_MISTYPED_PORT`: `@triton:80x`), unless the text cannot be a userinfo and a host:
    - a version, digits alone with no port (`_NUMBERED`: `claude-3-5-sonnet@20240620`), after a host or a host:port:
      the `@` is the path's; after a `:` that begins no port (`u:/s3cret@20240620`, `ops:&?/x@1`) it is a password's;
    - a `:` in the authority the reader ends (`ops:12`, `h:8000`) makes it a password holding the mark, which may hold
      any text (`http://ops:1/2?3=4@h`: before 2026-12-05 a query of `key=value` pairs was exempt, so it loaded with
      host `ops`); so `http://h:8000/alice@example.com/v1` cannot be told from `ops:8000/alice` and is refused too;
    - else the user would hold the mark (`us/er:pw@`, `tok/en@`, `us?er:pw@`: before 2026-12-05 a `?` or `#` only
      after digits was, so `http://us?er:pw@h:4318` loaded with host `us`), which a user's name or token does not
      without a `:` after it (`us/er:pw@`, `first.last/x:pw@`) past an IPv4 address (`10.0.0.5/...`), nor in a path's
      second segment or later (none empty) after a host's name and before a host without a port
      (`gw/models/m@default`, `api.example.com/users/a@b.com`: until 2026-12-05 refused, but for a dotted host's,
      which made `first.last/x@h` load with host `first.last`) but for a one-label name's before a dotted host's
      (`_DOTTED_HOST`: `aB3/x+Yz/Q9@api.example.com`, a token of base64, loaded with host `ab3` from 20b541b to its
      review, 2026-12-05; `gw/users/a@b.com` is so refused, to be written `%40`), nor a `?` before a query's `key=value` pairs
      (`?user=alice@example.com`) whose first key holds no `:` (`us?er:cGFzcw==@` and `us?er:p&w@` are a user and a
      password: until the review of 2026-12-05 they loaded with host `us`).
    An `@` in the authority the reader ends, with no host[:port] after it (`ops@:1/s3cret@h`, a user holding an `@`,
    host `` and port 1 to the reader), is a user's or password's too, so is read on to the later `@` (until 2026-12-05
    refused as no URL, in words quoting `:1/s3cret@h`). An `@` that is the path's is written `%40`. None else."""
    start = url.find("://") + 3 if "://" in url else 0
    slash = start
    while slash < len(url) and url[slash] not in "/?#":
        slash += 1
    if slash == len(url):
        return None
    head = url[start:slash]
    if head.startswith("[") or ("@" in head and _HOST_PORT.fullmatch(head.rpartition("@")[2])):
        return None  # (a userinfo the reader ends at its `@` before a host[:port]: `redact_userinfo` hides it)
    password = ":" in head  # (else the user would hold the mark)
    port = head.rpartition(":")[2].isdecimal() if password else True  # (`u:`, `ops:&`: no port, a password's start)
    address = not password and _IPV4.fullmatch(head) is not None
    named = not password and _HOST_PORT.fullmatch(head) is not None  # (`http:///a/b@h`, `a&/b/c@h`: no host's name)
    query = -1  # where the query begins (its `?`), once one has
    fragment = False
    found = -1
    stop = slash  # the `/`, `?` or `#` before each piece
    while stop < len(url):
        if url[stop] == "#":
            fragment, query = True, -1  # (a fragment is no query)
        elif url[stop] == "?" and not fragment and query < 0:
            query = stop
        piece = stop = stop + 1
        while stop < len(url) and url[stop] not in "/?#":
            stop += 1
        at = url.rfind("@", piece, stop)
        if at < 0 or not (_HOST_PORT.fullmatch(url, at + 1, stop) or _MISTYPED_PORT.fullmatch(url, at + 1, stop)):
            continue
        version = port and _NUMBERED.fullmatch(url, at + 1, stop) and not _IPV4.fullmatch(url, at + 1, stop)
        if version and not _base64_marked(url, start, slash, at):
            continue
        if not password and url.find(":", slash, at) < 0:  # a user's name or token, without a password
            deep = named and query < 0 and not fragment and url.count("/", slash, at) > 1 and "//" not in url[slash:at]
            # (nor before a host whose port is mistyped: `@triton：8001`, its `:` fullwidth, which would load with the
            # host before the path and the password sent as the path)
            deep = deep and url.find(":", at, stop) < 0 and not _MISTYPED_PORT.fullmatch(url, at + 1, stop)
            # (a one-label name, then a dotted host's after the `@`: a reader takes `aB3/x+Yz/Q9@api.example.com` for
            # a token and its host, where `gw/models/m@default` reads as a path)
            deep = deep and not ("." not in head and _DOTTED_HOST.fullmatch(url, at + 1, stop))
            deep = deep and not _base64_marked(url, start, slash, at)
            if address or deep:
                continue
        pair = min((end for end in (url.find("=", query, at), url.find("&", query, at)) if end >= 0), default=-1)
        if password or query < 0 or pair < 0 or url.find(":", query, pair) >= 0:
            found = at
    return (start, found) if found >= 0 else None


def _base64_marked(url: str, start: int, slash: int, at: int) -> bool:
    """Whether the text before a path's `@` the config would read as the path's (`_slashed_userinfo`: a version's,
    `m@20240620`, or a model's tag after a host of one label, `gw/models/m@default`) is rather a token of base64,
    whose alphabet holds the `/` (`https://aB3/x+Yz/Q9@gateway/v1`, host `ab3` to a reader; until 2026-12-05 it
    loaded): written after a host of one label, an upper-case letter in it where no one writes one in a host's name
    (`_CASED_NAME`: `aB3`, not `Gateway` nor `GPUBOX`; a token's first piece seldom has none) or a `+` in the path
    before the `@`, or a `=` (its padding) just before it,
    none of a model's name nor of an API's path. One of lower-case letters and digits alone cannot be told from a
    path: `_token_at` hides it in the config's words."""
    if not _ONE_LABEL.fullmatch(url, start, slash):
        return False
    head = url[start:slash]
    cased = head != head.lower() and not _CASED_NAME.fullmatch(head)  # (`aB3`; until its review `Gateway` too)
    return cased or "+" in url[slash:at] or url[at - 1] == "="


def _token_at(url: str) -> tuple[int, int] | None:
    """Where a token might begin and end in a URL that loads (`_slashed_userinfo` found none): after a host's name of
    one label and no port (`_ONE_LABEL`), what is up to the last `@` in the path before a host[:port]'s text
    (`http://gw/models/m@default`, `http://a/tok@20240620`) is read as the path's, yet a token of lower-case letters
    and digits holding a `/` gives the same text (`_base64_marked`): the config's words hide it (`shown_url`), as a
    userinfo. Until 2026-12-05 the `/v1` warning quoted it. None when the URL holds no such `@`."""
    start = url.find("://") + 3 if "://" in url else 0
    slash = url.find("/", start)
    if slash < 0 or not _ONE_LABEL.fullmatch(url, start, slash):
        return None
    end = min((index for index in (url.find("?", slash), url.find("#", slash)) if index >= 0), default=len(url))
    at = url.rfind("@", slash, end)
    while at >= 0:
        slashed = url.find("/", at, end)
        stop = slashed if slashed >= 0 else end
        if _HOST_PORT.fullmatch(url, at + 1, stop):
            return start, at
        at = url.rfind("@", slash, at)
    return None


# where an HTTP client's or TLS library's words name a host (`{host}`, escaped), as a word: quoted (`'gw'`,
# `host='gw'`, `\'gw\'` in a repr's repr), in a URL (`//gw`), a key's value (`host=gw`), before its port or path
# (`gw:443`, `gw/`), after `to ` (urllib3's `Connection to gw timed out.`) or after `: ` ending a clause (urllib3's
# `discarding connection: gw.`, `Resetting dropped connection: gw`)
_AS_HOST = (
    r"(?<![\w.-])(?:(?<=['\"`]){host}(?=\\?['\"`])|(?:(?<=//)|(?<==)|(?<=\bto )){host}|{host}(?=:\d|/)"
    r"|(?<=: ){host}(?=\Z|\n|[.,;)](?:\s|\Z)))(?![\w-]|\.\w)"
)


def token_hidden(text: str, url: str) -> str:
    """`text` (`url` itself, or a message that quotes it or its parts: an HTTP client's error) with what may be a token
    before the path's `@` after a host of one label (`_token_at`) hidden as `shown_url` hides it: the whole of it, its
    path's part (`/xyz/q9s3cr` of `http://localhost/xyz/q9s3cr@gateway`, quoted by requests' errors), what of it
    comes before a `/` (`/xyz/`: a URL joined with a relative endpoint, `http://localhost/xyz/api/v1/lineage`, keeps
    it) and its host, the token's first piece, where it stands as a host (`_AS_HOST`), in any case (urllib3 and httpx2
    write it in lower case; until the review of 2026-12-06 written as in the URL, and in every word too: host `h` made
    `the` `t***e`; until 2026-12-06 in every word it is: host `valid` made OpenSSL's `certificate is not valid for`
    `not *** for`, `ssl` its `[SSL: ...]` `[***: ...]`). Unchanged for a URL holding no such `@`."""
    found = _token_at(url)
    if found is None:
        return text
    start, at = found
    slash = url.find("/", start)
    text = text.replace(url[start:at], "***").replace(url[slash:at], "/***")
    ends = [index for index in range(at - 1, slash, -1) if url[index] == "/"]
    for end in ends:  # the longest first
        text = text.replace(url[slash : end + 1], "/***/")
    return re.sub(_AS_HOST.format(host=re.escape(url[start:slash])), "***", text, flags=re.IGNORECASE)


def store_userinfo(store: str) -> tuple[int, int] | None:
    """`_slashed_userinfo` for a PostgreSQL URL, as libpq reads it: a userinfo up to an `@` before its first `/` alone,
    and after that `/` a database's name, then a query of `key=value` pairs. So an `@` there is taken for a userinfo's
    end, whatever follows it (no database's name is a version, `ops:12/34@20240620` is host `ops` and port 12 to libpq;
    `ops:pa/ss@db!x`: until 2026-12-05 refused in libpq's words, which quoted the password, `port 'pa'`), but for one in
    a query (`_query_at`: `postgresql://db:5432/lineage?user=admin@server`, Azure's single server's user: until
    2026-12-05 refused). And an `@` after a userinfo's, before the first `/`: no host holds one, so it is the user's
    or password's, unescaped (`ops:p@ss@db`, host `ss@db` to libpq: until the review of 2026-12-05 it loaded; `ops@:pw@db`,
    port `pw@db`, was refused in words quoting it), or after its first `/` when no host[:port] is before it, nor a
    list of them (`ops@db1,db2/lineage?x=a@b/c` has one: until 2026-12-05 refused) (`ops@:pa/ss@db`: a password
    holding a `/` too, in libpq's words until the review). Where it begins and where its `@` is; None when the URL has none such."""
    start = store.find("://") + 3 if "://" in store else 0
    slash = store.find("/", start)
    end = slash if slash >= 0 else len(store)
    first = store.find("@", start, end)
    if first >= 0:  # (the second `@` of a user:password libpq reads to its first)
        last = store.rfind("@", first + 1, end)
        if last < 0 and not _HOST_LIST.fullmatch(store, first + 1, end):  # (`ops@:pa/ss@db`: no host, a password)
            last = store.rfind("@", end)
        if last < 0:
            return None
        query = store.find("?", first, store.find("@", first + 1))
    elif slash < 0:
        return None
    else:
        last = store.rfind("@")
        if last < slash:
            return None
        query = store.find("?", slash, store.find("@", slash))
    if query >= 0 and _query_at(store, first + 1 if first >= 0 else start, query, last):
        return None
    return start, last


def _conninfo_pairs(store: str) -> bool:
    """Whether a `lineage.store` is libpq's connection string of key=value pairs (`host=db dbname=lineage`), which
    the store does not take (a PostgreSQL one is a URL), yet which would load as a SQLite file's name, a file by that
    name made in the working directory: until 2026-12-06 it loaded so. Pairs libpq reads, and pairs it refuses that
    begin with a key, one of them (at the start or after white space) libpq's own in any case: a key mistyped beside
    them, `sslmod=require`, a quote left open, `HOST=db`, a SQLite file's name too, the password in it. Not a file's
    name holding a `=`, `runs=3/lineage.db`, `data/host=a/lineage.db`, nor a path, `./my port=5.db`."""
    if "=" not in store or store.startswith(("postgresql://", "postgres://")):
        return False
    try:
        from psycopg import conninfo, pq

        conninfo.conninfo_to_dict(store)
    except ImportError:  # (no psycopg: no store of PostgreSQL's either)
        return False
    except Exception:  # (pairs libpq refuses, or no pairs)
        keys = {option.keyword.decode() for option in pq.Conninfo.get_defaults()}
        begun = _CONNINFO_KEY.match(store.lstrip()) is not None
        return begun and any(key.lower() in keys for key in _CONNINFO_KEY.findall(store))
    return True


class SqliteNameError(ValueError):
    """A SQLite store's `file:` URI that names no file alone (`sqlite_file`); the message says why, for the user."""


def _quoted(text: str) -> str:
    """`text` as `repr` quotes it in single quotes, a byte that is not UTF-8 (a command line's, Python's lone surrogate
    '\\udcff') as `\\xff`, as the readers show such a byte in a path (`shown_path`): `repr` said `\\udcff`, a
    character no name holds."""
    shown = "".join(_shown_char(char) for char in text)
    return f"'{shown}'"


def _shown_char(char: str) -> str:
    """One character of `_quoted`."""
    if "\udc80" <= char <= "\udcff":
        return f"\\x{ord(char) - 0xDC00:02x}"
    return "\\'" if char == "'" else repr(char)[1:-1]


def sqlite_file(store: str) -> str:
    """The file a SQLite store's value names (`lineage.store`, `lineage.journal`, a reader's `--store`), as the writer
    opens it and every reader reads it: the path of a `file:` URI, read as SQLite reads one (`file:lineage.db`,
    `file:/var/lib/lineage.db`, `file:///var/lib/lineage.db`, `file://localhost/...`; each `%XX` a byte, a `#` ending
    it), any other value as written: `./file:x` names a file so named, and so does `FILE:x` (SQLite reads a URI by a
    `file:` so written alone, and opens `FILE:x` as a file's name). SqliteNameError for a URI with
    parameters (`?mode=ro`: the proxy opens its store read-write and the readers read-only, as each must), a host, no
    path, or a `%00`. Until 2026-12-07 the writer's SQLite (built with URIs on, as Debian's is) opened a `file:` value
    as a URI while the readers looked for a file named `file:lineage.db`, and said there was no store there."""
    if not store.startswith("file:"):  # (as SQLite, in that case alone: `FILE:x` is a file's name to it)
        return store
    rest = store[5:]
    if rest.startswith("//"):
        host, slash, path = rest[2:].partition("/")
        if host not in ("", "localhost"):
            raise SqliteNameError(f"{_quoted(store)}: a file: URI names no host but localhost ({_quoted(host)}): name the file, "
                                  "file:/var/lib/lineage.db or /var/lib/lineage.db")  # fmt: skip
        rest = slash + path
    rest = rest.partition("#")[0]
    rest, _, query = rest.partition("?")
    if query:
        raise SqliteNameError(f"{_quoted(store)}: a file: URI's parameters ({_quoted(query)}) are not taken: the proxy opens its "
                              "store read-write and the readers read-only, as each must; name the file alone, "
                              f"{_quoted(store.partition('?')[0])}")  # fmt: skip
    raw = unquote_to_bytes(os.fsencode(rest))  # (a command line's bytes that are not UTF-8 are these bytes)
    if not raw or b"\0" in raw:
        raise SqliteNameError(f"{_quoted(store)}: the file: URI names no file (SQLite would open a temporary database, or a "
                              "name cut at its %00): name the file, file:lineage.db or lineage.db")  # fmt: skip
    return os.fsdecode(raw)


def store_pairs_problem(store: str) -> str | None:
    """What is wrong with a store written as libpq's key=value pairs (`_conninfo_pairs`), else None: said of the
    config's `lineage.store` and of each command-line flag that takes a store (`edges --store`, `--copy-to`, `verify`'s,
    `report`'s, `demo`'s), in the same words, none of the store's (its password). Until 2026-12-06 the flags took one
    as a SQLite file's name and quoted it whole, password and all (`no lineage store there`)."""
    if not _conninfo_pairs(store):
        return None
    return ("a PostgreSQL store is a postgresql:// URL, postgresql://user@host:5432/DB, not libpq's key=value pairs, "
            "which would be a SQLite file's name (write ./ before one so named)")  # fmt: skip


def _query_at(store: str, host: int, query: int, at: int) -> bool:
    """Whether the `@` at `at`, after a `?` at `query` (libpq's query: `key=value` pairs), is a parameter's value's,
    as libpq reads it, rather than a userinfo's end: one in a query libpq reads (`?user=admin@server`) is, unless a
    host and a database follow it as they follow a userinfo (`ops:12/34?user=a@db:5432/lineage`: host `ops` to libpq;
    until the review of 2026-12-05 it loaded; a list of hosts, `@db1,db2/lineage`, libpq's multi-host URL, until
    2026-12-05 too, and a socket's directory, `@%2Ftmp/lineage`, or none, `@/lineage`, until its review); one in a
    query libpq refuses (`ops:1/2?3=4@h`) is a userinfo's unless
    no host follows it (`password=s3cr@t&bogus=1`), a `password=` is before it, or it follows `key=value` pairs, with
    no `:` from the host written at `host` on (`db/lineage?password=pw&x=a@b`; `ops/:?=pw@h` is a user and a password),
    as `_slashed_userinfo` reads them: until the review those were said as a password holding a `/`, quoting a piece of
    one, where libpq's words (a parameter it does not know) are right, and `redact`, `scrub` hide its passwords."""
    name = _LIBPQ_HOSTS.match(store, at + 1)  # (an empty one too: libpq's default host)
    after = store[name.end() : name.end() + 1] if name is not None else "!"
    try:
        from psycopg import conninfo

        conninfo.conninfo_to_dict(store)
    except Exception:  # (no psycopg: said by the store's check; a query libpq refuses)
        pass
    else:
        return after != "/"
    if after not in ("", "/", "?") or re.search(r"[?&](?:ssl)?password=", store[query:at], re.IGNORECASE):
        return True
    pair = min((end for end in (store.find("=", query, at), store.find("&", query, at)) if end >= 0), default=-1)
    return query + 1 < pair and ":" not in store[host:at]


def _split(url: str) -> SplitResult | None:
    """`url`'s parts, or None if it is no URL the proxy can connect to: `http://[::1` (an unclosed IPv6 address) or
    a port that is not one (`:99999`, `:abc`), which `urlsplit` or the connection's `.port` raise on, or 0, or one whose
    user or password holds a `/`, `?` or `#` written unescaped (`_slashed_userinfo`: `urlsplit` reads another host),
    or whose host:port holds white space (`_spaced`: `http://triton :8001`, host `triton ` to every reader, which no
    resolver finds: loaded, it would fail at each connect) or a `\\` (`_backslash_at`: `http://collector\\v1`, a path
    typed with one, host `collector\\v1` to urllib, which yarl refuses: loaded, the path quoted as the host), or whose
    host is none an address's is (`_url_host_problem`: `http://c,d:4317`)."""
    if _slashed_userinfo(url) is not None:
        return None
    try:
        parts = urlsplit(url)
        if parts.port == 0:  # (what `_url_said` says: the range; no reader connects to port 0)
            return None
    except ValueError:
        return None
    if _spaced(parts.netloc) or _backslash_at(url) >= 0 or _url_host_problem(parts.netloc) is not None:
        return None
    return parts


def _url_host_problem(netloc: str) -> str | None:
    """What `_host_problem` says of a URL's host as of an address's, else None: one no resolver finds, a list
    (`http://c,d:4317`) or a name holding what no name does (`http://tri*ton:4317`), which urllib, yarl and grpc take
    whole. Until 2026-12-06 each loaded at an upstream's url, an OTLP endpoint and OpenLineage's, and failed at each
    connect. One holding brackets `urlsplit` has read as the IP address in them (`http://ipv6:[::1]:8001` reaches
    `::1`, as on main)."""
    host, port = _url_host_port(netloc)
    if not host or "[" in host:
        return None
    return _host_problem(host, port, False, zero_ok=False)


def _url_host_port(netloc: str) -> tuple[str, str]:
    """A URL's host and port as an address's are read (`parse_address`): after its userinfo's `@`, split at the last
    `:`, the port '' when none is written. Split at the first, `http://tok+en:s3cret:4317` was said with the port
    `s3cret:4317`, shown, and `http://admin:s3cret:4317` as no URL, its password shown."""
    host, colon, port = netloc.rpartition("@")[2].rpartition(":")
    return (host, port) if colon else (port, "")


def _spaced(netloc: str) -> bool:
    """Whether a URL's host:port (its authority less any userinfo) holds white space, which no host nor port does:
    after an IPv6 address's `]` too (`http://[::1] :8000`, where urllib's `hostname` is `::1`, yarl raises and urllib3
    refuses)."""
    return _SPACED.search(netloc.rpartition("@")[2]) is not None


def _http_url(url: str) -> SplitResult | None:
    """`url`'s parts when it is an http(s) URL with a host the proxy can connect to (`_split`), else None."""
    parts = _split(url)
    return parts if parts is not None and parts.scheme in ("http", "https") and parts.hostname else None


def _got(value: Any) -> str:
    """What a value of the wrong kind is, for its problem (`region: [eu]`: `, got a list`): its kind, never its
    text (a URL with a password, a key written where a mapping goes: the problem is logged at a reload)."""
    if isinstance(value, dict):
        return ", got a mapping"
    if isinstance(value, list):
        return ", got a list"
    if value is None or isinstance(value, bool):
        return f", got {str(value).lower() if value is not None else 'null'}"
    if isinstance(value, str):
        return ", got ''" if value == "" else ", got a string"
    return ", got a number" if isinstance(value, int | float) else ""


def _shown(raw: Any, value: Any) -> str:
    """A value quoted in its problem: as written, when a ${VAR} made it (`'${KEY}' as expanded`: the variable's
    value may be a secret set in the wrong key, and the problem is logged at a reload), else as it is."""
    if isinstance(raw, str) and raw != value and "${" in raw:
        return f"{raw!r} as expanded"
    return repr(value)


def _verbatim(value: Any) -> Any:
    if isinstance(value, str):
        return Verbatim(value)
    if isinstance(value, dict):
        return {key: _verbatim(item) for key, item in value.items()}
    return value


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# a number key's value given as text (quoted, `"0.5"`, or a ${VAR}'s): a decimal number as YAML and JSON write one, ASCII
# digits, no white space or `_` (Python's float() takes `" 0.5 "`, `"1_000"`, `"١٢"`, which no YAML number is)
_DECIMAL = DECIMAL
# what a shell's variable or YAML 1.1 writes for a boolean (`headers_to_model: ${HANDED}`, HANDED=1), not taken for a
# forward pattern naming the fields whose name holds it: an MLServer's fields would go to its model unread
# a plain number YAML 1.1 and 1.2 both read as hexadecimal (`max_connections: 0x40`, 64); its other forms, `0755`
# (octal 493, 755 to YAML 1.2), `0b101`, `1_000`, `1:30` (sexagesimal 90), are said, as such text quoted is
_HEX = re.compile(r"0x[0-9a-fA-F]+")
_BOOLEAN_WORDS: Final = frozenset({"1", "0", "yes", "no", "on", "off", "y", "n"})
# a flag group in a forward pattern that turns case-insensitive matching off within it (`(?-i:X-Note)`, `(?s-i)`)
_CASE_OFF = re.compile(r"\(\?[a-zA-Z]*-[a-zA-Z]*i")
# a label, or a shell-style pattern of labels (`policy.known_labels`; of purposes, `policy.known_purposes`): lower case, with * ? [...]
_LABEL_PATTERN = re.compile(r"[a-z0-9*?\[][a-z0-9._:/*?\[\]!-]{0,127}")
_BLOCK = "block"  # a zone's on_deny when the file names none: Zone.reroute_to None
_TOP_LEVEL = "(top level)"  # where a problem with the whole file is reported
_ANONYMOUS = "anonymous"  # the caller the record, the logs and the baseline name an unauthenticated call


# what a shell or Compose reads as a variable and this config does not: ${NAME-x}, ${NAME:?x}, ${NAME=x}, ${NAME:+x}, ...
_SHELL_FORM = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::[?=+]|[-?=+])")


def _stray_reference(text: str) -> str | None:
    """The first variable in `text` written in a form a shell or Compose expands and this config does not
    (`${NAME-default}`, `${NAME:?message}`), as written up to its `}`; None when there is none. Other text holding `${`
    (a detector's pattern `\\${[a-z]+}`) is text, and a `${` inside a `${NAME:-default}` is said of that default."""
    spans = [match.span() for match in _VAR.finditer(text)]
    for match in _SHELL_FORM.finditer(text):
        start = match.start()
        if not any(begin <= start < end for begin, end in spans):
            end = text.find("}", start)
            return text[start : end + 1] if end != -1 else text[start:]
    return None


def load(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file; raise ConfigError listing every problem."""
    if not os.fspath(path):  # `--config "$CONFIG"`, CONFIG not set: Path('') is the working directory
        raise ConfigError([f"{path}: cannot read: {EMPTY_PATH}"])
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError([_unreadable(path, exc)]) from exc
    return load_bytes(data, path, env)


def _unreadable(path: str | os.PathLike[str], exc: OSError) -> str:
    """Why the config file cannot be read; a relative path that names no file also says where it was looked for: the
    working directory's (`serve --config proxy.yaml` started elsewhere, a service's or a container's directory)."""
    return f"{path}: cannot read: {exc.strerror or exc}{_looked_for(path, exc)}"


EMPTY_PATH: Final = "the path is empty (give the config file's path: a variable in it that is not set?)"


def _looked_for(path: str | os.PathLike[str], exc: OSError) -> str:
    """The file a path naming none was looked for as: the working directory's for a relative path, a link's target
    for a link to no file (the link itself is there for `ls` to show); '' for another error."""
    if exc.errno != errno.ENOENT:
        return ""
    if os.path.islink(path):
        return f" (a link to {os.path.realpath(path)}, no file: correct the link or the path)"
    return f" (no file {os.path.abspath(path)}: correct the path)"


# what a hand-over's config bytes begin with: the config's bytes follow, or why the file could not be read
HANDED: Final = b"="
UNREAD: Final = b"!"


def hand_over(path: str) -> bytes:
    """A `--workers` supervisor's read of the config at `path` for a reload (SIGHUP), once for every process: its bytes,
    or why it could not be read, as `Handover.put` hands them to every worker (`load_handed` loads them). Each worker
    read the file itself before: one written in place meanwhile (an editor, config management) or changed between
    their reads left them on different configs until the next SIGHUP, the same call decided differently by the worker
    the kernel gave its connection to. A FIFO is read as `read_bytes` reads it."""
    try:
        return HANDED + read_bytes(path)
    except OSError as exc:
        return UNREAD + _unreadable(path, exc).encode("utf-8", "surrogateescape")


def load_handed(data: bytes, path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """The config `hand_over` read from `path`, validated as `load` validates the file, its problems said of `path`."""
    if data.startswith(UNREAD):
        raise ConfigError([data[1:].decode("utf-8", "surrogateescape")])
    return load_bytes(data[1:], path, env)


class Handed:
    """One hand-over (`Handover.take`): the newest config the supervisor read (`hand_over`'s bytes) and the last one it
    accepted (None: none since the proxy started), which a worker that refuses the newest runs instead; `number`, its
    place among the hand-overs (1 the first)."""

    __slots__ = ("accepted", "newest", "number")

    def __init__(self, newest: bytes, accepted: bytes | None, number: int = 0) -> None:
        self.newest = newest
        self.accepted = accepted
        self.number = number


# a hand-over's layout: a header at 0 (the hand-over's number, where its record is), then records, each its number,
# the lengths of its two configs (NONE: no config accepted yet), a CRC-32 of them, then the configs' bytes
_HEADER: Final = struct.Struct("<QQ")
_RECORD: Final = struct.Struct("<QIII")
_NONE: Final = 0xFFFFFFFF
# records are written one after the other, from just past the header again once they would reach beyond this (or
# twice the record): a reader whose record was overwritten meanwhile sees it by its number or CRC and reads again
_SPAN: Final = 1 << 20
_TRIES: Final = 2000  # a read that keeps meeting a hand-over being written: 2000 tries of 1 ms at most, then refused


class Handover:
    """Where a `--workers` supervisor hands the config it read for a reload to its workers: an anonymous memory file
    (`memfd_create`; elsewhere a temporary file unlinked at once) made before any worker is forked, which each worker,
    a restarted one too, inherits open. Nothing of it is on a file system: the config's bytes never rest on disk, and
    nothing is left when the supervisor is killed (`kill -9`). Before 2026-12-05 it was a file `reload-config` in the
    metrics' temporary directory, which stayed, the whole config in it, after a `kill -9` (a config given through a
    FIFO to keep its secrets off disk among them).

    Each hand-over carries the newest config read and the last one the supervisor accepted (`put`), written by the
    supervisor alone (one at a time), read by the workers at any time with `os.pread` (`take`)."""

    def __init__(self) -> None:
        try:
            self.fd = os.memfd_create(
                "lineage-proxy-reload", os.MFD_CLOEXEC
            )  # (a forked worker inherits it all the same)
        except (AttributeError, OSError):
            with tempfile.TemporaryFile() as file:  # (unlinked: O_TMPFILE, or at once)
                self.fd = os.dup(file.fileno())
        self.number = 0
        # the last config the supervisor accepted, as `hand_over` read it (kept by the supervisor: a worker forked
        # runs it); None: none since the proxy started
        self.accepted: bytes | None = None
        # the number of the last hand-over whose load the supervisor has ended (`accepted` is its outcome): a worker
        # forked now runs what it made of every hand-over up to it, and acts only on those after it (`latest`)
        self.settled = 0
        self._end = _HEADER.size

    def put(self, newest: bytes, accepted: bytes | None) -> None:
        """Hand over `newest` (`hand_over`'s bytes), with `accepted`, the last config the supervisor accepted. Raises
        OSError when it cannot be written (memory short)."""
        rest = newest + (accepted or b"")
        length = _NONE if accepted is None else len(accepted)
        number = self.number + 1
        record = _RECORD.pack(number, len(newest), length, zlib.crc32(rest)) + rest
        offset = self._end if self._end + len(record) <= max(_SPAN, 2 * len(record) + _HEADER.size) else _HEADER.size
        _write(self.fd, record, offset)
        _write(self.fd, _HEADER.pack(number, offset), 0)
        self.number, self._end = number, offset + len(record)

    def take(self) -> Handed | None:
        """The latest hand-over (None: none yet); raises ConfigError when it cannot be read whole."""
        for _ in range(_TRIES):
            head = os.pread(self.fd, _HEADER.size, 0)
            if len(head) < _HEADER.size:
                return None  # nothing handed over yet
            number, offset = _HEADER.unpack(head)
            if number == 0:
                return None
            found = os.pread(self.fd, _RECORD.size, offset)
            if len(found) == _RECORD.size:
                seen, newest, accepted, crc = _RECORD.unpack(found)
                size = newest + (0 if accepted == _NONE else accepted)
                rest = os.pread(self.fd, size, offset + _RECORD.size) if seen == number else b""
                if seen == number and len(rest) == size and zlib.crc32(rest) == crc:
                    return Handed(rest[:newest], None if accepted == _NONE else rest[newest:], number)
            time.sleep(0.001)  # being written: the supervisor writes a record in microseconds
        raise ConfigError(["the config the supervisor handed over could not be read whole (it kept being written)"])

    def latest(self) -> int:
        """The number of the latest hand-over (0: none yet), read without its config: one pread of the header, on a
        worker's loop as a SIGHUP comes. A SIGHUP sent to the whole process group reaches a worker before the
        supervisor's hand-over: one that finds no hand-over newer than the last it acted on does nothing (the
        supervisor's own SIGHUP, sent once its hand-over is written whole, has it read the header again)."""
        head = os.pread(self.fd, _HEADER.size, 0)
        return _HEADER.unpack(head)[0] if len(head) == _HEADER.size else 0

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


def _write(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def load_bytes(data: bytes, path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Validate the bytes of the config file at `path` (`load`)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([not_utf8(str(path), data, exc)]) from exc
    return parse(text, source=str(path), env=os.environ if env is None else env)


# YAML reads the `{` of an unquoted `${VAR}` in a flow mapping or list (`{url: ${UPSTREAM}}`) as a nested mapping's
# start, before any variable is expanded: its error ("expected ',' or '}', but got '{'") says nothing of the cure.
UNQUOTED_VARIABLE: Final = ' (a ${VAR} inside {...} or [...] is read by YAML before it is expanded: quote it, "${VAR}")'


# how many hex digits of a config's sha256 name it (`config_digest`): as `sha256sum FILE | cut -c1-12` prints them
CONFIG_DIGEST_CHARS: Final = 12


def _meant(key: str, known: Sequence[str]) -> str:
    """`did you mean 'upstream'? ` for a key a typo from a known one (`upstrem`, `allowed_purposes`, `Mode`), else ''.
    `key` is as a problem shows it: one hidden as a secret's shape (`<key 3: 40 characters>`) is near none."""
    near = difflib.get_close_matches(key.lower(), known, n=1, cutoff=0.8)  # `Mode`: keys are lower case
    return f"did you mean {near[0]!r}? " if near else ""


def config_digest(data: bytes) -> str:
    """The name a config's bytes go by in the proxy's lines and metrics (`Config.digest`): the start of their sha256."""
    return hashlib.sha256(data).hexdigest()[:CONFIG_DIGEST_CHARS]


def parse(text: str, *, source: str = "<memory>", env: Mapping[str, str] | None = None) -> Config:
    try:
        raw = yaml.load(text, Loader=StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        hint = UNQUOTED_VARIABLE if mark and text[mark.index - 1 : mark.index + 1] == "${" else ""
        problem = str(getattr(exc, "problem", exc))
        raise ConfigError([f"{where}: not valid YAML: {problem}{hint or yaml_hint(text, mark, problem)}"]) from exc
    unwritable: list[str] = []
    surrogates(raw, "", unwritable)
    if unwritable:  # before any check reads them: no later one, nor a printer, meets such a string
        raise ConfigError(unwritable)
    reader = _Reader(env if env is not None else {})
    config = reader.config(raw, source, config_digest(text.encode("utf-8", "surrogatepass")))
    if reader.problems or config is None:
        raise ConfigError(reader.problems or ["the configuration is empty"])
    return config


# the retry settings of an OpenLineage http transport the proxy builds, or whose config says none (`openlineage`):
# one try per event, the proxy's own resend the only retry
_ONE_TRY: Final = {"total": 0, "status_forcelist": []}

MARQUEZ_ENDPOINT = "api/v1/lineage"  # where Marquez takes events, under its base URL


def _marquez_endpoint(url: str) -> dict[str, str]:
    """`lineage.openlineage.url` as openlineage-python's http transport takes it: a base URL and the endpoint, which it
    joins as `urljoin` does, so a base with a path must end in '/' to keep it (`http://gw/marquez` posted to
    `/api/v1/lineage`, the path dropped), and a url naming the endpoint already (`http://marquez:5000/api/v1/lineage`)
    is used as it is (it posted to `/api/v1/api/v1/lineage`)."""
    parts = urlsplit(url)
    if parts.path.rstrip("/").endswith("/" + MARQUEZ_ENDPOINT):
        return {"url": url, "endpoint": ""}
    base = url if parts.path.endswith("/") else parts._replace(path=parts.path + "/").geturl()
    return {"url": base, "endpoint": MARQUEZ_ENDPOINT}


def _kserve_openai_warning(path: str, url: str | None) -> str:
    """What `check` and `serve` say of an `openai` upstream whose url is KServe's OpenAI prefix (`kserve_openai_url`):
    read as KServe is, and how to say it plainly, or that the server is not KServe's."""
    shown = shown_url(url) if url is not None else None  # (what may be a token before a path's `@` hidden)
    root = (shown or "").rstrip("/").removesuffix("/openai")
    return (
        f"{path}.url: {shown!r} ends in /openai, KServe's OpenAI data plane, which hands its model every header "
        "field of a call: they are read as the call's data, and no X-Forwarded-For is sent; write protocol: kserve "
        f"with url {root!r} (its V1 models too), or headers_to_model: false if this server is not KServe's"
    )


def _v1_base_warning(path: str, url: str) -> str | None:
    """What `check` and `serve` say of an `openai` upstream whose url's path ends in `/v1`, the openai SDK's base URL
    (`http://kserve-host:8080/openai/v1`, `https://api.groq.com/openai/v1`): a call's path is put after the url's,
    and every OpenAI call's begins `/v1`, so each would go to `.../v1/v1/...` (a 404). A warning, not a problem: a
    gateway that strips its route's prefix (`http://gw/v1` in front of a server's root) serves it rightly. The url
    as the config's words show it (`shown_url`: what may be a token before a path's `@` hidden, `_token_at`)."""
    if not urlsplit(url).path.rstrip("/").endswith("/v1"):
        return None
    shown = shown_url(url)
    parts = urlsplit(shown)
    base = parts._replace(path=parts.path.rstrip("/").removesuffix("/v1")).geturl()
    hidden = "…" if _token_at(url) is not None else ""  # (the path's start, hidden with the authority)
    return (
        f"{path}.url: {shown!r} ends in /v1, as the openai SDK's base URL does, but the proxy puts a call's own path "
        f"after the url: /v1/chat/completions would go to {hidden}{parts.path.rstrip('/')}/v1/chat/completions; "
        f"write {base!r}, unless a gateway there strips the /v1 it is given"
    )


def _not_ascii(port: str) -> str | None:
    """What a port of digits `int` reads that are not ASCII's must be (`８００１`, fullwidth): grpc's resolver, libpq and
    URL readers refuse them, so a gRPC upstream or a store so written would never connect, and a listener so written
    would listen on the port `int` reads (8001). None for any other port."""
    return (
        f"the port must be written in ASCII digits (0-9), got {port}"
        if port.isdecimal() and not port.isascii()
        else None
    )


def _port_range(port: str, zero_ok: bool) -> str:
    """What a port must be, said when a `host:port` or a URL's port is a number out of range (`:99999`)."""
    return f"the port must be 1-65535{' (or 0: any free port)' if zero_ok else ''}, got {port}"


def userinfo_hint(url: str, start: int, at: int) -> str:
    """How to write the URL `_slashed_userinfo` found a userinfo in (from `start`, its `@` at `at`): each of `/?#` it
    holds percent-encoded, the first (which ends the reader's authority) first, or the `@` (in a path, a query or a
    fragment, as it is) as %40, and an `@` in the user or password before them (`store_userinfo`: `ops:p@ss@db`) as
    %40. Quotes nothing of the URL (its password)."""
    marks = dict.fromkeys(url[index] for index in range(start, at) if url[index] in "/?#")
    end = min((url.find(mark, start, at) for mark in marks), default=at)
    said = ["a user or password holding '@' must be percent-encoded as %40 (no host holds one: it ends a userinfo)"]
    said = said if "@" in url[start:end] else []
    if said and not marks:
        return f"{said[0]}: write postgresql://user:pa%40ss@host/database"
    said += [
        f"a password holding '{mark}' must be percent-encoded as {_MARKS[mark][0]} (a user's too), and an '@' in a"
        f" {_MARKS[mark][1]} as %40"
        for mark in marks
    ]
    place = "fragment" if "#" in marks else "query" if "?" in marks else "path"
    code = _MARKS[next(iter(marks), "/")][0]
    return (f"{'; '.join(said)} (an '@' before a host[:port] ends a user:password as much as a {place}'s: write "
            f"scheme://user:pa{code}ss@host for credentials, {_AT_FORMS[place]} for a {place})")  # fmt: skip


def _url_problem(url: str, shown: str) -> str | None:
    """For a URL `_split` refuses, as its key says it (`shown`, quoted after ` in `): how to write a password holding a
    `/`, `?` or `#` (`_slashed_userinfo`), the port range when its port is digits out of range, what is wrong with its
    host (`_url_host_problem`; the host hidden in `shown` too where the problem hides it, `***` for what may be a
    token), else None."""
    said = _url_said(url)
    if said is not None:
        return f"{said} in {shown!r}"
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return None
    if (said := _url_host_problem(netloc)) is None:
        return None
    host, port = _url_host_port(netloc)
    # (what the problem hides of it, `***` or `admin:***`, hidden whole; after the userinfo's `@`: not a user so named)
    if f"got {f'{host}:{port}' if port else host!r}" not in said:
        start = shown.find("//") + 2 if "//" in shown else 0
        end = min((index for index in map(shown.find, "/?#", (start,) * 3) if index >= 0), default=len(shown))
        start = max(start, shown.rfind("@", start, end) + 1)
        shown = shown[:start] + shown[start:].replace(host, "***", 1)
    return f"{said} in {shown!r}"


def _url_said(url: str) -> str | None:
    """What `_url_problem` says of a URL but for its host, without where."""
    slashed = _slashed_userinfo(url)
    if slashed is not None:  # said for each of `/?#` it holds, the first (which ends `urlsplit`'s authority) first
        return userinfo_hint(url, *slashed)
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return None
    if _spaced(netloc):
        return "a host:port holds no white space"
    if _backslash_at(url) >= 0:
        return "a path begins with '/', not '\\' (no host:port holds a '\\')"
    after_host = netloc.rpartition("@")[2].rpartition("]")[2]  # `[v6]:port`: what follows the address
    sep, port = after_host.rpartition(":")[1:]
    if sep and (said := _not_ascii(port)) is not None:
        return said
    # (`isdecimal`: the digits `int` reads; `isdigit` is true of `²` too, which `int` refuses). Port 0 too, which no
    # reader connects to (`http://collector:0`: until 2026-12-07 it loaded at every URL key, and the gRPC span exporter,
    # reading the 0 as no port, sent to 4317, where OpenTelemetry's gives grpc `collector:0`)
    return _port_range(port, zero_ok=False) if sep and port.isdecimal() and not 1 <= int(port) <= 65535 else None


def parse_address(text: str, zero_ok: bool = True) -> Address:
    """`host:port` or `[v6]:port` into an Address; ValueError when malformed. Port 0 (any free port) only where
    `zero_ok` (a listener), not for an address to connect to."""
    scheme = _SCHEME.match(text)
    rest = text[scheme.end() :] if scheme else ""
    if (
        scheme
    ):  # `http://host:port`: a listener would fail to start, a grpc upstream never resolve, after `check` said ok
        # the address after a userinfo holding a `/` or what may be a token (`http://gw/xyz/q9s3cr@gateway:8001`), not
        # the text before its first `/`, a piece of it (`write 'gw'`). With no host[:port] after its `@`
        # (`@gateway:80x`, `@`), all before the last `@`, as below, hidden as a userinfo
        userinfo = _slashed_userinfo(text) or _token_at(text)
        if userinfo is None and "@" in rest:
            userinfo = (len(text) - len(rest), text.rfind("@"))
        after = rest if userinfo is None else text[userinfo[1] + 1 :]
        # (to its path, query or fragment, which may hold a key: not `write 'h:1?key=...'`)
        address = _suggested(re.split(r"[/?#]", after, maxsplit=1)[0].rpartition("@")[2].strip(), zero_ok)
        # (its path hidden too: `http://triton:8001/aB3/x+Yz/Q9`, which may be a token of base64)
        shown = _address_shown(text, userinfo)
        raise ValueError(f"expected host:port without a scheme, got {shown!r} (write {address!r})")
    if "@" in text:  # `user:password@host:port`: no host holds an `@`, and grpc would take it all as the host's name
        # (white space around it dropped: not `write 'gateway:8001 '`)
        address = _suggested(re.split(r"[/?#]", text.rpartition("@")[2], maxsplit=1)[0].strip(), zero_ok)
        # all before the last `@` its user and password, one holding a `/` too (`gw/xyz/q9s3cr@gateway:8001`, where
        # `redact_userinfo` reads a userinfo to a `/` and would quote it whole)
        shown = _address_shown(text, (0, text.rfind("@")))  # (and its path: `u:***@triton:8001/***`)
        raise ValueError(f"a host:port holds no user or password, got {shown!r} (write {address!r})")
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    name = host if sep else text
    if _NO_HOSTS.search(name):  # (`gw/xyz/q9s3cr:8001`: grpc would take `gw/xyz/q9s3cr` for the host's name)
        # one holding a `/` may be a token of base64 (`aB3/x+Yz/Q9:8001`): hidden whole, its port shown, one refused
        # for its port too (`gw/xyz/q9s3cr:80x`); but for what follows a `:` in a path, no port
        # (`triton:8001/user:s3cret`, which would show as the port, `***:s3cret`)
        bracketed = text.startswith("[")
        port_shown = sep and (bracketed or ":" not in name)
        shown = ("[***]:" if bracketed else "***:") + port if port_shown else "***"
        shown = _address_shown(shown if "/" in name else text)  # (its path, query and fragment hidden too)
        raise ValueError(f"a host holds no '/', '?', '#' or white space, got {shown!r} (write host:port, the server's "
                         "name or address and its port alone: an address holds no path, query or key)")  # fmt: skip
    if sep and host and (said := _not_ascii(port)) is not None:
        raise ValueError(f"{said} in {_address_shown(text)!r}")
    if sep and host and port.isdecimal() and not (0 if zero_ok else 1) <= int(port) <= 65535:
        raise ValueError(f"{_port_range(port, zero_ok)} in {shown_url(text)!r}")
    if not sep or not host or not port.isdecimal():  # (the digits `int` reads: not `²`)
        # its query and fragment hidden (`h:1?key=...`, which may hold a key), and its path
        raise ValueError(f"expected host:port, got {_address_shown(text)!r}")
    if (said := _host_problem(host, port, text.startswith("["), zero_ok)) is not None:
        raise ValueError(said)
    return Address(host, int(port))


def _host_problem(host: str, port: str, bracketed: bool, zero_ok: bool) -> str | None:
    """What is wrong with an address's host that no resolver finds, else None: one in brackets that is no IPv6
    address (`[c,d]:4317`), one holding a `:` that is none (`c:4317:4317`, a port written twice; `admin:s3cret:8001`),
    a list of hosts (`c,d:4317`, which grpc's DNS resolver and a listener take for one name), or a name holding what
    no name does (`tri*ton:8001`) or an empty label (`tri..ton:8001`, `_HOST_NAME`), a percent-escape (`tri%74on:8001`,
    `_escaped_problem`), or one no IDNA writes (`aא.example:8001`, `_idna_problem`); a URL's host too, where `port`
    may be '' (`_url_host_problem`). Until 2026-12-06 each loaded, a listener failing at its start and a gRPC upstream or
    an OTLP `dns:` target at each connect. Said with the address to write when one is plain (`c:4317`), what may be a
    password in it hidden (`_HOST_SHOWN`, `_HEX_PIECES`)."""
    if bracketed or ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            pass
        else:
            return None  # (`::1:4317` too: the address `::1`, port 4317, written `[::1]:4317` to grpc)
    elif _named(host):
        return _idna_problem(host, port, sockets=False)
    first, colon, rest = host.partition(":")
    if bracketed:  # (a list's `,` shown as an IPv6 address's `:`, `[c,d]`; not `[s3cret,x]`)
        shown = host if _HEX_PIECES.fullmatch(host.replace(",", ":")) else "***"
        return f"brackets hold an IPv6 address, got {f'[{shown}]:{port}'!r} (write 'host:port')"
    if colon and grpc_target_scheme(host):  # (`dns:triton:8001`: main loaded it, grpc read it so)
        address = _suggested(f"{rest}:{port}", zero_ok)
        shown = f"{host}:{port}" if address != "host:port" else f"{first}:***:{port}"
        return f"an address is host:port, without a gRPC target's scheme ({first}:), got {shown!r} (write {address!r})"
    doubled = bool(colon) and _NAMED.fullmatch(first) is not None and set(rest.split(":")) == {port}
    pieces = doubled or (":" in rest and _HEX_PIECES.fullmatch(host) is not None)
    shown = host if _HOST_SHOWN.fullmatch(host) else "***"
    shown = shown if shown == "***" or not colon or pieces else f"{first}:***"
    if colon:
        address = _suggested(f"{first}:{port}", zero_ok) if doubled else "host:port"
        return (f"a host holds no ':' but an IPv6 address's, written in brackets, [2001:db8::1]:{port}, got "
                f"{f'{shown}:{port}'!r} (write {address!r})")  # fmt: skip
    at = f":{port}" if port else ""  # (a URL's host has none where its scheme's default is meant: `http://c,d/v1`)
    if "%" in host and shown != "***" and unquote(host) != host:  # (`tri%zzon`: a `%` no escape, in no name)
        return _escaped_problem(host, port, zero_ok)
    if "," in host:
        one = host.partition(",")[0]
        address = _suggested(f"{one}:{port}", zero_ok) if port else one if _named(one) else "host"
        return f"an address names one host, got {f'{shown}{at}'!r} (write {address!r})"
    return (f"a host's name is labels of letters, digits, '-' and '_' between single dots, "
            f"got {f'{shown}{at}'!r} (write {'host:port' if port else 'host'!r})")  # fmt: skip


def _escaped_problem(host: str, port: str, zero_ok: bool) -> str:
    """What is said of a name holding a percent-escape (`tri%74on`), which RFC 3986 allows a URL's name but the readers
    here read apart: grpc's resolvers and OpenLineage's requests decode it (`triton`), Python's sockets (an upstream's
    url, an OTLP/HTTP endpoint, a listener), httpx and yarl look up `tri%74on`, which no resolver finds. Said with the
    name decoded to write, when it is one that loads at every key, Python's sockets' too (`%61` and 63 `a`, a label of
    64, were said `aaa...a.example` to write, which the next check refused; one decoded to a `%` again, `%2541`, is
    not said, nor looked at again). Until 2026-12-06 it loaded; then it was said to hold what no name does."""
    decoded = unquote(host)
    plain = "%" not in decoded and _named(decoded) and _idna_problem(decoded, port, sockets=True) is None
    if not plain:
        address = "host:port" if port else "host"
    else:
        address = _suggested(f"{decoded}:{port}", zero_ok) if port else decoded
    shown = f"{host}:{port}" if port else host
    return (f"a host's name holds no percent-escape (grpc and requests decode one, Python's sockets and httpx do not: "
            f"each would reach another host), got {shown!r} (write {address!r})")  # fmt: skip


def _named(host: str) -> bool:
    """Whether a host is a name (`_HOST_NAME`), one not ASCII's read as the idna codec writes it, as Python's sockets
    do: `\\w` matches no combining mark, which an IDN's letters may hold (a Devanagari vowel sign, `नमस्ते.example`; a
    decomposed accent, `cafe\\u0301.example`), and such a name loads as every other IDN's does."""
    if _NAMED.fullmatch(host):
        return True
    if host.isascii():
        return False
    try:
        written = host.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    return _NAMED.fullmatch(written) is not None


# the listeners uvloop binds, their host resolved by Python's sockets (`_idna_problem`); listen.grpc is grpc's
_BOUND_BY_SOCKETS: Final = ("listen.http", "listen.admin")
# what Python's idna codec (IDNA 2003) says of a name it refuses, in a reader's words (`_idna_problem`)
_IDNA_REASONS: Final = {
    "BIDI": "right-to-left letters mixed with others, or a digit ending them",
    "ACE prefix": "a label beginning xn-- is written in ASCII alone",
}


def _idna_problem(host: str, port: str, *, sockets: bool) -> str | None:
    """What is said of a name Python's idna codec (IDNA 2003) cannot write, else None: a label over 63 characters (an
    IDN's in its xn-- form: DNS's limit), right-to-left letters mixed with others or ended by a digit (`aא.example`,
    `שלום1.example`), a non-ASCII label beginning `xn--`. Where Python's sockets read the host (`sockets`: an upstream's
    url, an OTLP/HTTP endpoint, listen.http, listen.admin: getaddrinfo, uvloop and http.client encode it so) each such
    name fails at each connect or at the start, said with its IDNA 2008 form where it has one; elsewhere a name not
    ASCII that IDNA 2008 cannot write either (OpenLineage's requests and httpx refuse it, grpc's resolver takes no name
    not ASCII). Until 2026-12-07 each loaded."""
    if not sockets and host.isascii():  # (`aaa...a.example`, a label of 64: grpc and httpx find one a hosts file lists)
        return None
    try:
        codecs.lookup("idna").encode(host)
    except UnicodeError as exc:
        reason = str(exc)
    else:
        return None
    try:
        form = idna.encode(host, uts46=True).decode("ascii")
    except UnicodeError:
        form = ""
    if form and not sockets:
        return None
    got = f"got {f'{host}:{port}' if port else host!r}"
    if form:  # (`שלום1.example`: IDNA 2008 takes a digit at a right-to-left label's end, and its DNS lists that form)
        write = f"its IDNA 2008 form, {f'{form}:{port}' if port else form!r}"
    else:
        write = repr("host:port" if port else "host")
    said = next((words for key, words in _IDNA_REASONS.items() if key in reason), reason)
    if "too long" in reason:
        what = "a host's name is labels of 63 characters at most, an IDN's in its xn-- form (DNS's limit)"
    elif form:
        what = f"Python's sockets write a name in IDNA 2003, which refuses this one ({said})"
    else:
        what = f"no IDNA writes this name ({said}), so no resolver finds it"
    return f"{what}, {got} (write {write})"


def _socket_host_problem(url: str) -> str | None:
    """What `_idna_problem` says of the host of a URL Python's sockets connect to (an upstream's, an OTLP/HTTP
    endpoint), with the URL quoted, else None."""
    host, port = _url_host_port(urlsplit(url).netloc)
    if not host or "[" in host:
        return None
    said = _idna_problem(host, port, sockets=True)
    return f"{said} in {shown_url(url)!r}" if said is not None else None


def _unmapped_host_problem(url: str, *, strict: bool) -> str | None:
    """What is said of the host of an OpenLineage transport's URL its client cannot write, else None: requests (an
    `http` transport's: urllib3's parse_url, `strict`, splitting a name at `.` alone) and httpx2 (`async_http`) write a
    name not ASCII with `idna.encode(name.lower())`, none of UTS 46's mapping `_idna_problem` allows (a full-width
    letter, `ｂücher.example`; `☃.example`, which IDNA 2003 alone writes; `bücher。example` to requests): each loaded
    until 2026-12-07 and raised InvalidURL at each send. Said with the ASCII form every reader sends as written."""
    host, port = _url_host_port(urlsplit(url).netloc)
    if not host or host.isascii() or "[" in host:
        return None
    try:
        idna.encode(host.lower(), strict=strict)
    except UnicodeError:
        pass
    else:
        return None
    try:
        form = idna.encode(host, uts46=True).decode("ascii")
    except UnicodeError:
        try:
            form = host.encode("idna").decode("ascii")
        except UnicodeError:  # (none comes here: `_host_problem` refused a name neither IDNA writes)
            form = "host"
    client = "requests (urllib3, splitting at '.' alone)" if strict else "httpx2"
    shown, write = (f"{host}:{port}", f"{form}:{port}") if port else (host, form)
    return (f"{client} writes a name not ASCII in IDNA 2008 as written, lowercased, none of it mapped, which refuses "
            f"this one, got {shown!r} (write {write!r}) in {shown_url(url)!r}")  # fmt: skip


def _address_problem(text: str) -> str | None:
    """What `parse_address` says of an address to connect to (port 0 none), else None."""
    try:
        parse_address(text, zero_ok=False)
    except ValueError as exc:
        return str(exc)
    return None


def _unbracketed(endpoint: str) -> str | None:
    """What is said of an OTLP/gRPC endpoint without a scheme that is an IPv6 address without its brackets and a port
    (`::1:4317`, which `parse_address` reads as `[::1]:4317`): no URL, its exporter gives it to grpc as written, which
    reads it whole, `::1:4317` on port 443 (`_dns_target_problem`). Until 2026-12-06 said to be no http URL."""
    if ":" not in endpoint.rpartition(":")[0] or endpoint.startswith("["):
        return None
    return _read_whole("an IPv6 address", "[::1]:4317", _address_shown(endpoint))


def _read_whole(whose: str, form: str, shown: str) -> str:
    """What is said of an IPv6 address given to grpc without its brackets and a port (`_unbracketed`, an endpoint
    without a scheme; `_dns_target_problem`, a dns: one): `whose` it is, the `form` to write, the endpoint `shown`."""
    return f"{whose} is written in brackets, {form}: grpc reads {shown!r} as one address, on its default port"


# grpc's targets no OTLP/gRPC endpoint is (`_grpc_target_problem` reads those that are, `GRPC_TARGETS`), and why: each
# was said to be no http URL, or read as a host:port (`vsock:2:4317`, host `vsock:2`)
_OTHER_TARGETS: Final = {
    "xds": "xDS asks a control plane for the collector, which grpc finds through a bootstrap file the proxy neither "
    "writes nor checks",
    "google-c2p": "Google's direct path is xDS's too, for Google's own services",
    "vsock": "grpcio resolves it as a host's name, which no resolver finds",
}


# how a target of grpc's other resolvers than its DNS one is written, said where one is not (`_authority_problem`,
# `_address_listed`): an address list holds no name, an abstract socket's name is no file's path
_TARGET_FORMS: Final = {
    "ipv4": "ipv4:10.0.0.5:4317",
    "ipv6": "ipv6:[2001:db8::1]:4317",
    "unix": "unix:///path or unix:path",
    "unix-abstract": "unix-abstract:name",
}


def _scheme_of(endpoint: str) -> str:
    """The word before an endpoint's first `:`, in lower case (a target's scheme, `_OTHER_TARGETS`), or ``."""
    scheme, colon, _ = endpoint.partition(":")
    return scheme.lower() if colon else ""


def _grpc_target_problem(endpoint: str) -> str | None:
    """What is wrong with an OTLP/gRPC endpoint that is a target of one of grpc's resolvers (`GRPC_TARGETS`), else
    None: each is given to grpc as written, as opentelemetry-exporter-otlp-proto-grpc passes it on, so it must mean
    what grpc reads (until 2026-12-06 all but `dns:` were refused as no http URL, and `dns:/collector:4317` said to hold
    a `/`). None names an authority (`dns://8.8.8.8/...`, `unix://run/otel.sock`): that exporter takes a URL's `netloc`
    for the collector's host:port, so would connect to `8.8.8.8` or `run`, where grpc uses a DNS server or refuses it."""
    scheme, rest = grpc_target_scheme(endpoint), endpoint.partition(":")[2]  # (`UNIX:/run/otel.sock` too)
    if rest.startswith("//") and not rest.startswith("///"):
        return _authority_problem(endpoint, scheme)
    if scheme == "unix" or scheme == "unix-abstract":
        return _socket_problem(endpoint, scheme, rest.removeprefix("//"))
    target = rest.removeprefix("//").removeprefix("/")  # (`dns:///h:p`, `dns:/h:p`, `dns:h:p`: one host:port to grpc)
    if scheme == "dns":
        return _dns_target_problem(endpoint, target)
    for address in target.split(","):  # (`ipv4:10.0.0.5:4317,10.0.0.6:4317`: a list grpc tries in turn)
        if (said := _address_listed(scheme, address)) is not None:
            return said
    return None


def _authority_problem(endpoint: str, scheme: str) -> str:
    """What is said of a gRPC target naming an authority (`_grpc_target_problem`)."""
    if scheme == "dns":
        return (f"a dns: endpoint naming a DNS server, {_address_shown(endpoint)!r}, is read by OpenTelemetry's "
                "OTLP/gRPC exporter as the collector's host:port (its authority): write dns:///host:port, resolved "
                "by the system's resolver")  # fmt: skip
    form = _TARGET_FORMS[scheme]
    return (f"{target_endpoint(scheme)} names no authority, got {_address_shown(endpoint)!r}: OpenTelemetry's OTLP/gRPC "
            f"exporter reads it as the collector's host:port and grpc refuses it (write {form})")  # fmt: skip


def _socket_problem(endpoint: str, scheme: str, path: str) -> str | None:
    """What is wrong with a Unix socket's target (`unix:/run/otel.sock`, `unix:///run/otel.sock`, `unix:otel.sock`
    relative to the proxy's directory, `unix-abstract:otel`), else None: grpc reads a `?` or `#` in it as a query's or
    a fragment's, which it drops, so the socket would be another (`unix:/run/otel?1.sock` is `/run/otel`)."""
    if not path:
        return f"a {scheme}: endpoint names its socket, got {endpoint!r} (write {scheme}:/run/otel.sock)"
    if "?" in path or "#" in path:
        return (f"a {scheme}: endpoint's socket holds no '?' or '#', which grpc reads as a query's or fragment's and "
                f"drops, got {shown_url(endpoint)!r} (write %3F or %23)")  # fmt: skip
    return None


def _address_listed(scheme: str, address: str) -> str | None:
    """What is wrong with one address of an `ipv4:` or `ipv6:` target's list, else None: an address of that kind and
    its port, an IPv6 one in brackets, which grpc reads alone (`ipv4:collector:4317`, `ipv6:::1:4317` it refuses)."""
    said = _address_problem(address)
    if said is not None:
        return f"{target_endpoint(scheme)} is {scheme}:ADDRESS:PORT[,ADDRESS:PORT...]: {said}"
    host = address[1 : address.find("]")] if address.startswith("[") else address.rpartition(":")[0]
    try:
        read = ipaddress.ip_address(host)
    except ValueError:
        read = None
    bracketed = address.startswith("[")
    if scheme == "ipv4" and isinstance(read, ipaddress.IPv4Address) and not bracketed:
        return None
    if scheme == "ipv6" and isinstance(read, ipaddress.IPv6Address) and bracketed:
        return None
    form = _TARGET_FORMS[scheme]
    return (f"{target_endpoint(scheme)} lists {'IPv4' if scheme == 'ipv4' else 'IPv6'} addresses alone"
            f"{', in brackets' if scheme == 'ipv6' else ''}, which grpc reads without a resolver, got "
            f"{_address_shown(address)!r} (write {form}, or dns:///host:port for a name)")  # fmt: skip


def _dns_target_problem(endpoint: str, target: str) -> str | None:
    """What is wrong with a target of grpc's DNS resolver (`dns:///collector:4317`, `dns:/collector:4317`,
    `dns:collector:4317`), `target` its host:port, else None: a host:port (`parse_address`) with its port written
    (grpc's default there is 443, OTLP's 4317), an IPv6 address in its brackets (`dns:///::1:4317`, which grpc, given
    the target as written, reads whole, `::1:4317` on port 443)."""
    try:
        address = parse_address(target, zero_ok=False)
    except ValueError as exc:
        return f"a dns: endpoint is dns:///host:port: {exc}"
    if ":" in address.host and not target.startswith("["):  # (`parse_address` takes `::1:4317` for `[::1]:4317`)
        return _read_whole("a dns: endpoint's IPv6 address", "dns:///[::1]:4317", endpoint)
    return None


def _suggested(address: str, zero_ok: bool) -> str:
    """The host:port a problem with an address says to write (the one after its scheme or its user and password) when
    it would load, else `host:port`: one mistyped in turn (`triton:http`, `triton :8001`, after
    `http://ops:12/s3cret@`) was said as it was, and the next `check` refused what the last one said to write."""
    try:
        parse_address(address, zero_ok)
    except ValueError:
        return "host:port"
    return address


def _grpc_dropped(endpoint: str, parts: SplitResult) -> str | None:
    """What an OTLP/gRPC endpoint holds past its host and port, which its exporter drops (`OtlpGrpcSink` connects to
    the host and port alone, as opentelemetry-exporter-otlp-proto-grpc, which keeps a URL's `netloc`): a path, query
    or fragment, said with what to write (`http://collector:4317/v1/traces`, `http://collector:4317?key=...`, and
    `collector:4317/v1` without a scheme: loaded, the rest would be dropped unsaid). A URL's `/` alone is no path
    (`http://collector:4317/`); without a scheme the endpoint is a gRPC target, which holds none (`collector:4317/`:
    grpc's resolver reads `4317/` as its port). None when there is no such rest, or no port before it without a scheme
    (`gw/xyz/q9s3cr:4317`: said as an address, `parse_address`)."""
    url = "://" in endpoint
    if parts.path in (("", "/") if url else ("",)) and "?" not in endpoint and "#" not in endpoint:
        return None
    if not url and parts.port is None:
        return None
    write, shown = f"{parts.scheme}://{parts.netloc}" if url else parts.netloc, _address_shown(endpoint)
    if parts.port is None and ":" in parts.path:  # (`http://gw/xyz/q9s3cr:4317`: a port after what may be a token)
        write, shown = f"{parts.scheme}://host:port", f"{parts.scheme}://***"
    sent = url and (parts.path not in ("", "/") or "?" in endpoint)  # (what OTLP/HTTP would send)
    other = "; or protocol: http/protobuf, whose endpoint is a URL, its path and query sent" if sent else ""
    return (f"an OTLP/gRPC endpoint is host:port or scheme://host:port, with no path, query or fragment (its exporter "
            f"connects to the host and port alone, the rest dropped), got {shown!r} (write {write!r}{other})")  # fmt: skip


def _address_shown(text: str, userinfo: tuple[int, int] | None = None) -> str:
    """An address, or a URL where one goes, as a problem quotes it: its password, query and fragment hidden
    (`shown_url`, `userinfo` its), and what follows the `/` after its host (`triton:8001/***`, `http://triton:8001/***`:
    a path, which may be a token of base64, `aB3/x+Yz/Q9`), a URL's and one after a user and password too, and what
    follows a `\\` typed for that `/` (`triton:8001\\***`), which `shown_url` hides in a URL's host:port."""
    shown = shown_url(text, userinfo)
    scheme = _SCHEME.match(shown)
    start = scheme.end() if scheme else 0
    end = min((index for index in (shown.find("/", start), shown.find("\\", start)) if index >= 0), default=-1)
    return shown if end < 0 or end + 1 == len(shown) else shown[: end + 1] + "***"


class _Section:
    """One YAML mapping read against its model class: a key the file leaves out takes the field's default."""

    __slots__ = ("defaults", "path", "values")

    def __init__(self, path: str, values: dict[str, Any], model: type[Any]) -> None:
        self.path = path
        self.values = values
        self.defaults: dict[str, Any] = {f.name: f.default for f in fields(model) if f.default is not MISSING}

    def raw(self, key: str) -> Any:
        """The file's value (an explicit null stays None), else the model's default, else None."""
        return self.values[key] if key in self.values else self.defaults.get(key)

    def read(self, key: str, convert: Callable[[str, Any], T | None]) -> T:
        """The converted value, or the default where `convert` reported a problem: no Config is returned
        then, but the section still builds for the cross-checks."""
        value = convert(f"{self.path}.{key}", self.raw(key))
        return cast(T, self.defaults[key]) if value is None else value


class _Reader:
    """Walks the raw YAML tree, converting as it goes and collecting problems with their paths."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []
        self.warnings: list[str] = []  # `Config.warnings`
        self.unset: set[str] = set()  # paths whose ${VAR} is not set: said once, not again as its consequences
        self.missing: set[str] = set()  # required keys said missing (`is required`): not again as null, empty, ...

    def problem(self, path: str, message: str) -> None:
        if path in self.missing or self._follows_unset(path):
            return
        self.problems.append(f"{path}: {message}")

    def _follows_unset(self, path: str) -> bool:
        """A value, or its section, already reported for an unset ${VAR}: what follows from it is not news."""
        if not path:
            return False
        return any(unset == path or unset.startswith((f"{path}.", f"{path}[")) for unset in self.unset)

    # -- scalars

    def expand(self, path: str, value: Any) -> Any:
        if not isinstance(value, str) or "${" not in value or isinstance(value, Verbatim):
            return value
        stray = _stray_reference(value)
        if stray is not None:  # `${REGION-eu}`, `${KEY:?}`: a shell's or compose's form would load as its own text
            self.problem(path, f"{stray!r} is not a variable this config expands: write ${{NAME}} or "
                         "${NAME:-default}")  # fmt: skip
            self.unset.add(path)  # what the value would have made is not news
            return ""

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if default is not None and "${" in default:  # `${A:-${B}}`: the default would be the text `${B}`
                self.problem(path, f"the default of ${{{name}:-...}} holds a ${{...}}: defaults are not expanded "
                             "(give the value itself)")  # fmt: skip
                self.unset.add(path)  # what the value would have made is not news
                return ""
            if name in self.env and (self.env[name] != "" or default is None):
                return self.env[name]
            if default is not None:
                return default
            self.problem(path, f"environment variable {name} is not set (set it, or write ${{{name}:-default}})")
            self.unset.add(path)
            return ""

        expanded = _VAR.sub(substitute, value)
        why = surrogate(expanded)
        if why is not None:  # a variable's byte that is not UTF-8 (Python decodes it as a lone surrogate)
            self.problem(path, f"{why} (its environment variable's value is not UTF-8)")
            self.unset.add(path)  # what the value would have made is not news
            return ""
        return expanded

    def string(self, path: str, value: Any, *, optional: bool = False) -> str | None:
        value = self.expand(path, value)
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float) or value == "":
            self.problem(path, "expected a non-empty string" + _got(value))
            return None
        if isinstance(value, str) and "\x00" in value:  # no file name, address or header holds one
            self.problem(path, "holds a NUL character")
            return None
        return str(written(value))  # a number as written: `labels: [2024.10]` is `2024.10`, not `2024.1`

    def fields_handed(self, path: str, value: Any) -> bool | str | None:
        """`upstreams[].headers_to_model`: true or false, or a Triton forward pattern (`forward_pattern`), which must
        compile, and match as the proxy matches it, without regard to case (`_CASE_OFF`)."""
        value = self.expand(path, value)
        if isinstance(value, bool) or (isinstance(value, str) and value.lower() in ("true", "false")):
            return self.boolean(path, value)
        if isinstance(value, str) and value.lower() in _BOOLEAN_WORDS:
            self.problem(path, f"expected true or false, got {value!r} (a pattern naming the fields whose name holds "
                         f"it: write it (?:{value}))")  # fmt: skip
            return None
        if not isinstance(value, str) or value == "":
            self.problem(path, f"expected true, false or a Triton header forward pattern (a regular expression), got "
                         f"{value!r}" + (": an empty one names every field, as true does" if value == "" else ""))  # fmt: skip
            return None
        if _CASE_OFF.search(value.removeprefix(CASE_SENSITIVE)) is not None:
            self.problem(path, f"the pattern {value!r} turns case-insensitive matching off inside it: the proxy reads "
                         "field names lowered, so it would pass over a field Triton hands on; match by case only with "
                         f"a leading {CASE_SENSITIVE!r} (read as if without it), or write both cases")  # fmt: skip
            return None
        try:
            with warnings.catch_warnings(record=True) as warned:  # (recorded, not raised: another thread's go on)
                warnings.simplefilter("always", FutureWarning)
                re.purge()  # (a pattern compiled before, from the cache, would warn of nothing)
                forward_pattern(value)
        except re.error as exc:
            self.problem(path, f"the pattern {value!r} is not a regular expression: {exc}")
            return None
        nested = next((str(w.message) for w in warned if issubclass(w.category, FutureWarning)), None)
        if nested is not None:  # `[[:alpha:]]`: RE2 reads a POSIX class, re a set then `]`, matching no field's name
            self.problem(path, f"the pattern {value!r} is read otherwise by Python's re than by Triton's RE2 "
                         f"({nested}): RE2 reads `[[:alpha:]]` as a class, re as the set `[[:alpha:]` then a `]`, so "
                         "the fields Triton hands its model would not be read; write the class out (`[a-z]`)")  # fmt: skip
            return None
        return value

    def number(self, path: str, value: Any, *, minimum: float = 0.0, maximum: float | None = None) -> float | None:
        """A number key's value: a YAML number, or text that is a decimal number (`"0.5"`, a ${VAR}'s, which is text),
        as a true/false key takes `"true"` (`boolean`): one rule for every number key, timeouts, limits, ratios."""
        raw, value = value, self.expand(path, value)
        try:
            if isinstance(value, bool) or (isinstance(value, str) and not _DECIMAL.fullmatch(value)):
                raise ValueError
            number = float(value)
        except (TypeError, ValueError, OverflowError):  # (an integer past a float's range: `1` and 400 zeros)
            self.problem(path, f"expected a number, got {_shown(raw, value)}")
            return None
        if not math.isfinite(number):  # `.nan` passes every bound; `1e400` is infinite
            self.problem(path, f"expected a finite number, got {_shown(raw, value)}")
            return None
        if isinstance(value, WrittenInt | WrittenFloat) and not (
            (_DECIMAL.fullmatch(value.text) and float(value.text) == number) or _HEX.fullmatch(value.text)
        ):  # a plain scalar YAML 1.2 reads otherwise (`0755` 755 where YAML 1.1 reads 493, `1_000` and `1:30` text)
            read = int(value) if isinstance(value, WrittenInt) else float(value)
            self.problem(path, f"expected a number in decimal digits, got {value.text}, which YAML 1.1 reads as {read}")
            return None
        if number < minimum or (maximum is not None and number > maximum):
            bound = f"between {minimum:g} and {maximum:g}" if maximum is not None else f">= {minimum:g}"
            self.problem(path, f"must be {bound}, got {number:g}")
            return None
        return number

    def positive_or_none(self, path: str, value: Any) -> int | None:
        """A whole number of at least 1, or null (unset: None, the key's default)."""
        return None if value is None else self.integer(path, value, minimum=1)

    def integer(self, path: str, value: Any, *, minimum: int = 0) -> int | None:
        number = self.number(path, value, minimum=minimum)
        if number is None:
            return None
        if number != int(number):
            self.problem(path, f"expected a whole number, got {number:g}")
            return None
        return int(number)

    def boolean(self, path: str, value: Any) -> bool | None:
        raw, value = value, self.expand(path, value)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        self.problem(path, f"expected true or false, got {_shown(raw, value)}")
        return None

    def choice(self, path: str, value: Any, options: tuple[str, ...]) -> str | None:
        if isinstance(value, bool):
            self.problem(path, f"must be one of {', '.join(options)}, got {str(value).lower()}: YAML reads an "
                         "unquoted yes/no/on/off as a boolean")  # fmt: skip
            return None
        text = self.string(path, value)
        if text is not None and text not in options:
            self.problem(path, f"must be one of {', '.join(options)}, got {_shown(value, text)}")
            return None
        return text

    def address(self, path: str, value: Any) -> Address | None:
        """A listener's address; one uvloop binds (`_BOUND_BY_SOCKETS`) a name Python's sockets write too
        (`_idna_problem`), where grpc's resolver binds listen.grpc's."""
        text = self.string(path, value)
        if text is None:
            return None
        try:
            address = parse_address(text)
        except ValueError as exc:
            self.problem(path, str(exc))
            return None
        bracketed = text.startswith("[")
        sockets = path in _BOUND_BY_SOCKETS
        if sockets and not bracketed and (said := _idna_problem(address.host, str(address.port), sockets=True)):
            self.problem(path, said)
            return None
        return address

    def label_set(self, path: str, value: Any) -> frozenset[str]:
        items = self.string_list(path, value)
        bad = False
        for index, label in enumerate(items):
            if not is_label(label):
                self.problem(f"{path}[{index}]", f"invalid label {label!r} (grammar [a-z0-9][a-z0-9._:/-]{{0,127}})")
                bad = True
        if len(items) > MAX_LABELS:
            self.problem(path, f"at most {MAX_LABELS} labels")
        return frozenset() if bad else frozenset(items)

    def string_list(self, path: str, value: Any) -> list[str]:
        return self.sequence(path, value, self.string)

    def name(self, path: str, value: Any) -> str | None:
        text = self.string(path, value)
        if text is not None and not _NAME.fullmatch(text):
            rule = "letters, digits, '.', '_', '-', starting with a letter or a digit, at most 128 characters"
            if len(text) > 128:  # what is past the bound, not the whole value (a name of all letters held the rule)
                self.problem(path, f"invalid name {text[:64]!r}... ({len(text)} characters; {rule})")
            else:
                self.problem(path, f"invalid name {text!r} ({rule})")
            return None
        return text

    # -- structure

    def mapping(self, path: str, value: Any, known: tuple[str, ...], required: tuple[str, ...] = ()) -> dict[str, Any]:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.problem(path, "expected a mapping" + _got(value))
            return {}
        for index, key in enumerate(value):
            if key not in known:
                shown = shown_key(key, index)
                meant = _meant(shown, known)
                self.problem(f"{path}.{shown}" if path else shown, f"unknown key ({meant}known: {', '.join(known)})")
        for key in required:
            if value.get(key) is None:
                self.problem(f"{path}.{key}" if path else key, "is required")
                self.missing.add(f"{path}.{key}" if path else key)
        return value

    def section(
        self, path: str, raw: Any, model: type[Any], known: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> _Section:
        return _Section(path, self.mapping(path, raw, known, required), model)

    def sequence(self, path: str, value: Any, item: Callable[[str, Any], T | None]) -> list[T]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(path, "expected a list" + _got(value))
            return []
        out = []
        for index, raw in enumerate(value):
            parsed = item(f"{path}[{index}]", raw)
            if parsed is not None:
                out.append(parsed)
        return out

    # -- sections

    def config(self, raw: Any, source: str, digest: str = "") -> Config | None:
        if raw is not None and not isinstance(raw, dict):
            kind = "a list" if isinstance(raw, list) else f"{raw!r}"
            self.problem(_TOP_LEVEL, f"expected a mapping of sections (listen, upstreams, routes, ...), got {kind}")
            return None
        top = self.mapping(
            "",
            raw,
            (
                "listen",
                "upstreams",
                "routes",
                "callers",
                "zones",
                "policy",
                "detectors",
                "telemetry",
                "lineage",
                "limits",
                "logging",
            ),
            ("listen", "upstreams", "routes"),
        )
        if not top:
            return None
        listen = self.listen(top.get("listen"))
        upstreams = self.sequence("upstreams", top.get("upstreams"), self.upstream)
        routes = self.sequence("routes", top.get("routes"), self.route)
        callers = self.sequence("callers", top.get("callers"), self.caller)
        zones = self.sequence("zones", top.get("zones"), self.zone)
        policy = self.policy(top.get("policy"))
        detectors = self.sequence("detectors", top.get("detectors"), self.detector)
        telemetry = self.telemetry(top.get("telemetry"))
        lineage = self.lineage(top.get("lineage"))
        baseline = self.baseline(lineage)
        limits = self.limits(top.get("limits"))
        logging = self.logging(top.get("logging"))
        self.cross_check(top, listen, upstreams, routes, callers, zones, detectors)
        self.record_for_zones(zones, lineage)
        if listen is None or self.problems:
            return None
        return Config(
            listen=listen,
            upstreams=tuple(upstreams),
            routes=tuple(routes),
            callers=tuple(callers),
            zones=tuple(zones),
            policy=policy,
            detectors=tuple(detectors),
            telemetry=telemetry,
            lineage=lineage,
            limits=limits,
            logging=logging,
            baseline=baseline,
            source=source,
            digest=digest,
            warnings=tuple(self.warnings),
        )

    def listen(self, raw: Any) -> Listen | None:
        if raw is None:  # `listen: is required` is said by the top level
            return None
        section = self.mapping("listen", raw, ("http", "grpc", "admin", "tls"), ("http",))
        http = self.address("listen.http", section.get("http")) if section.get("http") is not None else None
        grpc = self.address("listen.grpc", section["grpc"]) if section.get("grpc") is not None else None
        admin = self.address("listen.admin", section["admin"]) if section.get("admin") is not None else None
        tls = self.tls("listen.tls", section["tls"]) if section.get("tls") is not None else None
        self.distinct_listeners({"http": http, "grpc": grpc, "admin": admin})
        return Listen(http, grpc, admin, tls) if http else None

    def distinct_listeners(self, addresses: dict[str, Address | None]) -> None:
        """Two listeners on one address would start and then fail `address already in use` (or, with
        SO_REUSEPORT workers, share the port): `check` says so first. Port 0 is a new free port each time."""
        named = [(name, address) for name, address in addresses.items() if address is not None and address.port]
        for index, (name, address) in enumerate(named):
            for earlier, other in named[:index]:
                if _same_socket(address, other):
                    self.problem(f"listen.{name}", f"{address} is listen.{earlier}'s address (each listener needs "
                                 "its own port; port 0 takes any free one)")  # fmt: skip
                    break

    def tls(self, path: str, raw: Any) -> Tls | None:
        """Certificates are loaded here, so `check` and a reload refuse a bad file with its reason."""
        section = self.mapping(path, raw, ("cert", "key", "client_ca", "require_client_cert"), ("cert", "key"))
        cert = self.string(f"{path}.cert", section.get("cert"))
        key = self.string(f"{path}.key", section.get("key"))
        client_ca = self.string(f"{path}.client_ca", section.get("client_ca"), optional=True)
        require = bool(self.boolean(f"{path}.require_client_cert", section.get("require_client_cert", False)))
        if require and client_ca is None:
            self.problem(f"{path}.require_client_cert", "needs client_ca (the bundle client certificates match)")
        if cert is None or key is None:
            return None
        if not self.readable_files(path, {"cert": cert, "key": key, "client_ca": client_ca}):
            return None
        tls = Tls(cert, key, client_ca, require)
        from proxy.tls import expiry_warnings, server_context  # here: a config with TLS alone needs ssl set up

        try:
            server_context(tls)
            self.warnings += expiry_warnings(f"{path}.cert", cert, Path(cert).read_bytes(),
                                             "clients refuse the listener's certificate", first_refused=True)  # fmt: skip
            if client_ca is not None:
                self.warnings += expiry_warnings(f"{path}.client_ca", client_ca, Path(client_ca).read_bytes(),
                                                 "client certificates it issued are refused")  # fmt: skip
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            self.problem(path, f"cannot use the certificate, key or client_ca: {exc}")
            return None
        return tls

    def upstream(self, path: str, raw: Any) -> Upstream | None:
        known = (
            "name", "url", "grpc", "protocol", "region", "checkpoint", "timeout_s", "connect_timeout_s",
            "api_key", "max_connections", "max_queue", "discovery_interval_s", "provider", "tls", "headers_to_model",
        )  # fmt: skip
        s = self.section(path, raw, Upstream, known, ("name",))
        name = self.name(f"{path}.name", s.raw("name"))
        from proxy.protocols import DIALECTS  # here: the protocols package itself reads the config model

        protocol = self.choice(f"{path}.protocol", s.raw("protocol"), tuple(DIALECTS))
        url = self.string(f"{path}.url", s.raw("url"), optional=True)
        grpc = self.string(f"{path}.grpc", s.raw("grpc"), optional=True)
        if url is None and grpc is None:
            self.problem(path, "needs url (HTTP) or grpc (host:port)")
        scheme = ""  # the url's as the connection pool reads it (`urlsplit`: lower case, white space dropped)
        if url is not None:
            parts = _http_url(url)
            if parts is None:
                self.problem(f"{path}.url", _url_problem(url, shown_url(url))
                             or f"expected an http:// or https:// URL, got {shown_url(url)!r}")  # fmt: skip
            elif (unlooked := _socket_host_problem(url)) is not None:
                self.problem(f"{path}.url", unlooked)
            elif "@" in parts.netloc or parts.query or parts.fragment:  # none of them is sent: said, not dropped
                self.problem(f"{path}.url", f"a user, password, query or fragment in {shown_url(url)!r} is not "
                             "sent to the upstream: give its key as api_key, and the URL as scheme://host:port/path")  # fmt: skip
            scheme = parts.scheme if parts is not None else ""
            url = url.rstrip("/")
        if grpc is not None:
            try:
                parse_address(grpc, zero_ok=False)
            except ValueError as exc:
                self.problem(f"{path}.grpc", str(exc))
            if url is not None and "protocol" not in s.values:  # (said once: not `a grpc upstream speaks oip` alone)
                self.problem(path, "both url and grpc are given, without a protocol: url is a server's HTTP address "
                             "(protocol openai unless written), grpc its Open Inference Protocol gRPC host:port; one "
                             "server serving OIP on both is `protocol: oip`, an OpenAI server and a gRPC one are two "
                             "upstreams")  # fmt: skip
            elif protocol not in (None, "oip"):
                self.problem(f"{path}.protocol", "a grpc upstream speaks oip")
        timeout = s.read("timeout_s", partial(self.number, minimum=0.001))
        connect = s.read("connect_timeout_s", partial(self.number, minimum=0.001))
        conns = s.read("max_connections", partial(self.integer, minimum=1))
        queue = s.read("max_queue", partial(self.integer, minimum=0))
        interval = s.read("discovery_interval_s", partial(self.number, minimum=0.1))
        tls = self.upstream_tls(f"{path}.tls", s.raw("tls")) if s.raw("tls") is not None else None
        # (a union: `read`'s T would be their join, object); None where not written: the protocol's way
        said = "headers_to_model" in s.values
        headers_to_model = cast("bool | str", s.read("headers_to_model", self.fields_handed)) if said else None
        kserve_openai = kserve_openai_url(protocol or s.defaults["protocol"], url)
        # an openai upstream at /openai (Azure's hosts too) that is not KServe's
        prefixed = kserve_openai_url(protocol or s.defaults["protocol"], url, azure_too=True)
        not_kserve = prefixed and headers_to_model is False
        if headers_to_model not in (True, None) and protocol not in (None, "oip") and not not_kserve:
            self.problem(f"{path}.headers_to_model", "only an oip upstream may hand its model no header fields, or "
                         "those a pattern names (a Triton, and its --http-header-forward-pattern), or an openai one "
                         "whose url ends in /openai that is not KServe's (false): KServe's model server hands its model "
                         "every one, and other protocols' fields are not read")  # fmt: skip
        if kserve_openai and not said:
            self.warnings.append(_kserve_openai_warning(path, url))
        doubled = _v1_base_warning(path, url) if url is not None and scheme and protocol == "openai" else None
        if doubled is not None:
            self.warnings.append(doubled)
        if tls is not None and grpc is None and url is not None and scheme == "http":
            # the scheme alone decides TLS over HTTP: the CA check and client certificate asked for would be
            # skipped, and calls sent in plaintext, without a word
            self.problem(f"{path}.tls", f"the url {shown_url(url)!r} is plain http, so this TLS is never used: "
                         "write https://")  # fmt: skip
        if name is None:
            return None
        return Upstream(  # with a bad protocol too, so references to it are still checked
            name=name,
            protocol=protocol or s.defaults["protocol"],
            url=url,
            grpc=grpc,
            region=self.string(f"{path}.region", s.raw("region"), optional=True),
            checkpoint=self.string(f"{path}.checkpoint", s.raw("checkpoint"), optional=True),
            timeout_s=timeout,
            connect_timeout_s=connect,
            api_key=self.string(f"{path}.api_key", s.raw("api_key"), optional=True),
            max_connections=conns,
            max_queue=queue,
            discovery_interval_s=interval,
            provider=self.string(f"{path}.provider", s.raw("provider"), optional=True),
            tls=tls,
            headers_to_model=headers_to_model,
        )

    def upstream_tls(self, path: str, raw: Any) -> UpstreamTls | None:
        """Files are loaded here, so `check` and a reload refuse a missing or bad one with its reason."""
        section = self.mapping(path, raw, ("ca", "cert", "key", "server_name"))
        tls = UpstreamTls(
            ca=self.string(f"{path}.ca", section.get("ca"), optional=True),
            cert=self.string(f"{path}.cert", section.get("cert"), optional=True),
            key=self.string(f"{path}.key", section.get("key"), optional=True),
            server_name=self.string(f"{path}.server_name", section.get("server_name"), optional=True),
        )
        if (tls.cert is None) != (tls.key is None):
            self.problem(path, "a client certificate needs both cert and key")
            return None
        if not self.readable_files(path, {"ca": tls.ca, "cert": tls.cert, "key": tls.key}):
            return None
        from proxy.tls import (  # a config with upstream TLS
            check_not_expired,
            client_context,
            expiry_warnings,
            upstream_tls_problem,
        )

        try:
            client_context(tls)
            if tls.cert is not None:  # the proxy's own client certificate: refused when expired, as the listener's
                pem = Path(tls.cert).read_bytes()
                check_not_expired(pem, "the upstream")
                self.warnings += expiry_warnings(f"{path}.cert", tls.cert, pem,
                                                 "the upstream refuses the proxy's client certificate")  # fmt: skip
        except ValueError as exc:
            self.problem(path, f"cannot use the ca, cert or key: {exc}")
            return None
        except OSError as exc:  # ssl.SSLError is one
            self.problem(path, upstream_tls_problem(exc))
            return None
        return tls

    def readable_files(self, path: str, files: dict[str, str | None]) -> bool:
        """Each file a TLS section names can be opened; else a problem at its own key, naming the file (the
        ssl module's errors name neither)."""
        readable = True
        for key, file in files.items():
            if file is None:
                continue
            try:
                with open(file, "rb"):
                    pass
            except OSError as exc:
                self.problem(f"{path}.{key}", f"cannot read {file!r}: {exc.strerror or exc}")
                readable = False
        return readable

    def purposes(self, path: str, raw: Any) -> frozenset[str] | None:
        if raw is None:
            return None
        items = self.string_list(path, raw)
        for index, purpose in enumerate(items):
            self.check_purpose(f"{path}[{index}]", purpose)
        return frozenset(items)

    def purpose(self, path: str, raw: Any) -> str | None:
        """One optional purpose (a default_purpose), held to the grammar of the `purposes` lists."""
        text = self.string(path, raw, optional=True)
        return text if text is None or self.check_purpose(path, text) else None

    def check_purpose(self, path: str, purpose: str) -> bool:
        if is_label(purpose):
            return True
        self.problem(path, f"invalid purpose {purpose!r} (same grammar as labels)")
        return False

    def route(self, path: str, raw: Any) -> Route | None:
        section = self.mapping(path, raw, ("model", "upstream", "purposes"), ("model", "upstream"))
        model = self.string(f"{path}.model", section.get("model"))
        upstream = self.string(f"{path}.upstream", section.get("upstream"))
        purposes = self.purposes(f"{path}.purposes", section.get("purposes"))
        if model is None or upstream is None:
            return None
        return Route(model, upstream, purposes)

    def caller(self, path: str, raw: Any) -> Caller | None:
        known = ("name", "api_key_sha256", "purposes", "labels", "default_purpose", "tls_identity")
        section = self.mapping(path, raw, known, ("name",))
        name = self.name(f"{path}.name", section.get("name"))
        if name is not None and name.lower() == _ANONYMOUS:  # its calls and unauthenticated ones would be one flow,
            # approved as one; in another case (`Anonymous`), two a reader of the record takes for one
            named = "so" if name == _ANONYMOUS else repr(_ANONYMOUS)
            self.problem(f"{path}.name", f"{name!r} is reserved: the record and the baseline name unauthenticated "
                         f"calls {named}")  # fmt: skip
        digest = self.string(f"{path}.api_key_sha256", section.get("api_key_sha256"), optional=True)
        if digest is not None:
            digest = digest.lower()
            if not _SHA256_HEX.fullmatch(digest):
                self.problem(f"{path}.api_key_sha256", "expected 64 hex digits (sha256 of the key, never the key: "
                             "`printf %s KEY | sha256sum` prints it)")  # fmt: skip
        purposes = self.purposes(f"{path}.purposes", section.get("purposes"))
        default = self.purpose(f"{path}.default_purpose", section.get("default_purpose"))
        if default is not None and purposes is not None and default not in purposes:
            self.problem(f"{path}.default_purpose", f"{default!r} is not one of the caller's purposes")
        labels = self.label_set(f"{path}.labels", section.get("labels"))
        identity = self.string(f"{path}.tls_identity", section.get("tls_identity"), optional=True)
        if identity is not None and not (identity.startswith("spiffe://") or identity.startswith("CN=")):
            self.problem(f"{path}.tls_identity", f"expected spiffe://... or CN=<name>, got {identity!r}")
        if section and section.get("api_key_sha256") is None and section.get("tls_identity") is None:
            self.problem(path, "nothing identifies this caller: give api_key_sha256 (a Bearer key) or tls_identity "
                         "(a client certificate)")  # fmt: skip
        if name is None:
            return None
        return Caller(name, digest, purposes, labels, default, identity)

    def zone(self, path: str, raw: Any) -> Zone | None:
        known = ("name", "labels", "allow_purposes", "regions", "on_deny", "require_record")
        section = self.mapping(path, raw, known, ("name", "labels"))
        name = self.name(f"{path}.name", section.get("name"))
        labels = self.label_set(f"{path}.labels", section.get("labels"))
        if section.get("labels") == []:
            self.problem(f"{path}.labels", "a zone needs at least one label")
        allow = self.purposes(f"{path}.allow_purposes", section.get("allow_purposes")) or frozenset()
        regions_raw = section.get("regions")
        regions = frozenset(self.string_list(f"{path}.regions", regions_raw)) if regions_raw is not None else None
        on_deny = self.string(f"{path}.on_deny", section.get("on_deny", _BLOCK)) or _BLOCK
        reroute = None
        if on_deny.startswith("reroute:"):
            reroute = on_deny.removeprefix("reroute:") or None  # none: said here once, not again as unknown
            if reroute is None:
                self.problem(f"{path}.on_deny", "reroute needs an upstream: reroute:<upstream>")
        elif on_deny != _BLOCK:
            self.problem(f"{path}.on_deny", f"must be block or reroute:<upstream>, got {on_deny!r}")
        require_record = bool(self.boolean(f"{path}.require_record", section.get("require_record", False)))
        if name is None:
            return None
        return Zone(name, labels, allow, regions, reroute, require_record)

    def policy(self, raw: Any) -> PolicySettings:
        known = ("mode", "anonymous", "default_purpose", "passthrough", "known_labels", "known_purposes")
        s = self.section("policy", raw, PolicySettings, known)
        mode = s.read("mode", partial(self.choice, options=("enforce", "audit")))
        anonymous = s.read("anonymous", partial(self.choice, options=("deny", "allow")))
        default = self.purpose("policy.default_purpose", s.raw("default_purpose"))
        passthrough = s.read("passthrough", partial(self.choice, options=("auto", "forward", "refuse")))
        labels = self.known_names("policy.known_labels", s.raw("known_labels"), "label")
        purposes = self.known_names("policy.known_purposes", s.raw("known_purposes"), "purpose")
        return PolicySettings(mode, anonymous, default, passthrough, labels, purposes)

    def known_names(self, path: str, raw: Any, kind: str) -> tuple[str, ...] | None:
        """`policy.known_labels` or `policy.known_purposes` (`kind` names what it lists): None (any), or names and
        shell-style patterns of them, in lower case (a purpose has a label's grammar)."""
        if raw is None:
            return None
        items = self.string_list(path, raw)
        for index, item in enumerate(items):
            if not _LABEL_PATTERN.fullmatch(item):
                self.problem(f"{path}[{index}]", f"{item!r} is neither a {kind} nor a pattern of {kind}s "
                             "(grammar [a-z0-9][a-z0-9._:/-]{0,127}, with * ? [...] for patterns: team-*)")  # fmt: skip
        return tuple(items)

    def detector(self, path: str, raw: Any) -> DetectorSpec | None:
        if isinstance(raw, str):
            if raw not in BUILTIN_DETECTORS:
                self.problem(path, f"unknown detector {raw!r} (built-in: {', '.join(BUILTIN_DETECTORS)}; "
                             "or {name: ..., pattern: ...})")  # fmt: skip
                return None
            return DetectorSpec(raw)
        section = self.mapping(path, raw, ("name", "pattern"), ("name", "pattern"))
        name = self.string(f"{path}.name", section.get("name"))
        pattern = self.string(f"{path}.pattern", section.get("pattern"))
        if name is not None and not is_label(f"pii:{name}"):
            self.problem(f"{path}.name", f"pii:{name} is not a valid label")
            return None
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                self.problem(f"{path}.pattern", f"not a valid regular expression: {exc}")
                return None
        return DetectorSpec(name, pattern) if name and pattern else None

    def telemetry(self, raw: Any) -> Telemetry:
        known = (
            "service_name", "exporter", "endpoint", "protocol", "sample_ratio", "capture_content",
            "queue_size", "export_timeout_s", "resource_attributes", "headers", "compression", "certificate",
            "insecure", "traces_endpoint", "metrics",
        )  # fmt: skip
        s = self.section("telemetry", raw, Telemetry, known)
        # OTEL_* variables fill what the file leaves out (proxy/config/otel_env.py)
        from_env, env_problems = telemetry_from_env(self.env, self.warnings)
        from_env = {key: _verbatim(value) for key, value in from_env.items()}  # values, not config text to expand
        self.problems.extend(env_problems)
        unwritable: list[str] = []
        surrogates(from_env, "telemetry", unwritable)  # a variable's byte that is not UTF-8, as Python decodes it
        if unwritable:
            self.problems.extend(
                f"{problem} (from an OTEL_* variable whose value is not UTF-8)" for problem in unwritable
            )
            from_env = {}
        if "endpoint" in s.values or "traces_endpoint" in s.values:  # the file's endpoint wins over any OTEL_* one
            from_env.pop("traces_endpoint", None)
            if not names_protocol(self.env):  # the http/protobuf an OTEL_* endpoint implies is that endpoint's own:
                from_env.pop("protocol", None)  # the file's is spoken as the file says (grpc when it says nothing)
        s.values = {**from_env, **s.values}
        if isinstance(from_env.get("resource_attributes"), dict) and isinstance(raw, dict):
            s.values["resource_attributes"] = {**from_env["resource_attributes"],
                                               **(raw.get("resource_attributes") or {})}  # fmt: skip
        headers = s.values.get("headers") or {}
        if not isinstance(headers, dict):
            self.problem("telemetry.headers", "expected a mapping of header name to value")
            headers = {}
        headers = self.flat_values("telemetry.headers", headers)
        exporter = s.read("exporter", partial(self.choice, options=("otlp", "console", "none")))
        protocol = s.read("protocol", partial(self.choice, options=("grpc", "http/protobuf")))
        endpoint = self.otlp_endpoint("telemetry.endpoint", s.raw("endpoint"), protocol)
        traces_endpoint = self.otlp_endpoint("telemetry.traces_endpoint", s.raw("traces_endpoint"), protocol)
        certificate = self.string("telemetry.certificate", s.raw("certificate"), optional=True)
        if (
            certificate is not None
            and exporter == "otlp"
            and self.readable_files("telemetry", {"certificate": certificate})
        ):
            import ssl  # here: only an exporter over TLS needs it

            try:  # what the exporter reads when it is built (at start, or by a reload): a bad bundle refuses it there
                ssl.create_default_context(cafile=certificate)
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                self.problem("telemetry.certificate", f"cannot use {certificate!r} as a CA bundle: {exc}")
        attrs = s.values.get("resource_attributes") or {}
        if not isinstance(attrs, dict):
            self.problem("telemetry.resource_attributes", "expected a mapping of string to string")
            attrs = {}
        attrs = self.flat_values("telemetry.resource_attributes", attrs)
        return Telemetry(
            service_name=s.read("service_name", self.string),
            metrics=s.read("metrics", self.boolean),
            exporter=exporter,
            endpoint=endpoint,
            protocol=protocol,
            sample_ratio=s.read("sample_ratio", partial(self.number, maximum=1.0)),
            capture_content=s.read("capture_content", self.boolean),
            queue_size=s.read("queue_size", partial(self.integer, minimum=1)),
            export_timeout_s=s.read(
                "export_timeout_s", partial(self.number, minimum=0.001, maximum=EXPORT_TIMEOUT_MAX_S)
            ),
            resource_attributes=tuple(
                (str(written(k)), str(written(self.expand(f"telemetry.resource_attributes.{k}", v))))
                for k, v in attrs.items()
            ),
            headers=tuple(
                (str(written(k)), str(written(self.expand(f"telemetry.headers.{k}", v)))) for k, v in headers.items()
            ),
            compression=s.read("compression", partial(self.choice, options=("gzip", "none"))),
            certificate=certificate,
            insecure=self.boolean("telemetry.insecure", s.raw("insecure")) if s.raw("insecure") is not None else None,
            traces_endpoint=traces_endpoint,
        )

    def otlp_endpoint(self, path: str, value: Any, protocol: str | None) -> str | None:
        """An OTLP endpoint, read as its exporter reads it: over gRPC a `host:port` too (`OtlpGrpcSink`; the
        OpenTelemetry spec has it take any form the gRPC client does), an http(s) URL otherwise."""
        endpoint = self.string(path, value, optional=True)
        if endpoint is not None and protocol == "grpc" and grpc_target_scheme(endpoint):
            if (said := _grpc_target_problem(endpoint)) is not None:
                self.problem(path, said)
        elif endpoint is not None and protocol == "grpc" and (why := _OTHER_TARGETS.get(_scheme_of(endpoint))):
            self.problem(path, f"{_scheme_of(endpoint)}: is a gRPC target the span exporter does not send to "
                         f"({why}): an OTLP/gRPC endpoint is host:port, http(s)://host:port or a target of dns:, "
                         "ipv4:, ipv6:, unix: or unix-abstract:")  # fmt: skip
        elif endpoint is not None:
            grpc_target = protocol == "grpc" and "://" not in endpoint
            url = f"http://{endpoint}" if grpc_target else endpoint
            parts = _http_url(url)
            if parts is None:
                # over gRPC its path hidden, as wherever else one is refused (`_grpc_dropped`, `parse_address`), when
                # its host:port is the problem too (`collector :4317/***`)
                shown = _address_shown(endpoint) if protocol == "grpc" else shown_url(endpoint)
                # (a host:port no URL reads, `c:4317:4317`, said as a gRPC upstream's: not as no http URL; and one
                # whose host is the problem, `tok+en:s3cret:4317`, as its address, not as the URL `http://` makes it)
                address = grpc_target and ":" in endpoint
                said = (_address_problem(endpoint) or _unbracketed(endpoint)) if address else None
                said = (None if said and _url_said(url) is None else _url_problem(url, shown)) or said
                self.problem(path, said or f"expected an http:// or https:// URL, got {shown!r}")
            elif (
                "@" in parts.netloc
            ):  # neither sink sends a userinfo (each connects to the host alone): said, not dropped
                self.problem(path, f"a user or password in {shown_url(endpoint)!r} is not sent to the collector: give "
                             "its credentials as telemetry.headers (authorization: Basic ...)")  # fmt: skip
            elif protocol != "grpc" and (said := _socket_host_problem(url)) is not None:  # (http.client's)
                self.problem(path, said)
            elif protocol == "grpc" and (dropped := _grpc_dropped(endpoint, parts)) is not None:
                self.problem(path, dropped)
            elif protocol == "grpc" and not grpc_target and parts.scheme == "http" and parts.port is None:
                # OpenTelemetry's gRPC exporter gives grpc the URL's host alone (its `netloc`), which grpc reads on 443,
                # grpc's default; this exporter sent to 4317: one URL, two ports. Until 2026-12-07 it loaded unsaid
                # (a `:` with no port after it, `http://collector:`, not written twice: until 2026-12-07 it said
                # `write 'http://collector::4317'`)
                write = f"http://{parts.netloc.removesuffix(':')}:4317"
                self.problem(path, f"{shown_url(endpoint)!r} names no port: OpenTelemetry's gRPC exporter sends an "
                             "http:// URL without one to 443, grpc's default, not to OTLP/gRPC's 4317; write "
                             f"{write!r}, or the port the collector listens on")  # fmt: skip
            elif grpc_target and parts.port is None and not _NO_HOSTS.search(endpoint):
                # a host alone (`notaurl`, `collector`) is none of a gRPC target's forms: grpc reads it on 443, the
                # OpenTelemetry SDKs pass it so, this exporter sent to 4317; until 2026-12-07 it loaded unsaid
                self.problem(path, f"expected host:port, an http:// or https:// URL or a gRPC target (dns:, ipv4:, "
                             f"ipv6:, unix:, unix-abstract:), got {_address_shown(endpoint)!r}: a host alone names no "
                             "port (OTLP/gRPC's is 4317)")  # fmt: skip
            elif (
                grpc_target
                and (_NO_HOSTS.search(endpoint) or parts.port is not None)
                and (said := _address_problem(endpoint)) is not None
            ):
                # a host[:port], as a gRPC upstream's (`parse_address`): `gw/xyz/q9s3cr:4317`, `collector:4317/v1`,
                # `gate way:4317`, loaded, the exporter would connect to `gw` and drop the rest, a path, a query; and
                # its host one (`c,d:4317`: until 2026-12-06 it loaded, and the exporter resolved `c,d`)
                self.problem(path, said)
        return endpoint

    def flat_values(self, path: str, mapping: dict[Any, Any]) -> dict[Any, Any]:
        """The entries whose value is one scalar: a nested mapping or list would be sent as its Python repr."""
        flat = {}
        for key, value in mapping.items():
            if isinstance(value, dict | list):
                kind = "a mapping" if isinstance(value, dict) else "a list"
                self.problem(f"{path}.{key}", f"expected a string, number or boolean, got {kind}")
            else:
                flat[key] = value
        return flat

    def lineage(self, raw: Any) -> Lineage:
        known = ("store", "retention_days", "flush_interval_s", "head_log_interval_s", "baseline", "on_unapproved", "integrity_key_file",
                 "integrity_retired_key_files", "openlineage", "password_file", "journal", "journal_max_rows",
                 "sidecar")  # fmt: skip
        s = self.section("lineage", raw, Lineage, known)
        lineage = Lineage(
            store=self.string("lineage.store", s.raw("store"), optional=True),  # null: no edge store
            retention_days=s.read("retention_days", partial(self.number, minimum=0.0001)),
            flush_interval_s=s.read("flush_interval_s", partial(self.number, minimum=0.01, maximum=1.0)),
            head_log_interval_s=s.read("head_log_interval_s", partial(self.number, minimum=0.0)),
            baseline=self.string("lineage.baseline", s.raw("baseline"), optional=True),
            on_unapproved=s.read("on_unapproved", partial(self.choice, options=("warn", "block"))),
            integrity_key_file=self.string("lineage.integrity_key_file", s.raw("integrity_key_file"), optional=True),
            integrity_retired_key_files=tuple(  # absent: the model's default, ()
                self.string_list("lineage.integrity_retired_key_files", s.values.get("integrity_retired_key_files"))
            ),
            openlineage=self.openlineage(s.raw("openlineage")),
            password_file=self.string("lineage.password_file", s.raw("password_file"), optional=True),
            journal=s.read("journal", self.string),
            journal_max_rows=s.read("journal_max_rows", partial(self.integer, minimum=1)),
            # absent: the model's default, the host name (an explicit null is no name)
            sidecar=self.name("lineage.sidecar", s.values["sidecar"]) or ""
            if "sidecar" in s.values
            else host_sidecar(),
        )
        self.store_url(lineage)
        postgres = lineage.store is not None and lineage.store.startswith(("postgresql://", "postgres://"))
        for key in ("journal", "journal_max_rows") if not postgres else ():
            if key in s.values:  # as the model's default, never read: a SQLite store (or none) has no journal
                self.warnings.append(f"lineage.{key}: never used: only a PostgreSQL lineage.store (postgresql://...) "
                                     "has a journal (remove it)")  # fmt: skip
        if lineage.integrity_key_file is not None:
            problem = key_problem(lineage.integrity_key_file)
            if problem is not None:
                self.problem("lineage.integrity_key_file", problem)
        for index, path in enumerate(lineage.integrity_retired_key_files):
            where = f"lineage.integrity_retired_key_files[{index}]"
            problem = key_problem(path, existing=True, signs=False)
            if problem is not None:
                self.problem(where, problem)
            elif path == lineage.integrity_key_file or path in lineage.integrity_retired_key_files[:index]:
                self.problem(where, f"{path!r} is named twice: each key once, oldest first, the current one in "
                             "lineage.integrity_key_file")  # fmt: skip
        if lineage.integrity_retired_key_files and lineage.integrity_key_file is None:
            self.problem("lineage.integrity_retired_key_files", "retired keys need lineage.integrity_key_file (the "
                         "key that replaced them, which signs from now on)")  # fmt: skip
        if lineage.on_unapproved == "block" and lineage.baseline is None:
            self.problem("lineage.on_unapproved", "block needs lineage.baseline (the approved flows to check against)")
        return lineage

    def store_url(self, lineage: Lineage) -> None:
        """A PostgreSQL `lineage.store` is checked here (parsed, never connected), so a typo fails `check`."""
        store = lineage.store
        if lineage.password_file is not None:
            try:
                read_secret(lineage.password_file)
            except OSError as exc:
                self.problem("lineage.password_file",
                             f"cannot read a password from {lineage.password_file!r}: {exc.strerror or exc}")  # fmt: skip
        if store is not None and (said := store_pairs_problem(store)) is not None:
            self.problem("lineage.store", said)
        for key, value in (("lineage.store", store), ("lineage.journal", lineage.journal)):
            if value is not None and not value.startswith(("postgresql://", "postgres://")):
                try:
                    sqlite_file(value)
                except SqliteNameError as exc:
                    self.problem(key, str(exc))
        if store is None or not store.startswith(("postgresql://", "postgres://")):
            if lineage.password_file is not None:
                self.problem("lineage.password_file", "only a PostgreSQL lineage.store (postgresql://...) has one")
            return
        slashed = store_userinfo(store)  # (said in the config's words: libpq's would quote the password)
        if slashed is not None:
            self.problem("lineage.store", f"{userinfo_hint(store, *slashed)} in {shown_url(store, slashed)!r}")
            return
        # (`@triton :5432`: libpq drops a space there, keeps a tab, `triton\t`, which `urlsplit` drops in turn)
        if _spaced(re.split(r"[/?#]", store.partition("://")[2], maxsplit=1)[0]):
            self.problem("lineage.store", f"a host:port holds no white space in {shown_url(store)!r}")
            return
        try:
            from psycopg import conninfo

            params = conninfo.conninfo_to_dict(store)
        except ImportError:
            self.problem("lineage.store", "a PostgreSQL store needs psycopg: pip install 'psycopg[binary]'")
            return
        except Exception as exc:
            from proxy.record.postgres import scrub

            self.problem("lineage.store", f"not a valid PostgreSQL URL: {scrub(str(exc), store)}")
            return
        if not params.get("dbname"):
            self.problem("lineage.store", "the PostgreSQL URL names no database: postgresql://user@host:5432/DB")
        for key in ("host", "hostaddr", "port"):  # (`?host=tri%20ton`, `@triton%20:5432`: host `triton ` to libpq)
            items = str(params.get(key) or "").split(",")  # (a socket's directory, `/run/my sockets`, may hold one)
            if any(_SPACED.search(item) and not item.startswith("/") for item in items):
                self.problem("lineage.store", f"the PostgreSQL URL's {key} holds white space, which no {key} does")
        for port in str(params.get("port") or "").split(","):  # one a host (`h1:5432,h2:5433`); none: libpq's 5432
            if (said := _not_ascii(port)) is not None:
                self.problem("lineage.store", f"{said} in the PostgreSQL URL")
            elif port and not (port.isdecimal() and 0 < int(port) < 65536):  # libpq says so only when it connects
                self.problem("lineage.store", f"the PostgreSQL URL's port {port!r} is not a port (1-65535)")

    def openlineage(self, raw: Any) -> OpenLineage | None:
        """`url:` is Marquez's http transport; `transport:` is openlineage-python's own config, checked by
        its own config classes now, so a typo fails `check` and start, not the first event."""
        if raw is None:
            return None
        path = "lineage.openlineage"
        known = ("url", "transport", "namespace", "snapshot_interval_s", "queue_size", "spool", "spool_max_events")
        s = self.section(path, raw, OpenLineage, known)
        url = self.string(f"{path}.url", s.values.get("url"), optional=True)
        transport = self.expand_tree(f"{path}.transport", s.values.get("transport"))
        if url is not None and transport is not None:
            self.problem(path, "give url (Marquez over http) or transport, not both")
        elif url is not None:
            # one try per event: openlineage-python's own retry (5 more on a 500, a refused connection or a read
            # timeout, with backoff: ~9 s, 30 s past timeouts) held the sender on top of its own retry at the next
            # snapshot, past what a shutdown waits (5 s). A `transport:` config's `retry` is used as written.
            transport = {"type": "http", "url": url, "endpoint": MARQUEZ_ENDPOINT, "retry": dict(_ONE_TRY)}
        elif isinstance(transport, dict) and transport.get("type") == "http" and "retry" not in transport:
            transport = {**transport, "retry": dict(_ONE_TRY)}  # the same, where its config leaves retries unsaid
        elif transport is None:
            self.problem(path, "needs url (e.g. http://marquez:5000) or transport (openlineage-python's transport "
                         "config, e.g. {type: kafka, ...})")  # fmt: skip
        where = f"{path}.url" if url is not None else f"{path}.transport"
        if transport is not None and not self.lineage_transport(where, transport, url_given=url is not None):
            transport = None
        elif transport is not None and url is not None:
            transport = {**transport, **_marquez_endpoint(url)}  # (checked, and said, as written)
        return OpenLineage(
            transport=transport or {},
            namespace=s.read("namespace", self.name),
            # at most a day: past ~9.2e9 s the sender's wait for the next snapshot raised OverflowError once an event
            # had failed, and the thread died (nothing sent again, a flush waited for ever, a shutdown said nothing)
            snapshot_interval_s=s.read("snapshot_interval_s", partial(self.number, minimum=0.01, maximum=86400.0)),
            queue_size=s.read("queue_size", partial(self.integer, minimum=1)),
            spool=s.read("spool", self.string),
            spool_max_events=s.read("spool_max_events", partial(self.integer, minimum=1)),
        )

    def expand_tree(self, path: str, value: Any) -> Any:
        """${VAR} in every string of a nested value (an API key in a transport's auth)."""
        if isinstance(value, dict):
            return {key: self.expand_tree(f"{path}.{key}", item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.expand_tree(f"{path}[{index}]", item) for index, item in enumerate(value)]
        return self.expand(path, value)

    def lineage_transport(self, path: str, transport: Any, *, url_given: bool) -> bool:
        from openlineage.client.transport import get_default_factory
        from openlineage.client.utils import import_from_string

        if not isinstance(transport, dict):
            self.problem(path, "expected a mapping: openlineage-python's transport config ({type: http|file|...})")
            return False
        kinds = get_default_factory().transports
        kind = transport.get("type")
        if not isinstance(kind, str) or (kind not in kinds and "." not in kind):
            self.problem(f"{path}.type", f"unknown transport type {kind!r} (openlineage-python has: "
                         f"{', '.join(sorted(kinds))}; or the dotted path of your own Transport class)")  # fmt: skip
            return False
        top = path if url_given else f"{path}.url"
        if kind in _URL_TRANSPORTS and not self.transport_url(top, transport.get("url"), kind):
            return False
        nested = [self.transport_url(where, url, inner) for where, url, inner in _composite_urls(path, transport)]
        if not all(nested):  # (each said: a composite's or transform's http transports read their URLs as the top one)
            return False
        try:
            target = kinds.get(kind, kind)
            transport_class = import_from_string(target) if isinstance(target, str) else target
            config_class = transport_class.config_class
            config_class = import_from_string(config_class) if isinstance(config_class, str) else config_class
            config_class.from_dict(copy.deepcopy(transport))
        except Exception as exc:  # openlineage-python's own checks raise what they like
            self.problem(path, f"openlineage-python refuses this {kind} transport: {redact_userinfo(str(exc))}")
            return False
        missing = _missing_packages(transport)
        if missing:
            self.problem(path, f"this {kind} transport needs {', '.join(missing)}, not installed: "
                         f"pip install {' '.join(missing)}")  # fmt: skip
            return False
        return True

    def transport_url(self, path: str, url: Any, kind: str) -> bool:
        """Whether an OpenLineage http transport's `url` is one its HTTP client reads as written; said when not. An
        `http` one's (requests, whose urllib3 writes an ASCII name with Python's idna codec: `_idna_problem`) holds no
        label over 63 characters, which `async_http`'s httpx2 looks up where a hosts file lists it."""
        parts = _split(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            shown = shown_url(url) if isinstance(url, str) else url
            url_problem = _url_problem(url, shown) if isinstance(url, str) else None
            self.problem(path, url_problem or f"expected an http(s):// URL, got {shown!r}")
            return False
        ascii_name = kind == "http" and (parts.hostname or "").isascii()
        if ascii_name and (said := _socket_host_problem(url)) is not None:
            self.problem(path, said)
            return False
        if (said := _unmapped_host_problem(url, strict=kind == "http")) is not None:
            self.problem(path, said)
            return False
        return True

    def baseline(self, lineage: Lineage) -> Baseline | None:
        """The approved flows, read now so that `check`, start and every reload refuse a bad file."""
        if lineage.baseline is None:
            return None
        try:
            return load_baseline(lineage.baseline)
        except BaselineError as exc:
            for problem in exc.problems:
                self.problem("lineage.baseline", problem)
            return None

    def logging(self, raw: Any) -> Logging:
        s = self.section("logging", raw, Logging, ("format", "level", "access", "client_address"))
        return Logging(
            format=s.read("format", partial(self.choice, options=("text", "json"))),
            level=s.read("level", partial(self.choice, options=("debug", "info", "warning", "error"))),
            access=s.read("access", self.boolean),
            client_address=s.read("client_address", self.boolean),
        )

    def limits(self, raw: Any) -> Limits:
        known = ("max_body_bytes", "scan_max_chars", "drain_timeout_s", "buffer_max_bytes", "idle_timeout_s",
                 "header_timeout_s", "max_header_bytes", "max_headers", "max_connections", "max_concurrent_streams",
                 "bodies_max_bytes", "grpc_stream_window_bytes", "grpc_max_calls", "grpc_request_timeout_s",
                 "grpc_arriving_max_bytes", "grpc_max_reply_bytes", "worker_stall_s")  # fmt: skip
        s = self.section("limits", raw, Limits, known)
        limits = Limits(
            max_body_bytes=s.read("max_body_bytes", self.integer),
            scan_max_chars=s.read("scan_max_chars", self.integer),
            drain_timeout_s=s.read("drain_timeout_s", self.number),
            buffer_max_bytes=s.read("buffer_max_bytes", self.integer),
            idle_timeout_s=s.read("idle_timeout_s", partial(self.number, minimum=0.01)),
            header_timeout_s=s.read("header_timeout_s", partial(self.number, minimum=0.01)),
            max_header_bytes=s.read("max_header_bytes", partial(self.integer, minimum=1024)),
            max_headers=s.read("max_headers", partial(self.integer, minimum=8)),
            max_connections=s.read("max_connections", partial(self.integer, minimum=1)),
            max_concurrent_streams=s.read("max_concurrent_streams", partial(self.integer, minimum=1)),
            bodies_max_bytes=s.read("bodies_max_bytes", partial(self.integer, minimum=1)),
            grpc_stream_window_bytes=s.read("grpc_stream_window_bytes", partial(self.integer, minimum=65_535)),
            grpc_max_calls=s.read("grpc_max_calls", partial(self.integer, minimum=1)),
            grpc_request_timeout_s=s.read("grpc_request_timeout_s", partial(self.number, minimum=0.01)),
            grpc_arriving_max_bytes=s.read("grpc_arriving_max_bytes", partial(self.integer, minimum=1)),
            grpc_max_reply_bytes=s.read("grpc_max_reply_bytes", self.positive_or_none),
            worker_stall_s=s.read("worker_stall_s", self.number),
        )
        if 0 < limits.worker_stall_s < WORKER_STALL_MIN_S:
            self.problem("limits.worker_stall_s", f"must be 0 (never) or >= {WORKER_STALL_MIN_S:g} (the stall /readyz "
                         f"reports: a worker is out of traffic before it is killed), got {limits.worker_stall_s:g}")  # fmt: skip
        if limits.grpc_stream_window_bytes > 2**31 - 1:  # HTTP/2's largest window (and grpc's option, a C int)
            self.problem("limits.grpc_stream_window_bytes", f"{limits.grpc_stream_window_bytes} is more than HTTP/2's "
                         "largest window, 2147483647")  # fmt: skip
        if limits.grpc_max_reply_bytes is not None and limits.grpc_max_reply_bytes > 2**31 - 1:  # (a C int: grpc's)
            self.problem("limits.grpc_max_reply_bytes", f"{limits.grpc_max_reply_bytes} is more than grpc takes, "
                         "2147483647")  # fmt: skip
        if limits.bodies_max_bytes < limits.max_body_bytes:
            self.problem("limits.bodies_max_bytes", f"{limits.bodies_max_bytes} is less than limits.max_body_bytes "
                         f"({limits.max_body_bytes}): a body the limit allows would always be refused")  # fmt: skip
        return limits

    def cross_check(
        self,
        top: dict[str, Any],
        listen: Listen | None,
        upstreams: list[Upstream],
        routes: list[Route],
        callers: list[Caller],
        zones: list[Zone],
        detectors: list[DetectorSpec],
    ) -> None:
        """References between sections: every name used is defined, and defined once."""
        by_name = {}
        for index, upstream in enumerate(upstreams):
            if upstream.name in by_name:
                self.problem(f"upstreams[{index}].name", f"duplicate upstream {upstream.name!r}")
            by_name[upstream.name] = upstream
        if isinstance(top.get("upstreams"), list) and not top["upstreams"]:
            self.problem("upstreams", "at least one upstream is required")
        seen_models: set[str] = set()
        for index, route in enumerate(routes):
            if route.upstream not in by_name:
                self.problem(f"routes[{index}].upstream", f"unknown upstream {route.upstream!r}")
            if route.model in seen_models:
                self.problem(f"routes[{index}].model", f"duplicate route for model {route.model!r}")
            seen_models.add(route.model)
        names: set[str] = set()
        keys: set[str] = set()
        identities: dict[str, str] = {}  # a certificate's identity: the caller it names
        # a listen.tls that did not load has its own problem: its callers' are not repeated
        tls_given = isinstance(top.get("listen"), dict) and top["listen"].get("tls") is not None
        asks_for_certificates = listen is None or (tls_given and (listen.tls is None or bool(listen.tls.client_ca)))
        for index, caller in enumerate(callers):
            if caller.name in names:
                self.problem(f"callers[{index}].name", f"duplicate caller {caller.name!r}")
            names.add(caller.name)
            if caller.tls_identity is not None and not asks_for_certificates:
                self.problem(f"callers[{index}].tls_identity", "no client certificate is ever asked for: set "
                             "listen.tls.client_ca")  # fmt: skip
            if caller.tls_identity is not None:
                if caller.tls_identity in identities:
                    self.problem(f"callers[{index}].tls_identity", "the same identity is given to two callers "
                                 f"({identities[caller.tls_identity]!r} and {caller.name!r})")  # fmt: skip
                identities.setdefault(caller.tls_identity, caller.name)
            if caller.api_key_sha256 is not None:
                if caller.api_key_sha256 in keys:
                    self.problem(f"callers[{index}].api_key_sha256", "the same key is given to two callers")
                keys.add(caller.api_key_sha256)
        zone_names: set[str] = set()
        for index, zone in enumerate(zones):
            if zone.name in zone_names:
                self.problem(f"zones[{index}].name", f"duplicate zone {zone.name!r}")
            zone_names.add(zone.name)
            if zone.reroute_to is None:
                continue
            target = by_name.get(zone.reroute_to)
            if target is None:
                self.problem(f"zones[{index}].on_deny", f"unknown upstream {zone.reroute_to!r}")
            elif zone.regions is not None and target.region not in zone.regions:
                self.problem(
                    f"zones[{index}].on_deny",
                    f"reroute target {target.name!r} is in region {target.region!r}, "
                    f"not one the zone allows ({', '.join(sorted(zone.regions))})",
                )
        detector_names: set[str] = set()
        for index, detector in enumerate(detectors):
            if detector.name in detector_names:
                self.problem(f"detectors[{index}]", f"duplicate detector {detector.name!r}")
            detector_names.add(detector.name)

    def record_for_zones(self, zones: list[Zone], lineage: Lineage) -> None:
        """A zone that requires a record fails closed while the store takes nothing; with no store at all
        nothing ever records, and its calls went through unrecorded. A store that did not load (null then)
        has its own problem."""
        if lineage.store is not None or any(problem.startswith("lineage.store:") for problem in self.problems):
            return
        for index, zone in enumerate(zones):
            if zone.require_record:
                self.problem(f"zones[{index}].require_record", f"zone {zone.name!r} requires a record, but "
                             "lineage.store is null: set lineage.store, or drop require_record")  # fmt: skip


_USERINFO = re.compile(r"(^|//)([^/?#\s]*)@")  # a URL's `user:password@` (up to the authority's last `@`)


def redact_userinfo(text: str) -> str:
    """`text` with the password of every URL's userinfo replaced by `***` (a userinfo without one, which
    may be a token, entirely): for a URL in a log line or a config problem, and for an error that quotes
    one. A text that starts with a userinfo is taken as a URL missing its `scheme://`."""
    return _USERINFO.sub(lambda m: f"{m[1]}{m[2].partition(':')[0]}:***@" if ":" in m[2] else f"{m[1]}***@", text)


# a `user:password@` whose password holds a `/`, `?` or `#` written unescaped (`ops:s3cr/et@host`), up to the last
# `@`: `urlsplit` (and `_USERINFO`) end the authority at the first of them. A port (digits, then a path or query) is not
# one: `http://h:8000/v1?user=a@b` holds no password
_RESERVED_USERINFO = re.compile(r"(^|//)([^/?#@:\s[]*):(?![0-9]*[/?#])\S*@")


def shown_url(text: str, userinfo: tuple[int, int] | None = None) -> str:
    """A URL as a config problem quotes it: its password hidden (`redact_userinfo`; one holding a `/`, `?` or `#`
    too, to the last `@`: `userinfo`, else `_slashed_userinfo`'s; and what may be a token before a path's `@` after a
    host of one label, `_token_at`'s), and its query and fragment (`?***`): a query may
    hold a key (`?key=...`, as some APIs and collectors take theirs), and a reload logs problems."""
    # (one of digits before its `/` too, which `_RESERVED_USERINFO` takes for a port)
    slashed = userinfo if userinfo is not None else _slashed_userinfo(text) or _token_at(text)
    if slashed is not None:
        start, at = slashed
        # one without a `:` may be a token (`redact_userinfo`): hidden whole, as is one whose `:` follows an `@` (a
        # host's port's, read to a later `@`: `tok/en@collector:4318/a@b`)
        user, colon, _ = text[start:at].partition(":")
        text = text[:start] + (f"{user}:***" if colon and "@" not in user else "***") + text[at:]
    shown = redact_userinfo(_RESERVED_USERINFO.sub(r"\1\2:***@", text))
    for mark in ("#", "?"):
        head, sep, _ = shown.partition(mark)
        shown = head + (f"{mark}***" if sep else "")
    if (backslash := _backslash_at(shown)) >= 0:  # (`http://triton:8000\***`: a path typed with a `\`)
        shown = shown[: backslash + 1] + "***"
    return shown


def _backslash_at(url: str) -> int:
    """Where a `\\` is in a URL's host:port (after any userinfo, before its path), else -1: typed for the `/` that
    begins a path (`http://collector:4317\\v1\\traces`, a Windows habit; WHATWG readers take it for one, urllib,
    yarl and grpc for no port), so what follows it is a path's, which may be a token, and is hidden."""
    scheme = _SCHEME.match(url)
    start = scheme.end() if scheme else 0
    end = min((index for index in (url.find(mark, start) for mark in "/?#") if index >= 0), default=len(url))
    return url.find("\\", max(url.rfind("@", start, end) + 1, start), end)


def read_secret(path: str) -> bytes:
    """The secret a file holds (an HMAC key, a password) less surrounding whitespace. Raises OSError,
    whose `strerror` says why, when the file cannot be read or holds nothing."""
    secret = read_bytes(path).strip()
    if not secret:
        raise OSError(errno.ENODATA, "the file is empty", path)
    return secret


MIN_KEY_BYTES = 16  # an HMAC key shorter than this could be guessed, and the chain forged with it


def key_problem(path: str, *, existing: bool = False, signs: bool = True) -> str | None:
    """Why the file cannot serve as the chain's HMAC key (None when it can): unreadable, or too short to
    be secret. A missing, empty or short key's message says how to make one (not for an `existing` key)."""
    found = read_key(path, existing=existing, signs=signs)
    return found if isinstance(found, str) else None


def read_key(path: str, *, existing: bool = False, signs: bool = True) -> bytes | str:
    """The chain's HMAC key in `path`, read once (a pipe can be read only once), or why it cannot be one:
    unreadable, or too short to be secret. With `existing` (a key that must be the chains' own), the
    message does not suggest making a new one. A key that `signs` nothing (a retired one: it only checks the
    entries signed with it before) may be shorter: earlier releases signed with one, and rotating
    it away is the way on for their stores."""
    make = (
        ""
        if existing
        else f"make one readable only by you with `(umask 077; head -c 32 /dev/urandom > {shlex.quote(path)})`"
    )
    try:
        key = read_secret(path)
    except OSError as exc:
        hint = f" ({make})" if make and exc.errno in (errno.ENOENT, errno.ENODATA) else ""
        return f"cannot read a key from {path!r}: {exc.strerror or exc}{hint}"
    if len(key) >= MIN_KEY_BYTES or not signs:
        return key
    size = f"{len(key)} byte{'' if len(key) == 1 else 's'}"
    return (f"the key in {path!r} is {size}: a key needs at least {MIN_KEY_BYTES} (surrounding whitespace "
            f"aside){'; ' + make if make else ''}")  # fmt: skip


def read_retired_keys(paths: Sequence[str]) -> tuple[bytes, ...] | str:
    """The keys in `paths` (`--retired-key-file`, oldest first), each read as `read_key` reads a retired key
    the chain was signed with; or why the first that cannot be one cannot."""
    keys: list[bytes] = []
    for path in paths:
        found = read_key(path, existing=True, signs=False)
        if isinstance(found, str):
            return found
        keys.append(found)
    return tuple(keys)


def _same_socket(one: Address, other: Address) -> bool:
    """Whether two listen addresses take the same port: the same host, or a wildcard of the other's
    family on either (`::` is dual-stack: every address; `0.0.0.0` every IPv4 one, so `[::1]` beside it
    is another socket)."""
    if one.port != other.port:
        return False
    if one.host == other.host or "::" in (one.host, other.host):
        return True
    if "0.0.0.0" in (one.host, other.host):
        rest = other.host if one.host == "0.0.0.0" else one.host
        return ":" not in rest
    return False
