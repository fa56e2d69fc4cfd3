"""Retransmission timeout per RFC 6298, with Karn's rule and exponential backoff.

The estimator only does the arithmetic of RFC 6298 §2 and the backoff of §5.5; *which* samples are valid
(Karn's algorithm, §3: never time a retransmitted segment unless timestamps disambiguate it, RFC 7323
§4) is decided by the connection, which calls :meth:`RtoEstimator.sample` only with clean measurements.
A valid sample also ends the backoff (§5.7 keeps the backed-off value only until a new RTT is measured).
"""

from __future__ import annotations

# RFC 6298 §2: alpha = 1/8, beta = 1/4, K = 4.
ALPHA = 0.125
BETA = 0.25
K = 4
# Clock granularity G: our timestamps tick in milliseconds.
GRANULARITY = 0.001


class RtoEstimator:
    __slots__ = ("backoff", "base", "min_rtt", "rto_max", "rto_min", "rttvar", "srtt")

    def __init__(self, initial: float, rto_min: float, rto_max: float) -> None:
        self.srtt: float | None = None
        self.min_rtt: float | None = None  # the smallest sample (RFC 8985 §6.2's RACK.min_RTT)
        self.rttvar = 0.0
        self.base = initial  # the RTO before backoff
        self.rto_min = rto_min
        self.rto_max = rto_max
        self.backoff = 0

    @property
    def rto(self) -> float:
        """The current timeout: the estimate doubled once per unanswered timeout, capped (§5.5)."""
        return min(self.base * (1 << self.backoff), self.rto_max)

    def sample(self, rtt: float) -> None:
        """Feed one valid round-trip measurement in seconds (§2.2 first sample, §2.3 afterwards)."""
        rtt = max(rtt, 0.0)
        if self.min_rtt is None or rtt < self.min_rtt:
            self.min_rtt = rtt
        srtt = self.srtt
        if srtt is None:
            srtt = rtt
            self.rttvar = rtt / 2
        else:
            self.rttvar = (1 - BETA) * self.rttvar + BETA * abs(srtt - rtt)
            srtt = (1 - ALPHA) * srtt + ALPHA * rtt
        self.srtt = srtt
        # §2.4 rounds up to 1 s; like every deployed stack we use a lower floor (RFC 6298 §2.4 allows it
        # as a MAY, net.ipv4.tcp_rto_min) so that losses on fast paths do not stall for a second.
        self.base = min(max(srtt + max(GRANULARITY, K * self.rttvar), self.rto_min), self.rto_max)
        self.backoff = 0

    def timed_out(self) -> None:
        """§5.5: back off the timer after it expires."""
        if self.base * (1 << self.backoff) < self.rto_max:
            self.backoff += 1
