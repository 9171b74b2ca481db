"""`serve --workers N`: a worker (or the supervisor) that cannot read the config its supervisor handed over for a
reload (`loader.load_handed`) refuses the reload saying so, in the words a config file it cannot read is refused in.
Only a hand-over not there was caught: any other error of its read (a worker at its limit of open files, EMFILE, as a
busy proxy is) came out as a bare OSError, not a ConfigError: a worker refused the reload with a traceback and
`cannot load PATH: OSError(24, ...)`, and in the supervisor it ended the reload's thread with a traceback, its
`running` left as it was (where `load` of the file itself said `PATH: cannot read: Too many open files`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.config.loader import hand_over, load_handed
from proxy.errors import ConfigError

CONFIG = """
listen: {http: 127.0.0.1:0}
upstreams: [{name: origin, url: "http://127.0.0.1:9"}]
routes: [{model: "*", upstream: origin}]
policy: {anonymous: allow, default_purpose: support}
lineage: {store: null}
"""


def _refused(handover: str, config: Path) -> list[str]:
    with pytest.raises(ConfigError) as refused:
        load_handed(handover, str(config))
    return refused.value.problems


@pytest.mark.parametrize("form", ["directory", "symlink loop"])
def test_a_hand_over_that_cannot_be_read_is_a_refusal_saying_why(tmp_path: Path, form: str) -> None:
    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG)
    handover = tmp_path / "handed"
    if form == "directory":
        handover.mkdir()
    else:
        handover.symlink_to(handover)
    [problem] = _refused(str(handover), config)
    assert problem.startswith(f"{config}: cannot read") and str(handover) in problem, problem


# a process at its limit of open files reads the hand-over (EMFILE): what it says, one JSON line
AT_THE_LIMIT = """
import json, os, resource, sys
from proxy.config.loader import load_handed
from proxy.errors import ConfigError

held = []
resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
try:
    while True:
        held.append(os.open(os.devnull, os.O_RDONLY))
except OSError:
    pass
try:
    load_handed(sys.argv[1], sys.argv[2])
except ConfigError as exc:
    said = ["ConfigError", exc.problems]
except Exception as exc:
    said = [type(exc).__name__, [str(exc)]]
else:
    said = ["loaded", []]
for fd in held:
    os.close(fd)
print(json.dumps(said))
"""


def test_a_worker_at_its_limit_of_open_files_refuses_the_reload_saying_so(tmp_path: Path) -> None:
    import json

    config = tmp_path / "proxy.yaml"
    config.write_text(CONFIG)
    handover = str(tmp_path / "handed")
    hand_over(str(config), handover)
    root = str(Path(__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": root}
    done = subprocess.run([sys.executable, "-c", AT_THE_LIMIT, handover, str(config)], capture_output=True,
                          text=True, env=env, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    kind, problems = json.loads(done.stdout)
    assert kind == "ConfigError", (kind, problems)  # before: OSError, the reload's thread ended by it
    assert problems[0].startswith(f"{config}: cannot read") and "Too many open files" in problems[0], problems
