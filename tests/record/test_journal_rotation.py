"""A journal opened with the new key takes the batches journaled with the retired key before the rotation, and
none added with it after: someone who kept the old key (and can write the local journal) cannot add to the
record once the writer signs with the new key."""

from __future__ import annotations

from pathlib import Path

from proxy.record.journal import Journal
from proxy.record.store import EdgeKey, flat

OLD, NEW = b"the-old-key-0123456789", b"the-new-key-9876543210"
FLOW = EdgeKey("app", "assistant", "health", "org/model", "health", "allow", "")


def test_a_batch_signed_with_the_retired_key_after_the_rotation_is_set_aside(tmp_path: Path) -> None:
    before = Journal(tmp_path / "journal.db", key=OLD)  # a backlog journaled during an outage, before the rotation
    before.append("t-1", [flat((FLOW, 1.0, 1.0, 3, None))])
    before.close()
    rotated = Journal(tmp_path / "journal.db", key=NEW, retired=(OLD,))  # the writer restarted with the new key
    late = Journal(tmp_path / "journal.db", key=OLD)  # whoever kept the old key, after the rotation
    late.append("forged", [flat((FLOW._replace(caller="mallory"), 2.0, 2.0, 1000, None))])
    late.close()
    found = {token: rows for _, token, rows, _ in rotated.oldest()}
    rotated.close()
    assert isinstance(found["t-1"], list)  # journaled before the rotation: replayed
    assert found["forged"] == "its signature does not match: edited, or not written with this key"


def test_a_batch_signed_with_the_retired_key_after_the_rotation_stays_aside_at_the_next_start(tmp_path: Path) -> None:
    before = Journal(tmp_path / "journal.db", key=OLD)
    before.append("t-1", [flat((FLOW, 1.0, 1.0, 3, None))])
    before.close()
    Journal(tmp_path / "journal.db", key=NEW, retired=(OLD,)).close()  # the first start with the new key
    late = Journal(tmp_path / "journal.db", key=OLD)  # a writer still on the old key, or whoever kept it
    late.append("forged", [flat((FLOW._replace(caller="mallory"), 2.0, 2.0, 1000, None))])
    late.close()
    # restarted, the old key still retired (as it stays until a purge has cut the entries it signed): before, the
    # journal signed the forged batch again with the new key at this open, and it was replayed into the record
    restarted = Journal(tmp_path / "journal.db", key=NEW, retired=(OLD,))
    found = {token: rows for _, token, rows, _ in restarted.oldest()}
    restarted.close()
    assert isinstance(found["t-1"], list)  # the backlog from before the rotation, signed again at the first start
    assert found["forged"] == "its signature does not match: edited, or not written with this key"


def test_a_journal_journaled_with_the_new_key_from_its_start_signs_nothing_again(tmp_path: Path) -> None:
    Journal(tmp_path / "journal.db", key=NEW).close()  # made after the rotation: nothing to take over
    late = Journal(tmp_path / "journal.db", key=OLD)
    late.append("forged", [flat((FLOW, 2.0, 2.0, 1000, None))])
    late.close()
    opened = Journal(tmp_path / "journal.db", key=NEW, retired=(OLD,))  # the old key retired only later
    found = {token: rows for _, token, rows, _ in opened.oldest()}
    opened.close()
    assert found["forged"] == "its signature does not match: edited, or not written with this key"


def test_a_batch_set_aside_after_one_rotation_stays_aside_at_the_next(tmp_path: Path) -> None:
    """Rotated twice (OLD -> NEW -> NEWEST, both retired): the second rotation takes over NEW's backlog, not a batch
    signed with OLD after the first one, which every writer on NEW set aside."""
    newest = b"the-newest-key-5555555555"
    before = Journal(tmp_path / "journal.db", key=OLD)
    before.append("t-1", [flat((FLOW, 1.0, 1.0, 3, None))])
    before.close()
    Journal(tmp_path / "journal.db", key=NEW, retired=(OLD,)).close()  # the first rotation: t-1 signed again
    late = Journal(tmp_path / "journal.db", key=OLD)  # whoever kept the first key, after the first rotation
    late.append("forged", [flat((FLOW._replace(caller="mallory"), 2.0, 2.0, 1000, None))])
    late.close()
    during = Journal(tmp_path / "journal.db", key=NEW, retired=(OLD,))  # NEW's backlog: an outage before the second
    during.append("t-2", [flat((FLOW, 3.0, 3.0, 5, None))])
    during.close()
    rotated = Journal(tmp_path / "journal.db", key=newest, retired=(OLD, NEW))  # the second rotation
    found = {token: rows for _, token, rows, _ in rotated.oldest()}
    rotated.close()
    assert isinstance(found["t-1"], list) and isinstance(found["t-2"], list)  # the backlog: replayed
    assert found["forged"] == "its signature does not match: edited, or not written with this key"
