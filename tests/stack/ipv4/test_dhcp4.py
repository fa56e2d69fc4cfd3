"""The DHCPv4 client in the core against a server played with scapy-built replies (RFC 2131, 2132, 4361, 6842)."""

from __future__ import annotations

import ipaddress

from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether

from pytcp_green.stack.interface import Interface
from pytcp_green.stack.ipv4.dhcp import Dhcp4Client, Dhcp4State, Lease
from pytcp_green.stack.ipv4.dhcp.wire import Dhcp4Message, build_dhcp4, client_id
from pytcp_green.stack.stack import Stack

from ..helpers import PEER_MAC, STACK_MAC, make_stack, sent

SERVER = "198.18.0.1"
OFFERED = "198.18.0.120"
FAST = {
    "net.ipv4.acd.probe_wait": 0.1, "net.ipv4.acd.probe_min": 0.1, "net.ipv4.acd.probe_max": 0.2,
    "net.ipv4.acd.announce_wait": 0.3, "net.ipv4.acd.announce_interval": 0.1,
    "net.ipv4.dhcp.renew_min_interval": 1.0, "net.ipv4.dhcp.renew_max_interval": 2.0,
    "net.ipv4.dhcp.decline_wait": 10.0,
}


def client_stack(**extra: float) -> tuple[Stack, Interface, Dhcp4Client]:
    stack, iface = make_stack(address=False, **{**FAST, **extra})
    client = Dhcp4Client(stack, iface, hostname="pg")
    return stack, iface, client


def dhcp_sent(iface: Interface) -> list[Ether]:
    return [f for f in sent(iface) if DHCP in f]


def msg_type(frame: Ether) -> str:
    opts = dict(o for o in frame[DHCP].options if isinstance(o, tuple))
    return {1: "discover", 3: "request", 4: "decline", 7: "release"}[opts["message-type"]]


def options(frame: Ether) -> dict[str, object]:
    return dict(o for o in frame[DHCP].options if isinstance(o, tuple))


def reply(request: Ether, kind: str, *, yiaddr: str = OFFERED, lease: int = 120, t1: int = 10, t2: int = 20,
          dst: str = "255.255.255.255", echo_id: bytes | None = None) -> bytes:
    opts: list[object] = [("message-type", kind), ("server_id", SERVER), ("lease_time", lease),
                          ("renewal_time", t1), ("rebinding_time", t2), ("subnet_mask", "255.255.255.0"),
                          ("router", SERVER), ("name_server", SERVER, "198.18.0.53")]
    if echo_id is not None:
        opts.append(("client_id", echo_id))
    opts.append("end")
    frame = (Ether(src=PEER_MAC, dst="ff:ff:ff:ff:ff:ff" if dst.endswith("255") else STACK_MAC)
             / IP(src=SERVER, dst=dst) / UDP(sport=67, dport=68)
             / BOOTP(op=2, xid=request[BOOTP].xid, yiaddr=yiaddr, chaddr=bytes.fromhex(STACK_MAC.replace(":", "")))
             / DHCP(options=opts))
    return bytes(frame)


def settle(stack: Stack, now: float, until: float) -> float:
    """Run the timers due up to ``until``; returns the last time a timer ran."""
    while (d := stack.next_deadline()) is not None and d <= until:
        now = max(now, d)
        stack.poll(now)
    return now


def bind(stack: Stack, iface: Interface, client: Dhcp4Client) -> float:
    client.start(0.0)
    (discover,) = dhcp_sent(iface)
    stack.receive(iface, reply(discover, "offer"), 0.1)
    stack.poll(0.1)
    (request,) = dhcp_sent(iface)
    stack.receive(iface, reply(request, "ack"), 0.2)
    stack.poll(0.2)
    assert client.state is Dhcp4State.PROBING
    now = settle(stack, 0.2, 2.0)
    assert client.state is Dhcp4State.BOUND
    sent(iface)
    return now


def test_dora_configures_address_router_and_dns() -> None:
    stack, iface, client = client_stack()
    client.start(0.0)
    (discover,) = dhcp_sent(iface)
    assert discover[IP].src == "0.0.0.0" and discover[IP].dst == "255.255.255.255"
    assert discover.dst == "ff:ff:ff:ff:ff:ff" and discover[BOOTP].flags == 0x8000
    opts = options(discover)
    assert opts["client_id"] == client_id(bytes.fromhex(STACK_MAC.replace(":", "")))
    assert opts["hostname"] == b"pg"
    stack.receive(iface, reply(discover, "offer"), 0.1)
    stack.poll(0.1)
    (request,) = dhcp_sent(iface)
    assert msg_type(request) == "request"
    assert options(request)["requested_addr"] == OFFERED and options(request)["server_id"] == SERVER
    assert request[BOOTP].xid == discover[BOOTP].xid
    stack.receive(iface, reply(request, "ack"), 0.2)
    stack.poll(0.2)
    settle(stack, 0.2, 2.0)
    arp = [f for f in sent(iface) if ARP in f]
    assert [f[ARP].psrc for f in arp].count("0.0.0.0") == 3  # RFC 5227 probes before use
    assert client.state is Dhcp4State.BOUND
    assert iface.ip4 == [ipaddress.IPv4Interface(f"{OFFERED}/24")]
    assert stack.dns_servers == [SERVER, "198.18.0.53"]
    route = stack.ip4.routes.lookup(bytes([8, 8, 8, 8]))
    assert route is not None and route.gateway == bytes([198, 18, 0, 1])


def test_renew_unicast_at_t1_then_rebind_broadcast_at_t2_then_expiry() -> None:
    stack, iface, client = client_stack()
    bound_at = bind(stack, iface, client)
    stack.receive(iface, bytes(Ether(src=PEER_MAC, dst=STACK_MAC) / ARP(op=2, hwsrc=PEER_MAC, psrc=SERVER,
                                                                        pdst=OFFERED)), bound_at)
    # The ACK came at 0.2: T1 is 10.2, T2 20.2, expiry 120.2.
    now = settle(stack, bound_at, 10.19)
    assert client.state is Dhcp4State.BOUND
    now = settle(stack, now, 10.2)
    assert client.state is Dhcp4State.RENEWING
    (renew,) = dhcp_sent(iface)
    assert renew[IP].src == OFFERED and renew[IP].dst == SERVER and renew[BOOTP].ciaddr == OFFERED
    assert "requested_addr" not in options(renew) and "server_id" not in options(renew)  # RFC 2131 §4.3.2
    now = settle(stack, now, 20.19)
    retries = dhcp_sent(iface)
    assert 4 <= len(retries) <= 10  # every 1..2 s (renew_min/max_interval here)
    assert all(msg_type(f) == "request" and f[IP].dst == SERVER for f in retries)
    now = settle(stack, now, 20.2)
    assert client.state is Dhcp4State.REBINDING
    (rebind,) = dhcp_sent(iface)
    assert rebind[IP].dst == "255.255.255.255" and rebind[IP].src == OFFERED
    stack.receive(iface, reply(rebind, "ack", dst=OFFERED), now + 0.5)
    stack.poll(now + 0.5)
    assert client.state is Dhcp4State.BOUND and stack.stats["dhcp4.rebound"] == 1
    assert iface.ip4 == [ipaddress.IPv4Interface(f"{OFFERED}/24")]
    # Now let the lease run out with no server at all.
    settle(stack, now, now + 0.5 + 120.0)
    assert stack.stats["dhcp4.expired"] == 1 and not iface.ip4
    assert client.state is Dhcp4State.SELECTING


def test_conflict_found_by_acd_sends_decline_then_starts_over() -> None:
    stack, iface, client = client_stack()
    client.start(0.0)
    (discover,) = dhcp_sent(iface)
    stack.receive(iface, reply(discover, "offer"), 0.1)
    stack.poll(0.1)
    (request,) = dhcp_sent(iface)
    stack.receive(iface, reply(request, "ack"), 0.2)
    stack.poll(0.2)
    owner = Ether(src="02:00:00:00:00:77", dst="ff:ff:ff:ff:ff:ff") / ARP(op=2, hwsrc="02:00:00:00:00:77",
                                                                         psrc=OFFERED, pdst=OFFERED)
    stack.receive(iface, bytes(owner), 0.25)
    stack.poll(0.25)
    (decline,) = dhcp_sent(iface)
    assert msg_type(decline) == "decline" and decline[IP].src == "0.0.0.0"
    assert options(decline)["requested_addr"] == OFFERED and options(decline)["server_id"] == SERVER
    assert client.state is Dhcp4State.DECLINED and not iface.ip4
    settle(stack, 0.25, 10.2)
    assert dhcp_sent(iface) == []  # RFC 2131 §3.1.5: at least ten seconds before trying again
    settle(stack, 0.25, 10.3)
    (again,) = dhcp_sent(iface)
    assert msg_type(again) == "discover" and client.state is Dhcp4State.SELECTING


def test_nak_while_renewing_returns_to_init_and_unconfigures() -> None:
    stack, iface, client = client_stack()
    bound_at = bind(stack, iface, client)
    stack.receive(iface, bytes(Ether(src=PEER_MAC, dst=STACK_MAC) / ARP(op=2, hwsrc=PEER_MAC, psrc=SERVER,
                                                                        pdst=OFFERED)), bound_at)
    now = settle(stack, bound_at, 10.2)
    (renew,) = dhcp_sent(iface)
    stack.receive(iface, reply(renew, "nak", dst=OFFERED), now)
    stack.poll(now)
    assert client.state is Dhcp4State.SELECTING and not iface.ip4 and stack.dns_servers == []


def test_replies_for_someone_else_are_ignored() -> None:
    stack, iface, client = client_stack()
    client.start(0.0)
    (discover,) = dhcp_sent(iface)
    stack.receive(iface, reply(discover, "offer", echo_id=b"\xff" + bytes(13)), 0.1)
    stack.poll(0.1)
    assert client.state is Dhcp4State.SELECTING and stack.stats["dhcp4.drop.client_id_mismatch"] == 1
    other = Ether(reply(discover, "offer"))
    other[BOOTP].xid ^= 1
    del other[IP].chksum, other[IP].len, other[UDP].chksum, other[UDP].len
    stack.receive(iface, bytes(other), 0.1)
    short = Ether(src=PEER_MAC, dst="ff:ff:ff:ff:ff:ff") / IP(src=SERVER, dst="255.255.255.255") / UDP(
        sport=67, dport=68) / bytes(Ether(reply(discover, "offer"))[BOOTP])[:200]
    stack.receive(iface, bytes(short), 0.1)
    stack.poll(0.1)
    assert client.state is Dhcp4State.SELECTING and stack.stats["dhcp4.drop.not_ours"] == 1
    assert stack.stats["dhcp4.drop.too_short"] == 1


def test_init_reboot_requests_the_remembered_address_and_release_gives_it_back() -> None:
    stack, iface = make_stack(address=False, **FAST)
    remembered = Lease.from_dict({"address": f"{OFFERED}/24", "server": SERVER})
    client = Dhcp4Client(stack, iface, remembered=remembered)
    client.start(0.0)
    (request,) = dhcp_sent(iface)
    assert client.state is Dhcp4State.REBOOTING and msg_type(request) == "request"
    assert options(request)["requested_addr"] == OFFERED and "server_id" not in options(request)
    assert request[BOOTP].ciaddr == "0.0.0.0"
    stack.receive(iface, reply(request, "ack"), 0.1)
    stack.poll(0.1)
    now = settle(stack, 0.1, 2.0)
    assert client.state is Dhcp4State.BOUND
    assert client.lease is not None and client.lease.to_dict()["address"] == f"{OFFERED}/24"
    sent(iface)
    stack.receive(iface, bytes(Ether(src=PEER_MAC, dst=STACK_MAC) / ARP(op=2, hwsrc=PEER_MAC, psrc=SERVER,
                                                                        pdst=OFFERED)), now)
    client.release(now)
    (release,) = dhcp_sent(iface)
    assert msg_type(release) == "release" and release[IP].dst == SERVER and release[BOOTP].ciaddr == OFFERED
    assert options(release)["server_id"] == SERVER
    assert client.state is Dhcp4State.STOPPED and not iface.ip4


def test_codec_round_trips_through_scapy() -> None:
    mac = bytes.fromhex("020000000002")
    raw = build_dhcp4(op=1, xid=0x12345678, chaddr=mac, msg_type=3, options=[(50, bytes([1, 2, 3, 4])),
                                                                             (12, b"x" * 300)])
    parsed = Dhcp4Message.parse(memoryview(raw))
    assert parsed.options[12] == b"x" * 300 and parsed.address(50) == bytes([1, 2, 3, 4])
    theirs = BOOTP(bytes(raw))
    assert theirs.xid == 0x12345678 and theirs.chaddr[:6] == mac
    assert dict(o for o in theirs[DHCP].options if isinstance(o, tuple))["message-type"] == 3
