"""Congestion window arithmetic: slow start and congestion avoidance of RFC 5681 §3.1 with appropriate
byte counting (RFC 3465, L = 2 SMSS), the initial window of RFC 6928, and the reductions on entering
fast recovery (RFC 5681 §3.2 / RFC 6582 §3.2 / RFC 6675 §5) and on a retransmission timeout (RFC 5681
eq. 4 and §3.1 "loss window").  When to call which is the connection's business; the recovery procedures
themselves (NewReno partial ACKs, SACK pipe) live in the connection too because they drive sending.

Growth only happens while the sender actually uses its window (RFC 7661's idea, in Linux's simple form):
an application-limited sender must not build up a window it never tested.
"""

from __future__ import annotations


class NewReno:
    __slots__ = ("_acc", "cwnd", "ssthresh")

    def __init__(self, mss: int) -> None:
        self.cwnd = min(10 * mss, max(2 * mss, 14600))  # RFC 6928 IW10
        self.ssthresh = 1 << 30  # "arbitrarily high" (RFC 5681 §3.1)
        self._acc = 0

    def on_ack(self, acked: int, mss: int, flight_before: int) -> None:
        """New data acknowledged outside recovery; ``flight_before`` is what was outstanding."""
        cwnd = self.cwnd
        if cwnd < self.ssthresh:
            if 2 * flight_before >= cwnd:
                self.cwnd = cwnd + min(acked, 2 * mss)
        elif flight_before + mss >= cwnd:
            # one SMSS per window's worth of acknowledged bytes (RFC 5681 §3.1, byte counting)
            self._acc += acked
            if self._acc >= cwnd:
                self._acc -= cwnd
                self.cwnd = cwnd + mss

    def on_loss(self, flight: int, mss: int) -> None:
        """Halve for a loss detected by duplicate ACKs or SACK (RFC 5681 eq. 4)."""
        self.ssthresh = max(flight // 2, 2 * mss)
        self._acc = 0

    def on_timeout(self, flight: int, mss: int, first: bool) -> None:
        """Collapse to the loss window; ssthresh only falls on the first timeout of a series (§3.1)."""
        if first:
            self.ssthresh = max(flight // 2, 2 * mss)
        self.cwnd = mss
        self._acc = 0
