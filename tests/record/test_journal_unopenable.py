"""A journal file the proxy cannot open (not a SQLite file: left by another program, or damaged; a directory in its
place) stops the start with one line naming the journal, as one in a missing directory does. It was reported as
the lineage store that could not be opened, the database's URL quoted, with SQLite's words about the journal
("file is not a database"): the operator was sent to look at a database that is fine."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config import parse
from proxy.errors import StartupError
from proxy.workers import open_process
from tests.harness import dead_port


@pytest.mark.parametrize("kind", ["not a database", "a directory"])
def test_a_journal_that_cannot_be_opened_is_named_at_the_start(tmp_path: Path, kind: str) -> None:
    journal = tmp_path / "journal.db"
    if kind == "a directory":
        journal.mkdir()
    else:
        journal.write_bytes(b"not a SQLite file, nor any database; " * 200)
    # a database that does not answer: the proxy starts anyway, journaling (README, Running a fleet)
    config = parse(f"""
listen: {{http: 127.0.0.1:0}}
upstreams: [{{name: u, url: "http://127.0.0.1:9"}}]
routes: [{{model: "*", upstream: u}}]
lineage: {{store: "postgresql://lineage@127.0.0.1:{dead_port()}/lineage", journal: "{journal}"}}
""")
    with pytest.raises(StartupError) as caught:
        open_process(config)
    message = str(caught.value)
    assert message.startswith(f"cannot open the lineage journal {journal}: "), message
    assert "\n" not in message and "postgresql://" not in message
