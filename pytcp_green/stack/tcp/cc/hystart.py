"""HyStart++ (RFC 9406): leave slow start on a rise in delay, before the first loss.

* §4.2 rounds: a round ends when the ACK passes ``windowEnd`` (SND.MAX when it began); each keeps the
  minimum RTT of its samples.
* §4.2 standard slow start with delay increase detection: once a round has :data:`N_RTT_SAMPLE`
  samples, a minimum above the last round's by RttThresh = clamp(lastRoundMinRTT / 8, 4 ms, 16 ms)
  starts Conservative Slow Start (CSS) with that minimum as its baseline.
* §4.2 CSS: the window grows by a quarter of slow start's rate (:data:`CSS_GROWTH_DIVISOR`); a round
  whose minimum falls back below the baseline was a false alarm and slow start resumes; after
  :data:`CSS_ROUNDS` rounds slow start ends (ssthresh = cwnd: congestion avoidance).
* §4.3 only the initial slow start uses it: a loss or a timeout ends it for the connection.

The module holds only the detector; :class:`~.base.Window` applies it (growth, ssthresh).
"""

from __future__ import annotations

MIN_RTT_THRESH = 0.004  # §4.3 constants
MAX_RTT_THRESH = 0.016
MIN_RTT_DIVISOR = 8
N_RTT_SAMPLE = 8
CSS_GROWTH_DIVISOR = 4
CSS_ROUNDS = 5

_INF = float("inf")


class HyStart:
    """The round and RTT bookkeeping of one connection's slow start."""

    __slots__ = ("css_baseline", "css_rounds", "cur_min", "last_min", "samples", "window_end")

    def __init__(self) -> None:
        self.window_end: int | None = None  # end of the current round (None: none begun)
        self.last_min = _INF  # lastRoundMinRTT
        self.cur_min = _INF  # currentRoundMinRTT
        self.samples = 0  # rttSampleCount
        self.css_baseline: float | None = None  # cssBaselineMinRtt; None outside CSS
        self.css_rounds = 0

    @property
    def in_css(self) -> bool:
        return self.css_baseline is not None

    def on_rtt(self, rtt: float, ack: int, snd_max: int) -> bool:
        """One RTT sample with the ACK of ``ack`` and ``snd_max`` sent; True when slow start must end."""
        end = self.window_end
        if end is None or ack >= end:  # a new round begins
            self.window_end = snd_max
            if end is not None:
                self.last_min, self.cur_min, self.samples = self.cur_min, _INF, 0
                if self.css_baseline is not None:
                    self.css_rounds += 1
                    if self.css_rounds >= CSS_ROUNDS:
                        return True
        if rtt < self.cur_min:
            self.cur_min = rtt
        self.samples += 1
        if self.samples < N_RTT_SAMPLE:
            return False
        if self.css_baseline is None:
            if self.last_min != _INF:
                thresh = max(MIN_RTT_THRESH, min(self.last_min / MIN_RTT_DIVISOR, MAX_RTT_THRESH))
                if self.cur_min >= self.last_min + thresh:
                    self.css_baseline = self.cur_min  # delay rose: Conservative Slow Start
                    self.css_rounds = 0
        elif self.cur_min < self.css_baseline:
            self.css_baseline = None  # the rise was not lasting: back to slow start
        return False
