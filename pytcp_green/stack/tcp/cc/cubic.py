"""``cubic``: CUBIC congestion control (RFC 9438), the default as on Linux.

Windows inside this module are in segments (floats), as the RFC writes them; ``cwnd``/``ssthresh``
stay bytes for the connection.

* §4.1-4.2 the window grows along W_cubic(t) = C*(t - K)^3 + W_max, t the time since the congestion
  avoidance stage began, K = cbrt((W_max - cwnd_epoch) / C); each ACK moves cwnd by
  (target - cwnd) / cwnd per acknowledged segment towards target = W_cubic(t + RTT), held between
  cwnd and 1.5 cwnd.  RTT is the smallest sample seen (Linux's ``delay_min``).
* §4.3 the Reno-friendly region: W_est grows by alpha_cubic = 3(1 - beta)/(1 + beta) segments per
  window (1 once W_est reaches the window before the reduction); while W_cubic(t) < W_est, cwnd = W_est.
* §4.4-4.5 the concave and convex regions are the same formula on either side of K.
* §4.6 on a congestion event ssthresh = max(FlightSize * beta_cubic, 2 SMSS), beta_cubic = 0.7.
* §4.7 fast convergence: a loss below the previous W_max lowers W_max to cwnd * (1 + beta) / 2.
* RFC 8511 §3 (ABE): an ECN-Echo lowers the window by beta_ecn = 0.8 instead (:mod:`.base`).
* §4.8 after a timeout cwnd is the loss window; the next congestion avoidance stage starts with K = 0
  and W_max = cwnd at its start (so also after slow start ends without a loss).
* §5.8 (and Linux's ``CA_EVENT_TX_START``): after an idle period the epoch moves forward by the idle
  time, so W_cubic does not leap over a period in which nothing tested the path.

Slow start is RFC 5681's with byte counting (:class:`~.base.Window`).
"""

from __future__ import annotations

from pytcp_green.stack.tcp.cc.base import Window

C = 0.4  # RFC 9438 §5.1
BETA = 0.7  # beta_cubic, §4.6
ALPHA = 3 * (1 - BETA) / (1 + BETA)  # alpha_cubic, §4.3


class Cubic(Window):
    __slots__ = ("_acc", "_last_ack", "cwnd_epoch", "epoch", "k", "rtt_min", "w_est", "w_max")
    name = "cubic"

    def __init__(self, mss: int) -> None:
        super().__init__(mss)
        self.w_max = 0.0  # segments; 0: no congestion event yet (§4.8's rule applies)
        self.k = 0.0
        self.epoch: float | None = None  # start of the current congestion avoidance stage
        self.cwnd_epoch = 0.0
        self.w_est = 0.0
        self.rtt_min: float | None = None
        self._acc = 0.0  # fractional bytes of growth not yet applied
        self._last_ack: float | None = None  # when the pipe last drained, for on_tx_start

    def w_cubic(self, t: float) -> float:
        """Figure 1: the window, in segments, ``t`` seconds into the stage."""
        return C * (t - self.k) ** 3 + self.w_max

    def on_rtt(self, rtt: float, ack: int, snd_max: int, now: float) -> bool:
        if self.rtt_min is None or rtt < self.rtt_min:
            self.rtt_min = rtt
        return super().on_rtt(rtt, ack, snd_max, now)

    def on_ack(self, acked: int, mss: int, flight_before: int, now: float) -> None:
        self._last_ack = now
        cwnd = self.cwnd
        if cwnd < self.ssthresh:
            self.slow_start(acked, mss, flight_before)
            return
        if not self.cwnd_limited(mss, flight_before, cwnd):
            return
        segments = cwnd / mss
        if self.epoch is None:
            self._start_epoch(now, segments)
        t = now - self.epoch  # type: ignore[operator]  # set just above
        # §4.3: Reno's average growth, alpha_cubic per window until W_max is reached, then 1.
        alpha = 1.0 if self.w_est >= self.w_max else ALPHA
        self.w_est += alpha * (acked / mss) / segments
        if self.w_cubic(t) < self.w_est:
            target = self.w_est
            if target > segments:
                self.cwnd = int(target * mss)
            return
        # §4.2: move towards W_cubic one RTT ahead, by at most half a window per window.
        target = self.w_cubic(t + (self.rtt_min or 0.0))
        target = min(max(target, segments), 1.5 * segments)
        self._acc += (target - segments) / segments * acked
        if self._acc >= 1:
            grow = int(self._acc)
            self._acc -= grow
            self.cwnd = cwnd + grow

    def _start_epoch(self, now: float, segments: float) -> None:
        """§4.2 / §4.8: a congestion avoidance stage begins."""
        self.epoch = now
        self.cwnd_epoch = segments
        self.w_est = segments
        self._acc = 0.0
        if self.w_max <= segments:
            self.w_max = segments
            self.k = 0.0
        else:
            self.k = ((self.w_max - segments) / C) ** (1 / 3)

    def on_loss(self, flight: int, mss: int, now: float) -> None:
        """§4.6 with §4.7's fast convergence."""
        segments = self.cwnd / mss
        self.w_max = segments * (1 + BETA) / 2 if segments < self.w_max else segments
        self.ssthresh = max(int(flight * BETA), 2 * mss)
        self.epoch = None
        self.hystart = None  # RFC 9406 §4.2: a loss ends the search

    def on_ecn(self, flight: int, mss: int, now: float) -> None:
        """RFC 8511 §3 (ABE) in place of §4.6's beta_cubic; W_max as after a loss, so the curve
        climbs back to where the mark came."""
        segments = self.cwnd / mss
        self.w_max = segments * (1 + BETA) / 2 if segments < self.w_max else segments
        super().on_ecn(flight, mss, now)
        self.epoch = None

    def on_timeout(self, flight: int, mss: int, first: bool, now: float) -> None:
        """§4.8: Reno's loss window, ssthresh by beta_cubic; the next stage starts with K = 0."""
        if first:
            self.ssthresh = max(int(flight * BETA), 2 * mss)
        self.cwnd = mss
        self.hystart = None  # RFC 9406 §4.3: standard slow start after a timeout
        self.w_max = 0.0
        self.epoch = None

    def on_tx_start(self, now: float) -> None:
        # The idle period began with the last ACK (the one that emptied the pipe): shift the epoch.
        last = self._last_ack
        if self.epoch is not None and last is not None and now > last:
            self.epoch += now - last
            self._last_ack = now  # a second call before the next ACK must not shift it again
