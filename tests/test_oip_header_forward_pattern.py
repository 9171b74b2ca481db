"""Triton hands its model only the header fields (gRPC metadata) its `--http-header-forward-pattern` and
`--grpc-header-forward-pattern` name: each a regular expression, matched as a search (`RE2::PartialMatch`) without
regard to case (Triton writes `(?i)` before it, command_line_parser.cc; `(?-i)` turns that off). `headers_to_model` was
true (every field read) or false (none), so in front of a Triton forwarding `^x-note$` a `Cookie` holding an address
got a call refused for what its model never saw. It now takes the pattern too (`config.forward_pattern`), and only the
fields it names are read (`oip.named_fields`). No Triton runs here: the faithful OIP server keeps what reaches it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from proxy.config import Upstream, parse
from proxy.protocols.oip import header_text, named_fields
from tests.harness import ProxyHandle
from tests.test_oip_headers_not_handed_to_model import ADDRESS, CONFIG, problems, text_input

PATTERN = "^x-note$"


def reached(log: Path) -> list[dict[str, str]]:
    return [json.loads(line)["metadata"] for line in log.read_text().splitlines()]


def test_only_the_fields_the_pattern_names_are_read(
    faithful: tuple[str, Path], make_proxy: Callable[..., ProxyHandle]
) -> None:
    address, log = faithful
    proxy = make_proxy(CONFIG, wait="probed", GRPC=address, HANDED=PATTERN)
    client = grpcclient.InferenceServerClient(proxy.grpc)
    ads = {"x-purpose": "ads", "x-data-labels": "public"}
    # a field the pattern does not name reaches Triton, not its model: not read, not a reason to refuse
    cookie = {"cookie": f"note={ADDRESS}", "x-notes": ADDRESS, **ads}
    assert client.infer("echo", [text_input("hello")], headers=cookie).as_numpy("TEXT")[0] == b"hello"
    assert [entry["cookie"] for entry in reached(log)] == [f"note={ADDRESS}"]
    with pytest.raises(InferenceServerException) as refused:  # the one it names reaches the model: read
        client.infer("echo", [text_input("hello")], headers={"x-note": ADDRESS, **ads})
    assert refused.value.status() == "StatusCode.PERMISSION_DENIED", refused.value
    assert len(reached(log)) == 1  # (never sent)


def upstream(handed: str) -> Upstream:
    """The upstream of `CONFIG` with `headers_to_model: "<handed>"`, as loaded."""
    text = CONFIG.replace('"${STORE}"', "null").replace("${HANDED}", handed.replace("\\", "\\\\"))
    (loaded,) = parse(text, env={"GRPC": "127.0.0.1:9"}).upstreams
    return loaded


def test_a_pattern_is_matched_as_triton_matches_it() -> None:
    text = header_text([("X-Note", ADDRESS), ("Cookie", f"a={ADDRESS}"), ("x-note-2", "b"), ("x-api-key", "k")])
    assert text is not None

    def named(pattern: str, fields: str = text) -> str | None:
        named = upstream(pattern).fields_named
        assert named is not None
        return named_fields(fields, named)

    assert named(PATTERN) == f"x-note: {ADDRESS}"
    # by case, as Triton matches it: read whatever the case (the proxy reads HTTP's names lowered)
    assert named("(?-i)^X-Note$") == f"x-note: {ADDRESS}"
    assert named("x-note") == f"x-note: {ADDRESS}\nx-note-2: b"  # a search, not a full match
    assert named("NOTE|^api") == f"x-note: {ADDRESS}\nx-note-2: b"
    assert named("^x-(note|api-key)$") == f"x-note: {ADDRESS}\nx-api-key: k"
    assert named("^nothing$") is None
    # a gRPC binary value holding a line break is one field still: what follows it is not read as another's field
    blob = header_text([("x-blob-bin", f"a\nx-note: {ADDRESS}".encode())])
    assert blob == f"x-blob-bin: a x-note: {ADDRESS}" and named(PATTERN, blob) is None
    assert named("blob", blob) == blob


def test_a_pattern_is_checked_at_load() -> None:
    oip = '{name: u, url: "http://127.0.0.1:9", protocol: oip, headers_to_model: "PATTERN"}'
    assert problems(oip.replace("PATTERN", PATTERN)) == []
    (bad,) = problems(oip.replace("PATTERN", "x-(note"))
    assert bad.startswith("upstreams[0].headers_to_model: the pattern 'x-(note' is not a regular expression: missing )")
    (empty,) = problems(oip.replace("PATTERN", ""))
    assert "an empty one names every field, as true does" in empty
    # a boolean as a shell or YAML 1.1 writes it (`${HANDED}` set to 1): refused as before, not a pattern naming the
    # fields whose name holds it (an MLServer's X-Note then reached its model unread)
    for word in ("1", "0", "yes", "Off"):
        (boolean,) = problems(oip.replace("PATTERN", word))
        assert boolean.startswith(f"upstreams[0].headers_to_model: expected true or false, got {word!r}"), boolean
    (case,) = problems(oip.replace("PATTERN", "(?-i:X-Note)"))
    assert "turns case-insensitive matching off inside it" in case
    # a POSIX class, which RE2 reads as one (`x-note` matches at Triton) and Python's re as a set and a `]` (it does not
    # here): such a pattern read no field Triton hands its model
    (posix,) = problems(oip.replace("PATTERN", "^x-[[:alpha:]]+$"))
    assert posix.startswith("upstreams[0].headers_to_model: the pattern '^x-[[:alpha:]]+$' is read otherwise by ")
    assert "Possible nested set at position 4" in posix and "[a-z]" in posix
    (kserve,) = problems(oip.replace("PATTERN", PATTERN).replace("oip", "kserve"))
    assert "KServe's model server hands its model every one" in kserve
    assert problems(oip.replace('"PATTERN"', "[x-note]")) == [
        "upstreams[0].headers_to_model: expected true, false or a Triton header forward pattern (a regular "
        "expression), got ['x-note']"
    ]


def test_triton_is_told_the_client_unless_its_pattern_hands_the_model_x_forwarded_for() -> None:
    assert not upstream(PATTERN).fields_to_model  # X-Forwarded-For reaches Triton, not its model: sent
    assert upstream("forwarded").fields_to_model  # (its model would get the client's address as data: not sent)
    assert upstream("true").fields_to_model and not upstream("false").fields_to_model


def test_check_names_the_key_and_the_regex_error(tmp_path: Path) -> None:
    from tests.test_cli import cli

    config = tmp_path / "triton.yaml"
    config.write_text(
        CONFIG.replace('"${STORE}"', "null").replace("${GRPC}", "127.0.0.1:9").replace("${HANDED}", "x-(note")
    )
    result = cli("check", "--config", str(config))
    assert result.returncode == 1
    assert (
        "upstreams[0].headers_to_model: the pattern 'x-(note' is not a regular expression: missing ), unterminated "
        "subpattern at position 2"
    ) in result.stderr, result.stderr
    config.write_text(config.read_text().replace("x-(note", PATTERN))
    assert cli("check", "--config", str(config)).returncode == 0
