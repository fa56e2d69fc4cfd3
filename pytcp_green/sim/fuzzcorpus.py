"""The valid frames the fuzzer (:mod:`pytcp_green.sim.fuzz`) mutates, built once by scapy.

scapy is an independent codec: a frame it builds is what another implementation calls valid,
so a mutation of it tests our parsers, not our own encoders.  One or more frames per thing the
stack parses: Ethernet (II and an unknown type), ARP (requests, replies, probes, announcements,
conflicts with our address, RFC 826 and RFC 5227), IPv4 with options and fragments (RFC 791,
RFC 815), ICMPv4 of every type (RFC 792, RFC 1122 §3.2.2), IGMPv1-3 (RFC 1112, 2236, 3376),
UDP (RFC 768), TCP with flag mixes and options (RFC 9293, 7323, 2018), IPv6 with extension
headers and fragments (RFC 8200), ICMPv6 errors and echo (RFC 4443), Neighbor Discovery with
options and redirects (RFC 4861, 4862, 8106, 4191), MLDv1/v2 (RFC 2710, 3810).

The addresses are the fuzz target's (:class:`Lab`); TCP frames meant for the fuzzer's own
connections are templates whose ports and sequence numbers the fuzzer fills in.
"""

from __future__ import annotations

from dataclasses import dataclass

from scapy.layers.igmp import IGMP, IGMPv3, IGMPv3_MQ, IGMPv3_MR, IGMPv3_MR_Group
from scapy.layers.inet import (
    ICMP,
    IP,
    TCP,
    UDP,
    IPOption_LSRR,
    IPOption_Router_Alert,
    IPOption_RR,
    IPOption_Timestamp,
    fragment,
)
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6MLDMultAddrRec,
    ICMPv6MLQuery,
    ICMPv6MLQuery2,
    ICMPv6MLReport,
    ICMPv6MLReport2,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_Redirect,
    ICMPv6ND_RS,
    ICMPv6NDOptDNSSL,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptMTU,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptRDNSS,
    ICMPv6NDOptRedirectedHdr,
    ICMPv6NDOptRouteInfo,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6PacketTooBig,
    ICMPv6ParamProblem,
    ICMPv6TimeExceeded,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    RouterAlert,
    fragment6,
)
from scapy.layers.l2 import ARP, LLC, SNAP, Dot3, Ether
from scapy.packet import Packet, Raw


@dataclass(frozen=True)
class Lab:
    """The addresses of the fuzz target and of the peer the fuzzer plays."""

    stack_mac: str = "02:00:00:00:00:02"
    peer_mac: str = "02:00:00:00:00:01"
    stack_ip: str = "198.18.0.2"
    peer_ip: str = "198.18.0.1"
    stack_ip6: str = "fd00:77::2"
    peer_ip6: str = "fd00:77::1"
    stack_ll: str = "fe80::ff:fe00:2"  # modified EUI-64 of stack_mac
    peer_ll: str = "fe80::1"
    tcp_port4: int = 80
    tcp_port6: int = 8080
    udp_port4: int = 53
    udp_port6: int = 5353
    closed_port: int = 9


LAB = Lab()
CONN_PORT = 40000  # the source port the templates carry; the fuzzer overwrites it


def _v4(pkt: Packet, dst_mac: str | None = None) -> bytes:
    return bytes(Ether(src=LAB.peer_mac, dst=dst_mac or LAB.stack_mac) / IP(src=LAB.peer_ip, dst=LAB.stack_ip) / pkt)


def _v6(pkt: Packet, src: str | None = None, dst: str | None = None, dst_mac: str | None = None,
        hlim: int = 64) -> bytes:
    ip6 = IPv6(src=src or LAB.peer_ip6, dst=dst or LAB.stack_ip6, hlim=hlim)
    return bytes(Ether(src=LAB.peer_mac, dst=dst_mac or LAB.stack_mac) / ip6 / pkt)


def _nd(pkt: Packet, dst: str = "ff02::1", dst_mac: str = "33:33:00:00:00:01", hlim: int = 255) -> bytes:
    """From the peer's link-local address with ND's hop limit (RFC 4861 §6.1.1; MLD's is 1, RFC 3810 §5)."""
    return _v6(pkt, src=LAB.peer_ll, dst=dst, dst_mac=dst_mac, hlim=hlim)


def _tcp_options() -> list[tuple[str, object]]:
    return [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)]


def _ethernet_and_arp() -> list[bytes]:
    s, p = LAB, LAB
    return [
        bytes(Ether(src=p.peer_mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=p.peer_mac, psrc=p.peer_ip,
                                                                   pdst=s.stack_ip)),
        bytes(Ether(src=p.peer_mac, dst=s.stack_mac) / ARP(op=2, hwsrc=p.peer_mac, psrc=p.peer_ip,
                                                           hwdst=s.stack_mac, pdst=s.stack_ip)),
        # RFC 5227 probe (sender 0.0.0.0) and announcement, for a neighbour's address and for ours
        bytes(Ether(src=p.peer_mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=p.peer_mac, psrc="0.0.0.0",
                                                                   pdst="198.18.0.77")),
        bytes(Ether(src=p.peer_mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=p.peer_mac, psrc="0.0.0.0",
                                                                   pdst=s.stack_ip)),
        bytes(Ether(src=p.peer_mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=p.peer_mac, psrc="198.18.0.78",
                                                                   pdst="198.18.0.78")),
        bytes(Ether(src="02:00:00:00:00:99", dst="ff:ff:ff:ff:ff:ff") / ARP(
            op=2, hwsrc="02:00:00:00:00:99", psrc=s.stack_ip, pdst=s.stack_ip)),
        bytes(Ether(src=p.peer_mac, dst=s.stack_mac, type=0x88B5) / Raw(b"\x00" * 46)),
        bytes(Dot3(src=p.peer_mac, dst=s.stack_mac) / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(code=0x0800)
              / IP(src=p.peer_ip, dst=s.stack_ip) / ICMP()),
    ]


def _ipv4() -> list[bytes]:
    s = LAB
    quoted = IP(src=s.stack_ip, dst=s.peer_ip) / TCP(sport=s.tcp_port4, dport=CONN_PORT, seq=1)
    frames = [
        _v4(ICMP(type=8, id=7, seq=1) / b"ping"),
        bytes(Ether(src=s.peer_mac, dst=s.stack_mac) / IP(src=s.peer_ip, dst=s.stack_ip, options=[
            IPOption_RR(routers=["0.0.0.0"] * 4)]) / ICMP(type=8, id=8) / b"rr"),
        bytes(Ether(src=s.peer_mac, dst=s.stack_mac) / IP(src=s.peer_ip, dst=s.stack_ip, options=[
            IPOption_Timestamp(flg=1, pointer=5)]) / ICMP(type=8, id=9) / b"ts"),
        bytes(Ether(src=s.peer_mac, dst=s.stack_mac) / IP(src=s.peer_ip, dst=s.stack_ip, options=[
            IPOption_LSRR(routers=["198.18.0.9"]), IPOption_Router_Alert()]) / ICMP(type=8, id=10)),
        bytes(Ether(src=s.peer_mac, dst="ff:ff:ff:ff:ff:ff") / IP(src=s.peer_ip, dst="198.18.0.255")
              / ICMP(type=8) / b"bcast"),
        _v4(ICMP(type=0, id=1, seq=1) / b"reply"),
        _v4(ICMP(type=3, code=3) / IP(src=s.stack_ip, dst=s.peer_ip) / UDP(sport=s.udp_port4, dport=7)),
        _v4(ICMP(type=3, code=4, nexthopmtu=576) / quoted),
        _v4(ICMP(type=3, code=1) / quoted),
        _v4(ICMP(type=11, code=0) / quoted),
        _v4(ICMP(type=12, ptr=20) / quoted),
        _v4(ICMP(type=4) / quoted),
        _v4(ICMP(type=5, code=1, gw="198.18.0.9") / quoted),
        _v4(ICMP(type=13, id=1, seq=1)),
        _v4(ICMP(type=15, id=1, seq=1)),
        _v4(ICMP(type=17)),
        _v4(ICMP(type=42, code=5) / b"unknown"),
        bytes(Ether(src=s.peer_mac, dst="01:00:5e:00:00:01") / IP(src=s.peer_ip, dst="224.0.0.1", ttl=1)
              / IGMP(type=0x11, mrcode=100, gaddr="0.0.0.0")),
        bytes(Ether(src=s.peer_mac, dst="01:00:5e:00:00:01") / IP(src=s.peer_ip, dst="224.0.0.1", ttl=1)
              / IGMPv3(type=0x11) / IGMPv3_MQ(gaddr="0.0.0.0", srcaddrs=["198.18.0.1"])),
        bytes(Ether(src=s.peer_mac, dst="01:00:5e:00:00:fb") / IP(src=s.peer_ip, dst="224.0.0.251", ttl=1)
              / IGMP(type=0x16, gaddr="224.0.0.251")),
        bytes(Ether(src=s.peer_mac, dst="01:00:5e:00:00:16") / IP(src=s.peer_ip, dst="224.0.0.22", ttl=1)
              / IGMPv3(type=0x22) / IGMPv3_MR(records=[IGMPv3_MR_Group(rtype=2, maddr="239.1.1.1")])),
        _v4(UDP(sport=1234, dport=s.udp_port4) / b"hello udp"),
        _v4(UDP(sport=1234, dport=s.closed_port) / b"closed"),
        bytes(Ether(src=s.peer_mac, dst="ff:ff:ff:ff:ff:ff") / IP(src=s.peer_ip, dst="255.255.255.255")
              / UDP(sport=68, dport=s.udp_port4) / b"bcast"),
        _v4(TCP(sport=CONN_PORT + 1, dport=s.tcp_port4, flags="S", seq=1000, options=_tcp_options())),
        _v4(TCP(sport=CONN_PORT + 1, dport=s.closed_port, flags="S", seq=1000)),
        _v4(TCP(sport=CONN_PORT + 1, dport=s.tcp_port4, flags="SA", seq=1000, ack=5)),
        _v4(TCP(sport=CONN_PORT + 1, dport=s.tcp_port4, flags="FSRPAUEC", seq=1000, ack=5)),
        _v4(TCP(sport=CONN_PORT + 1, dport=s.tcp_port4, flags="A", seq=1000, ack=5)),
        _v4(TCP(sport=CONN_PORT + 1, dport=s.tcp_port4, flags="", seq=1000)),
    ]
    big = IP(src=s.peer_ip, dst=s.stack_ip, id=4242) / UDP(sport=1, dport=s.udp_port4) / (b"f" * 3000)
    frames += [bytes(Ether(src=s.peer_mac, dst=s.stack_mac) / f) for f in _fragment4(big, 1480)]
    frames.append(bytes(Ether(src=s.peer_mac, dst=s.stack_mac)
                        / IP(src=s.peer_ip, dst=s.stack_ip, id=4243, flags="MF", frag=0, proto=17) / (b"o" * 64)))
    frames.append(bytes(Ether(src=s.peer_mac, dst=s.stack_mac)
                        / IP(src=s.peer_ip, dst=s.stack_ip, id=4243, frag=4, proto=17) / (b"p" * 64)))
    return frames


def _fragment4(pkt: Packet, size: int) -> list[Packet]:
    return list(fragment(pkt, fragsize=size))  # type: ignore[no-untyped-call]


def _ipv6() -> list[bytes]:
    s = LAB
    quoted = IPv6(src=s.stack_ip6, dst=s.peer_ip6) / TCP(sport=s.tcp_port6, dport=CONN_PORT, seq=1)
    frames = [
        _v6(ICMPv6EchoRequest(id=1, seq=1, data=b"ping6")),
        _v6(ICMPv6EchoRequest(id=2), dst="ff02::1", dst_mac="33:33:00:00:00:01"),
        _v6(ICMPv6EchoReply(id=3)),
        _v6(ICMPv6DestUnreach(code=4) / IPv6(src=s.stack_ip6, dst=s.peer_ip6) / UDP(sport=s.udp_port6, dport=7)),
        _v6(ICMPv6DestUnreach(code=1) / quoted),
        _v6(ICMPv6PacketTooBig(mtu=1280) / quoted),
        _v6(ICMPv6PacketTooBig(mtu=1000) / quoted),
        _v6(ICMPv6TimeExceeded(code=1) / quoted),
        _v6(ICMPv6ParamProblem(code=1, ptr=40) / quoted),
        _v6(UDP(sport=1234, dport=s.udp_port6) / b"hello udp6"),
        _v6(UDP(sport=1234, dport=s.closed_port) / b"closed"),
        _v6(TCP(sport=CONN_PORT + 1, dport=s.tcp_port6, flags="S", seq=1000, options=_tcp_options())),
        _v6(TCP(sport=CONN_PORT + 1, dport=s.closed_port, flags="S", seq=1000)),
        _v6(TCP(sport=CONN_PORT + 1, dport=s.tcp_port6, flags="FA", seq=1000, ack=5)),
        _v6(IPv6ExtHdrHopByHop(options=[RouterAlert()]) / IPv6ExtHdrDestOpt() / UDP(sport=1, dport=s.udp_port6)),
        _v6(IPv6ExtHdrRouting(type=0, addresses=["fd00:77::9"], segleft=1) / UDP(sport=1, dport=s.udp_port6)),
        _v6(IPv6ExtHdrRouting(type=4, segleft=0) / ICMPv6EchoRequest()),
        _v6(IPv6ExtHdrFragment(id=5, offset=0, m=0) / ICMPv6EchoRequest(id=4)),  # atomic fragment
        _v6(IPv6ExtHdrDestOpt() / IPv6ExtHdrDestOpt() / IPv6ExtHdrFragment(id=6, m=1, nh=17) / (b"x" * 16)),
        _nd(ICMPv6ND_NS(tgt=s.stack_ip6) / ICMPv6NDOptSrcLLAddr(lladdr=s.peer_mac),
            dst="ff02::1:ff00:2", dst_mac="33:33:ff:00:00:02"),
        _v6(ICMPv6ND_NS(tgt=s.stack_ip6), src="::", dst="ff02::1:ff00:2", dst_mac="33:33:ff:00:00:02", hlim=255),
        _nd(ICMPv6ND_NA(tgt=s.peer_ip6, R=0, S=1, O=1) / ICMPv6NDOptDstLLAddr(lladdr=s.peer_mac),
            dst=s.stack_ll, dst_mac=s.stack_mac),
        _nd(ICMPv6ND_NA(tgt=s.stack_ip6, R=0, S=0, O=1) / ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:99")),
        _nd(ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=s.peer_mac), dst="ff02::2", dst_mac="33:33:00:00:00:02"),
        _nd(ICMPv6ND_RA(routerlifetime=1800, reachabletime=30000, retranstimer=1000)
            / ICMPv6NDOptSrcLLAddr(lladdr=s.peer_mac) / ICMPv6NDOptMTU(mtu=1400)
            / ICMPv6NDOptPrefixInfo(prefix="fd00:78::", prefixlen=64, L=1, A=1, validlifetime=1800,
                                    preferredlifetime=900)
            / ICMPv6NDOptRouteInfo(prefix="fd00:99::", plen=48, rtlifetime=1800)
            / ICMPv6NDOptRDNSS(dns=["fd00:77::53"], lifetime=600)
            / ICMPv6NDOptDNSSL(searchlist=["lab.example."], lifetime=600)),
        _nd(ICMPv6ND_RA(routerlifetime=0) / ICMPv6NDOptPrefixInfo(prefix="fd00:79::", prefixlen=64, L=1, A=0,
                                                                  validlifetime=60, preferredlifetime=30)),
        _nd(ICMPv6ND_Redirect(tgt="fe80::9", dst="fd00:aa::1") / ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:09")
            / ICMPv6NDOptRedirectedHdr(pkt=bytes(IPv6(src=s.stack_ip6, dst="fd00:aa::1") / UDP())),
            dst=s.stack_ll, dst_mac=s.stack_mac),
        _nd(IPv6ExtHdrHopByHop(options=[RouterAlert()]) / ICMPv6MLQuery(mrd=1000), hlim=1),
        _nd(IPv6ExtHdrHopByHop(options=[RouterAlert()]) / ICMPv6MLQuery2(mrd=1000, sources=[s.peer_ll]), hlim=1),
        _nd(ICMPv6MLQuery2(mrd=1000, mladdr="ff02::1:ff00:2"), dst="ff02::1:ff00:2", dst_mac="33:33:ff:00:00:02",
            hlim=1),
        _nd(ICMPv6MLReport(mladdr="ff02::fb"), dst="ff02::fb", dst_mac="33:33:00:00:00:fb", hlim=1),
        _nd(ICMPv6MLReport2(records=[ICMPv6MLDMultAddrRec(dst="ff02::fb")]), dst="ff02::16",
            dst_mac="33:33:00:00:00:16", hlim=1),
    ]
    big = IPv6(src=s.peer_ip6, dst=s.stack_ip6) / IPv6ExtHdrFragment(id=77) / UDP(sport=1, dport=s.udp_port6) / (
        b"g" * 3000)
    frames += [bytes(Ether(src=s.peer_mac, dst=s.stack_mac) / f) for f in fragment6(big, 1280)]  # type: ignore[no-untyped-call]
    return frames


@dataclass(frozen=True)
class Corpus:
    """The valid frames, and one TCP segment per family for the fuzzer's own connections."""

    frames: list[bytes]
    conn4: bytes
    conn6: bytes


def corpus() -> Corpus:
    seg4 = TCP(sport=CONN_PORT, dport=LAB.tcp_port4, flags="PA", seq=1, ack=1, window=65535) / b"data"
    seg6 = TCP(sport=CONN_PORT, dport=LAB.tcp_port6, flags="PA", seq=1, ack=1, window=65535) / b"data"
    return Corpus(_ethernet_and_arp() + _ipv4() + _ipv6(), _v4(seg4), _v6(seg6))
