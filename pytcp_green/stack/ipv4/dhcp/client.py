"""The DHCPv4 client state machine (RFC 2131 §4.4, figure 5), sans-I/O on the stack's timers.

    INIT --DISCOVER--> SELECTING --OFFER/REQUEST--> REQUESTING --ACK--> PROBING (RFC 5227)
    PROBING --no conflict--> BOUND,  PROBING --conflict--> DECLINE, wait, INIT (§3.1.5, §4.4.1)
    BOUND --T1--> RENEWING (unicast REQUEST) --T2--> REBINDING (broadcast) --expiry--> INIT
    INIT-REBOOT --REQUEST with the remembered address--> REBOOTING --ACK--> PROBING, --NAK--> INIT
    any --release()--> RELEASE sent, address removed, STOPPED

Messages are exchanged over a core UDP socket bound to port 68 and tied to the interface
(``UdpSocket.device``), which is what lets the client send from 0.0.0.0 before it has an
address (RFC 2131 §4.1) and receive the broadcast replies it asks for with the B flag (a
client that cannot receive unicast before it is configured sets it, §4.1).  Datagrams are
handled on the next timer run, so every decision gets a ``now``.

Retransmission (§4.1): 4 s, doubled up to 64 s, randomised by ±1 s, while selecting and
requesting; in RENEWING and REBINDING half the time left until T2 or expiry, at least 60 s
(§4.4.5).  These and the wait after a DECLINE are sysctls ``net.ipv4.dhcp.*`` so tests can
shorten them.  Replies must match our xid and chaddr, and our client identifier when the
server echoes one (RFC 6842 §3).  T1 and T2 default to 0.5 and 0.875 of the lease (§4.4.5).
"""

from __future__ import annotations

import enum
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pytcp_green.stack.datagram.udp import UdpLayer, UdpSocket
from pytcp_green.stack.ipv4.dhcp import wire
from pytcp_green.stack.ipv4.dhcp.wire import Dhcp4Message, build_dhcp4
from pytcp_green.stack.sockbase import AF_INET
from pytcp_green.stack.timers import Timer
from pytcp_green.stack.wire import Malformed

if TYPE_CHECKING:
    from pytcp_green.stack.interface import Interface
    from pytcp_green.stack.ipv4.ip import Ip4Layer
    from pytcp_green.stack.services import Services

log = logging.getLogger(__name__)

BROADCAST = "255.255.255.255"
PARAMS = bytes((wire.OPT_SUBNET_MASK, wire.OPT_ROUTER, wire.OPT_DNS, wire.OPT_DOMAIN_NAME, wire.OPT_LEASE_TIME,
                wire.OPT_T1, wire.OPT_T2))


class Dhcp4State(enum.Enum):
    INIT = "INIT"
    SELECTING = "SELECTING"
    REQUESTING = "REQUESTING"
    PROBING = "PROBING"
    BOUND = "BOUND"
    RENEWING = "RENEWING"
    REBINDING = "REBINDING"
    INIT_REBOOT = "INIT-REBOOT"
    REBOOTING = "REBOOTING"
    DECLINED = "DECLINED"
    STOPPED = "STOPPED"


@dataclass
class Lease:
    """What a server granted; times are the stack's clock (``acquired``) plus seconds."""

    address: ipaddress.IPv4Interface
    server: bytes
    lease_time: float
    t1: float
    t2: float
    acquired: float
    routers: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    domain: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """What INIT-REBOOT needs, for the caller to keep (RFC 2131 §3.2: a remembered address)."""
        return {"address": str(self.address), "server": str(ipaddress.IPv4Address(self.server)),
                "routers": self.routers, "dns": self.dns, "domain": self.domain}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Lease:
        return cls(ipaddress.IPv4Interface(data["address"]), ipaddress.IPv4Address(data["server"]).packed,
                   0.0, 0.0, 0.0, 0.0, list(data.get("routers", [])), list(data.get("dns", [])), data.get("domain"))


class Dhcp4Host(Protocol):
    """What the client needs of the stack (:class:`~pytcp_green.stack.stack.Stack`): a UDP socket, the
    IPv4 layer it configures, and the resolver's name server list, which a lease fills in place."""

    @property
    def services(self) -> Services: ...

    @property
    def ip4(self) -> Ip4Layer: ...

    @property
    def udp(self) -> UdpLayer: ...

    @property
    def dns_servers(self) -> list[str]: ...


class Dhcp4Client:
    """One client on one Ethernet interface.  ``on_change(client)`` is called after every state change."""

    def __init__(self, stack: Dhcp4Host, iface: Interface, *, hostname: str | None = None,
                 remembered: Lease | None = None, on_change: Callable[[Dhcp4Client], None] | None = None) -> None:
        if iface.mac is None:
            raise ValueError("DHCPv4 needs an interface with a MAC address")
        self.svc = stack.services
        self.ip4 = stack.ip4
        self.udp = stack.udp
        self.dns_servers = stack.dns_servers  # the Stack's list, only ever updated in place
        self.iface = iface
        self.mac: bytes = iface.mac
        self.hostname = hostname
        self.client_id = wire.client_id(self.mac)
        self.state = Dhcp4State.STOPPED
        self.lease: Lease | None = None
        self.remembered = remembered
        self.offer: Dhcp4Message | None = None
        self.on_change = on_change
        self.xid = 0
        self.started = 0.0  # when the current exchange began, for the secs field
        self.attempts = 0
        self.timeout = 0.0
        self._timer: Timer | None = None
        self._lease_timers: list[Timer] = []
        self._drain_pending = False
        self.sock: UdpSocket | None = None
        self.ip4.on_address_lost.append(self._address_lost)

    # -- knobs -----------------------------------------------------------------------------------------
    def _knob(self, name: str) -> float:
        return self.svc.sysctl.float(f"net.ipv4.dhcp.{name}")

    # -- life cycle ------------------------------------------------------------------------------------
    def start(self, now: float) -> None:
        sock = self.udp.socket(AF_INET)
        sock.broadcast = True
        sock.device = self.iface
        sock.bind(("", wire.CLIENT_PORT))
        sock.rcvbuf = 64 * 1024
        sock.waker = self._readable
        self.sock = sock
        if self.remembered is not None:
            self._set_state(Dhcp4State.INIT_REBOOT)
            self._reboot(now)
        else:
            self._init(now)

    def release(self, now: float) -> None:
        """Give the lease back (RFC 2131 §4.4.6) and stop; the address is removed."""
        lease = self.lease
        if lease is not None and self.state in (Dhcp4State.BOUND, Dhcp4State.RENEWING, Dhcp4State.REBINDING):
            self._send(wire.RELEASE, now, dst=str(ipaddress.IPv4Address(lease.server)), ciaddr=lease.address.ip.packed,
                       options=[(wire.OPT_SERVER_ID, lease.server)], broadcast=False)
            self.svc.stats["dhcp4.release"] += 1
        self.stop()

    def stop(self) -> None:
        """Stop without telling the server (the lease stays valid there)."""
        self._cancel_timers()
        self._unconfigure()
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self._address_lost in self.ip4.on_address_lost:
            self.ip4.on_address_lost.remove(self._address_lost)
        self._set_state(Dhcp4State.STOPPED)

    # -- states ----------------------------------------------------------------------------------------
    def _set_state(self, state: Dhcp4State) -> None:
        if state is not self.state:
            log.info("dhcp4 %s: %s -> %s", self.iface.name, self.state.value, state.value)
            self.state = state
            self.svc.stats["dhcp4.state." + state.value] += 1
            if self.on_change is not None:
                self.on_change(self)

    def _new_exchange(self, now: float) -> None:
        self.xid = self.svc.rng.getrandbits(32)
        self.started = now
        self.attempts = 0
        self.timeout = self._knob("initial_timeout")

    def _init(self, now: float) -> None:
        self._cancel_timers()
        self._unconfigure()
        self.offer = None
        self._set_state(Dhcp4State.SELECTING)
        self._new_exchange(now)
        self._discover(now)

    def _discover(self, now: float) -> None:
        self._send(wire.DISCOVER, now, options=self._common_options())
        self._retransmit_later(now, self._discover)

    def _request_offer(self, now: float) -> None:
        offer = self.offer
        assert offer is not None
        server = offer.address(wire.OPT_SERVER_ID) or b""
        self._send(wire.REQUEST, now, options=[(wire.OPT_REQUESTED_IP, offer.yiaddr), (wire.OPT_SERVER_ID, server),
                                               *self._common_options()])
        self._retransmit_later(now, self._request_offer, give_up=int(self._knob("request_retries")))

    def _reboot(self, now: float) -> None:
        assert self.remembered is not None
        self._set_state(Dhcp4State.REBOOTING)
        self._new_exchange(now)
        self._send_reboot(now)

    def _send_reboot(self, now: float) -> None:
        assert self.remembered is not None
        self._send(wire.REQUEST, now,
                   options=[(wire.OPT_REQUESTED_IP, self.remembered.address.ip.packed), *self._common_options()])
        self._retransmit_later(now, self._send_reboot, give_up=int(self._knob("request_retries")))

    def _retransmit_later(self, now: float, action: Callable[[float], None], give_up: int = 0) -> None:
        """RFC 2131 §4.1: exponential backoff with ±1 s of randomisation; back to INIT after ``give_up`` tries."""
        self.attempts += 1
        if give_up and self.attempts > give_up:
            self.svc.stats["dhcp4.gave_up_waiting"] += 1
            self._schedule(now + self.timeout, self._init)
            return
        delay = max(0.0, self.timeout + self.svc.rng.uniform(-1.0, 1.0) * min(1.0, self.timeout / 4))
        self.timeout = min(self.timeout * 2, self._knob("max_timeout"))
        self._schedule(now + delay, action)

    def _schedule(self, when: float, action: Callable[[float], None]) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.svc.timers.schedule(when, action)

    def _cancel_timers(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for t in self._lease_timers:
            t.cancel()
        self._lease_timers.clear()

    # -- sending ---------------------------------------------------------------------------------------
    def _common_options(self) -> list[tuple[int, bytes]]:
        opts = [(wire.OPT_CLIENT_ID, self.client_id), (wire.OPT_PARAM_REQUEST, PARAMS),
                (wire.OPT_MAX_SIZE, (1500).to_bytes(2, "big"))]
        if self.hostname:
            opts.append((wire.OPT_HOSTNAME, self.hostname.encode("ascii", "replace")[:63]))
        return opts

    def _send(self, msg_type: int, now: float, *, options: list[tuple[int, bytes]], dst: str = BROADCAST,
              ciaddr: bytes = bytes(4), broadcast: bool = True) -> None:
        if self.sock is None:
            return
        msg = build_dhcp4(op=wire.BOOTREQUEST, xid=self.xid, chaddr=self.mac, msg_type=msg_type, options=options,
                          secs=int(now - self.started), flags=wire.FLAG_BROADCAST if broadcast else 0, ciaddr=ciaddr)
        try:
            self.sock.sendto(msg, (dst, wire.SERVER_PORT), now)
        except OSError as exc:
            self.svc.stats["dhcp4.tx_error"] += 1
            log.debug("dhcp4 %s: sending %s failed: %s", self.iface.name, wire.TYPE_NAMES[msg_type], exc)
            return
        self.svc.stats["dhcp4.tx." + wire.TYPE_NAMES[msg_type].lower()] += 1

    # -- receiving -------------------------------------------------------------------------------------
    def _readable(self) -> None:
        # Called from inside the receive path, which has no ``now`` to give: handle the datagrams
        # at the next timer run (a deadline already due), where every decision gets one.
        if not self._drain_pending:
            self._drain_pending = True
            self.svc.timers.schedule(float("-inf"), self._drain)

    def _drain(self, now: float) -> None:
        self._drain_pending = False
        sock = self.sock
        while sock is not None and sock.queue:
            data, _source = sock.recvfrom(65535, now)
            self._handle(data, now)
            sock = self.sock

    def _handle(self, data: bytes, now: float) -> None:
        stats = self.svc.stats
        try:
            msg = Dhcp4Message.parse(memoryview(data))
        except Malformed as exc:
            stats["dhcp4.drop." + exc.reason] += 1
            return
        if msg.op != wire.BOOTREPLY or msg.xid != self.xid or msg.chaddr != self.mac:
            stats["dhcp4.drop.not_ours"] += 1
            return
        echoed = msg.options.get(wire.OPT_CLIENT_ID)
        if echoed is not None and echoed != self.client_id:
            stats["dhcp4.drop.client_id_mismatch"] += 1  # RFC 6842 §3: MUST discard
            return
        kind, state = msg.type, self.state
        stats["dhcp4.rx." + wire.TYPE_NAMES.get(kind, str(kind)).lower()] += 1
        if kind == wire.OFFER and state is Dhcp4State.SELECTING:
            if msg.address(wire.OPT_SERVER_ID) is None or msg.yiaddr == bytes(4):
                stats["dhcp4.drop.bad_offer"] += 1
                return
            self.offer = msg  # the first acceptable offer wins (RFC 2131 §4.4.1 lets us choose)
            self._set_state(Dhcp4State.REQUESTING)
            self.attempts = 0
            self.timeout = self._knob("initial_timeout")
            self._request_offer(now)
        elif kind == wire.ACK and state in (Dhcp4State.REQUESTING, Dhcp4State.REBOOTING):
            self._accept(msg, now, probe=True)
        elif kind == wire.ACK and state in (Dhcp4State.RENEWING, Dhcp4State.REBINDING):
            stats["dhcp4.renewed" if state is Dhcp4State.RENEWING else "dhcp4.rebound"] += 1
            self._accept(msg, now, probe=False)
        elif kind == wire.NAK and state in (Dhcp4State.REQUESTING, Dhcp4State.REBOOTING, Dhcp4State.RENEWING,
                                            Dhcp4State.REBINDING):
            reason = msg.options.get(wire.OPT_MESSAGE, b"").decode(errors="replace")
            log.info("dhcp4 %s: NAK: %s", self.iface.name, reason)
            self.remembered = None
            self._init(now)
        else:
            stats["dhcp4.drop.unexpected"] += 1

    def _accept(self, ack: Dhcp4Message, now: float, *, probe: bool) -> None:
        server = ack.address(wire.OPT_SERVER_ID)
        if server is None and self.lease is not None:
            server = self.lease.server
        if server is None or ack.yiaddr == bytes(4):
            self.svc.stats["dhcp4.drop.bad_ack"] += 1
            return
        mask = ack.address(wire.OPT_SUBNET_MASK)
        try:
            prefix = ipaddress.IPv4Network(f"0.0.0.0/{ipaddress.IPv4Address(mask)}").prefixlen if mask else 24
        except ValueError:
            prefix = 24
        lease_time = float(ack.seconds(wire.OPT_LEASE_TIME) or 0xFFFFFFFF)
        t1 = float(ack.seconds(wire.OPT_T1) or lease_time * 0.5)
        t2 = float(ack.seconds(wire.OPT_T2) or lease_time * 0.875)
        if not 0 < t1 < t2 <= lease_time:  # inconsistent timers: use the RFC's defaults
            t1, t2 = lease_time * 0.5, lease_time * 0.875
        lease = Lease(ipaddress.IPv4Interface((ipaddress.IPv4Address(ack.yiaddr), prefix)), server, lease_time, t1,
                      t2, now, [str(ipaddress.IPv4Address(r)) for r in ack.addresses(wire.OPT_ROUTER)],
                      [str(ipaddress.IPv4Address(d)) for d in ack.addresses(wire.OPT_DNS)],
                      ack.options.get(wire.OPT_DOMAIN_NAME, b"").decode("ascii", "replace") or None)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        same = self.lease is not None and self.lease.address == lease.address and self._configured()
        if same or not probe:
            if not same:
                self._unconfigure()
            self.lease = lease
            self._bind(now)
            return
        self.lease = lease
        self._set_state(Dhcp4State.PROBING)
        if not self.svc.sysctl.int("net.ipv4.dhcp.acd"):
            self.ip4.add_address(self.iface, lease.address, now, dynamic=True)
            self._bind(now)
            return
        self.ip4.probe_address(self.iface, lease.address, now, self._probed, dynamic=True)

    def _probed(self, ok: bool, now: float) -> None:
        if self.state is not Dhcp4State.PROBING or self.lease is None:
            return
        if ok:
            self._bind(now)
            return
        # RFC 2131 §3.1.5: the address is in use: DECLINE it, and wait before starting over.
        lease = self.lease
        self.lease = None
        self.remembered = None
        self._send(wire.DECLINE, now, options=[(wire.OPT_REQUESTED_IP, lease.address.ip.packed),
                                               (wire.OPT_SERVER_ID, lease.server),
                                               (wire.OPT_CLIENT_ID, self.client_id)])
        self.svc.stats["dhcp4.decline"] += 1
        self._set_state(Dhcp4State.DECLINED)
        self._schedule(now + self._knob("decline_wait"), self._init)

    def _configured(self) -> bool:
        return self.lease is not None and self.lease.address in self.iface.ip4

    def _bind(self, now: float) -> None:
        lease = self.lease
        assert lease is not None
        if not self._configured():
            self.ip4.add_address(self.iface, lease.address, now, dynamic=True)
        for router in lease.routers[:1]:
            try:
                self.ip4.set_gateway(ipaddress.IPv4Address(router))
            except ValueError:
                self.svc.stats["dhcp4.router_not_on_link"] += 1
        if lease.dns:
            self.dns_servers[:] = lease.dns
        self.remembered = lease
        for t in self._lease_timers:
            t.cancel()
        timers = self.svc.timers
        # Lease times run from when the ACK arrived (RFC 2131 §4.4.1 counts from the request; the
        # difference is one round trip, and the ACK time is the one we know for sure).
        start = lease.acquired
        self._lease_timers = [timers.schedule(start + lease.t1, self._renew),
                              timers.schedule(start + lease.t2, self._rebind),
                              timers.schedule(start + lease.lease_time, self._expire)]
        self._set_state(Dhcp4State.BOUND)

    def _renew(self, now: float) -> None:
        if self.state is not Dhcp4State.BOUND:
            return
        self._set_state(Dhcp4State.RENEWING)
        self._new_exchange(now)
        self._send_renew(now)

    def _send_renew(self, now: float) -> None:
        lease = self.lease
        if lease is None or self.state is not Dhcp4State.RENEWING:
            return
        self._send(wire.REQUEST, now, dst=str(ipaddress.IPv4Address(lease.server)), ciaddr=lease.address.ip.packed,
                   options=self._common_options(), broadcast=False)
        self._later_in_lease(now, lease.acquired + lease.t2, self._send_renew)

    def _rebind(self, now: float) -> None:
        if self.state not in (Dhcp4State.BOUND, Dhcp4State.RENEWING):
            return
        self._set_state(Dhcp4State.REBINDING)
        self._new_exchange(now)
        self._send_rebind(now)

    def _send_rebind(self, now: float) -> None:
        lease = self.lease
        if lease is None or self.state is not Dhcp4State.REBINDING:
            return
        self._send(wire.REQUEST, now, ciaddr=lease.address.ip.packed, options=self._common_options(), broadcast=False)
        self._later_in_lease(now, lease.acquired + lease.lease_time, self._send_rebind)

    def _later_in_lease(self, now: float, until: float, action: Callable[[float], None]) -> None:
        """RFC 2131 §4.4.5: retransmit after half the time left, at least ``renew_min_interval``."""
        wait = min(max((until - now) / 2, self._knob("renew_min_interval")), self._knob("renew_max_interval"))
        if now + wait < until:
            self._schedule(now + wait, action)

    def _expire(self, now: float) -> None:
        log.warning("dhcp4 %s: lease expired", self.iface.name)
        self.svc.stats["dhcp4.expired"] += 1
        self.remembered = None
        self._init(now)

    def _unconfigure(self) -> None:
        lease = self.lease
        if lease is not None and self._configured():
            self.ip4.remove_address(self.iface, lease.address)
            if lease.routers:
                self.ip4.routes.remove_where(self.iface, ipaddress.IPv4Network("0.0.0.0/0"))
            for dns in lease.dns:
                if dns in self.dns_servers:
                    self.dns_servers.remove(dns)
        self.lease = None

    def _address_lost(self, iface: Interface, address: ipaddress.IPv4Interface) -> None:
        """ACD took our leased address away (RFC 5227 §2.4): start over, as after a NAK."""
        if iface is self.iface and self.lease is not None and self.lease.address == address:
            self.svc.stats["dhcp4.address_lost"] += 1
            self.lease = None
            self.remembered = None
            self._schedule(float("-inf"), self._init)  # at the next timer run, which gives a ``now``
