"""TCP: :class:`TcpLayer` is what a stack instantiates, :class:`TcpSocket` what its runtime drives.

How the package is built: a connection's state lives in one place, :class:`~.tcb.Tcb`; its behaviour
is in modules of plain functions that take the Tcb as their first argument (``output(tcb, now)``),
grouped along RFC 9293's own structure.  They import each other in one direction only (the order of
the map below, bottom to top: a module imports only modules listed after it), never ``tcb.py`` except
for type hints; ``tcb.py`` imports them and binds the calls made from outside the connection
(``segment_arrives``, ``connect``, ``user_send``, ``close``...) as methods, so each of those is one
plain function call.  No mixins, no per-segment indirection.

Where each RFC is implemented:

==================  ==================================================================================
module              implements
==================  ==================================================================================
:mod:`.layer`       the TCP layer of a stack: demultiplexing (RFC 9293 §3.10.7), RST for no connection
                    (§3.10.7.1), ISNs (RFC 6528), challenge-ACK rate limit (RFC 5961 §7), ICMP errors
                    matched to a connection (RFC 5927 §4.1)
:mod:`.gro`         receive coalescing within a batch (Linux's GRO rules; no RFC): a connection's in-order
                    data segments reach SEGMENT ARRIVES as one
:mod:`.rcvbuf`      receive buffer auto-tuning (Linux's tcp_moderate_rcvbuf, dynamic right-sizing)
:mod:`.socket`      the BSD socket over the user calls (RFC 9293 §3.10), LISTEN and its queues
                    (§3.10.7.2), SYN cookies when the SYN queue is full, Linux's errno and poll(2)
                    conventions
:mod:`.tcb`         the TCB (§3.3.1 sequence variables, §3.3.2 states): the connection's state
:mod:`.arrive`      SEGMENT ARRIVES in the synchronized states (§3.10.7.4), one function per step:
                    acceptability, RST (RFC 5961 §3.2), SYN (RFC 5961 §4), ACK (RFC 5961 §5.2, window
                    update), text, FIN; PAWS and TS.Recent (RFC 7323 §5.3, §4.3); the ACK policy
                    (RFC 5681 §4.2, RFC 1122 §4.2.3.2)
:mod:`.opening`     LISTEN's passive open (§3.10.7.2), SYN-SENT (§3.10.7.3), simultaneous open (§3.5),
                    option negotiation (RFC 7323 §1.3/§2, RFC 2018 §2, MSS §3.7.1)
:mod:`.timeouts`    timer expiries: retransmission (RFC 6298 §5, RFC 1122 §4.2.3.5), RACK reorder timeout
                    (RFC 8985 §6.3), tail loss probe
                    (RFC 8985 §7.3), persist / zero-window probes (§3.8.6.1, RFC 1122 §4.2.2.17),
                    delayed ACK, keep-alive (RFC 1122 §4.2.3.6), TIME-WAIT, FIN-WAIT-2, user timeout;
                    giving up after tcp_retries2 / tcp_orphan_retries, as Linux
:mod:`.frto`        after a retransmission timeout: F-RTO (RFC 5682 §3.1, ``net.ipv4.tcp_frto``) and the
                    timestamp test (RFC 3522 §3.2) find it spurious and undo it; go-back-N stops
:mod:`.icmp`        ICMP errors for a connection (RFC 1122 §4.2.3.9, RFC 5927), PMTU (RFC 1191/8201)
:mod:`.user`        OPEN, SEND, RECEIVE's window update, CLOSE and the half-close, ABORT
                    (§3.10.1-3.10.5; RFC 2525 §2.17)
:mod:`.receive`     the text and FIN steps (§3.10.7.4 seventh/eighth), quick and out-of-order ACKs
:mod:`.closing`     TIME-WAIT (§3.10.7.4) within tcp_max_tw_buckets, orphans within tcp_max_orphans
                    and tcp_orphan_retries, FIN-WAIT-2's tcp_fin_timeout, deleting the TCB
:mod:`.output`      sending data (§3.8.6 windows, RFC 5681 cwnd, RFC 3042 limited transmit, Nagle
                    RFC 1122 §4.2.3.4 in Minshall's form, sender SWS avoidance), go-back-N resending
:mod:`.recovery`    ACK processing for the sender: RTT samples and Karn (RFC 6298 §3, RFC 7323 §4),
                    fast retransmit/recovery (RFC 5681 §3.2), NewReno (RFC 6582), SACK recovery
                    (RFC 6675) paced by PRR-SSRB (RFC 6937), RACK's reordering window and lost
                    retransmissions, TLP arming (RFC 8985 §6-7, partly);
                    the :class:`~.recovery.Recovery` state object
:mod:`.send`        one segment out: header, window field with receiver SWS avoidance (RFC 1122
                    §4.2.3.3, RFC 7323 §2.3), timestamps (RFC 7323 §3), SACK option (RFC 2018 §4),
                    challenge ACK (RFC 5961), RST, SYN/SYN-ACK options
:mod:`.fastopen`    TCP Fast Open (RFC 7413): cookies (keyed hash, client cache), data in the SYN both
                    ways, the listener's TCP_FASTOPEN qlen
:mod:`.syncookies`  SYN cookies as Linux makes them (net/ipv4/syncookies.c, RFC 4987 §3.6): the ISN's
                    keyed hash, minute counter and MSS index, options in the TSval's low bits
:mod:`.state`       state numbers and names (§3.3.2), shared constants (MSS defaults §3.7.1)
:mod:`.ecn`         ECN (RFC 3168 §6.1): negotiation, ECT(0) on new data, CE -> ECE until CWR, one
                    reduction per window through the congestion module (RFC 8511 ABE)
:mod:`.info`        ``TCP_INFO``: Linux's ``struct tcp_info`` for one connection, and the per-connection
                    counts it reports (RFC 4898's segments and bytes in and out)
:mod:`.cc`          congestion control modules behind one interface (Linux's tcp_congestion_ops): reno
                    (RFC 5681 §3.1, RFC 3465), cubic (RFC 9438); IW10 (RFC 6928), RFC 7661's idea;
                    HyStart++ (RFC 9406) in the initial slow start of both
:mod:`.rto`         the RTO estimator (RFC 6298 §2, §5.5, §5.7)
:mod:`.dsack`       D-SACK (RFC 2883): duplicates reported first; a D-SACK received widens RACK's
                    reordering window (RFC 8985 §6.2 reo_wnd_mult)
:mod:`.urgent`      urgent data (RFC 9293 §3.8.5, RFC 6093) as Linux has it: MSG_OOB sends, the urgent
                    mark and its one out-of-band byte, SO_OOBINLINE, POLLPRI
:mod:`.undo`        a loss episode's reduction given back when every retransmission was D-SACKed
                    (RFC 2883 §5, RFC 3708 §3; Linux's tcp_undo_cwnd_reduction)
:mod:`.sack`        the sender's SACK scoreboard (RFC 2018 §5, RFC 6675 §3-4)
:mod:`.buffers`     send buffer, receive buffer with reassembly, SACK block choice (RFC 2018 §4)
:mod:`.timer`       the re-armable lazy timer the connection's timers use (RFC 6298 §5.3's cost)
:mod:`.seq`         sequence-number and timestamp arithmetic modulo 2**32 (RFC 9293 §3.4, RFC 7323)
==================  ==================================================================================
"""

from pytcp_green.stack.tcp.layer import TcpLayer
from pytcp_green.stack.tcp.socket import TcpSocket

__all__ = ["TcpLayer", "TcpSocket"]
