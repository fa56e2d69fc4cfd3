"""The fault engine: frames of both directions in, the same frames (delayed, sliced, cut, dropped,
answered with a RST) out, sans-I/O like :mod:`pytcp_green.link.impair`.

The runtime pushes each frame with the time; every active fault, in the order added, maps the
frame's (delivery time, bytes) to zero or more of them, and may inject frames the other way (a
RST back to the sender).  :meth:`FaultEngine.pop_due` then hands out what is due.  Nothing reads
a clock; jitter draws from a stream seeded per fault, so a run replays.

Stream faults act on TCP (RFC 9293 §3.1) as a middlebox would:

* ``slicer`` re-cuts a segment's payload into several segments with the same headers (RFC 9293
  §3.4: the receiver reassembles by sequence number, so the stream is unchanged);
* ``limit_data`` truncates the segment that crosses the limit and sets FIN on it, sends the data's
  sender a RST with SEQ = the ACK it carried (the value RFC 9293 §3.5.2 / RFC 5961 §3 accept), and
  cuts the flow: nothing of it passes afterwards, except that when the receiver closes (its FIN)
  it is answered with a RST, so it does not linger in LAST-ACK;
* ``reset_peer`` turns the next segment of a flow into a RST at its own sequence number and sends
  its sender a RST with its ACK, then cuts the flow (a SYN gets RST+ACK: refused).
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter
from dataclasses import dataclass, field

from pytcp_green.faults import segment as tcpseg
from pytcp_green.faults.kinds import (
    Bandwidth,
    Down,
    FaultSpec,
    Latency,
    LimitData,
    ResetPeer,
    Slicer,
    SlowClose,
    Timeout,
)
from pytcp_green.link.device import Frame
from pytcp_green.stack.wire.tcp import ACK, FIN, PSH, RST, SYN

FlowKey = tuple[bytes, int, bytes, int]  # (stack address, stack port, peer address, peer port)
Timed = list[tuple[float, bytes]]
OPPOSITE = {"in": "out", "out": "in"}


@dataclass
class ActiveFault:
    """One fault in force, with what it keeps between frames."""

    id: int
    spec: FaultSpec
    added: float
    rng: random.Random
    stats: Counter[str] = field(default_factory=Counter)
    last_delivery: dict[str, float] = field(default_factory=dict)  # latency: per direction, keeps FIFO
    link_free_at: dict[str, float] = field(default_factory=dict)  # bandwidth: per direction
    limit_base: dict[tuple[FlowKey, str], int] = field(default_factory=dict)  # limit_data: first seq seen

    def applies(self, direction: str) -> bool:
        return self.spec.direction in ("both", direction)

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "fault": str(self.spec), "stats": dict(self.stats)}


def flow_key(seg: tcpseg.Segment, direction: str) -> FlowKey:
    if direction == "in":
        return (seg.dst, seg.dport, seg.src, seg.sport)
    return (seg.src, seg.sport, seg.dst, seg.dport)


class FaultEngine:
    """Both directions of one link's faults.  ``link_len``: 14 on Ethernet, 0 on a TUN."""

    def __init__(self, link_len: int, seed: int) -> None:
        self.link_len = link_len
        self.seed = seed
        self.faults: list[ActiveFault] = []
        self._ids = itertools.count(1)
        self._heaps: dict[str, list[tuple[float, int, bytes]]] = {"in": [], "out": []}
        self._order = itertools.count()
        # Flows a limit_data or reset_peer has ended: key -> the direction the data's receiver sends
        # in, for limit_data (its FIN is answered with a RST), or "" after a reset (nothing is).
        self.cut: dict[FlowKey, str] = {}
        self.stats: Counter[str] = Counter()

    # -- faults --------------------------------------------------------------------------------------
    def add(self, spec: FaultSpec, now: float) -> ActiveFault:
        fid = next(self._ids)
        fault = ActiveFault(fid, spec, now, random.Random(f"{self.seed}/fault/{fid}"))
        self.faults.append(fault)
        return fault

    def remove(self, fault: ActiveFault) -> bool:
        """Stop a fault; frames it already scheduled keep their times.  False if it was not active."""
        if fault not in self.faults:
            return False
        self.faults.remove(fault)
        return True

    # -- frames --------------------------------------------------------------------------------------
    def push(self, direction: str, frame: Frame, now: float) -> None:
        """Offer one frame travelling ``direction`` ("in": to the stack, "out": from it) at ``now``."""
        data = bytes(frame)  # our own copy: the caller may reuse its buffer
        frames: Timed = [(now, data)]
        if self.faults or self.cut:
            # Parsed once; a fault that makes new frames (slicer, limit_data) has them parsed anew.
            # (Keyed by id, with the bytes kept alive beside their parse so an id is never reused.)
            seg = tcpseg.parse(data, self.link_len)
            parsed: dict[int, tuple[bytes, tcpseg.Segment | None]] = {id(data): (data, seg)}
            if seg is not None and self.cut:
                frames = self._cut_flow(direction, seg, frames, now)
            for fault in self.faults:
                if not frames:
                    break
                if fault.applies(direction):
                    frames = self._apply(fault, direction, frames, now, parsed)
        heap = self._heaps[direction]
        for when, data in frames:
            heapq.heappush(heap, (when, next(self._order), data))

    def _inject(self, direction: str, frame: bytes, now: float) -> None:
        self.stats["injected"] += 1
        heapq.heappush(self._heaps[direction], (now, next(self._order), frame))

    def pop_due(self, direction: str, now: float) -> list[bytes]:
        heap = self._heaps[direction]
        out: list[bytes] = []
        while heap and heap[0][0] <= now:
            out.append(heapq.heappop(heap)[2])
        return out

    def next_deadline(self, direction: str) -> float | None:
        heap = self._heaps[direction]
        return heap[0][0] if heap else None

    def pending(self, direction: str) -> int:
        return len(self._heaps[direction])

    # -- one fault on the frames one pushed frame became ---------------------------------------------
    def _apply(self, fault: ActiveFault, direction: str, frames: Timed, now: float,
               parsed: dict[int, tuple[bytes, tcpseg.Segment | None]]) -> Timed:
        kind = fault.spec.kind
        every_frame = kind.packet_level and fault.spec.match.any
        out: Timed = []
        for when, data in frames:
            seg = None
            if not every_frame:
                if id(data) not in parsed:
                    parsed[id(data)] = (data, tcpseg.parse(data, self.link_len))
                seg = parsed[id(data)][1]
            if not every_frame and (seg is None or not self._matches(fault, seg, direction)):
                out.append((when, data))
                continue
            fault.stats["matched"] += 1
            if isinstance(kind, Latency):
                out.append((self._delay(fault, direction, when), data))
            elif isinstance(kind, Bandwidth):
                done = max(when, fault.link_free_at.get(direction, when)) + len(data) * 8 / kind.rate
                fault.link_free_at[direction] = done
                out.append((done, data))
            elif isinstance(kind, Timeout | Down):
                fault.stats["dropped"] += 1
            elif seg is None:
                out.append((when, data))
            elif isinstance(kind, Slicer):
                out += self._slice(fault, kind, seg, when)
            elif isinstance(kind, LimitData):
                out += self._limit(fault, kind, seg, direction, when, now)
            elif isinstance(kind, ResetPeer):
                out += self._reset(fault, kind, seg, direction, when, now)
            elif isinstance(kind, SlowClose):
                held = bool(seg.flags & (FIN | RST))
                fault.stats["held"] += held
                out.append((when + kind.delay if held else when, data))
        return out

    def _matches(self, fault: ActiveFault, seg: tcpseg.Segment, direction: str) -> bool:
        match = fault.spec.match
        _, stack_port, peer_addr, peer_port = flow_key(seg, direction)
        host = match.packed_host()
        if host is not None and host != peer_addr:
            return False
        return match.port is None or match.port in (stack_port, peer_port)

    def _delay(self, fault: ActiveFault, direction: str, when: float) -> float:
        kind = fault.spec.kind
        assert isinstance(kind, Latency)
        jitter = fault.rng.uniform(-kind.jitter, kind.jitter) if kind.jitter else 0.0
        at = max(when + kind.delay + jitter, fault.last_delivery.get(direction, when))
        fault.last_delivery[direction] = at
        return at

    def _slice(self, fault: ActiveFault, kind: Slicer, seg: tcpseg.Segment, when: float) -> Timed:
        payload = seg.payload
        if len(payload) <= kind.size:
            return [(when, seg.frame)]
        fault.stats["sliced"] += 1
        out: Timed = []
        pieces = range(0, len(payload), kind.size)
        last = pieces[-1]
        for i, start in enumerate(pieces):
            # Only the last piece keeps FIN and PSH: the stream ends where the original segment did.
            flags = seg.flags if start == last else seg.flags & ~(FIN | PSH)
            piece = tcpseg.rebuild(seg, seg.seq + start, payload[start:start + kind.size], flags)
            out.append((when + i * kind.delay, piece))
        fault.stats["slices"] += len(out)
        return out

    def _limit(self, fault: ActiveFault, kind: LimitData, seg: tcpseg.Segment, direction: str,
               when: float, now: float) -> Timed:
        size = seg.payload_len
        if not size:
            return [(when, seg.frame)]
        key = flow_key(seg, direction)
        base = fault.limit_base.setdefault((key, direction), seg.seq)
        offset = (seg.seq - base) & 0xFFFFFFFF
        if offset >= 1 << 31 or offset + size <= kind.bytes:
            return [(when, seg.frame)]  # before the count began (a retransmission), or under the limit
        keep = max(0, kind.bytes - offset)
        fault.stats["limited"] += 1
        # The receiver gets the bytes up to the limit and FIN right after them; the sender a RST.
        last = tcpseg.rebuild(seg, seg.seq, seg.payload[:keep], (seg.flags | FIN) & ~RST)
        self._inject(OPPOSITE[direction], tcpseg.reset(seg, toward_sender=True, seq=seg.ack), now)
        self.cut[key] = OPPOSITE[direction]
        return [(when, last)]

    def _reset(self, fault: ActiveFault, kind: ResetPeer, seg: tcpseg.Segment, direction: str,
               when: float, now: float) -> Timed:
        if now < fault.added + kind.after or seg.flags & RST:
            return [(when, seg.frame)]
        fault.stats["reset"] += 1
        self.cut[flow_key(seg, direction)] = ""
        if seg.flags & SYN and not seg.flags & ACK:
            # A connection attempt: refused, as a closed port answers it (RFC 9293 §3.10.7.1).
            self._inject(OPPOSITE[direction], tcpseg.reset(seg, toward_sender=True, seq=0, ack=seg.seq + 1), now)
            return []
        self._inject(OPPOSITE[direction], tcpseg.reset(seg, toward_sender=True, seq=seg.ack), now)
        return [(when, tcpseg.reset(seg, toward_sender=False, seq=seg.seq))]

    def _cut_flow(self, direction: str, seg: tcpseg.Segment, frames: Timed, now: float) -> Timed:
        key = flow_key(seg, direction)
        receiver_sends = self.cut.get(key)
        if receiver_sends is None:
            return frames
        self.stats["cut_dropped"] += 1
        if seg.flags & SYN and not seg.flags & ACK:
            del self.cut[key]  # a new connection on the same four-tuple: no longer cut
            self.stats["cut_dropped"] -= 1
            return frames
        if receiver_sends == direction and seg.flags & FIN:
            # The receiver closed after its EOF: let it go at once instead of retransmitting FIN.
            self._inject(OPPOSITE[direction], tcpseg.reset(seg, toward_sender=True, seq=seg.ack), now)
            del self.cut[key]
        return []
