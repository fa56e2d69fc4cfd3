"""Receive coalescing: consecutive in-order segments of one connection in one device read, merged (GRO).

Linux merges a flow's back-to-back segments before its TCP sees them (``dev_gro_receive`` and
``tcp_gro_receive``, for every device, in software when the NIC does not): TCP then runs once per
burst, not once per segment, which is most of what a segment costs a receiver.  A TAP opened with
offloads already hands us the kernel's coalesced super-segments; this does the same for a device that
delivers wire-sized frames (``--no-offload``, TUN, the simulator's links).

Within one receive batch (``TcpLayer.begin_batch`` .. ``end_batch``) a data segment is held instead
of processed when it may start or extend a run; the run goes to the connection as one segment when
something cannot join it, and at the end of the batch.  The rules are Linux's, kept conservative:

* only ACK (and PSH) segments with data, on an established connection, with no SACK blocks, no urgent
  pointer and no CE mark, join a run (everything else is state the connection must see in order);
* a run starts only at RCV.NXT: segments beyond a hole go to the connection one by one, so each still
  draws its own duplicate ACK and SACK update (the loss signals a sender counts, RFC 5681 §4.2);
* a segment joins only the run of its own connection, starting exactly where the run ends, with the
  same acknowledgment number, window and timestamps (Linux compares the option bytes: the same TSval
  and TSecr), and at most as long as the run's first segment;
* a segment shorter than the first, or one with PSH, ends its run (it joins, then the run is
  delivered); a run never exceeds 65535 bytes (an IPv4 datagram's payload, Linux's GRO limit).

The merged segment carries the first segment's header with the PSH of the last, and its payloads
copied once into one buffer; every wire segment is still counted (``tcp.rx``), merged ones also under
``tcp.gro_merged``.  Checksums were verified per segment before anything is held.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytcp_green.stack.tcp.seq import MASK
from pytcp_green.stack.tcp.state import ESTABLISHED
from pytcp_green.stack.wire.tcp import ACK, PSH, TcpSegment

if TYPE_CHECKING:
    from pytcp_green.stack.stats import Stats
    from pytcp_green.stack.tcp.tcb import Tcb

GRO_MAX = 65535
CE = 3  # the IP header's ECN field: Congestion Experienced (RFC 3168 §5)


class Coalescer:
    """The run being built in the current batch: at most one, for one connection."""

    __slots__ = ("first", "next_seq", "parts", "stats", "tcb")

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.tcb: Tcb | None = None
        self.first: TcpSegment | None = None
        self.parts: list[memoryview] = []
        self.next_seq = 0

    def offer(self, tcb: Tcb, seg: TcpSegment, ecn: int, now: float) -> bool:
        """Hold ``seg`` in a run (True), or deliver any run it cannot join and leave ``seg`` to the
        caller (False), so that the connection sees its segments in order."""
        payload = seg.payload
        length = len(payload)
        eligible = (length and seg.flags & ~PSH == ACK and seg.sack is None and ecn != CE
                    and tcb.state == ESTABLISHED)
        first = self.first
        if first is not None:
            if (eligible and tcb is self.tcb and seg.seq == self.next_seq and seg.ack == first.ack
                    and seg.window == first.window and seg.ts_val == first.ts_val
                    and seg.ts_ecr == first.ts_ecr and length <= len(first.payload)
                    and ((self.next_seq - first.seq) & MASK) + length <= GRO_MAX):
                self.parts.append(payload)
                self.next_seq = (self.next_seq + length) & MASK
                self.stats["tcp.gro_merged"] += 1
                if seg.flags & PSH or length < len(first.payload):
                    first.flags |= seg.flags & PSH
                    self.flush(now)
                return True
            self.flush(now)
        # (The tcb counts sequence numbers unwrapped, the segment in 32 bits.)
        if not eligible or seg.flags & PSH or seg.seq != tcb.rcv_nxt & MASK:
            return False
        self.tcb, self.first, self.parts = tcb, seg, [payload]
        self.next_seq = (seg.seq + length) & MASK
        return True

    def flush(self, now: float) -> None:
        """Deliver the run being built, if any, to its connection as one segment."""
        first, tcb = self.first, self.tcb
        if first is None or tcb is None:
            return
        parts = self.parts
        if len(parts) > 1:
            first.payload = memoryview(b"".join(parts))
        self.tcb, self.first, self.parts = None, None, []
        if tcb.layer.conns.get(tcb.key) is tcb:  # still the live connection its segments were for
            tcb.segment_arrives(first, now)
