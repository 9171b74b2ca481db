"""The README and the shipped configs agree with each other and with the command line."""

from __future__ import annotations

import argparse
import hashlib
import re
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from proxy.cli import build_parser
from proxy.config import load

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_example_upstreams_each_have_their_own_port() -> None:
    config = load(ROOT / "config" / "example.yaml", env={})
    addresses = []
    for upstream in config.upstreams:
        if upstream.url:
            parts = urlsplit(upstream.url)
            addresses.append((upstream.name, f"{parts.hostname}:{parts.port}"))
        if upstream.grpc:
            addresses.append((upstream.name, upstream.grpc))
    seen: dict[str, str] = {}
    for name, address in addresses:
        assert address not in seen, f"{name} and {seen[address]} both on {address}"
        seen[address] = name


def test_readme_reroutes_name_an_upstream_of_the_example() -> None:
    upstreams = {upstream.name for upstream in load(ROOT / "config" / "example.yaml", env={}).upstreams}
    targets = re.findall(r"reroute:([A-Za-z0-9._-]+)", README)
    assert targets and set(targets) <= upstreams, (targets, upstreams)


def test_readme_key_hashes_say_which_key_they_are() -> None:
    hashes = re.findall(r"api_key_sha256: ([0-9a-f]{64}) +# the sha256 of the key `([^`]+)`", README)
    assert hashes
    for digest, key in hashes:
        assert hashlib.sha256(key.encode()).hexdigest() == digest
    assert len(hashes) == README.count("api_key_sha256: ")


def test_readme_jaeger_search_uses_the_checkpoint_compose_serves() -> None:
    compose = yaml.safe_load((ROOT / "config" / "compose.yaml").read_text(encoding="utf-8"))
    command = compose["services"]["model"]["command"]
    model = command[command.index("--model") + 1]
    assert f"`lineage.checkpoint={model}`" in README
    assert not set(re.findall(r"lineage\.checkpoint=([^`\s]+)", README)) - {model}


def test_readme_commands_table_documents_every_option() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    rows = [line for line in README.splitlines() if line.startswith("| `lineage-proxy ")]
    for name, command in commands.items():
        documented = " ".join(row for row in rows if row.startswith(f"| `lineage-proxy {name} "))
        assert documented, f"no row for {name}"
        for action in command._actions:
            for option in action.option_strings:
                if option.startswith("--") and option not in ("--help", "--log-level"):
                    assert option in documented, f"README's {name} row lacks {option}"
    assert "--log-level" in README


def test_readme_refers_to_no_document_users_do_not_have() -> None:
    assert "contract" not in README.lower() and "§" not in README


def test_readme_says_nowhere_that_oip_header_fields_go_unread() -> None:
    """Since 2026-12-03 an OIP or KServe V1 request's header fields are read (tests/test_oip_header_fields*.py, the
    KServe ones); "Design choices" still listed them among what is not read, beside the Detectors section saying
    they are."""
    not_read = README[README.index("- **Images and audio are not read**") :].split("\n- **", 1)[0]
    assert "nor request headers" not in not_read
    assert "header fields are read" in not_read
