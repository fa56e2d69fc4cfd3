"""A stand-in for the stack core with exactly the runtime contract the simulator uses.

It sends frames when told to (at a virtual time, through its own timers), records every frame it
receives with the time, and can echo each received frame back after a delay.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable

from pytcp_green.stack.interface import LinkKind
from pytcp_green.stack.timers import Timers


class FakeIface:
    def __init__(self, name: str, kind: LinkKind = LinkKind.ETHERNET) -> None:
        self.name = name
        self.kind = kind
        self.link_header_len = 14 if kind is LinkKind.ETHERNET else 0
        self.tx: deque[bytes | bytearray] = deque()
        self.csum_free = False  # the port sets it from the cable's checksum offload


class FakeStack:
    def __init__(
        self,
        name: str,
        ifaces: tuple[str, ...] = ("eth0",),
        *,
        kind: LinkKind = LinkKind.ETHERNET,
        echo_after: float | None = None,
    ) -> None:
        self.name = name
        self.interfaces: dict[str, FakeIface] = {n: FakeIface(n, kind) for n in ifaces}
        self.echo_after = echo_after
        self.timers = Timers()
        self.received: list[tuple[float, str, bytes]] = []
        self.polls = 0
        self.stats: Counter[str] = Counter()

    @property
    def eth0(self) -> FakeIface:
        return self.interfaces["eth0"]

    # --- the runtime contract ---

    def receive(self, iface: FakeIface, frame: bytes | memoryview, now: float) -> None:
        data = bytes(frame)
        self.received.append((now, iface.name, data))
        if self.echo_after is not None:
            self.timers.schedule(now + self.echo_after, self._sender(iface, b"echo:" + data))

    def begin_batch(self) -> None:
        pass  # no acknowledgements to coalesce

    def end_batch(self, now: float) -> None:
        pass

    def poll(self, now: float) -> None:
        self.polls += 1
        self.timers.run_due(now)

    def next_deadline(self) -> float | None:
        return self.timers.next_deadline()

    # --- test helpers ---

    def send_at(self, when: float, frame: bytes, iface: str = "eth0") -> None:
        self.timers.schedule(when, self._sender(self.interfaces[iface], frame))

    def send_now(self, frame: bytes, iface: str = "eth0") -> None:
        self.interfaces[iface].tx.append(frame)

    @staticmethod
    def _sender(iface: FakeIface, frame: bytes) -> Callable[[float], None]:
        def send(now: float) -> None:
            iface.tx.append(frame)

        return send
