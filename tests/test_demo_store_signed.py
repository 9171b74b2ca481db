"""`demo --store` on a store whose chain is signed (a proxy's record, written with `lineage.integrity_key_file`):
the demo's writer, which has no key, refused it with the writer's advice, "set lineage.integrity_key_file as the
other writers do", which the demo cannot take (it has no config of the user's, nor a key option). The demo signs
nothing, so a signed store is never a demo's: it is refused as another proxy's record is, with advice the demo can
follow, and left as it was."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from proxy.record.store import EdgeKey, SqliteStore

KEY = b"k" * 32


def chain(path: Path) -> list[tuple[int, str]]:
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return [(int(seq), str(hash_)) for seq, hash_ in db.execute("SELECT seq, hash FROM chain ORDER BY seq")]
    finally:
        db.close()


def demo(store: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "proxy", "demo", "--store", str(store)], capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)  # fmt: skip


def refused(path: Path) -> None:
    before = chain(path)
    assert before and before[-1][1].startswith("hmac-sha256:"), before  # signed, as a keyed proxy signs
    done = demo(path)
    assert done.returncode == 1, done
    assert done.stderr == (f"lineage-proxy demo: --store {path}: its record is signed with an integrity key (a "
                           "proxy's lineage.integrity_key_file): a proxy's own record, not a demo's. The demo signs "
                           "nothing and takes no key (an unsigned entry on top of signed ones would leave that record "
                           "unverifiable). Give a new file (or one an earlier demo wrote), or leave out --store for a "
                           "temporary one\n"), done.stderr  # fmt: skip
    assert "demo model server" not in done.stdout  # refused before anything started
    assert chain(path) == before


def test_a_keyed_proxys_new_store_is_refused_with_advice_the_demo_can_follow(tmp_path: Path) -> None:
    path = tmp_path / "lineage.db"
    SqliteStore(path, key=KEY).close()  # a keyed proxy started on it, and no call came yet
    refused(path)


def test_a_keyed_proxys_store_with_flows_is_refused_so_too(tmp_path: Path) -> None:
    path = tmp_path / "lineage.db"
    store = SqliteStore(path, key=KEY)
    store.upsert([(EdgeKey("app", "assistant", "", "m@1", "", "allow", ""), 0.0, 1.0, 3, None)])
    store.close()
    refused(path)
