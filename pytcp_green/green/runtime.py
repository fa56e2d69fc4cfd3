"""Run a sans-I/O :class:`~pytcp_green.stack.stack.Stack` on the gevent hub.

* One readable watcher per device, run by the hub itself: each time the device's fd polls
  readable it reads what waits (up to a batch), feeds the whole batch to the core and returns
  to the loop — waiting before every frame costs about five times the frame rate (DESIGN.md,
  measured facts).  No reader greenlet: a frame that wakes a socket reaches its greenlet in one
  switch from the hub, as a kernel socket's readiness does under gevent, where a reader greenlet
  cost two more per frame (hub -> reader -> hub -> waiter).  The watcher is level-triggered, so a
  device with more than a batch waiting is read again on the next loop turn, after the greenlets
  the last batch woke have run.
* One hub timer tracks the earliest of the core's deadline and the middleware's (impairment,
  faults: a :class:`~pytcp_green.link.device.Timed` device).
* After every entry into the core (a batch received, a timer fired, a socket call) the
  transmit queues are drained to the devices and the timer is re-armed: :meth:`Runtime.kick`.
  Frames sent to the loopback are received there and then, as Linux's loopback delivers within the
  sending call (:meth:`Runtime._loop_back`).

What happens to frames and timers at each of those moments is :mod:`pytcp_green.link.drive`,
which the simulator runs too; this module only adds the waiting and the monotonic clock.
Everything runs in the hub's thread, so the core needs no locks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from gevent.event import Event
from gevent.hub import get_hub

from pytcp_green.link.device import Device
from pytcp_green.link.drive import Port, earliest, run_timers
from pytcp_green.link.impair import Impairment, ImpairSpec
from pytcp_green.link.impaired import ImpairedDevice
from pytcp_green.link.loopback import LoopbackDevice
from pytcp_green.link.pcap import PcapDevice, PcapWriter, linktype_for
from pytcp_green.stack.interface import Interface
from pytcp_green.stack.stack import Stack

log = logging.getLogger(__name__)

READ_BATCH = 256
_LOOPBACK_ROUNDS = 64  # exchanges (a frame, its answer...) _loop_back runs inside one core entry at most

# A device (with its middleware: impairment, live faults, capture) bound to one of the stack's
# interfaces; what attach() returns.
Attachment = Port[Interface]


class Runtime:
    """Drives one stack; create it, :meth:`attach` devices, :meth:`start`, later :meth:`stop`."""

    def __init__(self, stack: Stack, *, pcap: PcapWriter | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stack = stack
        self.pcap = pcap
        self.clock = clock
        self.attachments: list[Attachment] = []
        self._hub = get_hub()
        self._timer: Any = None
        self._armed_for: float | None = None
        self._readers: list[Any] = []  # the devices' readable watchers (see _start_reader)
        self.running = False
        # Set after every core entry while someone waits in wait_until (and only then: kick is hot).
        self._progress = Event()
        self._watchers = 0
        self._loopbacks: list[Attachment] = []  # see _loop_back
        self._looping = False

    def attach(self, iface: Interface, device: Device, *, impair: ImpairSpec | None = None) -> Attachment:
        """Connect ``device`` to ``iface``; ``impair`` applies the same spec both ways (seeds differ).

        The capture wraps the device itself and the impairment wraps that, so the pcap holds what
        crossed the device: what the stack sent after the impairment, what it received before."""
        # One capture has one link type: a device of another kind (the loopback beside a TAP) is not
        # written to it, where its frames would read as garbage.
        if self.pcap is not None and self.pcap.linktype == linktype_for(iface.kind):
            # A loopback hands each frame back: captured once, as Linux's ``lo`` shows it.
            device = PcapDevice(device, self.pcap, time.time, reads=not iface.is_loopback)
        if impair is not None:
            device = ImpairedDevice(device, *Impairment.pair(impair))
        att = Attachment(self.stack, iface, device)
        self.attachments.append(att)
        if isinstance(device, LoopbackDevice):
            self._loopbacks.append(att)
        if self.running:
            self._start_reader(att)
        return att

    def start(self) -> None:
        if self.running:
            return
        self.running = True
        for att in self.attachments:
            self._start_reader(att)
        self.kick()

    def stop(self) -> None:
        """Stop reading and timing; the caller closes devices.  Pending transmit frames are flushed."""
        if not self.running:
            return
        self.kick()
        self.running = False
        self._stop_readers()
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        if self.pcap is not None:
            self.pcap.flush()

    def abandon(self) -> None:
        """In a forked child: stop reading and timing, send nothing (the parent drives the devices).

        Called inside fork(), so nothing here switches greenlets: stopping a watcher does not."""
        self.running = False
        self.attachments = []  # kick() transmits nothing from here on
        self._stop_readers()
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def now(self) -> float:
        return self.clock()

    # -- the readers ---------------------------------------------------------------------------------
    def _start_reader(self, att: Attachment) -> None:
        # The fd stays the same when live faults wrap the device: middleware polls the inner one.
        watcher = self._hub.loop.io(att.device.fileno(), 1)
        watcher.start(self._on_readable, att, watcher)
        self._readers.append(watcher)

    def _stop_readers(self) -> None:
        for watcher in self._readers:
            watcher.stop()
            watcher.close()
        self._readers.clear()

    def _on_readable(self, att: Attachment, watcher: Any) -> None:
        """The hub's callback when ``att``'s device polls readable: one batch into the core."""
        if not self.running:  # a forked child (abandon): the frames are the parent's
            watcher.stop()
            return
        now = self.clock()
        try:
            got = att.read(now, READ_BATCH)
        except OSError as exc:
            log.error("%s: read failed: %s; reader stops", att.device.name, exc)
            watcher.stop()
            return
        if got or att.timed is not None:  # a timed device may have taken frames to hold
            self.kick(now)

    # -- after every core entry ----------------------------------------------------------------------
    def kick(self, now: float | None = None) -> None:
        """Drain transmit queues to devices and re-arm the timer for the next deadline."""
        if now is None:
            now = self.clock()
        # Only frames this entry queued toward a loopback need looping back now; any left over from an
        # earlier, bounded round are the device's watcher's (its eventfd polls readable).
        loop = False
        if self._loopbacks and not self._looping:
            for att in self._loopbacks:
                if att.iface.tx:
                    loop = True
                    break
        self._transmit(now)
        if loop:
            self._loop_back(now)
        self._arm()
        if self._watchers:
            self._progress.set()

    def _transmit(self, now: float) -> None:
        for att in self.attachments:
            if att.iface.tx or att.timed is not None:  # kick is hot: an idle port costs no call
                att.transmit(now)

    def _loop_back(self, now: float) -> None:
        """Feed the stack what it just sent to a loopback device (one with no stage between), and what
        that makes it send, before the core entry that sent it returns: Linux's loopback_xmit hands a
        packet to the receive path within the sending system call, so a peer on this host has its
        connection accepted, its data or its reset in, by the time the sender's call returns.  Bounded
        (a flood of frames finishes in the device's readable watcher, as any other device's frames do)."""
        self._looping = True
        try:
            for _ in range(_LOOPBACK_ROUNDS):
                moved = False
                for att in self._loopbacks:
                    if isinstance(att.device, LoopbackDevice) and att.read(now, READ_BATCH):  # not wrapped
                        moved = True
                if not moved:
                    return
                self._transmit(now)
        finally:
            self._looping = False

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block this greenlet until ``predicate()`` holds; False once ``timeout`` seconds pass.

        The stack's state changes only inside a core entry (a received batch, a timer, a socket
        call), and every entry ends in :meth:`kick`, which wakes this wait: the predicate is
        re-checked exactly when it can have changed, with no polling interval.  A predicate may
        also read the kernel peer's state when that state moves only in answer to our frames
        (a TAP write runs the kernel's receive path before it returns).
        """
        deadline = self.clock() + timeout
        self._watchers += 1
        try:
            while True:
                self._progress.clear()
                if predicate():
                    return True
                remaining = deadline - self.clock()
                if remaining <= 0:
                    return False
                self._progress.wait(remaining)
        finally:
            self._watchers -= 1

    def _arm(self) -> None:
        if not self.running:
            return
        deadline = self.stack.next_deadline()
        for att in self.attachments:
            if att.timed is not None:  # hot, as in kick
                deadline = earliest((deadline, att.next_deadline()))
        if deadline == self._armed_for:
            return
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._armed_for = deadline
        if deadline is None:
            return
        delay = max(0.0, deadline - self.clock())
        self._timer = self._hub.loop.timer(delay)
        self._timer.start(self._on_timer)

    def _on_timer(self) -> None:
        self._armed_for = None
        self._timer = None
        now = self.clock()
        run_timers(self.stack, now)
        for att in self.attachments:
            if att.timed is not None:
                att.read(now)  # the inbound frames it held that are due now
        self.kick(now)
