"""The per-call dataclasses write their own `__init__` (compiled, unlike the one `dataclass` generates:
proxy/flow.py's docstring). Each must take its class's fields, in order, with the same defaults, and set
each field from its own argument: checked here, built positionally and by keyword, in whichever build runs."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path
from typing import Any

import pytest

from proxy.config import Upstream
from proxy.detectors import Found
from proxy.flow import Call, Checkpoint, Decision, Outcome, TraceContext
from proxy.protocols import Request, Target
from proxy.protocols.passthrough import QueryRequest

CLASSES = [Checkpoint, TraceContext, Call, Decision, Outcome, Request, Target, Found, QueryRequest]
ROOT = Path(__file__).resolve().parent.parent


def _written(cls: type) -> ast.ClassDef:
    """The class as its source writes it (a compiled class has no Python signature, and its fields' types
    are not kept whole)."""
    module = inspect.getmodule(cls)
    assert module is not None
    source = ROOT.joinpath(*module.__name__.split(".")).with_suffix(".py")
    if not source.exists():
        source = source.with_suffix("") / "__init__.py"
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
            return node
    raise AssertionError(f"{cls.__name__} not found in {source}")


def _written_init(cls: type) -> ast.FunctionDef:
    inits = [f for f in _written(cls).body if isinstance(f, ast.FunctionDef) and f.name == "__init__"]
    assert inits, f"{cls.__name__} writes no __init__"
    return inits[0]


def _types(cls: type) -> dict[str, str]:
    """Each field's type as the source writes it (a subclass's, `QueryRequest`'s, and its dataclass bases')."""
    types: dict[str, str] = {}
    for base in reversed(cls.__mro__):
        if base is cls or (dataclasses.is_dataclass(base) and base.__module__.startswith("proxy.")):
            written = _written(base).body
            types.update(
                (a.target.id, ast.unparse(a.annotation))
                for a in written
                if isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name)
            )
    return types


def _sample(annotation: str, i: int) -> Any:
    """A value of the field's type, different for each field (i), never the field's default."""
    kind = annotation.split(" | ")[0]
    trace = TraceContext(1000 + i, 2000 + i)
    samples: dict[str, Any] = {
        "str": f"v{i}",
        "int": 100 + i,
        "bool": None,  # the opposite of its default, below
        "frozenset[str]": frozenset({f"v{i}"}),
        "tuple[str, ...]": (f"v{i}",),
        "tuple[tuple[str, Any], ...]": ((f"k{i}", i),),
        "tuple[tuple[str, ...], ...]": ((f"v{i}", f"w{i}"),),
        "tuple[str, int]": (f"v{i}", 100 + i),
        "dict[str, Any]": {f"k{i}": i},
        "TraceContext": trace,
        "Upstream": Upstream(name=f"u{i}", url=f"http://127.0.0.1:{9000 + i}"),
        "ProtocolName": "oip",
        "Target": Target(f"op{i}"),  # a stream's later messages' (`Target.later`)
    }
    assert kind in samples, f"no sample for {annotation!r}: add one"
    return samples[kind]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_init_takes_the_fields_in_order(cls: type) -> None:
    init = _written_init(cls)
    fields = dataclasses.fields(cls)
    params = [a.arg for a in init.args.args][1:]
    assert params == [f.name for f in fields if f.init]
    assert not init.args.kwonlyargs and init.args.vararg is None and init.args.kwarg is None


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_init_sets_each_field_from_its_argument(cls: type) -> None:
    fields, types = dataclasses.fields(cls), _types(cls)
    values = {}
    for i, f in enumerate(fields):
        if not f.init:
            continue  # derived from the others (TraceContext.trace_id_hex)
        value = _sample(types[f.name], i)
        if value is None:  # bool: the opposite of its default
            value = not f.default if f.default is not dataclasses.MISSING else True
        values[f.name] = value
    by_keyword = cls(**values)
    by_position = cls(*values.values())
    for name, value in values.items():
        assert getattr(by_keyword, name) == value, name
        assert getattr(by_position, name) == value, name
    assert by_keyword == by_position
    assert dataclasses.replace(by_keyword) == by_keyword


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_init_defaults_are_the_fields_defaults(cls: type) -> None:
    fields, types = dataclasses.fields(cls), _types(cls)
    required = {
        f.name: _sample(types[f.name], i)
        for i, f in enumerate(fields)
        if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    made = cls(**required)
    for f in fields:
        if f.name in required or not f.init:
            continue
        expected = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        assert getattr(made, f.name) == expected, f.name


def test_a_default_factory_makes_a_new_value_each_time() -> None:
    first, second = Outcome(started_ns=1), Outcome(started_ns=1)
    first.extra["k"] = 1
    assert second.extra == {}


def test_frozen_classes_stay_frozen() -> None:
    call = Call("openai", "chat", "m", TraceContext(1, 2))
    with pytest.raises(dataclasses.FrozenInstanceError):
        call.model = "other"  # type: ignore[misc]


def test_checkpoint_names_are_kept_printable() -> None:
    checkpoint = Checkpoint("org/m\r\nx", "config", parent="base model")
    assert checkpoint.name == "org/m%0D%0Ax"
    assert checkpoint.parent == "base%20model"
    assert Checkpoint("m", "config").parent is None


@pytest.mark.parametrize("trace_id", [0, 1, 0xABC, 2**128 - 1])
def test_trace_ids_are_written_as_32_hex_digits(trace_id: int) -> None:
    trace = TraceContext(trace_id, 0x1F, sampled=False)
    assert trace.trace_id_hex == f"{trace_id:032x}"
    assert trace.traceparent() == f"00-{trace_id:032x}-000000000000001f-00"
    sibling = trace.sibling()
    assert sibling.trace_id_hex == trace.trace_id_hex and sibling.span_id != trace.span_id
    assert dataclasses.replace(trace, trace_id=5).trace_id_hex == f"{5:032x}"
