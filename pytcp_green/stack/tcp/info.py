"""``TCP_INFO``: one connection's state in Linux's ``struct tcp_info`` (include/uapi/linux/tcp.h).

The layout is Linux's up to ``tcpi_total_rto_time`` (248 bytes, Linux 6.7+; later kernels append the
AccECN counters, which a reader of a shorter answer must treat as absent, as with any older kernel).
Units as Linux reports them: times in microseconds (``rto``, ``ato``, ``rtt``, ``rttvar``) or
milliseconds (the ``last_*`` ages), windows in segments (``snd_cwnd``, ``snd_ssthresh``; an untouched
ssthresh reads ``TCP_INFINITE_SSTHRESH``), rates in bytes per second.  The per-connection counts Linux
keeps for RFC 4898's statistics (segments in and out, bytes sent and retransmitted, data segment
counts) are kept by :class:`InfoCounters`, counted as segments leave (:func:`count_out`) and arrive
(:func:`count_in`).  Fields the stack has no value for are zero.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from pytcp_green.stack.tcp.cc.base import INITIAL_SSTHRESH
from pytcp_green.stack.tcp.state import STATE_NAMES

if TYPE_CHECKING:
    from pytcp_green.stack.tcp.tcb import Tcb

# Linux's TCP state numbers (include/net/tcp_states.h), by our state names.
_LINUX_STATES = {"ESTABLISHED": 1, "SYN_SENT": 2, "SYN_RECEIVED": 3, "FIN_WAIT_1": 4, "FIN_WAIT_2": 5,
                 "TIME_WAIT": 6, "CLOSED": 7, "CLOSE_WAIT": 8, "LAST_ACK": 9, "LISTEN": 10, "CLOSING": 11}
# tcpi_ca_state (enum tcp_ca_state) and tcpi_options bits (TCPI_OPT_*).
CA_OPEN, CA_DISORDER, CA_CWR, CA_RECOVERY, CA_LOSS = range(5)
OPT_TIMESTAMPS, OPT_SACK, OPT_WSCALE, OPT_ECN = 1, 2, 4, 8
INFINITE_SSTHRESH = 0x7FFFFFFF
_UNLIMITED = (1 << 64) - 1  # sk_max_pacing_rate's default, ~0UL

# The fields in order, with their struct codes (native sizes, no padding: the C layout is packed by hand).
FIELDS: tuple[tuple[str, str], ...] = (
    ("state", "B"), ("ca_state", "B"), ("retransmits", "B"), ("probes", "B"), ("backoff", "B"),
    ("options", "B"), ("wscale", "B"), ("app_limited", "B"),
    ("rto", "I"), ("ato", "I"), ("snd_mss", "I"), ("rcv_mss", "I"),
    ("unacked", "I"), ("sacked", "I"), ("lost", "I"), ("retrans", "I"), ("fackets", "I"),
    ("last_data_sent", "I"), ("last_ack_sent", "I"), ("last_data_recv", "I"), ("last_ack_recv", "I"),
    ("pmtu", "I"), ("rcv_ssthresh", "I"), ("rtt", "I"), ("rttvar", "I"), ("snd_ssthresh", "I"),
    ("snd_cwnd", "I"), ("advmss", "I"), ("reordering", "I"), ("rcv_rtt", "I"), ("rcv_space", "I"),
    ("total_retrans", "I"),
    ("pacing_rate", "Q"), ("max_pacing_rate", "Q"), ("bytes_acked", "Q"), ("bytes_received", "Q"),
    ("segs_out", "I"), ("segs_in", "I"), ("notsent_bytes", "I"), ("min_rtt", "I"),
    ("data_segs_in", "I"), ("data_segs_out", "I"), ("delivery_rate", "Q"),
    ("busy_time", "Q"), ("rwnd_limited", "Q"), ("sndbuf_limited", "Q"), ("delivered", "I"),
    ("delivered_ce", "I"), ("bytes_sent", "Q"), ("bytes_retrans", "Q"), ("dsack_dups", "I"),
    ("reord_seen", "I"), ("rcv_ooopack", "I"), ("snd_wnd", "I"), ("rcv_wnd", "I"), ("rehash", "I"),
    ("total_rto", "H"), ("total_rto_recoveries", "H"), ("total_rto_time", "I"),
)
LAYOUT = struct.Struct("=" + "".join(code for _, code in FIELDS))  # 248 bytes
_MAX = {"B": 0xFF, "H": 0xFFFF, "I": 0xFFFFFFFF, "Q": _UNLIMITED}


class InfoCounters:
    """What Linux counts per connection for tcp_info and we count nowhere else."""

    __slots__ = ("bytes_retrans", "bytes_sent", "data_segs_in", "data_segs_out", "last_data_in",
                 "last_data_out", "min_rtt", "segs_in", "segs_out", "start", "total_retrans")

    def __init__(self, now: float) -> None:
        self.start = now
        self.segs_out = self.segs_in = self.data_segs_out = self.data_segs_in = 0
        self.bytes_sent = self.bytes_retrans = self.total_retrans = 0
        self.last_data_out = self.last_data_in = now
        self.min_rtt: float | None = None


def count_out(tcb: Tcb, seq: int, length: int, gso: int, now: float) -> None:
    """One segment (or a super-segment of ``length`` bytes cut at ``gso``) left."""
    c = tcb.info
    segments = -(-length // gso) if gso else 1
    c.segs_out += segments
    if length:
        c.data_segs_out += segments
        c.bytes_sent += length
        c.last_data_out = now
        if seq < tcb.snd_max:  # below the highest sent: a retransmission
            c.total_retrans += segments
            c.bytes_retrans += length


def count_in(tcb: Tcb, length: int, now: float) -> None:
    c = tcb.info
    c.segs_in += 1
    if length:
        c.data_segs_in += 1
        c.last_data_in = now
    srtt = tcb.rto.srtt
    if srtt is not None and (c.min_rtt is None or srtt < c.min_rtt):
        c.min_rtt = srtt  # the smoothed RTT's floor: the closest we keep to Linux's windowed minimum


def _ca_state(tcb: Tcb) -> int:
    """Linux's congestion state: Loss after a timeout until new data is acknowledged, Recovery in fast
    recovery, CWR while an ECN reduction's window lasts, Disorder on duplicate ACKs."""
    if tcb.retries:
        return CA_LOSS
    if tcb.recovery.active:
        return CA_RECOVERY
    if tcb.snd_una < tcb.ecn.high:
        return CA_CWR
    return CA_DISORDER if tcb.recovery.dupacks else CA_OPEN


def fields(tcb: Tcb, now: float) -> dict[str, int]:
    """Every tcp_info field of ``tcb`` at ``now``, by its name without the ``tcpi_`` prefix."""
    c = tcb.info
    mss = tcb.eff_mss
    cc = tcb.cc
    srtt = tcb.rto.srtt
    flight = tcb.snd_max - tcb.snd_una
    acked = max(tcb.snd_una - tcb.iss, 0)  # as Linux counts it: the SYN (and a FIN) count one each
    received = max(tcb.rcv_nxt - tcb.irs - 1 - (1 if tcb.fin_received else 0), 0)
    options = ((OPT_TIMESTAMPS if tcb.ts_ok else 0) | (OPT_SACK if tcb.sack_ok else 0)
               | (OPT_WSCALE if tcb.snd_wscale or tcb.rcv_wscale else 0) | (OPT_ECN if tcb.ecn.ok else 0))
    # Linux's default pacing: 200% of cwnd/srtt in slow start, 120% after (tcp_pacing_*_ratio).
    pacing = 0 if not srtt else int(cc.cwnd / srtt * (2.0 if cc.cwnd < cc.ssthresh else 1.2))
    elapsed = now - c.start
    # Times are rounded, not cut: a float age of 0.1 s may read 0.0999... (Linux counts whole jiffies).
    values = {
        "state": _LINUX_STATES[STATE_NAMES[tcb.state]],
        "ca_state": _ca_state(tcb),
        "retransmits": tcb.retries,
        "probes": tcb.probes_out,
        "backoff": tcb.rto.backoff,
        "options": options,
        "wscale": (tcb.snd_wscale & 0x0F) | (tcb.rcv_wscale & 0x0F) << 4,
        "rto": round(tcb.rto.rto * 1e6),
        "ato": round(tcb.delack * 1e6),
        "snd_mss": mss,
        "rcv_mss": tcb.rcv_mss,
        "unacked": -(-flight // mss),
        "last_data_sent": round((now - c.last_data_out) * 1000),
        "last_data_recv": round((now - c.last_data_in) * 1000),
        "last_ack_recv": round((now - tcb.last_rx) * 1000),
        "pmtu": tcb.adv_mss + tcb.ip_overhead + 20,
        "rcv_ssthresh": tcb.sock.rcvbuf,
        "rtt": round((srtt or 0.0) * 1e6),
        "rttvar": round(tcb.rto.rttvar * 1e6),
        "snd_ssthresh": INFINITE_SSTHRESH if cc.ssthresh >= INITIAL_SSTHRESH else cc.ssthresh // mss,
        "snd_cwnd": cc.cwnd // mss,
        "advmss": tcb.adv_mss,
        "reordering": 3,  # Linux's tcp_reordering: the duplicate-ACK threshold
        "rcv_space": tcb.sock.rcvbuf,
        "total_retrans": c.total_retrans,
        "pacing_rate": pacing,
        "max_pacing_rate": _UNLIMITED,
        "bytes_acked": acked,
        "bytes_received": received,
        "segs_out": c.segs_out,
        "segs_in": c.segs_in,
        "notsent_bytes": max(tcb.sbuf.end - tcb.snd_max, 0),
        "min_rtt": round((c.min_rtt or 0.0) * 1e6),
        "data_segs_in": c.data_segs_in,
        "data_segs_out": c.data_segs_out,
        "delivery_rate": int(acked / elapsed) if elapsed > 0 else 0,  # the average since the open
        "delivered": acked // mss,
        "bytes_sent": c.bytes_sent,
        "bytes_retrans": c.bytes_retrans,
        "snd_wnd": tcb.snd_wnd,
        "rcv_wnd": max(tcb.rcv_adv - tcb.rcv_nxt, 0),
    }
    return {name: min(max(values.get(name, 0), 0), _MAX[code]) for name, code in FIELDS}


def tcp_info(tcb: Tcb, now: float, buflen: int) -> bytes:
    """getsockopt(TCP_INFO) with a ``buflen``-byte buffer: Linux copies min(buflen, sizeof)."""
    values = fields(tcb, now)
    return LAYOUT.pack(*(values[name] for name, _ in FIELDS))[:max(buflen, 0)]
