"""What happens when a connection's timers expire.

* Retransmission (RFC 6298 §5.4-5.6, RFC 5681 §3.1 loss window, RFC 2018 §8 forget SACK
  information); SYN and SYN-ACK retransmission with ``net.ipv4.tcp_syn_retries`` /
  ``tcp_synack_retries``; giving up (RFC 1122 §4.2.3.5's R2) after ``net.ipv4.tcp_retries2``
  timeouts of the same data, ``net.ipv4.tcp_orphan_retries`` once the application has closed the
  socket (Linux's tcp_write_timeout), or after TCP_USER_TIMEOUT without progress.
* RACK's reorder timeout (RFC 8985 §6.3) and the tail loss probe (§7.3) on one timer; their arming
  (§6.2, §7.2) is in :mod:`.recovery`.
* Persist: zero-window probing (RFC 9293 §3.8.6.1, RFC 1122 §4.2.2.17) and the small-window send
  that overrides SWS avoidance; probes back off on their own count.  As Linux's tcp_probe_timer:
  a peer that answers (any ACK restarts the count of unanswered probes) is probed for as long as
  it answers, but ``tcp_retries2`` unanswered probes (``tcp_orphan_retries`` for an orphan) end the
  connection; so does TCP_USER_TIMEOUT counted from the first probe since the last progress, and,
  for an orphan, a probe interval backed off to ``tcp_rto_max`` (even while the peer answers).
* Giving up on a timeout (Linux's tcp_write_err) counts ``tcp.abort_on_timeout`` (TCPAbortOnTimeout),
  reports the soft error or ETIMEDOUT to the application and frees the connection; unlike Linux,
  which sends nothing then, a RST goes out, so a peer that comes back learns at once.
* Delayed ACK (RFC 5681 §4.2, RFC 1122 §4.2.3.2).
* Keep-alive (RFC 1122 §4.2.3.6), TIME-WAIT's end (RFC 9293 §3.10.7.4), the FIN-WAIT-2 timeout of an
  orphan (Linux's tcp_fin_timeout), and the user timeout (RFC 9293 §3.8.5, RFC 5482-style).

Four :class:`~pytcp_green.stack.tcp.timer.LazyTimer` per connection: ``rtx_timer`` (retransmission
and persist: its handler tells which case holds), ``tlp_timer``, ``dack_timer`` and ``misc_timer``
(keep-alive, FIN-WAIT-2, TIME-WAIT: never needed at the same time).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from pytcp_green.stack.tcp.closing import destroy, drop, orphan_retries
from pytcp_green.stack.tcp.frto import timeout as frto_timeout
from pytcp_green.stack.tcp.output import output, window_output
from pytcp_green.stack.tcp.recovery import enter_recovery, reorder_pending, retransmit, schedule_tlp, tlp_allowed
from pytcp_green.stack.tcp.send import emit, sack_option_for, send_ack, send_syn, ts_now
from pytcp_green.stack.tcp.state import CLOSED, FIN_WAIT_2, KEEPALIVE, SENDING, SYN_RECEIVED, SYN_SENT, TIME_WAIT
from pytcp_green.stack.wire.tcp import ACK, FIN, PSH

if TYPE_CHECKING:
    from pytcp_green.stack.tcp.tcb import Tcb


def on_rtx_timer(tcb: Tcb, now: float) -> None:
    state = tcb.state
    if state in (SYN_SENT, SYN_RECEIVED):
        limit = tcb.stack.sysctl.int("net.ipv4.tcp_syn_retries" if state == SYN_SENT
                                     else "net.ipv4.tcp_synack_retries")
        if tcb.retries >= limit or user_timed_out(tcb, now):
            if tcb.passive:
                destroy(tcb)
            else:
                drop(tcb, now, tcb.soft_error or errno.ETIMEDOUT, rst=False)
            return
        tcb.retries += 1
        tcb.rto.timed_out()
        tcb.stats["tcp.syn_retransmit"] += 1
        send_syn(tcb, now)
        return
    if state not in SENDING:
        return
    outstanding = tcb.snd_max > tcb.snd_una
    if outstanding and tcb.snd_wnd:
        retransmit_timeout(tcb, now)
    elif outstanding or tcb.sbuf.end > tcb.snd_nxt or (tcb.fin_queued and tcb.snd_max <= tcb.sbuf.end):
        # A zero window, with or without data in flight: go-back-N could send nothing, so the
        # expiry is a window probe (RFC 9293 §3.8.6.1), which a live peer always answers, not a
        # retransmission counted towards giving up.
        persist(tcb, now)


def user_timed_out(tcb: Tcb, now: float) -> bool:
    timeout = tcb.sock.user_timeout
    return bool(timeout) and now - tcb.progress_at >= timeout


def give_up(tcb: Tcb, now: float) -> None:
    """A timeout ends the connection (Linux's tcp_write_err, plus our RST)."""
    tcb.stats["tcp.abort_on_timeout"] += 1
    drop(tcb, now, tcb.soft_error or errno.ETIMEDOUT, rst=True)


def retransmit_timeout(tcb: Tcb, now: float) -> None:
    """RFC 6298 §5.4-5.6 and RFC 5681 §3.1 on expiry; RFC 2018 §8: forget SACK information."""
    if tcb.sock.user_timeout:
        expired = user_timed_out(tcb, now)
    else:
        rto = tcb.rto
        # Linux's "alive" is icsk_rto < TCP_RTO_MAX; its RTO comes back down with the RTT samples it
        # takes from every ACK of unretransmitted data, where ours (without timestamps, Karn's rule)
        # can stay backed off across progress.  So judge by this series of timeouts alone.
        alive = rto.base * (1 << min(tcb.retries, 30)) < rto.rto_max
        limit = (orphan_retries(tcb, alive) if tcb.user_closed
                 else tcb.stack.sysctl.int("net.ipv4.tcp_retries2"))
        expired = tcb.retries >= limit
    if expired:
        give_up(tcb, now)
        return
    tcb.stats["tcp.rto"] += 1
    frto_timeout(tcb, now)  # RFC 5682 step 1, before the window is cut (:mod:`.frto`)
    # What this timeout cost in idle time (the RTO it waited, before backing off): the number to read
    # beside tcp.rto when comparing with Linux's TCPTimeouts under loss.
    tcb.stats["tcp.rto_wait_ms"] += round(tcb.rto.rto * 1000)
    mss = tcb.eff_mss
    tcb.cc.on_timeout(tcb.snd_max - tcb.snd_una, mss, tcb.retries == 0, now)
    tcb.retries += 1
    tcb.rto.timed_out()
    tcb.recovery.forget(tcb.snd_max)
    tcb.rtt_seq = None
    if tcb.ts_ok:
        tcb.rtx_tsval = ts_now(tcb, now)  # echoes older than this are ambiguous (see recovery.new_ack)
    tcb.snd_nxt = tcb.snd_una
    window_output(tcb, now)
    tcb.rtx_timer.arm(now + tcb.rto.rto)


def on_tlp_timer(tcb: Tcb, now: float) -> None:
    """The probe's timer: RACK's reorder timeout when one was armed, else the tail loss probe."""
    rec = tcb.recovery
    if rec.reo_armed:
        rec.reo_armed = False
        reorder_timeout(tcb, now)
    else:
        tail_loss_probe(tcb, now)


def reorder_timeout(tcb: Tcb, now: float) -> None:
    """RFC 8985 §6.3: the reordering window passed and the hole at SND.UNA is still unfilled, so it
    was lost: start recovery with fewer SACKs than RFC 6675's DupThresh would wait for."""
    if reorder_pending(tcb):
        tcb.stats["tcp.rack_lost"] += 1
        enter_recovery(tcb, now)
        output(tcb, now)
    else:
        schedule_tlp(tcb, now)


def tail_loss_probe(tcb: Tcb, now: float) -> None:
    """RFC 8985 §7.3: nothing was acknowledged for a PTO.  Send one probe, new data if the peer's
    window allows (whatever cwnd says), else the highest-sequence segment again, so the ACK it
    draws carries the SACK information that starts fast recovery instead of a timeout."""
    if not tlp_allowed(tcb):
        return
    tcb.stats["tcp.tlp"] += 1
    una = tcb.snd_una
    end = tcb.sbuf.end
    seq = tcb.snd_max
    right = una + tcb.snd_wnd
    rec = tcb.recovery
    if seq < end and seq < right:
        options = sack_option_for(tcb)
        length = min(tcb.eff_mss - len(options), end - seq, right - seq)
        flags = ACK
        if seq + length == end:
            flags = ACK | PSH | FIN if tcb.fin_queued else ACK | PSH
        emit(tcb, seq, flags, length, now, options)
        if length < tcb.eff_mss:
            tcb.snd_sml = seq + length
        tcb.snd_nxt = tcb.snd_max = seq + length + (1 if flags & FIN else 0)
        rec.tlp_rxt = False
    else:
        room = tcb.eff_mss - len(sack_option_for(tcb))
        last = seq if seq < end else end
        retransmit(tcb, max(una, last - room), now)
        rec.tlp_rxt = True
    rec.tlp_end = tcb.snd_max
    tcb.rtx_timer.arm(now + tcb.rto.rto)  # §7.3: the RTO restarts after the probe


def persist(tcb: Tcb, now: float) -> None:
    """The peer's window stopped us (RFC 9293 §3.8.6.1, RFC 1122 §4.2.2.17).  A zero window gets a
    probe (an already-acknowledged sequence number, so any receiver must answer with its window);
    a small one is used despite SWS avoidance.  Probing goes on while the peer answers, within the
    limits of Linux's tcp_probe_timer (the module's docstring)."""
    user_timeout = tcb.sock.user_timeout
    if tcb.probe_start is None:
        tcb.probe_start = now
    elif user_timeout and now >= tcb.probe_start + user_timeout:
        give_up(tcb, now)
        return
    retries2 = tcb.stack.sysctl.int("net.ipv4.tcp_retries2")
    limit = retries2
    if tcb.user_closed:
        alive = probe_interval(tcb) < tcb.rto.rto_max
        limit = orphan_retries(tcb, alive)
        if not alive and tcb.persist_backoff >= limit:
            give_up(tcb, now)
            return
    if tcb.probes_out >= limit:
        give_up(tcb, now)
        return
    if tcb.snd_wnd == 0:
        tcb.stats["tcp.window_probe"] += 1
        emit(tcb, tcb.snd_una - 1, ACK, 0, now)
    else:
        tcb.sws_override = True
        window_output(tcb, now)
        tcb.sws_override = False
    tcb.probes_out += 1
    # Probes back off on their own count (at most tcp_retries2 doublings, as Linux): the peer
    # answering them says nothing about the RTT.
    if tcb.persist_backoff < retries2:
        tcb.persist_backoff += 1
    when = now + probe_interval(tcb)
    if user_timeout:  # Linux's tcp_clamp_probe0_to_user_timeout: give up on time, not a probe later
        when = min(when, tcb.probe_start + user_timeout)
    tcb.rtx_timer.arm(when)


def probe_interval(tcb: Tcb) -> float:
    """The RTO doubled once per probe since the window last opened, capped at ``tcp_rto_max``."""
    rto = tcb.rto
    return min(rto.rto * (1 << min(tcb.persist_backoff, 16)), rto.rto_max)


def on_dack_timer(tcb: Tcb, now: float) -> None:
    if tcb.ack_due and tcb.state not in (CLOSED, SYN_SENT):
        tcb.stats["tcp.delayed_ack"] += 1
        send_ack(tcb, now)


def arm_keepalive(tcb: Tcb, now: float) -> None:
    if tcb.sock.keepalive and tcb.state in KEEPALIVE:
        tcb.misc_timer.arm(tcb.last_rx + tcb.sock.keepidle)


def on_misc_timer(tcb: Tcb, now: float) -> None:
    state = tcb.state
    if state == TIME_WAIT:
        destroy(tcb)
    elif state == FIN_WAIT_2 and tcb.user_closed:
        drop(tcb, now, 0, rst=True)  # tcp_fin_timeout for an orphan, as Linux
    elif state in KEEPALIVE and tcb.sock.keepalive:
        keepalive(tcb, now)


def keepalive(tcb: Tcb, now: float) -> None:
    """RFC 1122 §4.2.3.6: probe an idle connection; give up after keepcnt unanswered probes."""
    sock = tcb.sock
    idle = now - tcb.last_rx
    if idle < sock.keepidle:
        tcb.ka_probes = 0
        tcb.misc_timer.arm(tcb.last_rx + sock.keepidle)
        return
    if tcb.snd_max > tcb.snd_una or tcb.sbuf.end > tcb.snd_nxt:
        tcb.misc_timer.arm(now + sock.keepidle)  # data outstanding: the retransmission timer rules
        return
    if tcb.ka_probes >= sock.keepcnt or user_timed_out(tcb, now):
        give_up(tcb, now)
        return
    tcb.ka_probes += 1
    tcb.stats["tcp.keepalive_probe"] += 1
    emit(tcb, tcb.snd_una - 1, ACK, 0, now)
    tcb.misc_timer.arm(now + sock.keepintvl)
