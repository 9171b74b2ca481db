"""lineage-proxy: an inference sidecar that records lineage and enforces purpose limits."""

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys

__version__ = "0.1.0"


def compiled_modules(here: str, sources: dict[str, str]) -> tuple[str, ...]:
    """The modules of the package at `here` that run compiled (setup.py builds them with mypyc and writes
    `sources`, each one's digest), each checked against its source: a source changed since it was built
    would run its old code, so the import is refused."""
    compiled = []
    for source, digest in sources.items():
        path = os.path.join(here, source)
        stem = path[: -len(".py")]
        if not any(os.path.exists(stem + suffix) for suffix in importlib.machinery.EXTENSION_SUFFIXES):
            continue
        with open(path, "rb") as file:
            if hashlib.sha256(file.read()).hexdigest() != digest:
                raise ImportError(
                    f"{path} changed after it was compiled, and its build would run the old code: build again "
                    "(pip install -e .), or install the pure-Python package (LINEAGE_PROXY_PURE=1 pip install -e .)"
                )
        compiled.append(source)
    return tuple(compiled)


class _Interpreted(importlib.abc.MetaPathFinder):
    """Loads the compiled modules from their sources (`LINEAGE_PROXY_INTERPRETED=1`): for tests that patch a
    module's functions, which its compiled callers call directly, and to compare the two builds."""

    def __init__(self, here: str, sources: dict[str, str]) -> None:
        self.paths = {"proxy." + source[: -len(".py")].replace("/", ".").removesuffix(".__init__"): source
                      for source in sources}  # fmt: skip
        self.here = here

    def find_spec(self, name: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        source = self.paths.get(name)
        if source is None:
            return None
        location = os.path.join(self.here, source)
        package = [os.path.dirname(location)] if source.endswith("__init__.py") else None
        return importlib.util.spec_from_file_location(name, location, submodule_search_locations=package)


def _compiled() -> tuple[str, ...]:
    try:
        from proxy._compiled import SOURCES  # type: ignore[import-not-found, unused-ignore]
    except ImportError:  # a pure-Python install
        return ()
    here = os.path.dirname(os.path.abspath(__file__))
    if os.environ.get("LINEAGE_PROXY_INTERPRETED", "") not in ("", "0"):
        sys.meta_path.insert(0, _Interpreted(here, SOURCES))
        return ()
    return compiled_modules(here, SOURCES)


COMPILED = _compiled()
BUILD = f"compiled: {len(COMPILED)} modules" if COMPILED else "pure Python"  # what --version says
