"""Builds lineage-proxy's per-call modules as C extensions with mypyc, the compiler that comes with mypy.

Everything else about the package is in pyproject.toml: this file exists because setuptools takes
extension modules from setup() only. The compiled modules are the same source, typed as `mypy --strict`
checks it, run without the interpreter's bytecode loop: ~0.54x the CPU a call of the same code
interpreted (`benchmarks.ab`; README, Performance). Building them takes a C compiler and Python's
headers (Debian: gcc, python3-dev) and a few minutes; without them the pure-Python package is installed,
with a warning.

    pip install .                          # compiled
    LINEAGE_PROXY_PURE=1 pip install .     # pure Python: no compiler needed, ~1.9x the CPU a call

A compiled build writes proxy/_compiled.py: each compiled module's source digest, which the package
checks when it is imported (an edited source with its old build beside it is refused, not run stale).
`lineage-proxy --version` says which build runs.
"""

import hashlib
import os
import shutil
import sys
import sysconfig
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent

# the modules every call runs, one shared library (calls between them are C calls)
COMPILED = [
    "proxy/checkpoints.py",
    "proxy/config/model.py",
    "proxy/detectors.py",
    "proxy/exchange.py",
    "proxy/flow.py",
    "proxy/ingress/grpc.py",
    "proxy/ingress/http.py",
    "proxy/ingress/wire.py",
    "proxy/labels.py",
    "proxy/memo.py",
    "proxy/metrics.py",
    "proxy/pipeline.py",
    "proxy/policy.py",
    "proxy/protocols/__init__.py",
    "proxy/protocols/anthropic.py",
    "proxy/protocols/charsets.py",
    "proxy/protocols/kserve.py",
    "proxy/protocols/oip.py",
    "proxy/protocols/oip_generate.py",
    "proxy/protocols/oip_grpc.py",
    "proxy/protocols/ollama.py",
    "proxy/protocols/openai.py",
    "proxy/protocols/passthrough.py",
    "proxy/protocols/sse.py",
    "proxy/protocols/tgi.py",
    "proxy/record/access.py",
    "proxy/record/edges.py",
    "proxy/record/export.py",
    "proxy/record/otlp.py",
    "proxy/record/sinks.py",
    "proxy/record/spans.py",
    "proxy/record/timings.py",
    "proxy/transport/batch.py",
    "proxy/transport/connection.py",
    "proxy/transport/http11.py",
    "proxy/transport/pool.py",
]
MANIFEST = HERE / "proxy" / "_compiled.py"


def pure() -> bool:
    return os.environ.get("LINEAGE_PROXY_PURE", "") not in ("", "0")


def forget_builds() -> None:
    """A pure build leaves no compiled module of an earlier build in the tree (an editable install)."""
    MANIFEST.unlink(missing_ok=True)
    for source in COMPILED:
        path = HERE / source
        for built in path.parent.glob(f"{path.stem}.*.so"):
            built.unlink()
    for shared in HERE.glob("proxy_compiled__mypyc.*.so"):
        shared.unlink()


def can_compile() -> str | None:
    """Why this machine cannot build C extensions (no compiler, no Python headers), or None."""
    compiler = os.environ.get("CC", "cc").split()[0]
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler})"
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").is_file():
        return "no Python headers (Python.h)"
    return None


def metadata_only() -> bool:
    """pip runs setup.py for the package's metadata (`egg_info`, `dist_info`), each in a process of its own,
    before it builds: that needs no C, and generating it is a mypy run (~20 s) each time."""
    commands = [arg for arg in sys.argv[1:] if not arg.startswith("-") and arg.isidentifier()]  # not a path
    return bool(commands) and all(command in ("egg_info", "dist_info") for command in commands)


def build_dirs() -> dict[str, dict[str, str]]:
    """An editable install (pip install -e) builds its extensions where `pip install .` does, in build/,
    not in a throwaway directory: when the C mypyc generates is unchanged since the last build, build_ext
    skips it as up to date instead of compiling it again (CI's two venvs, a second install)."""
    if "editable_wheel" not in sys.argv[1:]:
        return {}
    from setuptools import Distribution

    build = Distribution().get_command_obj("build")
    build.ensure_finalized()
    return {"build_ext": {"build_lib": build.build_platlib, "build_temp": build.build_temp}}


def ext_modules() -> list:
    if metadata_only():
        return []
    if pure():
        forget_builds()
        return []
    missing = can_compile()
    if missing is not None:
        print(
            f"lineage-proxy: {missing}: installing the pure-Python package, which takes ~1.9x the CPU a call "
            "(Debian: apt-get install gcc python3-dev, then install again to compile it)",
            file=sys.stderr,
        )
        forget_builds()
        return []
    from mypyc.build import mypycify

    digests = {source[len("proxy/") :]: hashlib.sha256((HERE / source).read_bytes()).hexdigest() for source in COMPILED}
    MANIFEST.write_text(
        '"""Written by setup.py: the source digest of each module it compiled (not in git)."""\n\n'
        f"SOURCES = {digests!r}\n"
    )
    # the build has only mypy installed: third-party modules read as Any, so not pyproject's strict checks
    # (`mypy` runs those in CI with every dependency), and generated modules followed for types only. Nor
    # what the venv pip runs in has installed (--no-site-packages: mypy looks there, not in the build's
    # environment): with the dependencies installed, the same source gave other C, every call into them typed
    options = ["--config-file", os.devnull, "--ignore-missing-imports", "--follow-imports", "silent"]
    options.append("--no-site-packages")
    return mypycify([*options, *COMPILED], group_name="proxy_compiled")


setup(ext_modules=ext_modules(), options=build_dirs())
