"""An in-memory cable: two devices in one process, where a frame written on one end is read on the other.

It lets two stacks (or a stack and a test) talk without TAP devices or privileges; the
simulator (:mod:`pytcp_green.sim`) cables its stacks with it.  Each end has its own receive
queue and eventfd (see :class:`~pytcp_green.link.loopback.SignalledQueue`), so the runtime
waits on either end exactly as on a TAP.  The cable itself is perfect; wrap an end in an
:class:`~pytcp_green.link.impaired.ImpairedDevice` to make it lossy (the simulator does).

A perfect cable between two stacks of one process changes no byte, so it offloads checksums both
ways (issue 12, as Linux's veth): each end claims :attr:`PairEnd.csum_offload`, its stack sends TCP
with the pseudo-header sum only, and the far end hands every frame up marked TrustedFrame
(:class:`~pytcp_green.link.loopback.SignalledQueue` marks it), which TCP does not check.

Not thread-safe: the runtime touches devices only from the hub's thread.
"""

from __future__ import annotations

import errno
import os
import random

from pytcp_green.link.device import Frame
from pytcp_green.link.loopback import DEFAULT_QUEUE_LIMIT, SignalledQueue
from pytcp_green.stack.interface import LinkKind


def random_mac(rng: random.Random | None = None) -> bytes:
    """A random unicast, locally administered MAC (first octet ``xxxxxx10``), so it never collides
    with a vendor-assigned address.  Pass ``rng`` for a reproducible one."""
    raw = bytearray(rng.randbytes(6) if rng is not None else os.urandom(6))
    raw[0] = (raw[0] & 0xFC) | 0x02  # clear the multicast bit, set the locally-administered bit
    return bytes(raw)


class PairEnd:
    """One end of the cable made by :func:`make_pair`; a :class:`~pytcp_green.link.device.Device`."""

    def __init__(self, name: str, kind: LinkKind, mtu: int, mac: bytes | None, queue_limit: int) -> None:
        self.name = name
        self.kind = kind
        self.mtu = mtu
        self.mac = mac
        self.tso_max = 0  # frames cross as they are written: at most the MTU
        self.csum_offload = True  # see the module docstring
        # Frames written on this end that never reached the peer: its receive queue was full or
        # it was closed (a cable with nothing plugged in at the far end).
        self.dropped = 0
        self._rx = SignalledQueue(queue_limit)
        self.peer: PairEnd | None = None  # set by make_pair

    @property
    def pending(self) -> int:
        """Frames waiting to be read on this end."""
        return len(self._rx)

    def fileno(self) -> int:
        return self._rx.fileno()

    def read_batch(self, limit: int = 256) -> list[bytes]:
        return self._rx.get_batch(limit)

    def write(self, frame: Frame) -> None:
        if self._rx.closed:
            raise OSError(errno.EBADF, f"{self.name}: device is closed")
        peer = self.peer
        if peer is None or not peer._rx.put(frame):
            self.dropped += 1

    def close(self) -> None:
        self._rx.close()

    def __repr__(self) -> str:
        mac = self.mac.hex(":") if self.mac is not None else "-"
        return f"<PairEnd {self.name} {self.kind.value} mac={mac} pending={self.pending} dropped={self.dropped}>"


def make_pair(
    mtu: int = 1500,
    kind: LinkKind = LinkKind.ETHERNET,
    *,
    names: tuple[str, str] = ("pair0", "pair1"),
    queue_limit: int = DEFAULT_QUEUE_LIMIT,
    rng: random.Random | None = None,
) -> tuple[PairEnd, PairEnd]:
    """Two connected ends.  Ethernet ends get distinct random locally administered MACs (drawn from
    ``rng`` when given, for reproducible runs); IP ends have none."""
    mac_a: bytes | None = None
    mac_b: bytes | None = None
    if kind is LinkKind.ETHERNET:
        mac_a = random_mac(rng)
        mac_b = random_mac(rng)
        while mac_b == mac_a:  # 1 in 2**46, but two ends with one MAC would be a baffling bug
            mac_b = random_mac(rng)
    a = PairEnd(names[0], kind, mtu, mac_a, queue_limit)
    b = PairEnd(names[1], kind, mtu, mac_b, queue_limit)
    a.peer, b.peer = b, a
    return a, b
