"""ICMP echo sockets (Linux ping-socket semantics) in the core, through the patched socket module, and the
``pytcp-green ping`` output/exit status over the loopback."""

from __future__ import annotations

import errno

import pytest
from patches.helpers import run_patched
from scapy.layers.inet import ICMP, IP, IPerror, fragment
from scapy.layers.l2 import Ether

from pytcp_green.stack.datagram.ping import PingSocket
from pytcp_green.stack.stack import Stack

from ..helpers import PEER_IP, PEER_MAC, STACK_IP, STACK_MAC, learned_stack, sent


def request(seq: int, data: bytes = b"abcdefgh", ident: int = 0) -> bytes:
    # The identifier and checksum given here are wrong on purpose: the stack sets both.
    return bytes((8, 0, 0xDE, 0xAD)) + ident.to_bytes(2, "big") + seq.to_bytes(2, "big") + data


def pump_loopback(stack: Stack, now: float) -> None:
    lo = stack.loopback
    while lo.tx:
        stack.receive(lo, lo.tx.popleft(), now)


def ping_socket(stack: Stack) -> PingSocket:
    return stack.icmp4.ping.socket()


def test_loopback_ping_gets_its_reply() -> None:
    stack = Stack(seed=3)
    sock = ping_socket(stack)
    assert sock.sendto(request(1), ("127.0.0.1", 0), 1.0) == 16
    ident = sock.getsockname()[1]
    assert ident != 0
    pump_loopback(stack, 1.0)
    data, source = sock.recvfrom(1000, 1.0)
    assert source == ("127.0.0.1", 0)
    assert data[0] == 0 and int.from_bytes(data[4:6], "big") == ident and data[6:8] == b"\0\x01"
    assert data[8:] == b"abcdefgh"


def test_identifier_from_bind_checksum_and_reply_demultiplexing() -> None:
    stack, iface = learned_stack()
    sock = ping_socket(stack)
    sock.bind(("", 4242))
    other = ping_socket(stack)
    other.bind((STACK_IP, 4343))
    assert sock.getsockname() == ("0.0.0.0", 4242)
    sock.sendto(request(7, b"x" * 100, ident=99), (PEER_IP, 1234), 1.0)
    [frame] = sent(iface)
    icmp = frame[ICMP]
    assert (icmp.type, icmp.id, icmp.seq, bytes(icmp.payload)) == (8, 4242, 7, b"x" * 100)
    assert icmp.chksum == ICMP(bytes(ICMP(type=8, id=4242, seq=7) / (b"x" * 100))).chksum  # scapy agrees
    for ident in (4242, 5555):
        reply = Ether(src=PEER_MAC, dst=STACK_MAC) / IP(src=PEER_IP, dst=STACK_IP) / ICMP(
            type=0, id=ident, seq=7) / b"r"
        stack.receive(iface, bytes(reply), 1.1)
    data, source = sock.recvfrom(1000, 1.1)
    assert source == (PEER_IP, 0) and data[8:] == b"r"
    with pytest.raises(BlockingIOError):
        sock.recvfrom(1000, 1.1)
    with pytest.raises(BlockingIOError):
        other.recvfrom(1000, 1.1)
    assert stack.stats["icmp4.drop.echo_reply_no_socket"] == 1
    with pytest.raises(OSError) as info:
        ping_socket(stack).bind(("", 4242))
    assert info.value.errno == errno.EADDRINUSE


def test_only_echo_requests_and_broadcast_needs_so_broadcast() -> None:
    stack, _ = learned_stack()
    sock = ping_socket(stack)
    for bad in (bytes((0, 0, 0, 0, 0, 0, 0, 1)), bytes((8, 1, 0, 0, 0, 0, 0, 1)), b"\x08\x00\x00"):
        with pytest.raises(OSError) as info:
            sock.sendto(bad, (PEER_IP, 0), 1.0)
        assert info.value.errno == errno.EINVAL
    with pytest.raises(OSError) as info:
        sock.sendto(request(1), ("198.18.0.255", 0), 1.0)
    assert info.value.errno == errno.EACCES
    sock.broadcast = True
    assert sock.sendto(request(1), ("198.18.0.255", 0), 1.0) == 16


@pytest.mark.parametrize(("code", "err"), [(1, errno.EHOSTUNREACH), (3, errno.ECONNREFUSED), (13, errno.EHOSTUNREACH)])
def test_errors_reach_a_connected_socket(code: int, err: int) -> None:
    stack, iface = learned_stack()
    sock = ping_socket(stack)
    sock.connect(("198.18.0.9", 0), 1.0)
    loose = ping_socket(stack)
    sock.sendto(request(1), None, 1.0)
    loose.sendto(request(1), ("198.18.0.9", 0), 1.0)
    frames = [f for f in sent(iface) if IP in f]  # ARP for .9 queues them; answer the ARP
    assert frames == []
    for sender in (sock, loose):
        ident = sender.getsockname()[1]
        quoted = IP(src=STACK_IP, dst="198.18.0.9") / ICMP(type=8, id=ident, seq=1) / b"abcdefgh"
        error = Ether(src=PEER_MAC, dst=STACK_MAC) / IP(src=PEER_IP, dst=STACK_IP) / ICMP(type=3, code=code) / IPerror(
            bytes(quoted))
        stack.receive(iface, bytes(error), 1.5)
    with pytest.raises(OSError) as info:
        sock.recvfrom(100, 1.5)
    assert info.value.errno == err
    with pytest.raises(BlockingIOError):
        loose.recvfrom(100, 1.5)  # unconnected: Linux reports errors only with IP_RECVERR
    assert stack.stats["ping.icmp_error_delivered"] == 1


def test_big_request_is_fragmented_and_fragmented_reply_reassembled() -> None:
    stack, iface = learned_stack()
    sock = ping_socket(stack)
    sock.sendto(request(3, bytes(range(256)) * 16), (PEER_IP, 0), 1.0)
    frames = sent(iface)
    assert len(frames) == 3 and all(f[IP].flags.MF or f[IP].frag for f in frames)
    ident = sock.getsockname()[1]
    reply = IP(src=PEER_IP, dst=STACK_IP, id=9) / ICMP(type=0, id=ident, seq=3) / (bytes(range(256)) * 16)
    for piece in fragment(reply, fragsize=1480):  # type: ignore[no-untyped-call]
        stack.receive(iface, bytes(Ether(src=PEER_MAC, dst=STACK_MAC) / piece), 1.1)
    data, _ = sock.recvfrom(65535, 1.1)
    assert len(data) == 8 + 4096 and data[8:] == bytes(range(256)) * 16


def test_patched_ping_socket_over_loopback() -> None:
    out = run_patched("""
        import errno, socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
        s.settimeout(5)
        s.bind(("", 777))
        s.sendto(bytes((8, 0, 0, 0, 0, 0, 0, 5)) + b"hello", ("127.0.0.1", 0))
        data, addr = s.recvfrom(1000)
        try:
            socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_ICMP)
            wrong = None
        except OSError as exc:
            wrong = exc.errno
        report({"type": data[0], "ident": int.from_bytes(data[4:6], "big"), "seq": data[7], "data": data[8:].decode(),
                "addr": list(addr), "proto": s.proto, "name": list(s.getsockname()), "wrong": wrong})
    """)
    assert out == {"type": 0, "ident": 777, "seq": 5, "data": "hello", "addr": ["127.0.0.1", 0], "proto": 1,
                   "name": ["0.0.0.0", 777], "wrong": errno.EPROTONOSUPPORT}


def test_unanswered_arp_reports_host_unreachable_to_connected_sockets() -> None:
    from pytcp_green.stack.datagram.udp import UdpSocket
    from pytcp_green.stack.sockbase import AF_INET
    from pytcp_green.stack.stack import SOCK_DGRAM

    stack, iface = learned_stack()
    ping = ping_socket(stack)
    ping.connect(("198.18.0.9", 0), 1.0)
    ping.sendto(request(1), None, 1.0)
    udp = stack.socket(AF_INET, SOCK_DGRAM)
    assert isinstance(udp, UdpSocket)
    udp.connect(("198.18.0.9", 53), 1.0)
    udp.sendto(b"query", None, 1.0)
    now = 1.0
    while (deadline := stack.next_deadline()) is not None and deadline < 30.0:
        now = deadline
        stack.poll(now)
    assert len([f for f in sent(iface) if f.haslayer("ARP")]) == 3  # mcast_solicit, then give up
    for sock in (ping, udp):
        with pytest.raises(OSError) as info:
            sock.recvfrom(100, now)
        assert info.value.errno == errno.EHOSTUNREACH
    assert stack.stats["icmp4.local_error.host_unreachable"] == 2


def test_ip_recverr_queues_the_error_with_the_quoted_request_connected_or_not() -> None:
    # ip(7) IP_RECVERR on a ping socket (Linux's ping_err): the error goes on the queue of an unconnected
    # socket too, with the quoted echo request as its data and the destination with port 0.
    stack, iface = learned_stack()
    sock = ping_socket(stack)
    sock.recverr = True
    sock.sendto(request(1), ("198.18.0.9", 0), 1.0)
    ident = sock.getsockname()[1]
    quoted = bytes(IP(src=STACK_IP, dst="198.18.0.9") / ICMP(type=8, id=ident, seq=1) / b"abcdefgh")
    error = Ether(src=PEER_MAC, dst=STACK_MAC) / IP(src=PEER_IP, dst=STACK_IP) / ICMP(type=3, code=1) / IPerror(quoted)
    stack.receive(iface, bytes(error), 1.5)
    assert sock.poll_mask() & 0x008  # POLLERR
    item = sock.recv_error()
    assert (item.err, item.origin.origin, item.origin.type, item.origin.code) == (errno.EHOSTUNREACH, 2, 3, 1)
    assert item.origin.offender == bytes(map(int, PEER_IP.split(".")))
    assert item.payload == quoted[20:] and (item.dst, item.dport) == (bytes((198, 18, 0, 9)), 0)
    assert sock.take_error() == 0 and stack.stats["ping.icmp_error_delivered"] == 1
