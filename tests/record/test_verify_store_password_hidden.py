"""`verify --store postgresql://user:PASSWORD@host/db` against a baseline printed the store's URL as it was given:
its summary line (`ok: ... the flows of postgresql://lineage:PASSWORD@...`), the `--json` document's `store`, and
`--write-baseline`'s header comment, in a file made to be reviewed and committed. The password went into CI logs
(verify is a CI gate and a timer job) and into the repository. Every other reader (`edges`, `report`,
`verify --integrity`) shows such a URL without its password; now `verify` does too."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from proxy.cli import main
from proxy.record.postgres import PostgresStore
from proxy.record.store import EdgeKey
from tests.servers.postgres import PostgresServer

SECRET = "Hunter2-verify-secret"
BASELINE = "version: 1\nflows:\n  - {caller: app, purpose: assistant, labels: [a]}\n"


@pytest.fixture
def url(postgres: PostgresServer) -> str:
    """A store holding one flow, named by a URL with a password (the cluster trusts local logins, so it is sent
    and ignored: what a reader prints of it is what is tested)."""
    plain = postgres.database()
    store = PostgresStore(plain)
    store.upsert([(EdgeKey("app", "assistant", "a", "org/m@v1", "a", "allow"), 0.0, 1.0, 3, None)])
    store.close()
    return plain.replace("postgresql://postgres@", f"postgresql://postgres:{SECRET}@")


def test_verify_shows_the_store_without_its_password(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text(BASELINE)
    assert main(["verify", "--store", url, "--baseline", str(baseline)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("ok: 0 unapproved flows") and "postgres:***@" in out, out + err
    assert SECRET not in out + err
    assert main(["verify", "--store", url, "--baseline", str(baseline), "--json"]) == 0
    out, err = capsys.readouterr()
    document = orjson.loads(out)
    assert document["ok"] is True and "postgres:***@" in document["store"], document
    assert SECRET not in out + err


def test_a_written_baseline_names_the_store_without_its_password(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written = tmp_path / "baseline.yaml"
    assert main(["verify", "--store", url, "--write-baseline", str(written)]) == 0
    out, err = capsys.readouterr()
    text = written.read_text()
    assert "- caller: app" in text and "postgres:***@" in text, text
    assert SECRET not in text + out + err
