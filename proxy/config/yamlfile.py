"""YAML as the proxy reads its files, the config and the approved baseline: PyYAML's safe loader, refusing
a key given twice in one mapping. PyYAML keeps the last of two equal keys without a word, so a second
`zones:` or `allow_purposes:` would silently replace the restriction written above it.

Aliases are bounded too. PyYAML shares an aliased node rather than copying it, but whatever walks the
value (the config's checks, a problem quoting it, `${VAR}` expansion) walks every use: a few hundred bytes
of nested aliases ("billion laughs") would take minutes and gigabytes, and an alias inside the node it
names (`&a [*a]`) never ends.
"""

from __future__ import annotations

import re
from typing import Any, Final

import yaml
from yaml.composer import ComposerError
from yaml.events import AliasEvent

_MERGE = "tag:yaml.org,2002:merge"
# keys compared as loaded, as the mapping they end up in compares them (`yes` and `true` are one key)
_LOADED = frozenset(f"tag:yaml.org,2002:{kind}" for kind in ("null", "bool", "int", "float", "str"))
# nodes aliases may add to a document, each use of an anchor counting its node and everything under it: far
# more than merge keys (`<<: *defaults` in every caller) need, far less than a walk of it would choke on
MAX_ALIASED_NODES = 100_000


class WrittenInt(int):
    """An integer YAML read from a plain scalar, with the text written (`0755`, YAML 1.1's octal 493; `1:30`, its
    sexagesimal 90): read where a string is expected, the value is that text (`written`)."""

    text = ""


class WrittenFloat(float):
    """A float YAML read from a plain scalar, with the text written (`2024.10`, which is 2024.1 as a number)."""

    text = ""


def written(value: Any) -> Any:
    """`value` as the file wrote it: the text of a number read where a string is expected (a label, purpose, model,
    name, region, header), as the baseline reads every scalar; any other value as it is."""
    return value.text if isinstance(value, WrittenInt | WrittenFloat) else value


_KEY_SHAPE = re.compile(r"[A-Za-z0-9_. -]{1,64}")
_KEY_WORD = re.compile(r"[A-Za-z0-9]+")
_MIXED_WORD = re.compile(r"(?=.*[A-Za-z])(?=.*[0-9]).{9,}")


def shown_key(key: Any, index: int, *, quoted: bool = False) -> str:
    """A key a problem names (an unknown one, one given twice, in the config or the baseline): as written when it is
    shaped like a config key (words of letters or digits, `max_conections`, `api_key_sha256`; `quoted`: in quotes,
    `'zones'`), else by its place in its mapping and its length only (`<key 3: 51 characters>`): a token or a URL
    pasted where a key goes (`sk-proj-...:`, a missing `api_key: `) would be quoted in a problem a reload logs. A
    word over 24 characters, or over 8 mixing letters and digits, is a secret's shape."""
    text = str(key)
    if _KEY_SHAPE.fullmatch(text) and all(
        len(word) <= 24 and not _MIXED_WORD.fullmatch(word) for word in _KEY_WORD.findall(text)
    ):
        return repr(text) if quoted else text
    return f"<key {index + 1}: {len(text)} character{'' if len(text) == 1 else 's'}>"


class StrictLoader(yaml.SafeLoader):
    """SafeLoader whose mappings hold each key once. Checked as the mapping is composed, so `yaml.compose`
    (the baseline, read as nodes) and `yaml.load` (the config) both raise it: a YAMLError marked at the
    second key, read by both files' error handlers as `file:line:col: not valid YAML: duplicate key ...`.
    The keys a `<<:` merge brings in may still be overridden: that is what a merge is for.

    An alias to a node still being composed (one inside the node it names), or aliases that add more than
    MAX_ALIASED_NODES nodes to the document as its readers walk it, are refused the same way, at the alias; a
    document nested more deeply than PyYAML's recursion reaches, as a YAMLError (no mark)."""

    def compose_document(self) -> yaml.Node | None:
        self._sizes: dict[int, int] = {}  # id of a composed collection node: its nodes, every alias in it expanded
        self._open: list[int] = [0]  # the nodes of each collection being composed, so far
        self._aliased = 0
        try:
            return super().compose_document()
        except RecursionError:  # PyYAML composes a collection in a collection by recursion: Python's limit, some
            # hundreds of levels; escaping as it was, it ended a `--workers` supervisor's SIGHUP handler, and the proxy
            raise yaml.YAMLError("nested too deeply (collections in collections, hundreds of levels)") from None

    def compose_node(self, parent: Any, index: Any) -> yaml.Node | None:
        if self.check_event(AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            target = self.anchors.get(event.anchor)
            if target is not None:
                if not isinstance(target, yaml.ScalarNode) and id(target) not in self._sizes:
                    raise ComposerError(None, None, f"alias *{event.anchor} is inside the node it names: that "
                                        "value would never end", event.start_mark)  # fmt: skip
                size = self._sizes.get(id(target), 1)
                self._aliased += size
                if self._aliased > MAX_ALIASED_NODES:
                    raise ComposerError(None, None, f"aliases expand to more than {MAX_ALIASED_NODES:,} nodes "
                                        f"(at *{event.anchor}): write the values out, or alias less", event.start_mark)  # fmt: skip
                self._open[-1] += size
            return super().compose_node(parent, index)  # raises for an undefined alias
        self._open.append(0)
        node = super().compose_node(parent, index)
        size = 1 + self._open.pop()
        if not isinstance(node, yaml.ScalarNode):
            self._sizes[id(node)] = size
        self._open[-1] += size
        return node

    def compose_mapping_node(self, anchor: Any) -> yaml.MappingNode:  # its anchor's name or None (stubs: a dict)
        node = super().compose_mapping_node(anchor)
        seen: dict[Any, yaml.Node] = {}
        for index, (key, _) in enumerate(node.value):
            if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE:
                continue  # a complex key is refused when loaded (unhashable); the baseline reads none
            identity = self._identity(key)
            first = seen.get(identity)
            if first is not None:
                raise ComposerError(
                    "while composing a mapping",
                    node.start_mark,
                    f"duplicate key {shown_key(key.value, index, quoted=True)} (first on line {first.start_mark.line + 1}): only the last "
                    "would be read",
                    key.start_mark,
                )
            seen[identity] = key
        return node

    def construct_written_int(self, node: yaml.ScalarNode) -> int:
        number = WrittenInt(self.construct_yaml_int(node))
        number.text = node.value
        return number

    def construct_written_float(self, node: yaml.ScalarNode) -> float:
        number = WrittenFloat(self.construct_yaml_float(node))
        number.text = node.value
        return number

    def _identity(self, key: yaml.ScalarNode) -> Any:
        if key.tag in _LOADED:
            try:
                return self.yaml_constructors[key.tag](self, key)
            except Exception:  # an explicit `!!int x` or `!!bool maybe` (KeyError): refused when loaded, if it is
                pass
        return (key.tag, key.value)


# a number keeps the text it was written as: `labels: [2024.10]` is the label a call sends as `2024.10`, not `2024.1`
StrictLoader.add_constructor("tag:yaml.org,2002:int", StrictLoader.construct_written_int)
StrictLoader.add_constructor("tag:yaml.org,2002:float", StrictLoader.construct_written_float)


def not_utf8(source: str, data: bytes, error: UnicodeDecodeError) -> str:
    """Where a file's bytes stop being UTF-8 (the proxy reads its YAML files as UTF-8), as a problem line:
    a file saved as Latin-1 or UTF-16 by an editor is named, not a traceback."""
    line = data.count(b"\n", 0, error.start) + 1
    column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
    return (f"{source}:{line}:{column}: not UTF-8 text (byte 0x{data[error.start]:02x}: {error.reason}); "
            "save the file as UTF-8")  # fmt: skip


def surrogate(text: str) -> str | None:
    """Why `text` is no UTF-8 text, when it holds a lone surrogate (a YAML `"\\ud800"` escape, which PyYAML reads
    as the code point it names; an environment variable's byte that is not UTF-8, as Python decodes it); None
    when it is UTF-8 text. Such a string passed every check and failed where it was written out (a record, a
    header, a log line) or went on as replacement characters."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (f"holds {text[exc.start]!r} (character {exc.start + 1}), a lone surrogate, which no UTF-8 text can "
                'hold: write the character itself, or one \\U escape ("\\U0001F600"), not a pair of \\u ones')  # fmt: skip
    return None


def surrogates(value: Any, path: str, found: list[str]) -> None:
    """Every string of a loaded YAML tree, its keys too, that is no UTF-8 text (`surrogate`), as a problem at its
    path (`routes[0].model: holds ...`)."""
    if isinstance(value, str):
        why = surrogate(value)
        if why is not None:
            found.append(f"{path or '(top level)'}: {why}")
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str):
                why = surrogate(key)
                if why is not None:
                    found.append(f"{path or '(top level)'}: the key {key!r} {why}")
                    continue
            surrogates(item, f"{path}.{key}" if path else str(key), found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            surrogates(item, f"{path}[{index}]", found)


def node_surrogates(root: yaml.Node | None, source: str) -> list[str]:
    """`surrogates` of a composed YAML document (the baseline, read as nodes), each at its line and column."""
    found: list[str] = []
    seen: set[int] = set()
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if id(node) in seen:  # an alias's node, once
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            why = surrogate(node.value) if isinstance(node.value, str) else None
            if why is not None:
                mark = node.start_mark
                found.append(f"{source}:{mark.line + 1}:{mark.column + 1}: {why}")
        elif isinstance(node, yaml.MappingNode):
            for key, value in reversed(node.value):
                stack += (value, key)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(reversed(node.value))
    return found


# PyYAML's words where a line is indented otherwise than the keys of its mapping (one key indented less or more than
# the one above it, an item's key not under the one after its `- `): they name neither indentation nor a cure
INDENTATION_PROBLEMS: Final = ("expected <block end>", "mapping values are not allowed here")
INDENTATION_HINT: Final = (
    " (check the indentation of this line and the one above it: the keys of one mapping start in one column, written"
    " with spaces; a value holding ': ' is quoted)"
)
# `expected <block end>` in mid-line: no indentation, but text past a value's closing quote or bracket (`"a" b`)
AFTER_CLOSED_HINT: Final = (
    " (text follows a closed quote or bracket on this line: quote the whole value, or remove the text)"
)


def yaml_hint(text: str, mark: Any, problem: str) -> str:
    """What to add to YAML's error `problem` at `mark` so that it names the cure (a tab, an indentation), else ''."""
    if tab := tab_hint(text, mark):
        return tab
    if not problem.startswith(INDENTATION_PROBLEMS):
        return ""
    if mark and problem.startswith("expected <block end>") and not _starts_its_line(text, mark.index):
        return AFTER_CLOSED_HINT
    return INDENTATION_HINT


def _starts_its_line(text: str, index: int) -> bool:
    """Whether only spaces (or a `- `) come before `index` on its line: where a misindented key is found."""
    return not text[text.rfind("\n", 0, index) + 1 : index].strip(" -")


def tab_hint(text: str, mark: Any) -> str:
    """What to add to YAML's error at a tab (`found character '\\t' that cannot start any token`), which names no
    cure: an editor's tab where YAML takes spaces only. Else ''."""
    return (
        " (a tab, which YAML does not take here: write spaces)"
        if mark and text[mark.index : mark.index + 1] == "\t"
        else ""
    )
