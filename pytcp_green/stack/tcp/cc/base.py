"""The hooks every congestion control offers, and the window state they share.

One small interface, the way Linux's ``struct tcp_congestion_ops`` is one table of hooks: the
connection calls them at fixed points and the module moves ``cwnd`` and ``ssthresh`` (bytes).  What
the connection does around them (fast recovery, PRR, the loss window after a timeout) stays in the
connection; a module only decides how fast the window grows and how far it falls.

* :meth:`CongestionControl.on_ack`: new data acknowledged outside loss recovery (Linux ``cong_avoid``);
* :meth:`CongestionControl.on_rtt`: an RTT sample (Linux ``pkts_acked``), for delay-based slow-start exit;
* :meth:`CongestionControl.on_loss`: a loss detected by duplicate ACKs, SACK or a tail loss probe; sets
  ``ssthresh`` (Linux ``ssthresh``); the caller then sets ``cwnd``;
* :meth:`CongestionControl.on_timeout`: a retransmission timeout, after which ``cwnd`` is the loss
  window (RFC 5681 §3.1);
* :meth:`CongestionControl.on_ecn`: an ECN-Echo (RFC 3168 §6.1.2), at most once per window; sets both
  ``cwnd`` and ``ssthresh`` by beta_ecn = 0.8 (RFC 8511 §3, ABE: a CE mark says the queue is short,
  so the backoff is gentler than for a loss; Linux keeps the loss factor, we follow the RFC);
* :meth:`CongestionControl.on_tx_start`: sending resumes after the line was idle (Linux's
  ``CA_EVENT_TX_START``).

There is no undo hook: when a reduction proves spurious (F-RTO, D-SACK: :mod:`..undo`), the connection
restores cwnd and ssthresh itself, as Linux's reno and cubic do (both use tcp_reno_undo_cwnd).

Shared here: the initial window of RFC 6928 (IW10) and "arbitrarily high" initial ssthresh (RFC 5681
§3.1), HyStart++ (RFC 9406, :mod:`.hystart`) in the initial slow start of every module (a loss or a
timeout ends it: §4.3), and slow start with appropriate byte counting (RFC 3465), which grows only while the sender
uses its window (RFC 7661's idea in Linux's simple form: an application-limited sender must not build
up a window it never tested).  Every time is the ``now`` the caller passes; no module reads a clock.
"""

from __future__ import annotations

from typing import Protocol

from pytcp_green.stack.tcp.cc.hystart import CSS_GROWTH_DIVISOR, HyStart

INITIAL_SSTHRESH = 1 << 30  # "arbitrarily high" (RFC 5681 §3.1)
BETA_ECN = 0.8  # RFC 8511 §3's recommended beta_ecn, for reno and cubic alike


def initial_window(mss: int) -> int:
    """RFC 6928 §2: min(10*MSS, max(2*MSS, 14600))."""
    return min(10 * mss, max(2 * mss, 14600))


class CongestionControl(Protocol):
    """What the connection calls; ``cwnd`` and ``ssthresh`` are bytes, read and written by the caller
    during recovery."""

    name: str
    cwnd: int
    ssthresh: int
    hystart: HyStart | None  # RFC 9406's detector while the initial slow start lasts

    def on_ack(self, acked: int, mss: int, flight_before: int, now: float) -> None:
        """``acked`` new bytes acknowledged outside recovery; ``flight_before`` was outstanding."""
        ...

    def on_rtt(self, rtt: float, ack: int, snd_max: int, now: float) -> bool:
        """An RTT sample carried by the ACK of ``ack`` with ``snd_max`` sent; True if it ended slow
        start (the connection counts that)."""
        ...

    def on_loss(self, flight: int, mss: int, now: float) -> None:
        """A congestion event other than a timeout: set ``ssthresh``."""
        ...

    def on_timeout(self, flight: int, mss: int, first: bool, now: float) -> None:
        """A retransmission timeout; ``first`` is the first of a series (only it lowers ssthresh)."""
        ...

    def on_tx_start(self, now: float) -> None:
        """Sending starts again with nothing in flight."""
        ...

    def on_ecn(self, flight: int, mss: int, now: float) -> None:
        """An ECN-Echo outside loss recovery: set ``ssthresh`` and ``cwnd``."""
        ...


class Window:
    """cwnd and ssthresh with RFC 5681 slow start; the modules subclass it."""

    __slots__ = ("cwnd", "hystart", "ssthresh")

    def __init__(self, mss: int) -> None:
        self.cwnd = initial_window(mss)
        self.ssthresh = INITIAL_SSTHRESH
        self.hystart: HyStart | None = HyStart()  # RFC 9406 in the initial slow start; None: off or done

    def in_slow_start(self) -> bool:
        return self.cwnd < self.ssthresh

    def slow_start(self, acked: int, mss: int, flight_before: int, limit: int = 2) -> None:
        """RFC 5681 §3.1 with RFC 3465 byte counting: cwnd += min(acked, L*SMSS), while the window in
        use is at least half of cwnd."""
        cwnd = self.cwnd
        if 2 * flight_before >= cwnd:
            grow = min(acked, limit * mss)
            hystart = self.hystart
            if hystart is not None and hystart.in_css:
                grow //= CSS_GROWTH_DIVISOR  # RFC 9406 §4.2: Conservative Slow Start
            self.cwnd = cwnd + grow

    @staticmethod
    def cwnd_limited(mss: int, flight_before: int, cwnd: int) -> bool:
        """Congestion avoidance grows only while the window was (nearly) full (RFC 7661's idea)."""
        return flight_before + mss >= cwnd

    def on_rtt(self, rtt: float, ack: int, snd_max: int, now: float) -> bool:
        """RFC 9406: HyStart++ may end slow start (ssthresh = cwnd) on a lasting rise in delay."""
        hystart = self.hystart
        if hystart is None or not self.in_slow_start() or not hystart.on_rtt(rtt, ack, snd_max):
            return False
        self.ssthresh = self.cwnd
        self.hystart = None
        return True

    def on_tx_start(self, now: float) -> None:
        return None

    def on_ecn(self, flight: int, mss: int, now: float) -> None:
        """RFC 8511 §3: ssthresh = max(FlightSize * beta_ecn, 2 SMSS), and cwnd = ssthresh."""
        self.ssthresh = max(int(flight * BETA_ECN), 2 * mss)
        self.cwnd = self.ssthresh
