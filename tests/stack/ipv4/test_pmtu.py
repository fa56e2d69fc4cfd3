"""Path MTU discovery (RFC 1191): frag-needed lowers the per-destination MTU, output follows it, it expires."""

from __future__ import annotations

import errno

from scapy.layers.inet import ICMP, IP, IPerror, UDPerror
from scapy.layers.l2 import Ether

from pytcp_green.stack.datagram.udp import UdpSocket
from pytcp_green.stack.sockbase import AF_INET
from pytcp_green.stack.stack import SOCK_DGRAM

from ..helpers import PEER_IP, PEER_MAC, STACK_IP, STACK_MAC, learned_stack, sent

PEER = bytes(map(int, PEER_IP.split(".")))


def frag_needed(mtu: int, quoted_len: int = 1500, src: str = STACK_IP) -> bytes:
    quoted = IPerror(src=src, dst=PEER_IP, len=quoted_len, flags="DF") / UDPerror(sport=5000, dport=7)
    return bytes(Ether(src=PEER_MAC, dst=STACK_MAC) / IP(src=PEER_IP, dst=STACK_IP) /
                 ICMP(type=3, code=4, nexthopmtu=mtu) / quoted)


def test_frag_needed_lowers_path_mtu_and_output_fragments_to_it() -> None:
    stack, iface = learned_stack()
    assert stack.path_mtu(PEER) == 1500
    stack.receive(iface, frag_needed(1000), 1.0)
    assert stack.path_mtu(PEER) == 1000
    sock = stack.socket(AF_INET, SOCK_DGRAM)
    assert isinstance(sock, UdpSocket)
    sock.sendto(b"p" * 1400, (PEER_IP, 7), 2.0)
    out = sent(iface)
    assert [len(f[IP]) for f in out] == [996, 20 + 1408 - 976]
    assert not out[0][IP].flags.DF and out[0][IP].flags.MF


def test_connected_udp_socket_gets_emsgsize() -> None:
    stack, iface = learned_stack()
    sock = stack.socket(AF_INET, SOCK_DGRAM)
    assert isinstance(sock, UdpSocket)
    sock.bind(("", 5000))
    sock.connect((PEER_IP, 7), 0.0)
    stack.receive(iface, frag_needed(1200), 1.0)
    assert sock.take_error() == errno.EMSGSIZE


def test_path_mtu_never_rises_never_below_min_and_expires() -> None:
    stack, iface = learned_stack(**{"net.ipv4.route.mtu_expires": 100.0})
    stack.receive(iface, frag_needed(1200), 1.0)
    stack.receive(iface, frag_needed(1400), 2.0)  # RFC 1191 §6.1: a larger value is ignored
    assert stack.path_mtu(PEER) == 1200
    stack.receive(iface, frag_needed(300), 3.0)  # below Linux's min_pmtu 552
    assert stack.path_mtu(PEER) == 552
    stack.poll(102.9)
    assert stack.path_mtu(PEER) == 552
    stack.poll(103.0)
    assert stack.path_mtu(PEER) == 1500
    assert stack.stats["ip4.pmtu.expired"] == 1


def test_old_router_without_mtu_gets_the_next_plateau() -> None:
    stack, iface = learned_stack()
    stack.receive(iface, frag_needed(0, quoted_len=1500), 1.0)
    assert stack.path_mtu(PEER) == 1492


def test_forged_quote_of_someone_elses_datagram_is_ignored() -> None:
    stack, iface = learned_stack()
    stack.receive(iface, frag_needed(600, src="198.18.0.77"), 1.0)
    assert stack.path_mtu(PEER) == 1500
    assert stack.stats["icmp4.drop.frag_needed_not_ours"] == 1


def test_tcp_learns_the_mtu_through_icmp_error() -> None:
    stack, iface = learned_stack()
    seen: list[int | None] = []

    class FakeTcp:
        def icmp_error(self, src: bytes, dst: bytes, quoted: object, err: int, mtu: int | None, now: float) -> None:
            seen.append(mtu)

    stack.icmp4.tcp = FakeTcp()  # type: ignore[assignment]  # where the Stack wired TCP's error handler
    quoted = IPerror(src=STACK_IP, dst=PEER_IP, len=1500, proto=6) / UDPerror(sport=5000, dport=80)
    icmp = Ether(src=PEER_MAC, dst=STACK_MAC) / IP(src=PEER_IP, dst=STACK_IP) / ICMP(type=3, code=4, nexthopmtu=1280)
    stack.receive(iface, bytes(icmp / quoted), 1.0)
    assert seen == [1280]
