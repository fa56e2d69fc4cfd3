"""ICMP errors for a connection: RFC 1122 §4.2.3.9 and RFC 5927 (validated by sequence number, §4.1),
with the path MTU shrinking of RFC 1191 / RFC 8201 lowering the send MSS.

The layer (:mod:`.layer`) finds the connection from the quoted header; this module decides what the
error does to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytcp_green.stack.tcp.closing import drop
from pytcp_green.stack.tcp.output import output
from pytcp_green.stack.tcp.seq import unwrap
from pytcp_green.stack.tcp.state import MIN_MSS, SENDING, SYN_SENT, TS_OPT_LEN

if TYPE_CHECKING:
    from pytcp_green.stack.tcp.tcb import Tcb


def icmp_error(tcb: Tcb, seq32: int, err: int, mtu: int | None, now: float) -> None:
    """RFC 1122 §4.2.3.9 / RFC 5927: validated by sequence number; hard errors end a connection
    attempt, soft ones are remembered and reported if the connection later times out."""
    seq = unwrap(seq32, tcb.snd_una)
    if not tcb.snd_una <= seq < max(tcb.snd_max, tcb.snd_una + 1):
        tcb.stats["tcp.drop.icmp_out_of_window"] += 1
        return
    if mtu is not None:
        mss = max(mtu - tcb.ip_overhead - 20, MIN_MSS)
        if mss < tcb.snd_mss:
            tcb.stats["tcp.pmtu_update"] += 1
            tcb.snd_mss = mss
            tcb.eff_mss = mss - (TS_OPT_LEN if tcb.ts_ok else 0)
            if tcb.state in SENDING and tcb.snd_max > tcb.snd_una:
                tcb.snd_nxt = tcb.snd_una  # resend at the new size; not a congestion signal
                tcb.rtt_seq = None
                output(tcb, now)
        return
    if tcb.state == SYN_SENT:
        drop(tcb, now, err, rst=False)
    else:
        tcb.soft_error = err
