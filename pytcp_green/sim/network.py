"""Several stacks on impaired links under a virtual clock: reproducible network scenarios in one process.

A :class:`Simulation` owns the clock and drives every stack exactly as the gevent runtime
drives one, with the same code (:mod:`pytcp_green.link.drive`): a link is an in-memory cable
(:func:`~pytcp_green.link.pair.make_pair`, or a :class:`~pytcp_green.link.loopback.LoopbackDevice`
for a loopback link) whose each end is a :class:`~pytcp_green.link.drive.Port` whose device is
the cable's end wrapped in an :class:`~pytcp_green.link.impaired.ImpairedDevice` with a seeded
:class:`~pytcp_green.link.impair.Impairment` on its way out (and, for a captured link, a
:class:`~pytcp_green.link.pcap.PcapDevice` in between).  The cable offloads checksums (link/pair.py),
so the stacks on it skip TCP's.  At the virtual time ``now`` the simulation drains the transmit
queues through the impairments onto the cables, hands what the far ends read to their stacks in
one batch, and fires the stacks' due timers, again until nothing changes.  Then it jumps
straight to the earliest next event (a frame due on a link or a stack deadline).  Nothing ever
sleeps, so seconds of protocol time (retransmission timeouts, TIME-WAIT) pass in microseconds,
and everything random is derived from the simulation's seed, so a failing scenario is replayed by
rerunning it with the same seed.

The simulator only moves bytes; it does not care what link kind the frames are.  It needs this
much of a stack (:class:`~pytcp_green.link.drive.DrivenStack`, the runtime contract of
:mod:`pytcp_green.stack`, plus the interfaces by name)::

    stack.interfaces: Mapping[str, iface]    # iface.name: str, iface.tx: deque of frames to send,
                                             # iface.csum_free: bool (set from the cable's offload)
    stack.receive(iface, frame, now) -> None
    stack.begin_batch() / stack.end_batch(now)
    stack.poll(now) -> None                  # fires due timers
    stack.next_deadline() -> float | None
    stack.stats: Counter[str]                # counts frames a device refused
"""

from __future__ import annotations

import dataclasses
import os
import random
import sys
import weakref
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Protocol, TypeVar

from pytcp_green.link.device import Device
from pytcp_green.link.drive import DrivenInterface, DrivenStack, Port, earliest, run_timers
from pytcp_green.link.impair import Impairment, ImpairSpec
from pytcp_green.link.impaired import ImpairedDevice
from pytcp_green.link.loopback import LoopbackDevice
from pytcp_green.link.pair import make_pair
from pytcp_green.link.pcap import PcapDevice, PcapWriter, linktype_for
from pytcp_green.stack.interface import LinkKind

# The cables never drop: each round reads every frame written to them, and loss is the
# impairments' business, where it is seeded and counted.
_CABLE_QUEUE_LIMIT = sys.maxsize


# What the simulator uses of an interface: a name and the queue of frames to send.
SimInterface = DrivenInterface

IfaceT = TypeVar("IfaceT", bound=SimInterface)


class SimStack(DrivenStack[IfaceT], Protocol[IfaceT]):
    """What the simulator uses of a stack: what the drive loop does, and its interfaces by name."""

    @property
    def interfaces(self) -> Mapping[str, IfaceT]: ...


@dataclasses.dataclass(eq=False)
class Direction:
    """One way of a link: frames sent on ``src``'s interface arrive on ``dst``'s through ``impairment``
    (the outbound stage of ``src``'s device, :attr:`impaired`).  A loopback link's one direction has
    ``src is dst``."""

    src: Port[Any]
    dst: Port[Any]
    impaired: ImpairedDevice
    pcap: PcapWriter | None = None
    delivered: int = 0

    @property
    def impairment(self) -> Impairment:
        stage = self.impaired.outbound
        # The simulator gives every port one; a bottleneck (sim/bottleneck.py) wraps it.
        impairment = getattr(stage, "inner", stage)
        assert isinstance(impairment, Impairment)
        return impairment

    @property
    def stats(self) -> dict[str, int]:
        stage = self.impaired.outbound
        assert stage is not None
        return stage.stats


@dataclasses.dataclass(eq=False)
class Link:
    """A cable made by :meth:`Simulation.connect` (two directions) or :meth:`Simulation.loopback` (one)."""

    name: str
    ab: Direction
    ba: Direction | None
    pcap: PcapWriter | None = None

    @property
    def directions(self) -> tuple[Direction, ...]:
        return (self.ab,) if self.ba is None else (self.ab, self.ba)


def _close_devices(devices: list[Device]) -> None:
    for device in devices:
        device.close()


class Simulation:
    """A virtual clock and the links between stacks.  See the module docstring.

    ``max_rounds`` bounds how many times frames may bounce at one instant (links with zero
    latency) before the simulation gives up with RuntimeError instead of spinning forever.
    """

    def __init__(self, seed: int, *, start: float = 1000.0, max_rounds: int = 100_000) -> None:
        self.seed = seed
        # Not 0: a stack that treats 0 as "never" or computes now - 0 must not be flattered.
        self.now = start
        self.max_rounds = max_rounds
        self.stacks: list[SimStack[Any]] = []
        self.links: list[Link] = []
        self.stats: dict[str, int] = {"delivered": 0, "unplugged": 0}
        self._directions: list[Direction] = []
        self._attached: list[SimInterface] = []  # compared by identity
        # The cables' eventfds are released by close(), or when the simulation is collected (a
        # scenario that never closes it must not leak two descriptors per link).
        self._devices: list[Device] = []
        self._release = weakref.finalize(self, _close_devices, self._devices)

    # --- building the network -------------------------------------------------------------

    def derive_seed(self, label: str) -> int:
        """A 63-bit seed for ``label`` derived from the simulation seed: give each stack's own
        randomness (ISNs, ports, MACs) one of these and the whole scenario replays from one seed."""
        return random.Random(f"pytcp_green.sim:{self.seed}:{label}").getrandbits(63)

    def add_stack(self, stack: SimStack[Any]) -> None:
        """Have the simulation fire ``stack``'s timers (connect and loopback do this themselves)."""
        if not any(s is stack for s in self.stacks):
            self.stacks.append(stack)

    def connect(
        self,
        stack_a: SimStack[IfaceT],
        iface_a: IfaceT | str,
        stack_b: SimStack[Any],
        iface_b: SimInterface | str,
        spec_ab: ImpairSpec | None = None,
        spec_ba: ImpairSpec | None = None,
        latency: float = 0.001,
        *,
        pcap: str | os.PathLike[str] | None = None,
    ) -> Link:
        """Cable ``iface_a`` of ``stack_a`` to ``iface_b`` of ``stack_b`` (interfaces by object or name).

        Each direction gets its own :class:`Impairment`; ``latency`` is added to its delay.  A
        spec without a seed gets one derived from the simulation seed and the link's position.
        ``pcap``: a file receiving every frame delivered on the link, both ways, stamped with
        the virtual time of delivery (both ends must then have the same link kind).
        """
        ia = self._resolve(stack_a, iface_a)
        ib = self._resolve(stack_b, iface_b)
        if ia is ib:
            raise ValueError("connect: both ends are the same interface; use loopback()")
        # Validate everything before changing any state, so a refused connect leaves no trace.
        self._check_free(ia)
        self._check_free(ib)
        index = len(self.links)
        imp_ab = self._impairment(spec_ab, latency, index, "ab", ia)
        imp_ba = self._impairment(spec_ba, latency, index, "ba", ib)
        writer = self._open_pcap(pcap, ia, ib)
        # The ends' MACs go unused (the stacks' interfaces have their own), but come from the seed too.
        end_a, end_b = make_pair(kind=getattr(ia, "kind", LinkKind.ETHERNET), names=(ia.name, ib.name),
                                 queue_limit=_CABLE_QUEUE_LIMIT,
                                 rng=random.Random(self.derive_seed(f"link{index}:cable")))
        # Each crossing is captured once, as it is written onto the cable.
        dev_a = ImpairedDevice(self._captured(end_a, writer), imp_ab)
        dev_b = ImpairedDevice(self._captured(end_b, writer), imp_ba)
        port_a: Port[Any] = Port(stack_a, ia, dev_a)
        port_b: Port[Any] = Port(stack_b, ib, dev_b)
        ab = Direction(port_a, port_b, dev_a, writer)
        ba = Direction(port_b, port_a, dev_b, writer)
        link = Link(f"{ia.name}<->{ib.name}", ab, ba, writer)
        self.links.append(link)
        self._directions += [ab, ba]
        self._attached += [ia, ib]
        self._devices += [end_a, end_b]
        self.add_stack(stack_a)
        self.add_stack(stack_b)
        return link

    def loopback(
        self,
        stack: SimStack[IfaceT],
        iface: IfaceT | str,
        spec: ImpairSpec | None = None,
        latency: float = 0.0,
        *,
        pcap: str | os.PathLike[str] | None = None,
    ) -> Link:
        """Deliver what ``iface`` sends back to ``iface`` (the stack's loopback interface)."""
        i = self._resolve(stack, iface)
        self._check_free(i)
        imp = self._impairment(spec, latency, len(self.links), "ab", i)
        writer = self._open_pcap(pcap, i, i)
        device = LoopbackDevice(i.name, queue_limit=_CABLE_QUEUE_LIMIT)
        impaired = ImpairedDevice(self._captured(device, writer), imp)
        port: Port[Any] = Port(stack, i, impaired)
        d = Direction(port, port, impaired, writer)
        link = Link(i.name, d, None, writer)
        self.links.append(link)
        self._directions.append(d)
        self._attached.append(i)
        self._devices.append(device)
        self.add_stack(stack)
        return link

    def _resolve(self, stack: SimStack[Any], iface: SimInterface | str) -> SimInterface:
        if not isinstance(iface, str):
            return iface
        try:
            found: SimInterface = stack.interfaces[iface]
        except KeyError:
            raise ValueError(f"no interface {iface!r}; the stack has {sorted(stack.interfaces)}") from None
        return found

    def _check_free(self, iface: SimInterface) -> None:
        # Two links draining one transmit queue would split its frames between them at random.
        if any(i is iface for i in self._attached):
            raise ValueError(f"interface {iface.name} is already attached to a link")

    def _impairment(
        self, spec: ImpairSpec | None, latency: float, index: int, way: str, src: SimInterface
    ) -> Impairment:
        if latency < 0:
            raise ValueError(f"latency must be >= 0, got {latency}")
        spec = spec if spec is not None else ImpairSpec()
        spec = dataclasses.replace(spec, delay=spec.delay + latency)
        seed = spec.seed if spec.seed is not None else self.derive_seed(f"link{index}:{way}")
        # Corrupt the packet, not the link header: see pytcp_green.link.impair.
        offset = int(getattr(src, "link_header_len", 0))
        return Impairment(spec, seed=seed, corrupt_offset=offset)

    def _captured(self, device: Device, writer: PcapWriter | None) -> Device:
        """``device`` recording what is written to it at the virtual time, when the link has a capture."""
        if writer is None:
            return device
        return PcapDevice(device, writer, lambda: self.now, reads=False)

    @staticmethod
    def _open_pcap(path: str | os.PathLike[str] | None, a: SimInterface, b: SimInterface) -> PcapWriter | None:
        if path is None:
            return None
        kind_a = getattr(a, "kind", LinkKind.ETHERNET)
        kind_b = getattr(b, "kind", LinkKind.ETHERNET)
        if kind_a is not kind_b:
            raise ValueError(f"pcap: {a.name} and {b.name} have different link kinds; one file has one")
        return PcapWriter(path, linktype_for(kind_a))

    # --- running ------------------------------------------------------------------------------

    def _settle(self) -> None:
        """Do everything that happens at ``now``: move frames onto the cables, deliver what they
        carry, fire due timers, and again, until a round changes nothing."""
        now = self.now
        stats = self.stats
        for _ in range(self.max_rounds):
            busy = False
            for d in self._directions:
                busy = d.src.transmit(now) or busy
            for stack in self.stacks:
                # Interfaces on no link are unplugged: what they send is lost, not hoarded.
                for iface in stack.interfaces.values():
                    if iface.tx and not any(i is iface for i in self._attached):
                        stats["unplugged"] += len(iface.tx)
                        iface.tx.clear()
            for d in self._directions:
                # Frames due at one instant arrive as one batch, as one read of a device returns them.
                got = d.dst.read(now, _CABLE_QUEUE_LIMIT)
                d.delivered += got
                stats["delivered"] += got
            for stack in self.stacks:
                busy = run_timers(stack, now) or busy
            if not busy:
                return
        raise RuntimeError(
            f"simulation still busy after {self.max_rounds} rounds at t={now}: frames bouncing with "
            "zero latency, or a stack whose poll() leaves a deadline in the past"
        )

    def next_event(self) -> float | None:
        """The earliest time something is due: a frame on a link or a stack deadline.

        Frames already queued on an interface (sent by a test between two steps, e.g. from a
        ``run_until`` predicate) are due now: they leave without waiting for a timer.
        """
        for stack in self.stacks:
            if any(iface.tx for iface in stack.interfaces.values()):
                return self.now
        return earliest([*(d.src.next_deadline() for d in self._directions),
                         *(stack.next_deadline() for stack in self.stacks)])

    def step(self) -> bool:
        """Settle everything due at ``now``, then advance ``now`` to the next event (without
        processing it yet).  False when nothing is pending at all: the clock stays put."""
        self._settle()
        nxt = self.next_event()
        if nxt is None:
            return False
        self.now = max(self.now, nxt)
        return True

    def run_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Run until ``predicate()`` holds or ``timeout`` virtual seconds have passed; returns
        ``predicate()``.  The predicate is checked after each instant is settled, so on success
        ``now`` is the instant it became true; on timeout ``now`` is the start plus ``timeout``."""
        if timeout < 0:
            raise ValueError(f"timeout must be >= 0, got {timeout}")
        deadline = self.now + timeout
        while True:
            self._settle()
            if predicate():
                return True
            nxt = self.next_event()
            if nxt is None or nxt > deadline:
                self.now = max(self.now, deadline)
                return predicate()
            self.now = max(self.now, nxt)

    def run_for(self, seconds: float) -> None:
        """Run every event in the next ``seconds`` virtual seconds; ``now`` ends at start + seconds."""
        self.run_until(lambda: False, seconds)

    def run(self, max_time: float = 3600.0) -> bool:
        """Run until nothing is pending (True) or ``max_time`` virtual seconds pass (False)."""
        return self.run_until(lambda: self.next_event() is None, max_time)

    # --- teardown -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the pcap files and the cables; idempotent."""
        for link in self.links:
            if link.pcap is not None:
                link.pcap.close()
        self._release()

    def __enter__(self) -> Simulation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
