"""What an acknowledgment does to the sender, and loss recovery.

* RFC 6298 §3 RTT sampling with Karn's rule, from the echoed timestamp when there is one (RFC 7323 §4);
  §5.3 restarting the retransmission timer on new data acknowledged (the estimator is :mod:`.rto`).
* RFC 5681 §3.1 window growth (the module of :mod:`.cc` the socket chose), §3.2 fast retransmit and fast recovery;
  RFC 6582 NewReno (partial ACKs, the "impatient" variant of §4.1, the §4.2 ACK heuristic) when SACK
  is off; RFC 3042 limited transmit is in :mod:`.output`.
* RFC 2018 SACK blocks received into the scoreboard (:mod:`.sack`) and RFC 6675 loss recovery:
  IsLost, SetPipe, NextSeg rules 1-3, §5.1's no new recovery before the RecoveryPoint of a timeout;
  how much it sends per ACK is RFC 6937 PRR with slow-start reduction bound (PRR-SSRB, as Linux).
* RFC 8985 in part (SACK connections, ``net.ipv4.tcp_recovery``): a hole below SACKed data is lost
  once the reordering window (§6.2 step 4: min(min_RTT / 4, SRTT)) has passed without it being
  filled, so fewer than DupThresh SACKs start recovery (§6.3's timer, on the probe's timer as Linux
  shares one); lost retransmissions detected by transmission order (§6's idea, without the
  reordering window); the tail loss probe's arming (§7.2) and end of episode (§7.4).  The reorder
  timeout and the probe themselves are handled in :mod:`.timeouts`.

The recovery state lives in one :class:`Recovery` held by the connection as ``tcb.recovery``; the
functions here take the :class:`~pytcp_green.stack.tcp.tcb.Tcb` because recovery sends segments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytcp_green.stack.tcp.dsack import received as dsack_received
from pytcp_green.stack.tcp.sack import DUP_THRESH, Scoreboard
from pytcp_green.stack.tcp.send import emit, sack_option_for, ts_now, tso_burst
from pytcp_green.stack.tcp.seq import HALF, MASK, ts_before, unwrap
from pytcp_green.stack.tcp.state import SENDING
from pytcp_green.stack.tcp.undo import episode_begins, retransmitted
from pytcp_green.stack.wire.tcp import ACK, FIN, PSH, TcpSegment

if TYPE_CHECKING:
    from pytcp_green.stack.tcp.tcb import Tcb

TLP_MIN_PTO = 0.01  # RFC 8985 §7.2: the probe timeout's floor
TLP_DELACK = 0.2  # RFC 8985 §7.2 WCDelAckT: worst-case delayed ACK, added when one segment is in flight


class Recovery:
    """One connection's loss-detection and recovery state (RFC 5681, 6582, 6675, 8985)."""

    __slots__ = ("active", "dupacks", "high_rxt", "last_advance", "partial_acked", "prior_flight", "prr_delivered",
                 "prr_mark", "prr_out", "rack", "recover", "recover_fs", "relost", "reo_armed", "rtx_log", "sb",
                 "tlp_end", "tlp_rxt")

    def __init__(self, iss: int, rack: bool) -> None:
        self.dupacks = 0
        self.active = False  # in fast recovery
        self.recover = iss  # RFC 6582 "recover"
        self.high_rxt = 0  # RFC 6675 HighRxt
        self.partial_acked = False
        self.last_advance = 0  # bytes the previous cumulative ACK advanced (RFC 6582 §4.2 heuristic)
        self.prior_flight = 0  # FlightSize before the latest cumulative ACK took its bytes out
        self.sb = Scoreboard()
        # RFC 8985 (SACK only): retransmissions of this recovery as (start, end, SND.MAX when sent), in
        # sending order; ranges found lost again, to resend first; the open tail-loss-probe episode.
        self.rack = rack
        self.rtx_log: list[tuple[int, int, int]] = []
        self.relost: list[tuple[int, int]] = []
        self.tlp_end: int | None = None  # SND.MAX after the probe; no other probe until it is acked
        self.tlp_rxt = False  # the probe was a retransmission (the episode's end is then a loss)
        self.reo_armed = False  # the probe's timer runs as RACK's reorder timer (RFC 8985 §6.3)
        # RFC 6937 §3 (SACK recovery): RecoverFS, prr_delivered, prr_out, and SND.UNA + SACKed bytes
        # when last looked at (the difference is the next ACK's DeliveredData).
        self.recover_fs = 0
        self.prr_delivered = 0
        self.prr_out = 0
        self.prr_mark = 0

    def forget(self, snd_max: int) -> None:
        """After a retransmission timeout (RFC 6298 §5, RFC 2018 §8: the SACK information too)."""
        self.active = False
        self.recover = snd_max
        self.dupacks = 0
        self.sb.clear()
        self.rtx_log.clear()
        self.relost.clear()
        self.tlp_end = None
        self.tlp_rxt = False
        self.reo_armed = False

    def log_retransmission(self, seq: int, sent: int, snd_max: int) -> None:
        if self.rack and sent:
            self.rtx_log.append((seq, seq + sent, snd_max))

    def pipe(self, una: int, snd_max: int, lost_to: int) -> int:
        """RFC 6675 SetPipe: un-SACKed bytes not deemed lost, plus retransmitted bytes (below HighRxt)."""
        sb = self.sb
        high = self.high_rxt if self.high_rxt > una else una
        if not sb:
            return (snd_max - una) + (high - una)
        above_lost = (snd_max - lost_to) - (sb.sacked - sb.sacked_below(lost_to))
        retransmitted = (high - una) - sb.sacked_below(high)
        for first, last in self.relost:
            # A retransmission found lost (RFC 8985 §6) has left the network: no longer in flight.
            if first < una:
                first = una
            if last > first:
                retransmitted -= (last - first) - (sb.sacked_below(last) - sb.sacked_below(first))
        return above_lost + retransmitted

    def detect_lost_retransmissions(self, una: int) -> int:
        """RFC 8985 §6.2's ordering idea in its simplest form: once the peer SACKs data first sent after
        a retransmission, that retransmission, if still neither acknowledged nor SACKed, was lost too
        (the path does not reorder that far back) and becomes eligible again in this recovery, where
        RFC 6675 alone would wait for the RTO.  No reordering window: one extra retransmission is the
        price of being wrong.  The log is in sending order, so the SND.MAX values never decrease.
        Returns how many retransmissions were found lost."""
        sb = self.sb
        high = sb.high
        log = self.rtx_log
        done = 0
        lost = 0
        for first, last, snd_max in log:
            if snd_max >= high:
                break  # this and later retransmissions are younger than anything SACKed
            done += 1
            if first < una:
                first = una
            if last > first and sb.sacked_below(last) - sb.sacked_below(first) < last - first:
                self.relost.append((first, last))
                lost += 1
        if done:
            del log[:done]
        return lost


def sack_input(tcb: Tcb, blocks: list[tuple[int, int]], ack: int) -> bool:
    """RFC 2018 §5: record the peer's SACK blocks; True if any covered new data."""
    una = max(ack, tcb.snd_una)
    snd_max = tcb.snd_max
    sb = tcb.recovery.sb
    new = False
    dsack_received(tcb, blocks, una)
    for left, right in blocks:
        start = unwrap(left, una)
        end = unwrap(right, una)
        if end <= una or end > snd_max or start >= end:
            continue  # D-SACK (RFC 2883, seen above) or bogus: not for the scoreboard
        if sb.add(start if start > una else una, end):
            new = True
    return new


def detect_lost_retransmissions(tcb: Tcb) -> None:
    lost = tcb.recovery.detect_lost_retransmissions(tcb.snd_una)
    if lost:
        tcb.stats["tcp.lost_retransmit"] += lost


def new_ack(tcb: Tcb, ack: int, seg: TcpSegment, now: float) -> None:
    """SND.UNA advances (RFC 9293 §3.10.7.4 fifth): RTT, window growth or recovery, timers."""
    snd_una = tcb.snd_una
    flight_before = tcb.snd_max - snd_una
    acked = ack - snd_una
    tcb.snd_una = ack
    if tcb.snd_nxt < ack:
        tcb.snd_nxt = ack
    released = tcb.sbuf.acknowledge(ack)
    # RTT: from the echoed timestamp (RFC 7323 §4), else the one timed segment (RFC 6298 §3, Karn).
    # As Linux (tcp_ack_update_rtt), an echo is a sample even when the data it acknowledges was
    # retransmitted: RFC 7323 §4.3 makes a receiver echo the copy that filled the hole, so fast
    # recovery's retransmissions time themselves and a backed-off RTO comes back down under loss.
    # Only an echo older than our latest retransmission *timeout* is ambiguous: after go-back-N the
    # peer may repeat the timestamp of an earlier copy whose ACK was lost, and the "RTT" would
    # include whole timeouts (such samples once drove the RTO to tens of seconds under heavy loss).
    rtt: float | None = None
    if tcb.ts_ok and seg.ts_ecr:
        delta = (ts_now(tcb, now) - seg.ts_ecr) & MASK
        if delta < HALF and (tcb.rtx_tsval is None or not ts_before(seg.ts_ecr, tcb.rtx_tsval)):
            rtt = delta / 1000
    elif tcb.rtt_seq is not None and ack > tcb.rtt_seq:
        rtt = now - tcb.rtt_time
        tcb.rtt_seq = None
    if rtt is not None:
        tcb.rto.sample(rtt)
        if tcb.cc.on_rtt(rtt, ack, tcb.snd_max, now):
            tcb.stats["tcp.hystart_exit"] += 1  # slow start ended on delay, before any loss
    tcb.retries = 0
    tcb.persist_backoff = 0
    tcb.progress_at = now
    rec = tcb.recovery
    rec.last_advance = acked
    rec.prior_flight = flight_before
    if rec.sb:
        rec.sb.advance(ack)
    rearm = True
    if rec.active:
        rearm = _recovery_ack(tcb, rec, ack, acked, now)
    else:
        tcb.cc.on_ack(acked, tcb.eff_mss, flight_before, now)
    if rec.tlp_end is not None and ack >= rec.tlp_end:
        _tlp_episode_over(tcb, rec, flight_before, now)
    rec.dupacks = 0
    if ack >= tcb.snd_max:
        tcb.rtx_timer.cancel()
        tcb.tlp_timer.cancel()
    else:
        if rearm:
            tcb.rtx_timer.arm(now + tcb.rto.rto)
        schedule_tlp(tcb, now)  # RFC 8985 §7.2: restart on an ACK of new data
    if released and tcb.write_blocked and tcb.sock.writable():
        tcb.write_blocked = False
        tcb.sock.wake()


def _recovery_ack(tcb: Tcb, rec: Recovery, ack: int, acked: int, now: float) -> bool:
    """New data acknowledged during fast recovery; False if the retransmission timer must not be
    restarted (RFC 6582 §4.1)."""
    mss = tcb.eff_mss
    if ack >= rec.recover:
        # Full acknowledgment: leave recovery (RFC 6582 §3.2 step 3, option 1; RFC 6675 §5).
        rec.active = False
        rec.rtx_log.clear()
        rec.relost.clear()
        cc = tcb.cc
        cc.cwnd = min(cc.ssthresh, max(tcb.snd_max - ack, mss) + mss)
    elif not tcb.sack_ok:
        # NewReno partial ACK (RFC 6582 §3.2 step 5): the next hole is lost too.
        retransmit(tcb, ack, now)
        cwnd = tcb.cc.cwnd - acked
        if acked >= mss:
            cwnd += mss
        tcb.cc.cwnd = max(cwnd, mss)
        rearm = not rec.partial_acked  # "impatient" variant, RFC 6582 §4.1
        rec.partial_acked = True
        return rearm
    return True


def _tlp_episode_over(tcb: Tcb, rec: Recovery, flight_before: int, now: float) -> None:
    """RFC 8985 §7.4: the probe's episode is over.  A retransmitted probe that got this far repaired a
    loss (we keep no D-SACK to prove it spurious): respond as fast recovery would, unless a recovery
    of the episode already did."""
    if rec.tlp_rxt and not rec.active:
        tcb.stats["tcp.tlp_recovery"] += 1
        tcb.cc.on_loss(flight_before, tcb.eff_mss, now)
        tcb.cc.cwnd = tcb.cc.ssthresh
    rec.tlp_end = None
    rec.tlp_rxt = False


def dupack(tcb: Tcb, now: float) -> None:
    """A duplicate ACK (RFC 5681 §2; with SACK, RFC 6675 §2: one that SACKs new data)."""
    rec = tcb.recovery
    rec.dupacks += 1
    mss = tcb.eff_mss
    if rec.active:
        if not tcb.sack_ok:
            tcb.cc.cwnd += mss  # RFC 6582 §3.2 step 4: inflate by the segment that left
        return
    if tcb.sack_ok:
        # RFC 6675 §5.1: no new recovery until HighACK reaches the RecoveryPoint of a timeout.
        if tcb.snd_una < rec.recover:
            return
        if (rec.dupacks >= DUP_THRESH or rec.sb.lost_boundary(tcb.snd_una, mss) > tcb.snd_una
                or (rec.tlp_end is not None and rec.sb.high >= rec.tlp_end)):
            # The last clause is RFC 8985's ordering applied to a tail loss probe: the probe, sent
            # after everything below it, was SACKed, so the holes below it were lost (§7.4).
            enter_recovery(tcb, now)
        else:
            schedule_tlp(tcb, now)  # too few SACKs for RFC 6675: RACK's reordering window decides
    elif rec.dupacks == DUP_THRESH and (tcb.snd_una > rec.recover or (
            tcb.cc.cwnd > mss and rec.last_advance <= 4 * mss)):
        # RFC 6582 §3.2 step 2, with the §4.2 ACK heuristic for duplicates at exactly "recover".
        enter_recovery(tcb, now)


def enter_recovery(tcb: Tcb, now: float) -> None:
    """Fast retransmit and the start of fast recovery (RFC 5681 §3.2, RFC 6582, RFC 6675 §5)."""
    mss = tcb.eff_mss
    cc = tcb.cc
    rec = tcb.recovery
    episode_begins(tcb, ts_now(tcb, now) if tcb.ts_ok else None)  # what an undo gives back (:mod:`.undo`)
    # RFC 5681 §3.2 eq. 4's FlightSize is what was outstanding when the loss showed, before the ACK
    # that revealed it took its bytes out (a receiver that acknowledges a whole flight at once would
    # otherwise leave ssthresh at two segments; Linux uses cwnd, which such a flight filled).
    cc.on_loss(max(tcb.snd_max - tcb.snd_una, rec.prior_flight), mss, now)
    rec.prior_flight = 0
    rec.recover = tcb.snd_max
    rec.active = True
    rec.partial_acked = False
    tcb.dsack.recovery_started()
    tcb.rtt_seq = None
    tcb.stats["tcp.fast_retransmit"] += 1
    tcb.tlp_timer.cancel()  # RFC 8985 §7.2: no probe during recovery
    rec.reo_armed = False
    rec.tlp_rxt = False  # this recovery is the episode's loss response
    rec.rtx_log.clear()
    rec.relost.clear()
    rec.recover_fs = tcb.snd_max - tcb.snd_una  # RFC 6937 §3: RecoverFS = snd.nxt - snd.una
    rec.prr_delivered = 0
    rec.prr_mark = tcb.snd_una + rec.sb.sacked
    sent = retransmit(tcb, tcb.snd_una, now)
    rec.prr_out = sent
    if tcb.sack_ok:
        cc.cwnd = cc.ssthresh
        rec.high_rxt = tcb.snd_una + sent
        rec.log_retransmission(tcb.snd_una, sent, tcb.snd_max)
    else:
        cc.cwnd = cc.ssthresh + DUP_THRESH * mss
    tcb.rtx_timer.arm(now + tcb.rto.rto)


def retransmit(tcb: Tcb, seq: int, now: float, upto: int = 0) -> int:
    """Send one segment again starting at ``seq`` (capped at the next SACKed range); returns its
    sequence length.  With ``upto`` beyond one segment and a TSO device, as many whole segments as
    fit in ``upto`` bytes leave as one super-segment."""
    end = tcb.sbuf.end
    options = sack_option_for(tcb)
    room = tcb.eff_mss - len(options)
    length = min(room, end - seq, tcb.snd_max - seq)
    if upto > room and tcb.tso_max:
        length = min(tso_burst(tcb, room), upto, end - seq, tcb.snd_max - seq)
    sb = tcb.recovery.sb
    if sb:
        nxt = sb.next_start_after(seq)
        if nxt is not None and nxt - seq < length:
            length = nxt - seq
    flags = ACK
    if seq + length == end:
        flags |= PSH
        if tcb.fin_queued and tcb.snd_max > end:
            flags |= FIN
    if length <= 0 and not flags & FIN:
        return 0
    emit_again(tcb, seq, flags, length, room, options, now)
    return length + (1 if flags & FIN else 0)


def emit_again(tcb: Tcb, seq: int, flags: int, length: int, room: int, options: bytes, now: float) -> None:
    """Send ``length`` bytes at ``seq`` again, as a super-segment of ``room``-byte segments when longer."""
    retransmitted(tcb, seq, length + (1 if flags & FIN else 0))
    if length > room:
        emit(tcb, seq, flags, length, now, options, gso=room)
        count_retransmission(tcb, -(-length // room))
    else:
        emit(tcb, seq, flags, length, now, options)
        count_retransmission(tcb)


def count_retransmission(tcb: Tcb, segments: int = 1) -> None:
    """Karn's rule (RFC 6298 §3): once anything is sent twice, the one timed segment is not trustworthy.
    ``segments``: the wire segments resent (a super-segment toward a TSO device is several)."""
    tcb.stats["tcp.retransmit"] += segments
    tcb.rtt_seq = None


def prr_sndcnt(tcb: Tcb, pipe: int) -> int:
    """RFC 6937 §3, on each ACK in recovery: how many bytes may leave.  Above ssthresh, in proportion
    to what was delivered (prr_delivered * ssthresh / RecoverFS - prr_out, rounded up); at or below
    it, slow-start reduction bound: no faster than slow start, max(prr_delivered - prr_out,
    DeliveredData) + MSS, up to ssthresh.  cwnd becomes pipe + sndcnt."""
    rec = tcb.recovery
    mark = tcb.snd_una + rec.sb.sacked
    delivered = mark - rec.prr_mark if mark > rec.prr_mark else 0  # DeliveredData (a renege: none)
    rec.prr_mark = mark
    rec.prr_delivered += delivered
    cc = tcb.cc
    ssthresh = cc.ssthresh
    if pipe > ssthresh:
        sndcnt = -(-rec.prr_delivered * ssthresh // max(rec.recover_fs, 1)) - rec.prr_out
    else:
        sndcnt = min(ssthresh - pipe, max(rec.prr_delivered - rec.prr_out, delivered) + tcb.eff_mss)
    sndcnt = max(sndcnt, 0)
    cc.cwnd = max(pipe + sndcnt, tcb.eff_mss)
    return sndcnt


def sack_recovery_output(tcb: Tcb, now: float) -> None:
    """RFC 6675 §5 step (C): send NextSeg() while PRR (RFC 6937) allows; the bytes sent count as prr_out."""
    mss = tcb.eff_mss
    rec = tcb.recovery
    sb = rec.sb
    una = tcb.snd_una
    lost_to = sb.lost_boundary(una, mss) if sb else una
    pipe = rec.pipe(una, tcb.snd_max, lost_to)
    budget = prr_sndcnt(tcb, pipe)
    out_before = rec.prr_out
    end = tcb.sbuf.end
    relost = rec.relost
    while relost and budget > 0:
        # Retransmissions found lost again (RFC 8985 §6) go before anything NextSeg would pick.
        first, last = relost[0]
        hole = sb.hole_at_or_after(first if first > una else una, last)
        if hole is None:
            del relost[0]  # acknowledged or SACKed since
            continue
        sent = retransmit(tcb, hole[0], now, _whole_segments(budget, hole, mss))
        if sent == 0:
            break
        if hole[0] + sent >= last:
            del relost[0]
        else:
            relost[0] = (hole[0] + sent, last)
        rec.log_retransmission(hole[0], sent, tcb.snd_max)
        budget -= sent
        rec.prr_out += sent
    while budget > 0:
        start = rec.high_rxt if rec.high_rxt > una else una
        # rule 1: the first lost hole above HighRxt, all of it that PRR allows in one go (TSO)
        hole = sb.hole_at_or_after(start, lost_to) if sb else None
        upto = _whole_segments(budget, hole, mss) if hole is not None else 0
        if hole is None:
            # rule 2: new data the receiver's window allows
            seq = tcb.snd_max
            if seq < end and seq < una + tcb.snd_wnd:
                options = sack_option_for(tcb)
                length = min(mss - len(options), end - seq, una + tcb.snd_wnd - seq)
                flags = ACK
                if seq + length == end:
                    flags = ACK | PSH | FIN if tcb.fin_queued else ACK | PSH
                emit(tcb, seq, flags, length, now, options)
                tcb.snd_nxt = tcb.snd_max = seq + length + (1 if flags & FIN else 0)
                budget -= length
                rec.prr_out += length
                continue
            if tcb.fin_queued and seq == end:
                emit(tcb, seq, ACK | FIN, 0, now, sack_option_for(tcb))
                tcb.snd_nxt = tcb.snd_max = end + 1
                budget -= 1
                rec.prr_out += 1
                continue
            # rule 3: a hole not yet deemed lost, below the highest SACKed byte (one segment)
            hole = sb.hole_at_or_after(start, sb.high) if sb else None
            if hole is None:
                break
        sent = retransmit(tcb, hole[0], now, upto)
        if sent == 0:
            break
        rec.high_rxt = hole[0] + sent
        rec.log_retransmission(hole[0], sent, tcb.snd_max)
        budget -= sent
        rec.prr_out += sent
    if rec.prr_out != out_before:
        tcb.stats["tcp.prr_sent"] += -(-(rec.prr_out - out_before) // mss)


def reorder_pending(tcb: Tcb) -> bool:
    """RFC 8985 §6.2: outside recovery, the peer SACKed data above SND.UNA, so the hole at SND.UNA,
    sent before it, is lost unless it arrives within the reordering window.  Not before the
    RecoveryPoint of a timeout (RFC 6675 §5.1: that loss is already being repaired)."""
    rec = tcb.recovery
    sb = rec.sb
    return (rec.rack and tcb.sack_ok and tcb.state in SENDING and not rec.active and bool(sb)
            and sb.ranges[0][0] > tcb.snd_una >= rec.recover)


def reorder_window(tcb: Tcb) -> float:
    """RFC 8985 §6.2 step 4: RACK.reo_wnd = min(RACK.reo_wnd_mult * RACK.min_RTT / 4, SRTT), the
    multiplier grown by D-SACKs (:mod:`.dsack`)."""
    rto = tcb.rto
    if rto.min_rtt is None or rto.srtt is None:
        return TLP_MIN_PTO  # no sample yet: a short wait, the probe timeout's floor
    return min(tcb.dsack.mult * rto.min_rtt / 4, rto.srtt)


def _whole_segments(budget: int, hole: tuple[int, int], mss: int) -> int:
    """How much of ``hole`` one retransmission may cover: PRR's ``budget`` rounded up to whole segments."""
    return min(hole[1] - hole[0], -(-budget // mss) * mss)


def schedule_tlp(tcb: Tcb, now: float) -> None:
    """RFC 8985 §7.2: with data in flight on a SACK connection outside loss recovery, and no probe
    episode open, arm the probe timeout PTO = max(2 * SRTT, 10 ms), plus WCDelAckT when a single
    segment is in flight (its ACK may be delayed); 1 s without an RTT sample.  A PTO that would
    expire no earlier than the RTO is left to the RTO.  While a hole waits out the reordering window
    (:func:`reorder_pending`) the timer is RACK's reorder timer instead (§6.3), armed once."""
    rec = tcb.recovery
    if reorder_pending(tcb):
        if not (rec.reo_armed and tcb.tlp_timer.armed):
            rec.reo_armed = True
            tcb.tlp_timer.arm(now + reorder_window(tcb))
        return
    rec.reo_armed = False
    if not tlp_allowed(tcb):
        tcb.tlp_timer.cancel()
        return
    srtt = tcb.rto.srtt
    if srtt is None:
        pto = 1.0
    else:
        pto = max(2 * srtt, TLP_MIN_PTO)
        if tcb.snd_max - tcb.snd_una <= tcb.eff_mss:
            pto += TLP_DELACK
    rto_at = tcb.rtx_timer.when
    if rto_at is not None and now + pto >= rto_at:
        tcb.tlp_timer.cancel()
    else:
        tcb.tlp_timer.arm(now + pto)


def tlp_allowed(tcb: Tcb) -> bool:
    rec = tcb.recovery
    return (rec.rack and tcb.sack_ok and tcb.state in SENDING and not rec.active
            and rec.tlp_end is None and tcb.snd_una < tcb.snd_max == tcb.snd_nxt and tcb.snd_wnd > 0)
