"""ARP behaviour of the core (RFC 826, NUD states as RFC 4861 §7.3.2), peer frames built by scapy."""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import ARP, Ether

from pytcp_green.stack.ipv4.arp import NeighState
from pytcp_green.stack.sockbase import AF_INET
from pytcp_green.stack.stack import SOCK_DGRAM

from ..helpers import PEER_IP, PEER_MAC, STACK_IP, STACK_MAC, make_stack, sent


def test_request_for_us_is_answered_and_sender_learned() -> None:
    stack, iface = make_stack()
    req = Ether(src=PEER_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=PEER_MAC, psrc=PEER_IP, pdst=STACK_IP)
    stack.receive(iface, bytes(req), 0.0)
    (reply,) = sent(iface)
    assert reply[Ether].dst == PEER_MAC and reply[Ether].src == STACK_MAC
    assert reply[ARP].op == 2 and reply[ARP].psrc == STACK_IP and reply[ARP].hwsrc == STACK_MAC
    assert reply[ARP].pdst == PEER_IP and reply[ARP].hwdst == PEER_MAC
    assert iface.arp is not None
    assert iface.arp.entries[bytes([198, 18, 0, 1])].state is NeighState.STALE


def test_request_for_someone_else_is_not_answered() -> None:
    stack, iface = make_stack()
    req = Ether(src=PEER_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=PEER_MAC, psrc=PEER_IP, pdst="198.18.0.9")
    stack.receive(iface, bytes(req), 0.0)
    assert sent(iface) == []
    assert stack.stats["arp.rx.not_for_us"] == 1


def test_unresolved_packets_wait_then_leave_on_reply() -> None:
    stack, iface = make_stack()
    sock = stack.socket(AF_INET, SOCK_DGRAM)
    for i in range(3):
        sock.sendto(b"payload%d" % i, (PEER_IP, 9999), 0.0)
    (request,) = sent(iface)  # one request for three packets
    assert request[ARP].op == 1 and request[ARP].pdst == PEER_IP and request[Ether].dst == "ff:ff:ff:ff:ff:ff"
    reply = Ether(src=PEER_MAC, dst=STACK_MAC) / ARP(op=2, hwsrc=PEER_MAC, psrc=PEER_IP, hwdst=STACK_MAC, pdst=STACK_IP)
    stack.receive(iface, bytes(reply), 0.1)
    frames = sent(iface)
    assert [bytes(f[UDP].payload) for f in frames] == [b"payload0", b"payload1", b"payload2"]
    assert all(f[Ether].dst == PEER_MAC for f in frames)


def test_resolution_gives_up_after_mcast_solicit_and_counts_drops() -> None:
    stack, iface = make_stack()
    sock = stack.socket(AF_INET, SOCK_DGRAM)
    sock.sendto(b"x", (PEER_IP, 9999), 0.0)
    now = 0.0
    requests = len(sent(iface))
    while (deadline := stack.next_deadline()) is not None and deadline < 60:
        now = deadline
        stack.poll(now)
        requests += len(sent(iface))
    assert requests == 3  # net.ipv4.neigh.default.mcast_solicit
    assert stack.stats["arp.resolve_failed"] == 1
    assert stack.stats["arp.drop.unresolved"] == 1


def test_reachable_entry_goes_stale_then_probes_then_is_removed() -> None:
    stack, iface = make_stack()
    arp = iface.arp
    assert arp is not None
    peer = bytes([198, 18, 0, 1])
    sock = stack.socket(AF_INET, SOCK_DGRAM)
    sock.sendto(b"x", (PEER_IP, 9), 0.0)
    sent(iface)
    reply = Ether(src=PEER_MAC, dst=STACK_MAC) / ARP(op=2, hwsrc=PEER_MAC, psrc=PEER_IP, hwdst=STACK_MAC, pdst=STACK_IP)
    stack.receive(iface, bytes(reply), 0.0)
    assert arp.entries[peer].state is NeighState.REACHABLE
    stack.poll(46.0)  # past 1.5 x base_reachable_time
    assert arp.entries[peer].state is NeighState.STALE
    sent(iface)
    sock.sendto(b"y", (PEER_IP, 9), 46.0)  # use of a stale entry: sent at once, then DELAY
    assert [bytes(f[UDP].payload) for f in sent(iface)] == [b"y"]
    assert arp.entries[peer].state is NeighState.DELAY
    stack.poll(51.1)
    assert arp.entries[peer].state is NeighState.PROBE
    (probe,) = sent(iface)
    assert probe[ARP].op == 1 and probe[Ether].dst == PEER_MAC  # unicast probe
    for t in (52.2, 53.3, 54.4):
        stack.poll(t)
    assert peer not in arp.entries
    assert stack.stats["arp.probe_failed"] == 1


def test_ping_reply_uses_learned_mac_and_echoes_payload() -> None:
    stack, iface = make_stack()
    ping = (Ether(src=PEER_MAC, dst=STACK_MAC) / IP(src=PEER_IP, dst=STACK_IP)
            / ICMP(type=8, id=0x1234, seq=7) / (b"abc" * 20))
    arp = Ether(src=PEER_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=PEER_MAC, psrc=PEER_IP, pdst=STACK_IP)
    stack.receive(iface, bytes(arp), 0.0)
    sent(iface)
    stack.receive(iface, bytes(ping), 0.0)
    (reply,) = sent(iface)
    assert reply[ICMP].type == 0 and reply[ICMP].id == 0x1234 and reply[ICMP].seq == 7
    assert bytes(reply[ICMP].payload) == b"abc" * 20
    rebuilt = reply.copy()
    del rebuilt[IP].chksum, rebuilt[ICMP].chksum
    assert bytes(Ether(bytes(rebuilt))) == bytes(reply)  # scapy agrees with both checksums


def forged_request(i: int) -> bytes:
    """An ARP request for us from a made-up neighbour 198.18.<i>: it teaches us a STALE entry."""
    mac = f"02:aa:00:00:{i >> 8 & 0xFF:02x}:{i & 0xFF:02x}"
    src = f"198.18.0.{i % 200 + 3}" if i < 200 else f"198.18.{i // 200}.{i % 200 + 3}"
    return bytes(Ether(src=mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=mac, psrc=src, pdst=STACK_IP))


def test_a_flood_of_neighbours_cannot_grow_the_table_past_gc_thresh3() -> None:
    stack, iface = make_stack(address=False, **{"net.ipv4.neigh.default.gc_thresh2": 8,
                                                "net.ipv4.neigh.default.gc_thresh3": 16})
    stack.add_ip4(iface, "198.18.0.2/16")  # a wider subnet, so every forged source is on-link
    assert iface.arp is not None
    for i in range(2000):
        stack.receive(iface, forged_request(i), i * 0.001)
        assert len(iface.arp.entries) <= 16
        sent(iface)
    # The oldest idle entries made room; the newest neighbours are the ones kept.
    assert stack.stats["arp.gc.evicted"] == 2000 - 16
    assert len(iface.arp.entries) == 16


def test_from_gc_thresh2_only_entries_idle_for_five_seconds_give_way() -> None:
    stack, iface = make_stack(address=False, **{"net.ipv4.neigh.default.gc_thresh2": 4,
                                                "net.ipv4.neigh.default.gc_thresh3": 100})
    stack.add_ip4(iface, "198.18.0.2/16")
    assert iface.arp is not None
    for i in range(6):
        stack.receive(iface, forged_request(i), 1.0)  # six young entries: above thresh2, none evicted
    assert len(iface.arp.entries) == 6 and stack.stats["arp.gc.evicted"] == 0
    stack.receive(iface, forged_request(6), 7.0)  # the oldest is now idle for 6 s: it gives way
    assert len(iface.arp.entries) == 6 and stack.stats["arp.gc.evicted"] == 1


def test_a_table_full_of_neighbours_in_use_drops_the_new_one_and_counts_it() -> None:
    stack, iface = make_stack(**{"net.ipv4.neigh.default.gc_thresh2": 2, "net.ipv4.neigh.default.gc_thresh3": 2})
    sock = stack.socket(AF_INET, SOCK_DGRAM)
    for host in ("198.18.0.10", "198.18.0.11", "198.18.0.12"):  # unresolved, with a datagram queued each
        sock.sendto(b"x", (host, 9), 1.0)
    assert iface.arp is not None and len(iface.arp.entries) == 2
    assert stack.stats["arp.drop.table_full"] == 1
