"""A bounded memo of a pure function's results, for the per-call path's lookups (decisions, baseline verdicts,
encoded span blocks): one dict lookup for a key seen before, and a bound on what traffic with keys new on every call
(a caller's labels, say) can make it hold."""

from __future__ import annotations


class Memo:
    """Results by key (`kept`), at most `most` of them and `most_bytes` of what they cost together, about (each entry's
    cost is given when it is kept: its names' and labels' characters and its containers'). Full, it is begun again,
    never turned off: a new key is still remembered, and an honest caller's flows come back after a flood. Bounded by
    count alone, 4,096 flows of 256 labels of 128 characters (a caller's labels new on every call) kept ~230 MB."""

    def __init__(self, most: int, most_bytes: int) -> None:
        self.kept: dict[object, object] = {}
        self.most = most
        self.most_bytes = most_bytes
        self.bytes = 0  # the costs of the entries kept

    def __len__(self) -> int:
        return len(self.kept)

    def __contains__(self, key: object) -> bool:
        return key in self.kept

    def keep(self, key: object, value: object, size: int) -> None:
        """Remember `value` for `key`, whose entry costs `size` bytes (a key kept already: counted once)."""
        kept = self.kept
        if key not in kept:
            if len(kept) >= self.most or self.bytes + size > self.most_bytes:
                kept.clear()
                self.bytes = 0
            self.bytes += size
        kept[key] = value
