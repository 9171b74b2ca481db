"""`lineage-proxy check` said `ok` (exit 0) for a config whose OpenLineage spool (`lineage.openlineage.spool`, the
directory a stop writes the count events not sent to) `serve` could not keep, and `serve` started with it: a spool
in a directory that did not exist was made, a whole tree of directories from a typo, by the first stop; one in a
directory the user may not write in lost the stop's counts ("cannot write the spool ... Permission denied", "could
not be spooled ...; lost"), said only then, exit 0. Now `check` says it as it says the lineage store's (the same
helper, the same words) and exits 1, `serve` refuses its start with the same words, and a reload to such a spool is
refused (its new recorder's stop would lose them so).

Run through the command line as users run it (`tests.test_check_store_location`'s helpers)."""

from __future__ import annotations

import hashlib
import os
import signal
import sys
from pathlib import Path

from tests.test_check_store_location import refused, run, write
from tests.test_workers import Serve

SPOOLING = '{store: null, openlineage: {url: "http://127.0.0.1:9", spool: "SPOOL"}}'


def spooling(tmp_path: Path, spool: str) -> Path:
    return write(tmp_path, SPOOLING.replace("SPOOL", spool))


def test_a_spool_in_a_directory_that_does_not_exist(tmp_path: Path) -> None:
    config = spooling(tmp_path, "missing/deeper/spool")  # relative: to the directory serve runs in
    said = (f"lineage.openlineage.spool: cannot open the OpenLineage spool missing/deeper/spool: the directory "
            f"missing ({tmp_path / 'missing'}) does not exist (create it, or correct the path)")  # fmt: skip
    refused(tmp_path, config, said)
    assert not (tmp_path / "missing").exists()  # neither made it (a stop made the tree)


def test_a_spool_in_a_directory_the_user_may_not_write_in(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o555)
    config = spooling(tmp_path, str(closed / "spool"))
    said = (f"lineage.openlineage.spool: cannot open the OpenLineage spool {closed / 'spool'}: this user (uid "
            f"{os.getuid()}) may not write in the directory {closed}, where lineage-proxy makes the spool directory "
            "(give it write access there, or correct the path)")  # fmt: skip
    refused(tmp_path, config, said, as_a_user=True)
    assert not list(closed.iterdir())


def test_a_spool_directory_the_user_may_not_write_in(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir(mode=0o555)
    config = spooling(tmp_path, str(spool))
    said = (f"lineage.openlineage.spool: cannot open the OpenLineage spool {spool}: this user (uid {os.getuid()}) may "
            f"not write in the directory {spool}, where lineage-proxy writes the spool's files (give it write access "
            "there, or correct the path)")  # fmt: skip
    refused(tmp_path, config, said, as_a_user=True)


def test_a_spool_path_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "spool").write_text("notes\n")
    config = spooling(tmp_path, "spool")
    said = ("lineage.openlineage.spool: cannot open the OpenLineage spool spool: it is a file, not a directory (name a "
            "directory, which lineage-proxy makes)")  # fmt: skip
    refused(tmp_path, config, said)
    assert (tmp_path / "spool").read_text() == "notes\n"


def test_the_store_and_the_spool_are_both_said(tmp_path: Path) -> None:
    config = write(tmp_path, '{store: gone/lineage.db, openlineage: {url: "http://127.0.0.1:9", spool: lost/spool}}')
    check = run(tmp_path, "check", "--config", str(config))
    assert check.returncode == 1, check
    assert check.stderr == (
        f"lineage-proxy check: {config}: serve could not start:\n"
        f"  lineage.store: cannot open the lineage store gone/lineage.db: the directory gone ({tmp_path / 'gone'}) "
        "does not exist (create it, or correct the path)\n"
        f"  lineage.openlineage.spool: cannot open the OpenLineage spool lost/spool: the directory lost "
        f"({tmp_path / 'lost'}) does not exist (create it, or correct the path)\n"
    ), check.stderr


def test_explain_warns_of_it(tmp_path: Path) -> None:
    config = spooling(tmp_path, "missing/spool")
    explained = run(tmp_path, "check", "--config", str(config), "--explain")
    assert explained.returncode == 0, explained
    assert "decision:  allow" in explained.stdout
    assert explained.stderr.startswith("warning: lineage.openlineage.spool: cannot open the OpenLineage spool "), (
        explained.stderr
    )


def test_a_spool_serve_makes_or_has_is_ok(tmp_path: Path) -> None:
    (tmp_path / "kept").mkdir()
    for spool in ("./lineage-openlineage-spool", "kept", f"{tmp_path / 'kept'}/"):  # made by serve; there already
        done = run(tmp_path, "check", "--config", str(spooling(tmp_path, spool)))
        assert done.returncode == 0 and done.stdout.endswith(": ok (1 upstream, 1 route, 0 callers, 0 zones)\n"), done
        assert not done.stderr, done.stderr


def test_a_reload_to_a_spool_serve_could_not_keep_is_refused(tmp_path: Path) -> None:
    """The spool is checked with the reloaded config, off the event loop; the old recorder, its spool kept, stays."""
    config = spooling(tmp_path, str(tmp_path / "spool"))
    serve = Serve([sys.executable, "-m", "proxy", "serve", "--config", str(config)])
    try:
        serve.ready()
        in_force = hashlib.sha256(config.read_bytes()).hexdigest()[:12]  # the config a refusal says stays
        spooling(tmp_path, str(tmp_path / "missing" / "spool"))
        serve.proc.send_signal(signal.SIGHUP)
        line = serve.wait("reload refused")[0]
        assert line.endswith(
            "reload refused; the old config stays in force. lineage.openlineage.spool: cannot open the OpenLineage "
            f"spool {tmp_path / 'missing' / 'spool'}: the directory {tmp_path / 'missing'} does not exist (create it, "
            f"or correct the path) config_sha256={in_force}\n"
        ), line
        spooling(tmp_path, str(tmp_path / "other"))  # one it can make: applied
        serve.proc.send_signal(signal.SIGHUP)
        serve.wait("reloaded")
        assert serve.stop() == 0, "".join(serve.err)
    finally:
        serve.end()
    assert not (tmp_path / "missing").exists()


def test_a_spool_that_is_a_link_to_nothing(tmp_path: Path) -> None:
    """The stop's `os.makedirs` makes no directory at a link's target: it failed there, its counts lost."""
    (tmp_path / "spool").symlink_to(tmp_path / "elsewhere")
    config = spooling(tmp_path, "spool")
    said = (f"lineage.openlineage.spool: cannot open the OpenLineage spool spool (a link to {tmp_path / 'elsewhere'}): "
            "the link's target does not exist (create that directory, or correct the path)")  # fmt: skip
    refused(tmp_path, config, said)
    assert not (tmp_path / "elsewhere").exists()


def test_a_spool_that_is_a_link_to_a_directory_is_ok(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "spool").symlink_to(tmp_path / "elsewhere")
    done = run(tmp_path, "check", "--config", str(spooling(tmp_path, "spool")))
    assert done.returncode == 0 and not done.stderr, done


def test_a_worker_restarted_after_a_refused_spool_reload_serves(tmp_path: Path) -> None:
    """`--workers`: the workers refused the reload, but the supervisor took it (`as_reloaded`) for the workers it
    restarts, so one killed since failed its every start on the spool ("starting it again in 1s ... 2s ... 16s"):
    one worker fewer for good. It now starts with the config its siblings run."""
    config = spooling(tmp_path, str(tmp_path / "spool"))
    serve = Serve.workers(config, env={"TMPDIR": str(tmp_path)})
    try:
        serve.ready()
        spooling(tmp_path, str(tmp_path / "missing" / "spool"))
        serve.proc.send_signal(signal.SIGHUP)
        serve.wait("reload refused", 2)  # each worker
        os.kill(serve.children()[0], signal.SIGKILL)
        serve.wait("restarting it")
        serve.wait("lineage_proxy: serving http=", 4)  # two workers, the supervisor, the replacement
        assert "OpenLineage spool" not in "".join(line for line in serve.err if "supervisor" in line), serve.err
        assert serve.stop() == 0, "".join(serve.err)
    finally:
        serve.end()
    assert not (tmp_path / "missing").exists()
