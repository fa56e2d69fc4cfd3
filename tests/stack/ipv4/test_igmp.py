"""Host multicast (RFC 1112) with IGMPv3 (RFC 3376) and v1/v2 compatibility (RFC 2236): codec against scapy,
joins/leaves, answers to queries, report suppression, delivery and sending to groups."""

from __future__ import annotations

import errno
import socket

import pytest
from scapy.layers.igmp import IGMP, IGMPv3, IGMPv3_MQ, IGMPv3_MR, IGMPv3_MR_Group
from scapy.layers.inet import IP, UDP, IPOption_Router_Alert
from scapy.layers.l2 import Ether

from pytcp_green.stack.datagram.udp import UdpSocket
from pytcp_green.stack.interface import Interface
from pytcp_green.stack.stack import Stack
from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.igmp import (
    CHANGE_TO_EXCLUDE,
    CHANGE_TO_INCLUDE,
    MODE_IS_EXCLUDE,
    TYPE_V2_REPORT,
    IgmpMessage,
    IgmpRecord,
    decode_code,
    encode_code,
    igmp_v2,
    igmp_v3_query,
    igmp_v3_report,
)

from ..helpers import PEER_IP, PEER_MAC, STACK_IP, learned_stack, sent, udp_socket

GROUP = "239.1.2.3"
G = socket.inet_aton(GROUP)
OTHER = socket.inet_aton("239.9.9.9")
ANY = bytes(4)


# -- codec ----------------------------------------------------------------------------------------------
def test_v3_report_reads_the_same_in_scapy() -> None:
    raw = igmp_v3_report([IgmpRecord(CHANGE_TO_EXCLUDE, G), IgmpRecord(1, OTHER, [socket.inet_aton("10.0.0.1")])])
    pkt = IGMPv3(raw)
    assert isinstance(pkt, IGMPv3_MR) and pkt.numgrp == 2
    assert pkt.records[0].rtype == CHANGE_TO_EXCLUDE and pkt.records[0].maddr == GROUP
    assert pkt.records[1].srcaddrs == ["10.0.0.1"] and pkt.records[1].maddr == "239.9.9.9"
    assert bytes(IGMPv3(raw)) == raw  # scapy's checksum agrees


def test_scapy_messages_parse() -> None:
    query = IgmpMessage.parse(memoryview(bytes(IGMPv3_MQ(mrcode=35, gaddr=GROUP, qrv=2, qqic=125,
                                                         srcaddrs=["10.0.0.1", "10.0.0.2"]))))
    assert query.query is not None and query.query.version == 3 and query.query.group == G
    assert query.query.max_resp == 35 and query.query.qrv == 2 and query.query.qqic == 125
    assert query.query.sources == [socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.2")]
    v2q = IgmpMessage.parse(memoryview(bytes(IGMP(type=0x11, mrcode=100))))
    assert v2q.query is not None and v2q.query.version == 2 and v2q.query.max_resp == 100
    v1q = IgmpMessage.parse(memoryview(bytes(IGMP(type=0x11, mrcode=0))))
    assert v1q.query is not None and v1q.query.version == 1
    report = IgmpMessage.parse(memoryview(bytes(IGMP(type=0x16, gaddr=GROUP))))
    assert report.type == TYPE_V2_REPORT and report.group == G
    records = IgmpMessage.parse(memoryview(bytes(IGMPv3_MR(records=[IGMPv3_MR_Group(rtype=2, maddr=GROUP)]))))
    assert [(r.type, r.group) for r in records.records] == [(MODE_IS_EXCLUDE, G)]
    assert bytes(IGMP(igmp_v2(0x16, G))) == igmp_v2(0x16, G)
    assert bytes(IGMPv3(igmp_v3_query(G, 35, [G]))) == igmp_v3_query(G, 35, [G])


def test_float_codes_round_trip() -> None:
    # RFC 3376 §4.1.1: 0x80 | exp << 4 | mant means (mant | 0x10) << (exp + 3).
    assert decode_code(0x80) == 128 and decode_code(0xFF) == 31744
    for code in range(256):
        assert encode_code(decode_code(code)) == code
    assert decode_code(encode_code(1000)) <= 1000


@pytest.mark.parametrize(("raw", "reason"), [
    (b"\x11\x00\x00", "too_short"),
    (bytes(IGMP(type=0x16, gaddr=GROUP))[:-1] + b"\x00", "bad_checksum"),
    (bytes(IGMPv3_MQ(gaddr=GROUP))[:10], "bad_query_length"),
])
def test_malformed(raw: bytes, reason: str) -> None:
    with pytest.raises(Malformed) as info:
        IgmpMessage.parse(memoryview(raw))
    assert info.value.reason == reason


def _fix_checksum(raw: bytearray) -> bytes:
    from pytcp_green.stack.wire.checksum import checksum

    raw[2:4] = b"\0\0"
    raw[2:4] = checksum(raw).to_bytes(2, "big")
    return bytes(raw)


def test_counts_past_the_end_are_malformed() -> None:
    query = bytearray(igmp_v3_query(G, 10, [G]))
    query[10:12] = (5).to_bytes(2, "big")
    with pytest.raises(Malformed, match="bad_source_count"):
        IgmpMessage.parse(memoryview(_fix_checksum(query)))
    report = bytearray(igmp_v3_report([IgmpRecord(1, G, [G])]))
    report[10:12] = (9).to_bytes(2, "big")  # the record's source count
    with pytest.raises(Malformed, match="bad_record"):
        IgmpMessage.parse(memoryview(_fix_checksum(report)))


# -- the host side --------------------------------------------------------------------------------------
def joined() -> tuple[Stack, Interface, UdpSocket]:
    stack, iface = learned_stack()
    sock = udp_socket(stack, 5000)
    sock.add_membership(G, ANY, 1.0)
    return stack, iface, sock


def igmp_frames(frames: list[Ether]) -> list[Ether]:
    return [f for f in frames if IP in f and f[IP].proto == 2]


def query_frame(igmp: bytes, dst: str = "224.0.0.1") -> bytes:
    return bytes(Ether(src=PEER_MAC, dst="01:00:5e:00:00:01") / IP(src=PEER_IP, dst=dst, ttl=1, proto=2,
                                                                   options=[IPOption_Router_Alert()]) / igmp)


def test_join_sends_unsolicited_v3_reports_with_router_alert() -> None:
    stack, iface, _ = joined()
    [first] = igmp_frames(sent(iface))
    assert first.dst == "01:00:5e:00:00:16"
    ip = first[IP]
    assert ip.dst == "224.0.0.22" and ip.src == STACK_IP and ip.ttl == 1 and ip.tos == 0xC0
    assert any(isinstance(o, IPOption_Router_Alert) for o in ip.options)
    report = IGMPv3(bytes(ip.payload))
    assert [(r.rtype, r.maddr) for r in report.records] == [(CHANGE_TO_EXCLUDE, GROUP)]
    # qrv=2: one more, within the unsolicited report interval (1 s).
    stack.poll(2.0)
    assert len(igmp_frames(sent(iface))) == 1
    stack.poll(10.0)
    assert igmp_frames(sent(iface)) == []
    assert G in stack.ip4.groups


def test_group_traffic_is_delivered_and_other_groups_are_not() -> None:
    stack, iface, sock = joined()
    for group in (GROUP, "239.9.9.9"):
        frame = Ether(src=PEER_MAC, dst="01:00:5e:01:02:03") / IP(src=PEER_IP, dst=group, ttl=1) / UDP(
            sport=7, dport=5000) / b"hello"
        stack.receive(iface, bytes(frame), 2.0)
    assert sock.recvfrom(100, 2.0) == (b"hello", (PEER_IP, 7))
    assert not sock.queue
    assert stack.stats["ip4.drop.not_for_us"] == 1
    assert stack.stats["icmp4.tx.error.3.3"] == 0


def test_general_query_answered_once_within_max_resp() -> None:
    stack, iface, sock = joined()
    sock.add_membership(OTHER, ANY, 1.0)
    stack.poll(20.0)
    sent(iface)
    stack.receive(iface, query_frame(bytes(IGMPv3_MQ(mrcode=50))), 30.0)  # 5 s
    stack.receive(iface, query_frame(bytes(IGMPv3_MQ(mrcode=50))), 30.1)  # covered by the pending answer
    assert igmp_frames(sent(iface)) == []
    stack.poll(35.1)
    [answer] = igmp_frames(sent(iface))
    records = IGMPv3(bytes(answer[IP].payload)).records
    assert sorted((r.rtype, r.maddr) for r in records) == [(MODE_IS_EXCLUDE, GROUP), (MODE_IS_EXCLUDE, "239.9.9.9")]
    assert stack.stats["igmp.rx.query_v3"] == 2


def test_group_specific_and_source_specific_queries() -> None:
    stack, iface, _ = joined()
    stack.poll(20.0)
    sent(iface)
    stack.receive(iface, query_frame(bytes(IGMPv3_MQ(mrcode=10, gaddr="239.9.9.9")), "239.9.9.9"), 30.0)
    stack.receive(iface, query_frame(bytes(IGMPv3_MQ(mrcode=10, gaddr=GROUP, srcaddrs=["10.1.1.1"])), GROUP), 30.0)
    stack.poll(31.0)
    [answer] = igmp_frames(sent(iface))
    [record] = IGMPv3(bytes(answer[IP].payload)).records
    assert (record.rtype, record.maddr, record.srcaddrs) == (1, GROUP, ["10.1.1.1"])  # IS_IN(queried sources)
    assert stack.stats["ip4.drop.not_for_us"] == 1  # a query about a group we never joined never gets in


def test_query_to_the_wrong_destination_is_ignored() -> None:
    stack, iface, _ = joined()
    stack.poll(20.0)
    sent(iface)
    stack.receive(iface, query_frame(bytes(IGMPv3_MQ(mrcode=10)), GROUP), 30.0)  # general, not to 224.0.0.1
    stack.poll(40.0)
    assert igmp_frames(sent(iface)) == []
    assert stack.stats["igmp.drop.bad_query_destination"] == 1


def test_v2_querier_switches_to_v2_reports_suppression_and_leave() -> None:
    stack, iface, sock = joined()
    stack.poll(20.0)
    sent(iface)
    stack.receive(iface, query_frame(bytes(IGMP(type=0x11, mrcode=100))), 30.0)
    assert stack.ip4.igmp.version(iface, 30.0) == 2
    stack.poll(40.0)
    [report] = igmp_frames(sent(iface))
    assert report[IP].dst == GROUP and report.dst == "01:00:5e:01:02:03"
    assert IGMP(bytes(report[IP].payload)).type == 0x16
    # Another member answers first: ours is suppressed (RFC 2236 §3).
    stack.receive(iface, query_frame(bytes(IGMP(type=0x11, mrcode=100))), 50.0)
    other = Ether(src=PEER_MAC, dst="01:00:5e:01:02:03") / IP(src=PEER_IP, dst=GROUP, ttl=1) / IGMP(
        type=0x16, gaddr=GROUP)
    stack.receive(iface, bytes(other), 50.001)
    stack.poll(61.0)
    assert igmp_frames(sent(iface)) == []
    assert stack.stats["igmp.report_suppressed"] == 1
    sock.drop_membership(G, ANY, 62.0)
    [leave] = igmp_frames(sent(iface))
    assert leave[IP].dst == "224.0.0.2" and IGMP(bytes(leave[IP].payload)).type == 0x17
    # The older querier's presence times out 260 s after its last query (RFC 3376 §8.12: 2 x 125 s + 10 s).
    assert stack.ip4.igmp.version(iface, 50.0 + 259.0) == 2
    assert stack.ip4.igmp.version(iface, 50.0 + 261.0) == 3


def test_v1_querier_gets_v1_reports_and_no_leave() -> None:
    stack, iface, sock = joined()
    stack.poll(20.0)
    sent(iface)
    stack.receive(iface, query_frame(bytes(IGMP(type=0x11, mrcode=0))), 30.0)
    stack.poll(41.0)  # a v1 query means 10 s
    [report] = igmp_frames(sent(iface))
    assert IGMP(bytes(report[IP].payload)).type == 0x12
    sock.drop_membership(G, ANY, 42.0)
    assert igmp_frames(sent(iface)) == []


def test_leave_sends_change_to_include_and_membership_errors() -> None:
    stack, iface, sock = joined()
    with pytest.raises(OSError) as info:
        sock.add_membership(G, ANY, 1.0)
    assert info.value.errno == errno.EADDRINUSE
    with pytest.raises(OSError) as info:
        sock.add_membership(socket.inet_aton("10.0.0.1"), ANY, 1.0)
    assert info.value.errno == errno.EINVAL
    with pytest.raises(OSError) as info:
        sock.add_membership(OTHER, socket.inet_aton("10.9.9.9"), 1.0)
    assert info.value.errno == errno.ENODEV
    with pytest.raises(OSError) as info:
        sock.drop_membership(OTHER, ANY, 1.0)
    assert info.value.errno == errno.EADDRNOTAVAIL
    second = udp_socket(stack, 5001)
    second.add_membership(G, socket.inet_aton(STACK_IP), 1.0)  # the same interface, named by address
    stack.poll(20.0)
    sent(iface)
    sock.drop_membership(G, ANY, 21.0)
    assert igmp_frames(sent(iface)) == [] and G in stack.ip4.groups  # the other socket still listens
    second.close(22.0)
    [leave] = igmp_frames(sent(iface))
    assert [(r.rtype, r.maddr) for r in IGMPv3(bytes(leave[IP].payload)).records] == [(CHANGE_TO_INCLUDE, GROUP)]
    assert G not in stack.ip4.groups
    stack.poll(30.0)
    assert len(igmp_frames(sent(iface))) == 1  # the repeat (qrv 2)


def test_sending_to_a_group_uses_multicast_ttl_and_loops_back_to_members() -> None:
    stack, iface, sock = joined()
    sent(iface)
    sender = udp_socket(stack, 6000)
    sender.sendto(b"to the group", (GROUP, 5000), 2.0)
    [frame] = [f for f in sent(iface) if UDP in f]
    assert frame.dst == "01:00:5e:01:02:03" and frame[IP].ttl == 1 and frame[IP].dst == GROUP
    for lo_frame in list(stack.loopback.tx):
        stack.receive(stack.loopback, lo_frame, 2.0)
    stack.loopback.tx.clear()
    assert sock.recvfrom(100, 2.0) == (b"to the group", (STACK_IP, 6000))
    sender.multicast_loop = False
    sender.multicast_ttl = 5
    sender.sendto(b"x", (GROUP, 5000), 3.0)
    assert not stack.loopback.tx
    assert [f[IP].ttl for f in sent(iface) if UDP in f] == [5]


def test_forced_version_and_bound_to_group() -> None:
    stack, iface = learned_stack(**{"net.ipv4.conf.default.force_igmp_version": 2})
    sock = stack.udp.socket(socket.AF_INET)
    sock.bind((GROUP, 5000))
    sock.add_membership(G, ANY, 1.0)
    [report] = igmp_frames(sent(iface))
    assert IGMP(bytes(report[IP].payload)).type == 0x16
    stack.ip4.igmp.join(iface, OTHER, 1.0)
    for group in ("239.9.9.9", GROUP):
        frame = Ether(src=PEER_MAC, dst="01:00:5e:01:02:03") / IP(src=PEER_IP, dst=group) / UDP(
            sport=7, dport=5000) / group.encode()
        stack.receive(iface, bytes(frame), 2.0)
    assert [d for d, *_ in sock.queue] == [GROUP.encode()]  # bound to the group: only the group's traffic


def test_multicast_if_picks_the_interface_and_source() -> None:
    from pytcp_green.stack.interface import LinkKind

    stack, iface = learned_stack()
    stack.set_gateway4(PEER_IP)  # a default route through eth0: without IP_MULTICAST_IF groups go there
    eth1 = stack.add_interface("eth1", LinkKind.ETHERNET, mac=bytes.fromhex("020000000003"))
    stack.add_ip4(eth1, "10.0.0.2/24")
    sock = udp_socket(stack, 6000)
    with pytest.raises(OSError) as info:
        sock.set_multicast_if(socket.inet_aton("10.9.9.9"))
    assert info.value.errno == errno.EADDRNOTAVAIL
    sock.sendto(b"default", (GROUP, 5000), 1.0)
    [first] = [f for f in sent(iface) if UDP in f]
    assert first.dst == "01:00:5e:01:02:03" and first[IP].src == STACK_IP  # to the group's MAC, not the gateway's
    sock.set_multicast_if(socket.inet_aton("10.0.0.2"))
    sock.sendto(b"pinned", (GROUP, 5000), 2.0)
    assert [f for f in sent(iface) if UDP in f] == []
    [pinned] = [f for f in sent(eth1) if UDP in f]
    assert pinned[IP].src == "10.0.0.2" and pinned.dst == "01:00:5e:01:02:03"
