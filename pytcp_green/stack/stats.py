"""Named counters for every protocol event worth seeing: packets in/out, drops by reason, retransmissions.

Names are dotted, protocol first: ``ip4.rx``, ``ip4.drop.bad_checksum``, ``tcp.retransmit``.
A :class:`collections.Counter` keeps the hot path to one dict update.
"""

from __future__ import annotations

from collections import Counter


class Stats(Counter[str]):
    """Counters keyed by dotted name; missing names read as 0."""

    def matching(self, prefix: str) -> dict[str, int]:
        """All counters whose name starts with ``prefix``, sorted by name."""
        return {k: v for k, v in sorted(self.items()) if k.startswith(prefix)}

    def drops(self) -> dict[str, int]:
        """Every ``*.drop.*`` counter."""
        return {k: v for k, v in sorted(self.items()) if ".drop." in k}

    def report(self) -> str:
        """One ``name value`` line per non-zero counter, for logs and the CLI."""
        return "\n".join(f"{k:40s} {v}" for k, v in sorted(self.items()) if v)
