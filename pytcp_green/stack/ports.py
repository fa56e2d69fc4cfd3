"""Local port bookkeeping for one transport protocol: bind conflicts and ephemeral port choice (RFC 6056).

Ephemeral ports follow RFC 6056 §3.3.3 (Algorithm 3, "simple hash-based"): the search starts at
``hash(local, remote, secret) + counter`` so that successive connections to the same peer get
unpredictable, spread-out ports, while connections to different peers are independent.

Bind semantics follow Linux: two sockets may share a (address, port) only when both set
SO_REUSEPORT, or when both set SO_REUSEADDR and neither is listening; a wildcard address
(empty bytes) conflicts with every specific address on the same port.
"""

from __future__ import annotations

import errno
import hashlib
import os
from dataclasses import dataclass, field


@dataclass(eq=False)
class Binding:
    """One socket's claim on a local port."""

    addr: bytes  # b"" for the wildcard
    port: int
    reuseaddr: bool = False
    reuseport: bool = False
    listening: bool = False
    # Sockets that claim the same port (ephemeral ports used by connected sockets share freely
    # when their 4-tuples differ: the demultiplexer, not this table, tells them apart).
    shared: bool = field(default=False)


class PortTable:
    """Who holds which local port, for one protocol (TCP or UDP) and both address families."""

    def __init__(self, low: int, high: int, secret: bytes | None = None) -> None:
        self.low, self.high = low, high
        self._secret = secret if secret is not None else os.urandom(16)
        self._counter = 0
        self._by_port: dict[int, list[Binding]] = {}

    def set_range(self, low: int, high: int) -> None:
        self.low, self.high = low, high

    def _conflicts(self, new: Binding) -> bool:
        for old in self._by_port.get(new.port, ()):
            if old.addr and new.addr and old.addr != new.addr:
                continue  # distinct specific addresses never collide
            if new.shared and old.shared:
                continue
            if new.reuseport and old.reuseport:
                continue
            if new.reuseaddr and old.reuseaddr and not (new.listening or old.listening):
                continue
            return True
        return False

    def bind(self, binding: Binding) -> Binding:
        """Claim ``binding.port``; raises OSError(EADDRINUSE) on conflict."""
        if self._conflicts(binding):
            raise OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))
        self._by_port.setdefault(binding.port, []).append(binding)
        return binding

    def bind_ephemeral(self, binding: Binding, remote: bytes = b"", remote_port: int = 0) -> Binding:
        """Pick a free port in the ephemeral range for ``binding`` (RFC 6056 Algorithm 3)."""
        span = self.high - self.low + 1
        digest = hashlib.blake2b(
            binding.addr + remote + remote_port.to_bytes(2, "big"), key=self._secret, digest_size=4
        ).digest()
        offset = int.from_bytes(digest, "big")
        for i in range(span):
            port = self.low + (offset + self._counter + i) % span
            binding.port = port
            if not self._conflicts(binding):
                self._counter += i + 1
                self._by_port.setdefault(port, []).append(binding)
                return binding
        raise OSError(errno.EADDRNOTAVAIL, os.strerror(errno.EADDRNOTAVAIL))

    def release(self, binding: Binding) -> None:
        """Give the port back; idempotent."""
        holders = self._by_port.get(binding.port)
        if holders and binding in holders:
            holders.remove(binding)
            if not holders:
                del self._by_port[binding.port]

    def in_use(self, port: int) -> bool:
        return port in self._by_port
