"""YAML as the proxy reads its files, the config and the approved baseline: PyYAML's safe loader, refusing
a key given twice in one mapping. PyYAML keeps the last of two equal keys without a word, so a second
`zones:` or `allow_purposes:` would silently replace the restriction written above it.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import ComposerError

_MERGE = "tag:yaml.org,2002:merge"
# keys compared as loaded, as the mapping they end up in compares them (`yes` and `true` are one key)
_LOADED = frozenset(f"tag:yaml.org,2002:{kind}" for kind in ("null", "bool", "int", "float", "str"))


class StrictLoader(yaml.SafeLoader):
    """SafeLoader whose mappings hold each key once. Checked as the mapping is composed, so `yaml.compose`
    (the baseline, read as nodes) and `yaml.load` (the config) both raise it: a YAMLError marked at the
    second key, read by both files' error handlers as `file:line:col: not valid YAML: duplicate key ...`.
    The keys a `<<:` merge brings in may still be overridden: that is what a merge is for."""

    def compose_mapping_node(self, anchor: Any) -> yaml.MappingNode:  # its anchor's name or None (stubs: a dict)
        node = super().compose_mapping_node(anchor)
        seen: dict[Any, yaml.Node] = {}
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == _MERGE:
                continue  # a complex key is refused when loaded (unhashable); the baseline reads none
            identity = self._identity(key)
            first = seen.get(identity)
            if first is not None:
                raise ComposerError(
                    "while composing a mapping",
                    node.start_mark,
                    f"duplicate key {key.value!r} (first on line {first.start_mark.line + 1}): only the last "
                    "would be read",
                    key.start_mark,
                )
            seen[identity] = key
        return node

    def _identity(self, key: yaml.ScalarNode) -> Any:
        if key.tag in _LOADED:
            try:
                return self.yaml_constructors[key.tag](self, key)
            except Exception:  # an explicit `!!int x` or `!!bool maybe` (KeyError): refused when loaded, if it is
                pass
        return (key.tag, key.value)
