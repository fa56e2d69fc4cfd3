"""The state machine as tables: (state, segment in) -> (state after, segments out), RFC 9293 §3.10.7 with
the RFC 5961 changes, one row per rule.

Sequence expressions are evaluated *before* the segment arrives, with RFC names: ``RCV_NXT``, ``SND_NXT``
(the highest sequence sent), ``SND_UNA``, ``ISS``, ``WND`` (our advertised receive window) and ``P`` (the
peer's next sequence number).  The peer's ISS sits just below 2**32, so every table crosses the wrap.
"""

from __future__ import annotations

import errno

import pytest

from pytcp_green.stack.wire.tcp import ACK, FIN, PSH, RST, SYN

from .host import PEER_ISS, Peer, flags_of

A, S, F, R, P_ = ACK, SYN, FIN, RST, PSH

# (start state, rule, flags, seq, ack, data, state after, [(flags, seq, ack) out], pending errno)
Row = tuple[str, str, int, str, str, bytes, str, list[tuple[int, str, str]], int]

TABLE: list[Row] = [
    # --- LISTEN (§3.10.7.2) ---
    ("LISTEN", "RST is ignored", R, "P", "0", b"", "LISTEN", [], 0),
    ("LISTEN", "ACK gets <SEQ=SEG.ACK><CTL=RST>", A, "P", "12345", b"", "LISTEN", [(R, "12345", "0")], 0),
    ("LISTEN", "SYN gets SYN-ACK", S, "P", "0", b"", "SYN_RECEIVED", [(S | A, "ISS", "P+1")], 0),
    ("LISTEN", "data on a SYN is not acknowledged", S, "P", "0", b"early", "SYN_RECEIVED",
     [(S | A, "ISS", "P+1")], 0),
    ("LISTEN", "FIN alone is dropped", F, "P", "0", b"", "LISTEN", [], 0),
    ("LISTEN", "SYN+FIN is dropped", S | F, "P", "0", b"", "LISTEN", [], 0),
    # --- SYN-SENT (§3.10.7.3) ---
    ("SYN_SENT", "SYN-ACK for our SYN: ESTABLISHED, ACK", S | A, "P", "ISS+1", b"", "ESTABLISHED",
     [(A, "ISS+1", "P+1")], 0),
    ("SYN_SENT", "ACK of the ISS itself: RST <SEQ=SEG.ACK>", S | A, "P", "ISS", b"", "SYN_SENT", [(R, "ISS", "0")], 0),
    ("SYN_SENT", "ACK beyond SND.NXT: RST", A, "P", "ISS+2", b"", "SYN_SENT", [(R, "ISS+2", "0")], 0),
    ("SYN_SENT", "RST with an acceptable ACK: refused", R | A, "P", "ISS+1", b"", "CLOSED", [], errno.ECONNREFUSED),
    ("SYN_SENT", "RST without ACK is ignored", R, "P", "0", b"", "SYN_SENT", [], 0),
    ("SYN_SENT", "RST with a bad ACK is ignored", R | A, "P", "ISS+5", b"", "SYN_SENT", [], 0),
    ("SYN_SENT", "SYN alone: simultaneous open", S, "P", "0", b"", "SYN_RECEIVED", [(S | A, "ISS", "P+1")], 0),
    ("SYN_SENT", "neither SYN nor RST: dropped", A, "P", "ISS+1", b"", "SYN_SENT", [], 0),
    # --- SYN-RECEIVED (passive) ---
    ("SYN_RECEIVED", "acceptable ACK: ESTABLISHED", A, "P", "ISS+1", b"", "ESTABLISHED", [], 0),
    ("SYN_RECEIVED", "unacceptable ACK: RST <SEQ=SEG.ACK>", A, "P", "ISS", b"", "SYN_RECEIVED",
     [(R, "ISS", "0")], 0),
    ("SYN_RECEIVED", "repeated SYN: SYN-ACK again", S, "P-1", "0", b"", "SYN_RECEIVED", [(S | A, "ISS", "P")], 0),
    ("SYN_RECEIVED", "RST at RCV.NXT: back to LISTEN (child gone)", R, "P", "0", b"", "CLOSED", [], 0),
    ("SYN_RECEIVED", "RST in window, not exact: challenge ACK", R, "P+10", "0", b"", "SYN_RECEIVED",
     [(A, "SND_NXT", "RCV_NXT")], 0),
    ("SYN_RECEIVED", "new SYN in window: child dropped", S, "P+5", "0", b"", "CLOSED", [], 0),
    ("SYN_RECEIVED", "ACK with data: ESTABLISHED and data acknowledged", A | P_, "P", "ISS+1", b"hello",
     "ESTABLISHED", [(A, "ISS+1", "P+5")], 0),
    # --- ESTABLISHED (§3.10.7.4 and RFC 5961) ---
    ("ESTABLISHED", "in-order data is acknowledged (quick-ACK at start)", A | P_, "P", "SND_NXT", b"abc",
     "ESTABLISHED", [(A, "SND_NXT", "RCV_NXT+3")], 0),
    ("ESTABLISHED", "RST at RCV.NXT resets", R, "RCV_NXT", "0", b"", "CLOSED", [], errno.ECONNRESET),
    ("ESTABLISHED", "RST in window but not exact: challenge ACK", R, "RCV_NXT+1", "0", b"", "ESTABLISHED",
     [(A, "SND_NXT", "RCV_NXT")], 0),
    ("ESTABLISHED", "RST outside the window: ignored", R, "RCV_NXT+WND+100", "0", b"", "ESTABLISHED", [], 0),
    ("ESTABLISHED", "SYN in window: challenge ACK", S, "RCV_NXT+3", "0", b"", "ESTABLISHED",
     [(A, "SND_NXT", "RCV_NXT")], 0),
    ("ESTABLISHED", "SYN at RCV.NXT: challenge ACK", S, "RCV_NXT", "0", b"", "ESTABLISHED",
     [(A, "SND_NXT", "RCV_NXT")], 0),
    ("ESTABLISHED", "SYN-ACK outside the window: ACK", S | A, "RCV_NXT-1000", "SND_NXT", b"", "ESTABLISHED",
     [(A, "SND_NXT", "RCV_NXT")], 0),
    ("ESTABLISHED", "ACK for data never sent: ACK, dropped", A, "RCV_NXT", "SND_NXT+1000", b"x", "ESTABLISHED",
     [(A, "SND_NXT", "RCV_NXT")], 0),
    ("ESTABLISHED", "ACK older than the max window: challenge ACK", A, "RCV_NXT", "SND_UNA-70000", b"",
     "ESTABLISHED", [(A, "SND_NXT", "RCV_NXT")], 0),
    ("ESTABLISHED", "data beyond the window: ACK", A, "RCV_NXT+WND+10", "SND_NXT", b"late", "ESTABLISHED",
     [(A, "SND_NXT", "RCV_NXT")], 0),
    ("ESTABLISHED", "old duplicate data: ACK", A, "RCV_NXT-4", "SND_NXT", b"dupe", "ESTABLISHED",
     [(A, "SND_NXT", "RCV_NXT")], 0),
    ("ESTABLISHED", "data without ACK bit: dropped", P_, "RCV_NXT", "0", b"noack", "ESTABLISHED", [], 0),
    ("ESTABLISHED", "out-of-order data: immediate ACK", A, "RCV_NXT+10", "SND_NXT", b"gap", "ESTABLISHED",
     [(A, "SND_NXT", "RCV_NXT")], 0),
    ("ESTABLISHED", "FIN: CLOSE-WAIT, ACK", F | A, "RCV_NXT", "SND_NXT", b"", "CLOSE_WAIT",
     [(A, "SND_NXT", "RCV_NXT+1")], 0),
    ("ESTABLISHED", "data + FIN", F | A, "RCV_NXT", "SND_NXT", b"bye", "CLOSE_WAIT",
     [(A, "SND_NXT", "RCV_NXT+4")], 0),
    ("ESTABLISHED", "FIN beyond a gap: ACK, still ESTABLISHED", F | A, "RCV_NXT+5", "SND_NXT", b"", "ESTABLISHED",
     [(A, "SND_NXT", "RCV_NXT")], 0),
    ("ESTABLISHED", "bare ACK: nothing to say", A, "RCV_NXT", "SND_NXT", b"", "ESTABLISHED", [], 0),
    # --- FIN-WAIT-1 ---
    ("FIN_WAIT_1", "ACK of our FIN: FIN-WAIT-2", A, "RCV_NXT", "SND_NXT", b"", "FIN_WAIT_2", [], 0),
    ("FIN_WAIT_1", "FIN, ours unacknowledged: CLOSING", F | A, "RCV_NXT", "SND_NXT-1", b"", "CLOSING",
     [(A, "SND_NXT", "RCV_NXT+1")], 0),
    ("FIN_WAIT_1", "FIN acknowledging ours: TIME-WAIT", F | A, "RCV_NXT", "SND_NXT", b"", "TIME_WAIT",
     [(A, "SND_NXT", "RCV_NXT+1")], 0),
    ("FIN_WAIT_1", "data is still received", A, "RCV_NXT", "SND_NXT-1", b"more", "FIN_WAIT_1",
     [(A, "SND_NXT", "RCV_NXT+4")], 0),
    ("FIN_WAIT_1", "RST at RCV.NXT", R, "RCV_NXT", "0", b"", "CLOSED", [], errno.ECONNRESET),
    # --- FIN-WAIT-2 ---
    ("FIN_WAIT_2", "FIN: TIME-WAIT, ACK", F | A, "RCV_NXT", "SND_NXT", b"", "TIME_WAIT",
     [(A, "SND_NXT", "RCV_NXT+1")], 0),
    ("FIN_WAIT_2", "data is still received (half-close)", A, "RCV_NXT", "SND_NXT", b"data", "FIN_WAIT_2",
     [(A, "SND_NXT", "RCV_NXT+4")], 0),
    ("FIN_WAIT_2", "RST in window not exact: challenge ACK", R, "RCV_NXT+2", "0", b"", "FIN_WAIT_2",
     [(A, "SND_NXT", "RCV_NXT")], 0),
    # --- CLOSE-WAIT ---
    ("CLOSE_WAIT", "repeated FIN: ACK", F | A, "RCV_NXT-1", "SND_NXT", b"", "CLOSE_WAIT",
     [(A, "SND_NXT", "RCV_NXT")], 0),
    ("CLOSE_WAIT", "RST: closed (EPIPE, as Linux)", R, "RCV_NXT", "0", b"", "CLOSED", [], errno.EPIPE),
    ("CLOSE_WAIT", "bare ACK: nothing", A, "RCV_NXT", "SND_NXT", b"", "CLOSE_WAIT", [], 0),
    # --- CLOSING ---
    ("CLOSING", "ACK of our FIN: TIME-WAIT", A, "RCV_NXT", "SND_NXT", b"", "TIME_WAIT", [], 0),
    ("CLOSING", "RST: closed, no error", R, "RCV_NXT", "0", b"", "CLOSED", [], 0),
    # --- LAST-ACK ---
    ("LAST_ACK", "ACK of our FIN: CLOSED", A, "RCV_NXT", "SND_NXT", b"", "CLOSED", [], 0),
    ("LAST_ACK", "repeated FIN: ACK", F | A, "RCV_NXT-1", "SND_NXT-1", b"", "LAST_ACK",
     [(A, "SND_NXT", "RCV_NXT")], 0),
    ("LAST_ACK", "RST: closed, no error", R, "RCV_NXT", "0", b"", "CLOSED", [], 0),
    # --- TIME-WAIT ---
    ("TIME_WAIT", "repeated FIN: ACK", F | A, "RCV_NXT-1", "SND_NXT", b"", "TIME_WAIT",
     [(A, "SND_NXT", "RCV_NXT")], 0),
    ("TIME_WAIT", "RST at RCV.NXT: closed", R, "RCV_NXT", "0", b"", "CLOSED", [], 0),
    ("TIME_WAIT", "old SYN: ACK", S, "RCV_NXT-100", "0", b"", "TIME_WAIT", [(A, "SND_NXT", "RCV_NXT")], 0),
]


def _names(peer: Peer) -> dict[str, int]:
    names = {"P": peer.seq}
    tcb = peer.tcb
    if tcb is not None:
        names.update(RCV_NXT=peer.rcv_nxt(), SND_NXT=peer.snd_nxt(), SND_UNA=peer.snd_una(), ISS=peer.iss(),
                     WND=tcb.rcv_adv - tcb.rcv_nxt)
    return names


def _eval(expr: str, names: dict[str, int]) -> int:
    return int(eval(expr, {}, names)) & 0xFFFFFFFF


@pytest.mark.parametrize("row", TABLE, ids=[f"{r[0]}: {r[1]}" for r in TABLE])
def test_transition(row: Row) -> None:
    state, _rule, flags, seq, ack, data, after, expected, error = row
    peer = Peer()
    peer.to_state(state)
    names = _names(peer)
    peer.send(flags, seq=_eval(seq, names), ack=_eval(ack, names), data=data)
    out = peer.out()
    if "ISS" not in names and peer.tcb is not None:
        names["ISS"] = peer.iss()  # a listener's child chose its ISS just now
    got = [(flags_of(s), s.seq, s.ack) for s in out]
    want = [(f, _eval(sq, names), _eval(ak, names)) for f, sq, ak in expected]
    # A SYN-ACK may carry options; only flags and numbers are the table's business.
    assert got == want, f"{state} + {_rule}: sent {out}"
    if state == "LISTEN" or (state == "SYN_RECEIVED" and after != "CLOSED"):
        # The listener stays; the child (if any) is in the connection table.
        assert peer.state == (after if after != "LISTEN" else "CLOSED")
        assert peer.listener is not None and peer.listener.state == "LISTEN"
    else:
        assert peer.state == after
    if error:
        assert peer.sock is not None and peer.sock.take_error() == error
    assert not peer.host.stats.get("stack.drop.internal_error")


def test_peer_iss_wraps() -> None:
    """The tables run across the 32-bit wrap: the peer's sequence numbers pass 2**32."""
    peer = Peer()
    peer.to_state("ESTABLISHED")
    peer.send(ACK | PSH, data=b"x" * 300)
    assert peer.rcv_nxt() < PEER_ISS  # wrapped
    assert peer.sock is not None and peer.sock.recv(1000, peer.now) == b"x" * 300


def test_closed_port_gets_rst_ack_for_syn() -> None:
    """RFC 9293 §3.10.7.1: no socket: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>."""
    peer = Peer()
    peer.send(SYN, ack=0)
    (seg,) = peer.out()
    assert flags_of(seg) == RST | ACK and seg.seq == 0 and seg.ack == (PEER_ISS + 1) & 0xFFFFFFFF
    peer.send(ACK | PSH, ack=777, data=b"abc")
    (seg,) = peer.out()
    assert flags_of(seg) == RST and seg.seq == 777
    peer.send(RST, ack=0)
    assert peer.out() == []


def test_time_wait_lasts_its_timer_then_closes() -> None:
    peer = Peer()
    peer.to_state("TIME_WAIT")
    tw = peer.host.sysctl.float("net.ipv4.tcp_tw_timeout")
    peer.advance(tw - 1)
    assert peer.state == "TIME_WAIT"
    peer.send(FIN | ACK, seq=peer.seq - 1)  # a repeated FIN restarts the 2MSL timer (RFC 9293)
    assert [flags_of(s) for s in peer.out()] == [ACK]
    peer.advance(tw - 1)
    assert peer.state == "TIME_WAIT"
    peer.advance(2)
    assert peer.state == "CLOSED"
    assert peer.sock is not None and peer.sock.recv(10, peer.now) == b""


def test_time_wait_accepts_a_new_syn_with_a_higher_sequence_number() -> None:
    peer = Peer()
    peer.listen()
    peer.send(SYN, ack=0)
    peer.seq += 1
    peer.send(ACK)
    conn = peer.accept()
    conn.shutdown(1, peer.now)
    peer.send(ACK)
    peer.send(FIN | ACK)
    peer.seq += 1
    assert peer.state == "TIME_WAIT"
    peer.out()
    peer.send(SYN, seq=peer.seq + 100_000, ack=0)
    (synack,) = peer.out()
    assert flags_of(synack) == SYN | ACK and synack.ack == (peer.seq + 100_001) & 0xFFFFFFFF
    assert peer.state == "SYN_RECEIVED"


def test_challenge_acks_are_rate_limited() -> None:
    """RFC 5961 §7: at most tcp_challenge_ack_limit per second."""
    peer = Peer()
    peer.host.sysctl["net.ipv4.tcp_challenge_ack_limit"] = 3  # registered by the TCP layer itself
    peer.to_state("ESTABLISHED")
    for _ in range(10):
        peer.send(RST, seq=peer.seq + 5)
    assert len(peer.out()) == 3
    peer.advance(1.0)
    peer.send(RST, seq=peer.seq + 5)
    assert len(peer.out()) == 1
    assert peer.state == "ESTABLISHED"
