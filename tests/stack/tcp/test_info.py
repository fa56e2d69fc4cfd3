"""TCP_INFO's fields from one connection the test drives segment by segment: what Linux would report
for the same events (state, ca_state, retransmissions, backoff, windows in segments, byte counts)."""

from __future__ import annotations

from pytcp_green.stack.tcp.info import (
    CA_CWR,
    CA_LOSS,
    CA_OPEN,
    FIELDS,
    INFINITE_SSTHRESH,
    LAYOUT,
    OPT_ECN,
    fields,
    tcp_info,
)
from pytcp_green.stack.wire.tcp import ACK, ECE, SYN

from .host import Peer
from .test_behaviour import data_segments, establish


def test_layout_is_linux_up_to_total_rto_time() -> None:
    assert LAYOUT.size == 248
    offsets, at = {}, 0
    for name, code in FIELDS:
        offsets[name] = at
        at += {"B": 1, "H": 2, "I": 4, "Q": 8}[code]
    # Offsets of include/uapi/linux/tcp.h's struct tcp_info (u64 fields 8-aligned, as the C compiler puts them).
    assert offsets["rto"] == 8 and offsets["rtt"] == 68 and offsets["snd_cwnd"] == 80
    assert offsets["total_retrans"] == 100 and offsets["pacing_rate"] == 104 and offsets["bytes_acked"] == 120
    assert offsets["segs_out"] == 136 and offsets["delivery_rate"] == 160 and offsets["bytes_sent"] == 200
    assert all(offsets[n] % 8 == 0 for n, c in FIELDS if c == "Q")


def test_fields_follow_the_connection_through_a_timeout() -> None:
    peer = Peer()
    establish(peer)
    tcb = peer.tcb
    sock = peer.sock
    assert tcb is not None and sock is not None
    info = fields(tcb, peer.now)
    assert info["state"] == 1 and info["ca_state"] == CA_OPEN and info["snd_ssthresh"] == INFINITE_SSTHRESH
    assert info["bytes_acked"] == 1  # Linux counts the SYN
    mss = tcb.eff_mss
    sock.send(b"a" * 4 * mss, peer.now)
    sent = data_segments(peer.out())
    info = fields(tcb, peer.now)
    assert info["unacked"] == 4 and info["data_segs_out"] == 4 and info["bytes_sent"] == 4 * mss
    assert info["notsent_bytes"] == 0 and info["snd_cwnd"] == tcb.cc.cwnd // mss
    assert tcb.rto.rto == 0.2  # the handshake took no virtual time: the RTO is at its floor
    peer.advance(0.3)  # one timeout (at 0.2 s; the next is 0.4 s later): go-back-N resends
    resent = data_segments(peer.out())
    info = fields(tcb, peer.now)
    assert resent and info["ca_state"] == CA_LOSS and info["backoff"] == 1 and info["retransmits"] == 1
    assert info["total_retrans"] == len(resent) and info["bytes_retrans"] == sum(len(s.payload) for s in resent)
    assert info["rto"] == round(tcb.rto.rto * 1e6) and info["last_data_sent"] == 100
    peer.send(ACK, ack=sent[-1].seq + mss)
    info = fields(tcb, peer.now)
    assert info["bytes_acked"] == 4 * mss + 1 and info["unacked"] == 0 and info["ca_state"] == CA_OPEN
    raw = tcp_info(tcb, peer.now, 104)
    assert len(raw) == 104 and raw[0] == 1  # cut to the caller's buffer, as Linux copies min(len, size)


def test_an_ece_puts_the_sender_in_cwr_and_the_ecn_option_bit_is_set() -> None:
    peer = Peer({"net.ipv4.tcp_ecn": 1})
    peer.active_open()
    peer.out()
    peer.send(SYN | ACK | ECE, ack=peer.iss() + 1)
    peer.seq += 1
    peer.out()
    tcb = peer.tcb
    assert tcb is not None and peer.sock is not None
    assert fields(tcb, peer.now)["options"] & OPT_ECN
    peer.sock.send(b"e" * 4 * tcb.eff_mss, peer.now)
    sent = data_segments(peer.out())
    peer.send(ACK | ECE, ack=sent[0].seq + tcb.eff_mss)
    assert fields(tcb, peer.now)["ca_state"] == CA_CWR
