"""A cable between two lab devices through the seeded impairment: the kernel's run under ``--impair``.

To compare a program over the Linux kernel with the same program over the stack under the same
network, the kernel run needs the same impairment between its namespace and the peer's.  ``tc
netem`` is not there to provide it (and would not share our seeds), so the two namespaces are
joined the way the stack is joined to a lab: each has a TAP whose fd this process holds, and the
relay moves every frame from one fd to the other through an :class:`~pytcp_green.link.impair.Impairment`
per direction — frames in, impaired, frames out.  With the same spec and seed the kernel's
packets meet the same decision streams the stack's meet (``a_to_b`` is the stack's outbound
direction, ``b_to_a`` its inbound one, seeded as :meth:`Impairment.pair` seeds them).

The relay runs in a thread of its own with a ``selectors`` loop: it needs no gevent and holds
no lock the caller could contend for; :meth:`Relay.stop` ends it and joins it.  Frame and byte
counts per direction are in :attr:`Relay.stats`.
"""

from __future__ import annotations

import logging
import selectors
import threading
import time
from collections.abc import Callable

from pytcp_green.link.device import Device
from pytcp_green.link.impair import Impairment, ImpairSpec
from pytcp_green.link.pcap import PcapDevice, PcapWriter

log = logging.getLogger(__name__)

# The longest the loop sleeps with nothing due: it bounds how late stop() is noticed.
_IDLE_WAIT = 0.2


class _Direction:
    """One way through the relay: frames read from ``src`` go, impaired, to ``dst``."""

    def __init__(self, name: str, src: Device, dst: Device, impair: Impairment | None) -> None:
        self.name = name
        self.src = src
        self.dst = dst
        self.impair = impair
        self.frames = 0
        self.bytes = 0
        self.write_errors = 0

    def pump(self, now: float) -> None:
        """Read what ``src`` holds and pass it on (directly, or into the impairment queue)."""
        while True:
            frames = self.src.read_batch()
            if not frames:
                break
            if self.impair is None:
                self._write(frames)
            else:
                for frame in frames:
                    self.impair.push(frame, now)
        self.release(now)

    def release(self, now: float) -> None:
        if self.impair is not None:
            self._write(self.impair.pop_due(now))

    def _write(self, frames: list[bytes]) -> None:
        for frame in frames:
            try:
                self.dst.write(frame)
            except OSError as exc:  # the far namespace went away: count, keep the other way alive
                self.write_errors += 1
                log.debug("relay %s: write failed: %s", self.name, exc)
                continue
            self.frames += 1
            self.bytes += len(frame)

    def next_deadline(self) -> float | None:
        return None if self.impair is None else self.impair.next_deadline()

    def stats(self) -> dict[str, int]:
        counts = {"frames": self.frames, "bytes": self.bytes, "write_errors": self.write_errors}
        if self.impair is not None:
            counts.update(self.impair.stats)
        return counts


class Relay:
    """Moves frames between devices ``a`` and ``b``; ``impair`` applies to both ways, seeded as
    the runtime seeds a stack's link (``a -> b`` with the spec's seed, ``b -> a`` with seed + 1).

    ``capture`` records what crosses ``b`` (a :class:`~pytcp_green.link.pcap.PcapDevice` wraps it), as a
    stack's ``--pcap`` records what crosses its TAP: with ``b`` the peer's side, the frames ``a`` sent
    after the impairment and the frames delivered to it before."""

    def __init__(self, a: Device, b: Device, *, impair: ImpairSpec | None = None,
                 capture: PcapWriter | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        a_to_b, b_to_a = Impairment.pair(impair) if impair is not None else (None, None)
        if capture is not None:
            b = PcapDevice(b, capture, time.time)
        self._ways = (_Direction("a->b", a, b, a_to_b), _Direction("b->a", b, a, b_to_a))
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None  # what ended the loop early, if anything

    @property
    def seed(self) -> int | None:
        first = self._ways[0].impair
        return None if first is None else first.seed

    def start(self) -> Relay:
        if self._thread is not None:
            raise RuntimeError("a Relay can be started only once")
        self._thread = threading.Thread(target=self._run, name="pytcp-green-relay", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the loop and wait for it; idempotent.  Frames still held by the impairment are dropped."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> Relay:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        return {way.name: way.stats() for way in self._ways}

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        try:
            for way in self._ways:
                sel.register(way.src.fileno(), selectors.EVENT_READ, way)
            while not self._stop.is_set():
                now = self._clock()
                deadlines = [d for d in (way.next_deadline() for way in self._ways) if d is not None]
                wait = _IDLE_WAIT if not deadlines else max(0.0, min(min(deadlines) - now, _IDLE_WAIT))
                ready = {key.data for key, _ in sel.select(wait)}
                now = self._clock()
                for way in self._ways:
                    if way in ready:
                        way.pump(now)
                    else:
                        way.release(now)
        except BaseException as exc:  # reported through .error; the caller's run then fails visibly
            self.error = exc
            log.exception("relay stopped")
        finally:
            sel.close()
