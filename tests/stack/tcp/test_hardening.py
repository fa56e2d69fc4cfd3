"""RFC 5927 (ICMP attacks against TCP), RFC 1337 (TIME-WAIT assassination) and RFC 6191 (a SYN that
reuses a TIME-WAIT pair), with the test playing the peer and the ICMP error's sender segment by
segment.  Each rule is shown both ways: what the rule lets through and what it stops."""

from __future__ import annotations

import errno

import pytest

from pytcp_green.stack.wire.tcp import ACK, FIN, RST, SYN

from .host import LOCAL, PEER_PORT, PORT, REMOTE, Peer, flags_of


def _quoted(peer: Peer, seq: int) -> memoryview:
    """The first 8 bytes of a segment we sent, as an ICMP error quotes them (RFC 792)."""
    return memoryview(PORT.to_bytes(2, "big") + PEER_PORT.to_bytes(2, "big") + (seq & 0xFFFFFFFF).to_bytes(4, "big"))


def _in_flight(peer: Peer) -> None:
    peer.to_state("ESTABLISHED")
    assert peer.sock is not None
    peer.sock.send(bytes(3000), peer.now)
    peer.out()


# -- RFC 5927 ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("offset", [-1, 3000, 100_000])
def test_an_icmp_error_quoting_a_sequence_number_not_in_flight_is_ignored(offset: int) -> None:
    """RFC 5927 §4.1: only SND.UNA <= SEG.SEQ < SND.NXT is believed, for PMTU as for errors."""
    peer = Peer()
    _in_flight(peer)
    tcb = peer.tcb
    assert tcb is not None
    mss = tcb.snd_mss
    peer.host.tcp.icmp_error(LOCAL, REMOTE, _quoted(peer, peer.snd_una() + offset), errno.EMSGSIZE, 500, peer.now)
    peer.host.tcp.icmp_error(LOCAL, REMOTE, _quoted(peer, peer.snd_una() + offset), errno.ECONNREFUSED, None,
                             peer.now)
    assert tcb.snd_mss == mss and tcb.soft_error == 0
    assert peer.host.stats["tcp.drop.icmp_out_of_window"] == 2


def test_an_icmp_error_for_data_in_flight_lowers_the_mss_and_is_only_soft_when_established() -> None:
    """RFC 5927 §4.2/§5.2 as Linux: a hard error on a synchronized connection is remembered, not fatal;
    a too-big message for in-flight data lowers the MSS (RFC 1191)."""
    peer = Peer()
    _in_flight(peer)
    tcb = peer.tcb
    assert tcb is not None
    peer.host.tcp.icmp_error(LOCAL, REMOTE, _quoted(peer, peer.snd_una() + 1000), errno.EMSGSIZE, 500, peer.now)
    assert tcb.snd_mss == 500 - 40 and peer.host.stats["tcp.pmtu_update"] == 1
    peer.host.tcp.icmp_error(LOCAL, REMOTE, _quoted(peer, peer.snd_una()), errno.ECONNREFUSED, None, peer.now)
    assert peer.state == "ESTABLISHED" and tcb.soft_error == errno.ECONNREFUSED


def test_a_hard_error_ends_a_connection_attempt() -> None:
    peer = Peer()
    peer.to_state("SYN_SENT")
    peer.host.tcp.icmp_error(LOCAL, REMOTE, _quoted(peer, peer.iss()), errno.ECONNREFUSED, None, peer.now)
    assert peer.state == "CLOSED"


# -- RFC 1337 ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rfc1337", [0, 1])
def test_a_rst_in_time_wait_ends_it_only_without_tcp_rfc1337(rfc1337: int) -> None:
    peer = Peer({"net.ipv4.tcp_rfc1337": rfc1337})
    peer.to_state("TIME_WAIT")
    peer.send(RST, ack=0)
    if rfc1337:  # RFC 1337 §3 (H1): the assassination is ignored, TIME-WAIT runs its course
        assert peer.state == "TIME_WAIT" and peer.host.stats["tcp.rst_in.time_wait_ignored"] == 1
        peer.advance(60.0)
        assert peer.state == "CLOSED"
    else:  # Linux's default: the RST ends TIME-WAIT at once
        assert peer.state == "CLOSED" and peer.host.stats["tcp.rst_in.time_wait"] == 1


def test_tcp_rfc1337_defaults_to_linuxs_zero() -> None:
    assert Peer().host.sysctl.int("net.ipv4.tcp_rfc1337") == 0


# -- RFC 6191 ----------------------------------------------------------------------------------------------
def _time_wait_with_timestamps(peer: Peer, ts: int) -> None:
    """Our active close reaches TIME-WAIT with timestamps in use; the peer's last TSval is ``ts``."""
    peer.active_open()
    (syn,) = peer.out()
    assert syn.ts_val is not None
    peer.send(SYN | ACK, ack=peer.iss() + 1, ts=(ts, syn.ts_val))
    peer.seq += 1
    assert peer.sock is not None
    peer.sock.shutdown(1, peer.now)
    peer.send(ACK, ts=(ts, 0))
    peer.send(FIN | ACK, ts=(ts, 0))
    peer.seq += 1
    peer.out()
    assert peer.state == "TIME_WAIT"


@pytest.mark.parametrize(("newer", "reused"), [(1, True), (0, False), (-5, False)])
def test_a_syn_reuses_a_time_wait_pair_only_with_a_newer_timestamp(newer: int, reused: bool) -> None:
    """RFC 6191 §2: with timestamps, a SYN is accepted into TIME-WAIT's pair when its TSval is newer
    than the last seen, whatever its sequence number (here below RCV.NXT)."""
    peer = Peer({"net.ipv4.tcp_timestamps": 1})
    _time_wait_with_timestamps(peer, 5000)
    peer.send(SYN, seq=peer.seq - 100, ack=0, ts=(5000 + newer, 0))
    out = peer.out()
    if reused:  # the TIME-WAIT is gone; with no listener on the port the SYN is then refused
        assert peer.state == "CLOSED" and [flags_of(s) & RST for s in out] == [RST]
    else:  # still TIME-WAIT: the SYN gets an ACK, never a new connection
        assert peer.state == "TIME_WAIT" and all(flags_of(s) & ACK and not flags_of(s) & RST for s in out)


@pytest.mark.parametrize(("delta", "reused"), [(1, True), (0, False), (-1, False)])
def test_without_timestamps_a_syn_reuses_the_pair_only_above_rcv_nxt(delta: int, reused: bool) -> None:
    """RFC 9293 §3.10.7.4 (RFC 6191 §1's baseline): without timestamps the SYN's sequence number must
    be above RCV.NXT."""
    peer = Peer()
    peer.to_state("TIME_WAIT")
    peer.send(SYN, seq=peer.rcv_nxt() + delta, ack=0)
    assert (peer.state == "CLOSED") == reused
