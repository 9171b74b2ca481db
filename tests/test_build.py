"""The compiled build (setup.py, mypyc): which one runs, and an edited source never runs its old build."""

import ast
import hashlib
import importlib.machinery
import os
import subprocess
import sys
from pathlib import Path

import pytest

from proxy import COMPILED, compiled_modules

ROOT = Path(__file__).resolve().parent.parent


def _setup_list() -> list[str]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "COMPILED":
            return [ast.literal_eval(item) for item in node.value.elts]  # type: ignore[attr-defined]
    raise AssertionError("setup.py has no COMPILED list")


def test_every_module_setup_compiles_exists_and_is_a_proxy_module():
    listed = _setup_list()
    assert listed == sorted(set(listed)) and len(listed) > 10
    for source in listed:
        assert source.startswith("proxy/") and (ROOT / source).is_file(), source


def test_version_says_which_build_runs():
    out = subprocess.run([sys.executable, "-m", "proxy", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    expected = f"compiled: {len(COMPILED)} modules" if COMPILED else "pure Python"
    assert out.stdout.strip() == f"lineage-proxy 0.1.0 ({expected})"


@pytest.mark.skipif(not os.environ.get("LP_REQUIRE_COMPILED"), reason="only where the compiled build is required")
def test_ci_runs_the_compiled_build():
    """CI (.ci/run) tests what `pip install .` installs: every module setup.py lists, compiled."""
    assert sorted(COMPILED) == sorted(source[len("proxy/") :] for source in _setup_list())
    import proxy.exchange

    assert not proxy.exchange.__file__.endswith(".py")


def _package(tmp_path: Path, text: bytes, *, built: bool) -> tuple[str, dict[str, str]]:
    (tmp_path / "records").mkdir()
    source = tmp_path / "records" / "spans.py"
    source.write_bytes(text)
    if built:
        (tmp_path / "records" / f"spans{importlib.machinery.EXTENSION_SUFFIXES[0]}").write_bytes(b"")
    return str(tmp_path), {"records/spans.py": hashlib.sha256(b"x = 1\n").hexdigest()}


def test_a_module_built_from_its_source_runs_compiled(tmp_path):
    here, sources = _package(tmp_path, b"x = 1\n", built=True)
    assert compiled_modules(here, sources) == ("records/spans.py",)


def test_a_source_edited_after_its_build_is_refused(tmp_path):
    here, sources = _package(tmp_path, b"x = 2\n", built=True)
    with pytest.raises(ImportError, match=r"spans\.py changed after it was compiled.*LINEAGE_PROXY_PURE=1"):
        compiled_modules(here, sources)


def test_a_listed_module_without_its_build_runs_as_source(tmp_path):
    here, sources = _package(tmp_path, b"x = 2\n", built=False)
    assert compiled_modules(here, sources) == ()


def test_no_except_name_holds_a_compiled_exception_and_another():
    """mypyc types a name by its first binding: `except MetadataIncomplete as exc:` then `except Exception as exc:`
    in one function makes `exc` a native MetadataIncomplete, and any other exception reaching the second clause
    raises TypeError ("MetadataIncomplete object expected") in the compiled build alone. That hid a dead upstream's
    "not reachable" from discovery: the compiled proxy waited 10 s for it before serving, the interpreted one none.
    So an except clause that binds a name to an exception class this build compiles binds a name of its own."""
    sources = [ROOT / source for source in _setup_list()]
    native = {
        node.name
        for source in sources
        for node in ast.walk(ast.parse(source.read_text()))
        if isinstance(node, ast.ClassDef)
    }
    found = []
    for source in sources:
        for function in ast.walk(ast.parse(source.read_text())):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            bound: dict[str, set[str]] = {}
            for node in ast.walk(function):
                if isinstance(node, ast.ExceptHandler) and node.name and node.type is not None:
                    bound.setdefault(node.name, set()).add(ast.unparse(node.type))
            for name, types in bound.items():
                if len(types) > 1 and any(kind.rpartition(".")[2] in native for kind in types):
                    found.append(f"{source.relative_to(ROOT)}: {function.name}: {name} is {sorted(types)}")
    assert not found, found


def _final_names(tree: ast.Module) -> set[str]:
    """The module's `Final` globals, and those it imports by name from the project's modules: mypyc's `is_constant`
    takes any global reference to a final variable, its own or imported (`Exchange._advisors = NO_ADVISORS`)."""
    finals = {
        node.target.id
        for node in tree.body
        if isinstance(node, ast.AnnAssign)
        and isinstance(node.target, ast.Name)
        and ast.unparse(node.annotation).partition("[")[0] == "Final"
    }
    for node in tree.body:
        if not isinstance(node, ast.ImportFrom) or node.level or str(node.module).partition(".")[0] != "proxy":
            continue
        path = ROOT / str(node.module).replace(".", "/")
        source = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        theirs = _final_names(ast.parse(source.read_text()))
        finals |= {alias.asname or alias.name for alias in node.names if alias.name in theirs}
    return finals


def _stored_once(value: ast.expr, finals: set[str]) -> bool:
    """mypyc's `is_constant`: a literal, a negated number, a tuple of such, True/False/None, a `Final` global."""
    if isinstance(value, ast.UnaryOp) and isinstance(value.op, ast.USub):
        value = value.operand
    if isinstance(value, ast.Tuple):
        return all(_stored_once(item, finals) for item in value.elts)
    return isinstance(value, ast.Constant) or (isinstance(value, ast.Name) and value.id in finals)


def test_no_compiled_class_defaults_an_attribute_to_what_mypyc_builds_for_each_instance():
    """A compiled class's attribute default that is no constant (`alike_stops: dict[int, int] = {}`) is evaluated
    anew in each instance's setup, with mypyc's warning "Unsupported default attribute value" at build: a dict made
    for every `_Text`, that is every scan a call runs, where the source shares one (helper revdetfuzz2: detectors'
    `_Text.alike_stops` since e650c20). A dataclass's fields are its own machinery's, not these."""
    found = []
    for source in _setup_list():
        tree = ast.parse((ROOT / source).read_text())
        finals = _final_names(tree)
        for cls in ast.walk(tree):
            if not isinstance(cls, ast.ClassDef) or any("dataclass" in ast.unparse(d) for d in cls.decorator_list):
                continue
            for node in cls.body:
                if (
                    isinstance(node, ast.AnnAssign)
                    and node.value is not None
                    and not ast.unparse(node.annotation).startswith(("ClassVar", "Final"))
                    and not _stored_once(node.value, finals)
                ):
                    found.append(f"{source}:{node.lineno}: {cls.name}: {ast.unparse(node)}")
    assert not found, found


def test_the_readme_names_the_number_of_modules_a_compiled_build_has():
    """`lineage-proxy --version` after `pip install .` says `compiled: N modules`, N what setup.py lists: the README's
    example is what an operator checks a fresh install against (it said 29 while a build compiled 30)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"`compiled: {len(_setup_list())} modules`" in readme
