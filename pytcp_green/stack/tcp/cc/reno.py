"""``reno``: the standard congestion control of RFC 5681 (what Linux calls "reno", NewReno's window).

* §3.1 slow start and congestion avoidance with appropriate byte counting (RFC 3465, L = 2 SMSS in
  slow start; one SMSS per cwnd of acknowledged bytes in congestion avoidance);
* eq. 4: ssthresh = max(FlightSize / 2, 2 SMSS) on a loss (RFC 6582 §3.2, RFC 6675 §5 use the same);
* RFC 8511 §3 (ABE): an ECN-Echo sets cwnd = ssthresh = max(0.8 FlightSize, 2 SMSS);
* §3.1: after a timeout, cwnd = the loss window (1 SMSS); ssthresh falls on the first timeout only.

The recovery procedures (NewReno partial ACKs, SACK pipe, PRR) are the connection's, in
:mod:`~pytcp_green.stack.tcp.recovery`.
"""

from __future__ import annotations

from pytcp_green.stack.tcp.cc.base import Window


class Reno(Window):
    __slots__ = ("_acc",)
    name = "reno"

    def __init__(self, mss: int) -> None:
        super().__init__(mss)
        self._acc = 0

    def on_ack(self, acked: int, mss: int, flight_before: int, now: float) -> None:
        cwnd = self.cwnd
        if cwnd < self.ssthresh:
            self.slow_start(acked, mss, flight_before)
        elif self.cwnd_limited(mss, flight_before, cwnd):
            # one SMSS per window's worth of acknowledged bytes (RFC 5681 §3.1, byte counting)
            self._acc += acked
            if self._acc >= cwnd:
                self._acc -= cwnd
                self.cwnd = cwnd + mss

    def on_loss(self, flight: int, mss: int, now: float) -> None:
        """RFC 5681 eq. 4."""
        self.ssthresh = max(flight // 2, 2 * mss)
        self._acc = 0
        self.hystart = None  # RFC 9406 §4.2: a loss ends the search

    def on_ecn(self, flight: int, mss: int, now: float) -> None:
        """RFC 8511 §3 (ABE): beta_ecn = 0.8 instead of eq. 4's half."""
        super().on_ecn(flight, mss, now)
        self._acc = 0

    def on_timeout(self, flight: int, mss: int, first: bool, now: float) -> None:
        """The loss window; ssthresh only falls on the first timeout of a series (§3.1)."""
        if first:
            self.ssthresh = max(flight // 2, 2 * mss)
        self.cwnd = mss
        self.hystart = None  # RFC 9406 §4.3: standard slow start after a timeout
        self._acc = 0
