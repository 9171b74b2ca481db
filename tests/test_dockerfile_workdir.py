"""The image runs `serve` where the config's relative paths can be created.

The Dockerfile's runtime stage runs as the unprivileged user `lineage` and set no WORKDIR, so `serve` ran in `/`
(python:3.11-slim sets none), which that user cannot write. The default `lineage.store` (`./lineage.db`, also
config/minimal.yaml's) and `lineage.journal` (`./lineage-journal.db`) are relative: an image run with the README's
minimal config, or any config leaving the store out, exited 1 at start, unable to create `/lineage.db`. The stage makes
/var/lib/lineage-proxy for that user: it must run there."""

from __future__ import annotations

import shlex
from pathlib import Path

from proxy.config import Lineage, load

ROOT = Path(__file__).resolve().parent.parent


def runtime_stage() -> list[tuple[str, str]]:
    """The last stage's instructions, (INSTRUCTION, arguments), continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    start = max(index for index, line in enumerate(lines) if line.upper().startswith("FROM "))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines[start:]]


def test_the_image_runs_in_a_directory_its_user_owns() -> None:
    stage = runtime_stage()
    user = next(args for kind, args in stage if kind == "USER").strip()
    owned = set()
    for kind, args in stage:
        if kind == "RUN":
            words = shlex.split(args.replace("&&", " && "))
            for index, word in enumerate(words):
                if word == "chown" and words[index + 1].split(":")[0] == user:
                    owned.update(w for w in words[index + 2 :] if w.startswith("/") and w != "&&")
    workdirs = [args.strip() for kind, args in stage if kind == "WORKDIR"]
    assert workdirs, f"no WORKDIR in the runtime stage: serve runs in / as {user!r}, which cannot create ./lineage.db"
    assert workdirs[-1] in owned, f"WORKDIR {workdirs[-1]} is not a directory {user!r} owns ({sorted(owned)})"


def test_the_users_home_is_a_directory_it_owns() -> None:
    """`serve` keeps its listen claims in ~/.cache/lineage-proxy (`workers._claims_dir`): `useradd -r` makes no home
    (its default, /home/lineage, does not exist), so a second proxy starting at once went unseen in the image."""
    stage = runtime_stage()
    user = next(args for kind, args in stage if kind == "USER").strip()
    words = shlex.split(" ".join(args for kind, args in stage if kind == "RUN").replace("&&", " && "))
    added = words.index("useradd")
    command = words[added : words.index("&&", added)] if "&&" in words[added:] else words[added:]
    assert command[-1] == user, command
    home = command[command.index("-d") + 1] if "-d" in command else None
    made = "-m" in command or "--create-home" in command
    assert home is not None or made, f"useradd {' '.join(command[1:])}: the user's home is never made"
    if home is not None and not made:
        test_the_image_runs_in_a_directory_its_user_owns()  # WORKDIR is owned: is the home that directory?
        workdir = [args.strip() for kind, args in stage if kind == "WORKDIR"][-1]
        assert home == workdir, f"home {home} is neither made nor the directory {user!r} owns ({workdir})"


def test_the_relative_defaults_the_workdir_is_for() -> None:
    # what the working directory has to hold: the store and journal by default, and the minimal config's store
    assert not Path(Lineage().store or "").is_absolute() and not Path(Lineage().journal).is_absolute()
    assert not Path(load(ROOT / "config" / "minimal.yaml", env={}).lineage.store or "").is_absolute()
