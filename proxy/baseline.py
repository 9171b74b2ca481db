"""The approved baseline: the lineage flows a deployment has reviewed, and the match that says whether
a flow is one of them.

A baseline is a YAML file people edit, with shell-style patterns (`pii:*`, `meta-llama/*@*`) for labels
and checkpoints and comments of their own. The proxy only ever reads it, so those comments stay: PyYAML
does not round-trip comments, and nothing here needs it to (`verify --write-baseline` writes a new file,
it never rewrites one). Problems are reported like config problems, each with its file, line and path.

Matching is a pure function of a `Flow` and the entries, used by `verify` on recorded edges and by the
policy at the boundary on a call about to be forwarded (where the checkpoint may not be known yet).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Final

import yaml

from proxy.errors import ConfigError
from proxy.files import read_bytes
from proxy.labels import GRAMMAR, normalize

DECISIONS = ("allow", "reroute", "deny", "audit-deny")
DENIALS = frozenset({"deny", "audit-deny"})
FORWARDED = ("allow", "reroute")  # an entry's decisions when it names none
ANY = ("*",)
KEYS = ("caller", "purpose", "labels", "checkpoints", "decisions", "rules", "sidecars", "note")

# Why a flow is not covered, most general first: the first that applies is the one reported. A flow an entry
# would cover but for its `sidecars` is said so first: every other part of it is approved.
NEW_SIDECAR = "new-sidecar"
NEW_CALLER = "new-caller"
NEW_PURPOSE = "new-purpose"
NEW_DENIAL = "new-denial"
NEW_DECISION = "new-decision"
NEW_CHECKPOINT = "new-checkpoint"
NEW_LABEL = "new-label"

# the checkpoint of a flow that runs no weights (a vLLM's or SGLang's LoRA adapter load or unload): there is none to
# check, so `checkpoints` never refuses it, at the boundary and in `verify` alike (`Approval.at`), as a refusal's is
# not. Its edge records it so (no checkpoint name has a space: `flow.printable_name`). Before review routes (2026-12-05)
# the boundary let any approved checkpoint fit it while `verify` read its edge as one of no known checkpoint ('')
NO_WEIGHTS: Final = "(runs no weights)"


class BaselineError(ConfigError):
    """A baseline that cannot be used: every problem, each with its file, line and path."""


@dataclass(frozen=True, slots=True)
class Flow:
    """A flow as the baseline sees it: a recorded edge, or a call about to be forwarded."""

    caller: str
    purpose: str
    labels: frozenset[str]  # every label the flow carries: inputs, and outputs once known
    checkpoint: str | None  # None: not known yet (at the boundary), so any approved checkpoint fits; NO_WEIGHTS: none
    decision: str
    rule: str | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    """Why a flow is not covered: a stable kind (for CI and JSON) and a sentence for people."""

    kind: str
    message: str


_GLOB = re.compile(r"[*?[]")  # what makes a pattern of a name (fnmatch's special characters)
_SIDECAR = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # a name `lineage.sidecar` takes


def is_pattern(name: str) -> bool:
    """Whether a baseline name is a pattern (a `*`, `?` or `[` in it): else it matches itself alone."""
    return _GLOB.search(name) is not None


_HELD = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._:/-")  # the characters a label or purpose holds (GRAMMAR)
_LABEL_OR_PURPOSE = re.compile(GRAMMAR)


def unmatchable(name: str) -> str | None:
    """Why no label or purpose (GRAMMAR) matches the baseline's `name`, in words, or None: a name (no pattern) that is
    none, or a character of a pattern outside its `[...]` sets that none holds (`pii: email`, with its space, or a
    Cyrillic look-alike, `pii:еmail`, which the wire refuses as a label), or a set of none a label holds (`pii:[е]mail`,
    `[!a-z0-9._:/-]*`: each read as `fnmatch` reads it; it loaded and never matched until 2026-12-07, helper det13)."""
    if not is_pattern(name):
        return None if _LABEL_OR_PURPOSE.fullmatch(name) else f"it is not one, {GRAMMAR}"
    i, end = 0, len(name)
    while i < end:
        if name[i] == "[":
            close = _set_end(name, i)
            if close >= 0:
                members = name[i : close + 1]
                if not any(fnmatchcase(held, members) for held in _HELD):
                    return f"its set {members} holds no character one holds ({GRAMMAR})"
                i = close + 1
                continue
        if name[i] not in "*?" and name[i] not in _HELD:  # an unclosed `[` is a character
            return f"none holds {name[i]!r} ({GRAMMAR})"
        i += 1
    return None


def _any(patterns: tuple[str, ...], value: str) -> bool:
    return any(p == value or fnmatchcase(value, p) for p in patterns)


# a `%` that is not the start of a `%XX` escape: the name was written raw, not as the record writes it
_BARE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def checkpoint_pattern(pattern: str) -> str:
    """A checkpoint name or pattern as recorded checkpoints are written (`printable_name`), so an operator's
    raw `Qwen2.5 7B (ft ü)` matches the `Qwen2.5%207B%20(ft%20%C3%BC)` a call reports. One already in that
    form (what `verify --write-baseline` writes, or copied from an `x-lineage-checkpoint` header) is kept: it
    would be encoded again. Glob characters (`*`, `?`, `[`, `]`) are visible ASCII, so patterns stay patterns.
    `NO_WEIGHTS`, the record's name for a LoRA adapter's load or unload, is kept as written too (until review
    revroutes, 2026-12-05, its spaces were encoded: `edges --checkpoint` found none of them)."""
    if pattern == NO_WEIGHTS or (
        pattern.isascii() and pattern.isprintable() and " " not in pattern and not _BARE_PERCENT.search(pattern)
    ):
        return pattern
    from proxy.flow import printable_name  # here, not at the top: proxy.flow imports proxy.config, which imports us

    return printable_name(pattern)


def encoded_set(pattern: str) -> str | None:
    """A `[...]` set of a checkpoint pattern `checkpoint_pattern` encodes that holds a character it encodes (white
    space, non-ASCII, `%`), or None. Encoded, such a set is one of `%`, hex digits and the rest: `Llama[ -]3` as
    `Llama[%20-]3` approves `Llama23` and not `Llama 3`."""
    if checkpoint_pattern(pattern) == pattern:
        return None
    from proxy.flow import printable_name

    i, end = 0, len(pattern)
    while i < end:
        if pattern[i] != "[":
            i += 1
            continue
        close = _set_end(pattern, i)
        if close < 0:
            return None  # an unclosed `[` is a character
        if any(printable_name(c) != c for c in pattern[i + 1 : close]):
            return pattern[i : close + 1]
        i = close + 1
    return None


def _set_end(pattern: str, i: int) -> int:
    """The index of the `]` closing the `[...]` set that opens at `pattern[i]`, as fnmatch reads a set (`[!...]`, and
    a `]` first is a member), or -1: unclosed, the `[` is a character."""
    j, end = i + 1, len(pattern)
    if j < end and pattern[j] == "!":
        j += 1
    if j < end and pattern[j] == "]":
        j += 1
    return pattern.find("]", j)


def _names(items: set[str] | tuple[str, ...]) -> str:
    return ", ".join(sorted(item or "(none)" for item in items)) or "none"


# An edge keeps '' where nothing was known: no purpose named, no checkpoint said (a failed upstream call,
# or a reply that named none). Findings say so in words, never as a quoted empty name.


def _acting(flow: Flow) -> str:
    return f"{flow.caller!r} acting for {flow.purpose!r}" if flow.purpose else f"{flow.caller!r} acting for no purpose"


def _reached(checkpoint: str | None) -> str:
    if checkpoint is None:
        return "a checkpoint not known yet"
    if checkpoint == NO_WEIGHTS:
        return "no weights (a LoRA adapter's load or unload)"
    return repr(checkpoint) if checkpoint else "no known checkpoint"


@dataclass(frozen=True, slots=True)
class Approval:
    """One baseline entry: the flows it approves. Every label a flow carries must match one of `labels`
    (empty: unlabelled data only); its checkpoint one of `checkpoints`; its rule one of `rules`; and the sidecar
    recording it (`lineage.sidecar`) one of `sidecars`. The sidecar is no part of a `Flow`: a baseline is resolved
    for one sidecar (`Baseline.for_sidecar`) before flows are matched, once per loaded config at the boundary
    (whose sidecar is its process's) and once per sidecar in `verify`, never per call."""

    caller: str
    purpose: str
    labels: tuple[str, ...] = ()
    checkpoints: tuple[str, ...] = ANY
    decisions: tuple[str, ...] = FORWARDED
    rules: tuple[str, ...] = ANY
    note: str | None = None
    location: str = "<memory>"  # file:line (flows[i]), where a reviewer finds it
    sidecars: tuple[str, ...] = ANY  # the sidecars whose flows it approves (patterns; '': recorded before names)
    # `labels` kept once as a set, for a label written as it is (what `_any` tries first), and as the patterns among
    # them (a `*`, `?` or `[` in it), matched one by one. All matched one by one, an entry `verify --write-baseline`
    # wrote from a store a caller filled with new labels (18,000 of them) cost 18,000 pattern matches for each label
    # of each flow checked: 33 ms a flow for `verify`, and as much on each call making a new flow under
    # `lineage.baseline`
    _names: frozenset[str] = field(init=False, repr=False, compare=False)
    _patterns: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        patterns = tuple(label for label in self.labels if _GLOB.search(label) is not None)
        object.__setattr__(self, "_names", frozenset(self.labels))
        object.__setattr__(self, "_patterns", patterns)

    def records(self, sidecar: str) -> bool:
        """Whether it approves flows recorded by `sidecar` (matched as a caller is: a name or a pattern)."""
        return self.sidecars == ANY or _any(self.sidecars, sidecar)

    @property
    def restricted(self) -> bool:
        return self.sidecars != ANY

    def who(self, flow: Flow) -> bool:
        return _any((self.caller,), flow.caller) and _any((self.purpose,), flow.purpose)

    def how(self, flow: Flow) -> bool:
        return flow.decision in self.decisions and _any(self.rules, flow.rule or "")

    def at(self, flow: Flow) -> bool:
        """A refused flow reached no checkpoint, and one that runs no weights has none (`NO_WEIGHTS`), so only another
        forwarded one is held to `checkpoints`."""
        checkpoint = flow.checkpoint
        if checkpoint is None or (flow.decision == "deny" and not checkpoint) or checkpoint == NO_WEIGHTS:
            return True
        return _any(self.checkpoints, checkpoint)

    def allows(self, label: str) -> bool:
        return label in self._names or any(fnmatchcase(label, p) for p in self._patterns)

    def matches(self, flow: Flow) -> bool:
        return self.who(flow) and self.how(flow) and self.at(flow) and all(self.allows(label) for label in flow.labels)

    @property
    def any_checkpoint(self) -> bool:
        """Whether it approves every checkpoint (`checkpoints` omitted, or a pattern of `*` alone). `''` is not
        such a pattern: it approves calls whose checkpoint is unknown, and no other."""
        return any(pattern and not pattern.strip("*") for pattern in self.checkpoints)


@dataclass(frozen=True, slots=True)
class Baseline:
    """The approved flows of one file. A flow is covered when one entry matches all of it."""

    approvals: tuple[Approval, ...]
    source: str = "<memory>"
    # resolved for one sidecar (`for_sidecar`): that sidecar, and the whole file's baseline (to say when a flow is
    # approved for other sidecars only); None, '' when it is the file's as written
    whole: Baseline | None = None
    sidecar: str = ""

    @property
    def restricted(self) -> bool:
        """Whether an entry names the sidecars it approves (then it must be resolved for each: `for_sidecar`)."""
        return any(a.restricted for a in self.approvals)

    def for_sidecar(self, sidecar: str) -> Baseline:
        """The entries that approve flows `sidecar` records: what judges its flows. Itself when no entry is
        restricted to some sidecars."""
        if self.whole is not None:
            return self.whole.for_sidecar(sidecar)
        if not self.restricted:
            return self
        return Baseline(tuple(a for a in self.approvals if a.records(sidecar)), self.source, self, sidecar)

    def covering(self, flow: Flow) -> Approval | None:
        return next((a for a in self.approvals if a.matches(flow)), None)

    def approves_any_checkpoint(self, flow: Flow) -> bool:
        """Whether `flow` is covered whatever checkpoint it reaches: one entry covering all the rest of
        it approves every checkpoint. Then a checkpoint not known yet cannot change the verdict."""
        unknown = replace(flow, checkpoint=None)
        return any(a.any_checkpoint and a.matches(unknown) for a in self.approvals)

    def explain(self, flow: Flow) -> Finding | None:
        """None when the flow is covered; else the most general reason it is not."""
        if self.covering(flow) is not None:
            return None
        if self.whole is not None:
            elsewhere = [a for a in self.whole.approvals if a.matches(flow)]
            if elsewhere:
                names = {name for a in elsewhere for name in a.sidecars}
                return Finding(NEW_SIDECAR, f"recorded by sidecar {self.sidecar or '(none named)'!r}, which no entry "
                               f"approving this flow of {_acting(flow)} names (their sidecars: {_names(names)})")  # fmt: skip
        mine = [a for a in self.approvals if _any((a.caller,), flow.caller)]
        if not mine:
            return Finding(NEW_CALLER, f"new caller {flow.caller!r}: no approved flow names it")
        purposes = {a.purpose for a in mine}
        mine = [a for a in mine if a.who(flow)]
        if not mine:
            purpose = f"new purpose {flow.purpose!r} for" if flow.purpose else "no purpose named, by"
            return Finding(NEW_PURPOSE, f"{purpose} caller {flow.caller!r} (approved purposes: {_names(purposes)})")
        kinds = {f"{d} ({r})" if d in DENIALS else d for a in mine for d in a.decisions for r in a.rules}
        mine = [a for a in mine if a.how(flow)]
        if not mine:
            if flow.decision in DENIALS:
                return Finding(NEW_DENIAL, f"a new kind of denial for {_acting(flow)}: {flow.decision} by rule "
                               f"{flow.rule or '-'} (approved: {_names(kinds)})")  # fmt: skip
            return Finding(NEW_DECISION, f"decision {flow.decision!r} was never approved for {_acting(flow)} "
                           f"(approved: {_names(kinds)})")  # fmt: skip
        here = [a for a in mine if a.at(flow)]
        if not here:
            approved = {p for a in mine for p in a.checkpoints}
            if flow.checkpoint:
                served = f"now served by {flow.checkpoint!r}, not a checkpoint approved for"
            else:
                served = ("served by no known checkpoint (the upstream failed, or its reply named none), which no "
                          "entry approves for")  # fmt: skip
            return Finding(NEW_CHECKPOINT, f"{served} {_acting(flow)} (approved: {_names(approved)})")
        new = {label for label in flow.labels if not any(a.allows(label) for a in here)}
        if not new:  # each label is approved there, but never all of them in one entry
            new = set(flow.labels)
        return Finding(NEW_LABEL, f"label {_names(new)!r} reaching {_reached(flow.checkpoint)}, which it never "
                       f"reached for {_acting(flow)}")  # fmt: skip


def load_baseline(path: str | Path) -> Baseline:
    """Read and validate a baseline file; BaselineError lists every problem with its location."""
    from proxy.config.yamlfile import not_utf8  # here, not at the top: proxy.config imports us

    try:
        data = read_bytes(path)
    except OSError as exc:
        raise BaselineError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BaselineError([not_utf8(str(path), data, exc)]) from exc
    return parse_baseline(text, source=str(path))


def parse_baseline(text: str, *, source: str = "<memory>") -> Baseline:
    from proxy.config.yamlfile import StrictLoader, node_surrogates, yaml_hint  # here: proxy.config imports us

    try:
        root = yaml.compose(text, Loader=StrictLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = str(getattr(exc, "problem", exc))
        raise BaselineError([f"{where}: not valid YAML: {problem}{yaml_hint(text, mark, problem)}"]) from exc
    unwritable = node_surrogates(root, source)
    if unwritable:  # strings no UTF-8 text can hold: before any check reads them
        raise BaselineError(unwritable)
    reader = _Reader(source)
    baseline = reader.baseline(root)
    if reader.problems or baseline is None:
        raise BaselineError(reader.problems or [f"{source}: empty: expected a mapping with flows:"])
    return baseline


_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"


class _Reader:
    """Walks the YAML node tree (not the loaded values), so every problem knows its line."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def problem(self, node: yaml.Node | None, path: str, message: str) -> None:
        line = f":{node.start_mark.line + 1}" if node is not None else ""
        self.problems.append(f"{self.source}{line}: {path}: {message}")

    def mapping(self, node: yaml.Node, path: str, known: tuple[str, ...]) -> dict[str, yaml.Node] | None:
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, path, "expected a mapping")
            return None
        out: dict[str, yaml.Node] = {}
        for index, (key, value) in enumerate(node.value):
            name = key.value if isinstance(key, yaml.ScalarNode) else "?"
            if name not in known:
                from proxy.config.yamlfile import shown_key  # here: proxy.config imports us

                shown = shown_key(name, index)  # a secret pasted where a key goes is not quoted: a reload logs this
                self.problem(key, f"{path}.{shown}" if path else shown, f"unknown key (known: {', '.join(known)})")
                continue
            out[name] = value
        return out

    def string(self, node: yaml.Node, path: str, *, empty: bool = False) -> str | None:
        """A scalar's text; `empty`: a quoted '' is a value too (a purpose no call gave)."""
        if isinstance(node, yaml.ScalarNode) and empty and node.value == "" and node.tag == _STR:
            return ""
        if not isinstance(node, yaml.ScalarNode) or node.tag == _NULL or not node.value:
            self.problem(node, path, "expected a non-empty string")
            return None
        return str(node.value)

    def strings(
        self, node: yaml.Node | None, path: str, default: tuple[str, ...], *, empty: bool = False
    ) -> tuple[str, ...]:
        """A list of strings; one string stands for a list of one; null or absent: the default."""
        if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL):
            return default
        if isinstance(node, yaml.ScalarNode):
            value = self.string(node, path, empty=empty)
            return (value,) if value is not None else default
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, path, "expected a list of strings")
            return default
        out = [self.string(item, f"{path}[{i}]", empty=empty) for i, item in enumerate(node.value)]
        return tuple(value for value in out if value is not None)

    def normal(self, node: yaml.Node, path: str, what: str, name: str) -> None:
        """A problem when `name` (a label or purpose, or a pattern of them) is not as a call's are recorded
        (`normalize`: white space around dropped, lower case, invisible characters removed, Unicode compatibility
        forms folded): as written it would load and never match, and each flow it was meant to approve be reported."""
        normal = normalize(name)
        if normal == name:
            why = unmatchable(name) if name else None  # an empty purpose: calls that named none
            if why is not None:
                self.problem(node, path, f"{what} {name!r} never matches: no call's {what} does ({why})")
            return
        cure = (
            f"this one as {normal!r}: write that" if normal or what == "purpose" else "this one as nothing: remove it"
        )
        self.problem(node, path, f"{what} {name!r} never matches: a call's {what}s are recorded normalised (white "
                     "space around dropped, lower case, invisible characters removed, Unicode compatibility forms "
                     f"folded), {cure}")  # fmt: skip

    def baseline(self, root: yaml.Node | None) -> Baseline | None:
        if root is None:
            return None
        top = self.mapping(root, "", ("version", "flows"))
        if top is None:
            return None
        version = top.get("version")
        if version is not None and not (isinstance(version, yaml.ScalarNode) and version.value == "1"):
            self.problem(version, "version", "this lineage-proxy reads version 1")
        flows = top.get("flows")
        if flows is None:
            self.problem(root, "flows", "is required: the list of approved flows ([] approves none)")
            return None
        if not isinstance(flows, yaml.SequenceNode):
            self.problem(flows, "flows", "expected a list of approved flows")
            return None
        approvals = [self.approval(item, f"flows[{i}]") for i, item in enumerate(flows.value)]
        return Baseline(tuple(a for a in approvals if a is not None), self.source)

    def approval(self, node: yaml.Node, path: str) -> Approval | None:
        entry = self.mapping(node, path, KEYS)
        if entry is None:
            return None
        for key in ("caller", "purpose"):
            if key not in entry:
                self.problem(node, f"{path}.{key}", "is required (a name or a pattern such as '*')")
        caller = self.string(entry["caller"], f"{path}.caller") if "caller" in entry else None
        purpose = self.string(entry["purpose"], f"{path}.purpose", empty=True) if "purpose" in entry else None
        labels = self.strings(entry.get("labels"), f"{path}.labels", ())
        for i, label in enumerate(labels):
            self.normal(entry["labels"], f"{path}.labels[{i}]", "label", label)
        if purpose is not None:
            self.normal(entry["purpose"], f"{path}.purpose", "purpose", purpose)
        decisions = self.strings(entry.get("decisions"), f"{path}.decisions", FORWARDED)
        for i, decision in enumerate(decisions):
            if decision not in DECISIONS:
                self.problem(entry["decisions"], f"{path}.decisions[{i}]",
                             f"must be one of {', '.join(DECISIONS)}, got {decision!r}")  # fmt: skip
        if "decisions" in entry and not decisions:
            self.problem(entry["decisions"], f"{path}.decisions", "needs at least one decision")
        # '' is a checkpoint too: a forwarded call whose reply never said which weights served it
        checkpoints = self.strings(entry.get("checkpoints"), f"{path}.checkpoints", ANY, empty=True)
        for i, checkpoint in enumerate(checkpoints):
            unmeant = encoded_set(checkpoint)
            if unmeant is not None:
                self.problem(entry["checkpoints"], f"{path}.checkpoints[{i}]",
                             f"{checkpoint!r}: the set {unmeant} holds a character a recorded checkpoint carries "
                             "percent-encoded (white space, non-ASCII, %), so it would match other names: list "
                             "each name it means")  # fmt: skip
        checkpoints = tuple(checkpoint_pattern(c) for c in checkpoints)
        rules = self.strings(entry.get("rules"), f"{path}.rules", ANY)
        # '' is a sidecar too: the edges recorded before sidecars were named
        sidecars = self.strings(entry.get("sidecars"), f"{path}.sidecars", ANY, empty=True)
        for i, sidecar in enumerate(sidecars):
            if sidecar and not is_pattern(sidecar) and not _SIDECAR.fullmatch(sidecar):
                self.problem(entry["sidecars"], f"{path}.sidecars[{i}]", f"{sidecar!r} never matches: a sidecar's "
                             "name (lineage.sidecar) is letters, digits, '.', '_' and '-', starting with a letter or "
                             "a digit, at most 128")  # fmt: skip
        # `labels: []` is unlabelled data only; these would read as none
        for key in ("checkpoints", "rules", "sidecars"):
            if isinstance(entry.get(key), yaml.SequenceNode) and not entry[key].value:
                self.problem(entry[key], f"{path}.{key}", f"an empty list is refused: omit {key} to approve any, "
                             "or list the ones approved")  # fmt: skip
        note = self.string(entry["note"], f"{path}.note") if "note" in entry else None
        if caller is None or purpose is None:
            return None
        where = f"{self.source}:{node.start_mark.line + 1} ({path})"
        return Approval(caller, purpose, labels, checkpoints, decisions, rules, note, where, sidecars)
