"""ARP (RFC 826) with a neighbour cache whose states follow Neighbor Unreachability Detection.

RFC 826 only says "merge the sender into the table"; RFC 1122 §2.3.2.1 asks a host to detect
stale entries and to bound the packets queued for an unresolved address.  We use the state
machine that RFC 4861 §7.3.2 defines for IPv6 (and Linux applies to ARP as well):

    INCOMPLETE --reply--> REACHABLE --reachable_time--> STALE --used--> DELAY
    DELAY --confirmed--> REACHABLE,  DELAY --delay_first_probe_time--> PROBE
    PROBE --reply--> REACHABLE,  PROBE/INCOMPLETE --retries exhausted--> removed

Packets for an address being resolved wait in the entry (at most ``unres_qlen``) and leave
as soon as the reply arrives.

Address conflict detection (RFC 5227) lives here too, since it is made of ARP packets:

* :meth:`ArpCache.probe` checks a candidate address before it is used (§2.1): wait a random
  time up to PROBE_WAIT, send PROBE_NUM probes (sender address 0.0.0.0) PROBE_MIN..PROBE_MAX
  apart, then wait ANNOUNCE_WAIT.  Any ARP packet from another MAC whose sender is the
  candidate, or another host's probe for it (§2.1.1), is a conflict: the address is not used;
* :meth:`ArpCache.announce` sends ANNOUNCE_NUM announcements ANNOUNCE_INTERVAL apart (§2.3)
  once an address is in use (also when one is configured: the gratuitous ARP that refreshes
  neighbours' caches);
* every address in use is defended (§2.4 (b)): the first conflicting packet is answered with
  one announcement; for an address a protocol configured (DHCP, link-local) a second one within
  DEFEND_INTERVAL makes us give it up, and its owner (the IPv4 layer, the DHCP client) is told
  through ``on_conflict``.  An address set by hand is never given up (§2.4 (c), as Linux): it
  is defended at most once per DEFEND_INTERVAL, and each conflict is logged and counted.

The RFC's constants are sysctls ``net.ipv4.acd.*`` so tests can use short ones.  The rate
limit after MAX_CONFLICTS (§2.1.1) is left to the caller that retries (the DHCP client waits
before trying again, as RFC 2131 §3.1.5 asks).
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from pytcp_green.stack.timers import Timer
from pytcp_green.stack.wire.arp import ARP_LEN, ARP_OP_REPLY, ARP_OP_REQUEST, ArpPacket, write_arp
from pytcp_green.stack.wire.ethernet import (
    BROADCAST_MAC,
    ETH_HEADER_LEN,
    ETHERTYPE_ARP,
    ETHERTYPE_IP4,
    write_ethernet,
)

if TYPE_CHECKING:
    from pytcp_green.stack.services import Services

log = logging.getLogger(__name__)

ZERO_MAC = bytes(6)


# Linux's neighbour GC leaves an entry alone for 5 s after its last update (neigh_forced_gc).
GC_MIN_AGE = 5.0


class NeighState(enum.Enum):
    INCOMPLETE = "INCOMPLETE"
    REACHABLE = "REACHABLE"
    STALE = "STALE"
    DELAY = "DELAY"
    PROBE = "PROBE"


class Neighbour:
    __slots__ = ("confirmed", "created", "ip", "mac", "probes", "queue", "state", "timer")

    def __init__(self, ip: bytes, state: NeighState, mac: bytes | None) -> None:
        self.ip = ip
        self.state = state
        self.mac = mac
        self.probes = 0
        self.queue: deque[bytearray] = deque()
        self.timer: Timer | None = None
        self.confirmed = 0.0  # time of the last reachability confirmation
        self.created = 0.0  # when the entry was made (table-full eviction spares the youngest)


class Probe:
    """One RFC 5227 probe of a candidate address; ``on_done(ok, now)`` reports the outcome once."""

    __slots__ = ("ip", "on_done", "sent", "timer")

    def __init__(self, ip: bytes, on_done: Callable[[bool, float], None]) -> None:
        self.ip = ip
        self.on_done = on_done
        self.sent = 0
        self.timer: Timer | None = None


class Link(Protocol):
    """The interface a cache serves (:class:`~pytcp_green.stack.interface.Interface`, which holds the cache)."""

    name: str
    mac: bytes | None
    link_header_len: int
    tx: deque[bytes | bytearray]
    ip4: list[ipaddress.IPv4Interface]

    def ip4_source_for(self, dst: bytes) -> bytes | None: ...


class LinkFailures(Protocol):
    """Who learns that a queued datagram never left (:class:`~pytcp_green.stack.ipv4.icmp.Icmp4Layer`)."""

    def local_unreachable(self, packet: memoryview, now: float) -> None: ...


class ArpCache:
    """The neighbour cache of one Ethernet interface.

    IPv6 Neighbor Discovery (:class:`pytcp_green.stack.ipv6.nd.NdCache`) reuses the state machine by
    subclassing: the class attributes below name what differs between the two.
    """

    ETHERTYPE = ETHERTYPE_IP4  # of the queued datagrams
    STATS = "arp"  # counter prefix
    SYSCTL = "net.ipv4.neigh.default"  # tunables prefix

    def __init__(self, svc: Services, iface: Link, failures: LinkFailures | None) -> None:
        self.svc = svc
        self.iface = iface
        self.failures = failures  # None: nobody to tell (IPv6, whose ND reports no link failure)
        assert iface.mac is not None
        self.mac: bytes = iface.mac
        self.entries: dict[bytes, Neighbour] = {}
        self.probes: dict[bytes, Probe] = {}  # candidate address -> its probe in progress
        self.defended: dict[bytes, float] = {}  # address -> time of our last defence (RFC 5227 §2.4)
        self.kept_logged_at: dict[bytes, float] = {}  # our static address -> when a kept claim was last logged
        # Called with an address we had to give up after a conflict (RFC 5227 §2.4 (b)).
        self.on_conflict: list[Callable[[bytes], None]] = []
        # Whether a conflict may take an address (RFC 5227 §2.4 (b)); False: defend it forever (§2.4 (c)).
        self.may_give_up: Callable[[bytes], bool] = lambda ip: True

    # -- tunables, read at each decision so run-time changes apply ---------------------------------
    def knob(self, name: str) -> float:
        return self.svc.sysctl.float(f"{self.SYSCTL}.{name}")

    def _acd(self, name: str) -> float:
        return self.svc.sysctl.float(f"net.ipv4.acd.{name}")

    def _reachable_time(self) -> float:
        # Randomised around the base, as RFC 4861 §6.3.2 asks, so hosts do not probe in lockstep.
        return self.knob("base_reachable_time") * self.svc.rng.uniform(0.5, 1.5)

    # -- sending --------------------------------------------------------------------------------------
    def output(self, nexthop: bytes, frame: bytearray, now: float) -> None:
        """Send an IPv4 ``frame`` (Ethernet header room at offset 0) to the neighbour ``nexthop``."""
        entry = self.entries.get(nexthop)
        if entry is not None and entry.mac is not None:
            if entry.state is NeighState.STALE:
                self._enter(entry, NeighState.DELAY, now, self.knob("delay_first_probe_time"))
            write_ethernet(frame, 0, entry.mac, self.mac, self.ETHERTYPE)
            self.iface.tx.append(frame)
            return
        if entry is None:
            if not self._make_room(now):
                self.svc.stats[self.STATS + ".drop.table_full"] += 1
                return
            entry = Neighbour(nexthop, NeighState.INCOMPLETE, None)
            entry.created = now
            self.entries[nexthop] = entry
            self.svc.stats[self.STATS + ".resolve"] += 1
            self._solicit(entry, now)
        if len(entry.queue) >= int(self.knob("unres_qlen")):
            entry.queue.popleft()
            self.svc.stats[self.STATS + ".drop.unresolved_queue_full"] += 1
        entry.queue.append(frame)

    def _solicit(self, entry: Neighbour, now: float) -> None:
        """One request: broadcast while INCOMPLETE, unicast to the known MAC while PROBE."""
        entry.probes += 1
        unicast = entry.state is NeighState.PROBE and entry.mac is not None
        dst_mac = entry.mac if unicast and entry.mac is not None else BROADCAST_MAC
        src_ip = self.iface.ip4_source_for(entry.ip) or bytes(4)
        self.send(ARP_OP_REQUEST, dst_mac, src_ip, ZERO_MAC, entry.ip)
        self._arm(entry, now + self.knob("retrans_time"))

    def send(self, oper: int, dst_mac: bytes, spa: bytes, tha: bytes, tpa: bytes) -> None:
        frame = bytearray(ETH_HEADER_LEN + ARP_LEN)
        write_ethernet(frame, 0, dst_mac, self.mac, ETHERTYPE_ARP)
        write_arp(frame, ETH_HEADER_LEN, oper, self.mac, spa, tha, tpa)
        self.iface.tx.append(frame)
        self.svc.stats["arp.tx.request" if oper == ARP_OP_REQUEST else "arp.tx.reply"] += 1

    # -- RFC 5227 conflict detection --------------------------------------------------------------
    def probe(self, ip: bytes, now: float, on_done: Callable[[bool, float], None]) -> Probe:
        """Probe ``ip`` before use (RFC 5227 §2.1); ``on_done(True, now)`` when nobody claims it."""
        if ip in self.probes:
            raise ValueError(f"{ipaddress.IPv4Address(ip)} is already being probed")
        probe = Probe(ip, on_done)
        self.probes[ip] = probe
        self.svc.stats["arp.acd.probe_started"] += 1
        delay = self.svc.rng.uniform(0.0, self._acd("probe_wait"))
        probe.timer = self.svc.timers.schedule(now + delay, functools.partial(self._probe_step, probe))
        return probe

    def cancel_probe(self, ip: bytes) -> None:
        probe = self.probes.pop(ip, None)
        if probe is not None and probe.timer is not None:
            probe.timer.cancel()

    def _probe_step(self, probe: Probe, now: float) -> None:
        if self.probes.get(probe.ip) is not probe:
            return
        if probe.sent < int(self._acd("probe_num")):
            probe.sent += 1
            self.send(ARP_OP_REQUEST, BROADCAST_MAC, bytes(4), ZERO_MAC, probe.ip)
            self.svc.stats["arp.acd.probe_sent"] += 1
            if probe.sent < int(self._acd("probe_num")):
                delay = self.svc.rng.uniform(self._acd("probe_min"), self._acd("probe_max"))
            else:
                delay = self._acd("announce_wait")
            probe.timer = self.svc.timers.schedule(now + delay, functools.partial(self._probe_step, probe))
            return
        del self.probes[probe.ip]
        self.svc.stats["arp.acd.probe_ok"] += 1
        probe.on_done(True, now)

    def announce(self, ip: bytes, now: float, count: int | None = None) -> None:
        """Send ARP announcements for ``ip`` (RFC 5227 §2.3): sender and target both ``ip``."""
        remaining = int(self._acd("announce_num")) if count is None else count
        if remaining <= 0 or not any(a.ip.packed == ip for a in self.iface.ip4):
            return
        self.send(ARP_OP_REQUEST, BROADCAST_MAC, ip, ZERO_MAC, ip)
        self.svc.stats["arp.acd.announce"] += 1
        if remaining > 1:
            self.svc.timers.schedule(now + self._acd("announce_interval"),
                                     lambda later: self.announce(ip, later, remaining - 1))

    def _check_conflict(self, pkt: ArpPacket, now: float) -> bool:
        """RFC 5227 §2.1.1 and §2.4; True when ``pkt`` was about one of our (candidate) addresses."""
        spa = pkt.spa
        probe = self.probes.get(spa) or (self.probes.get(pkt.tpa) if pkt.is_probe else None)
        stats = self.svc.stats
        if probe is not None:
            # Someone uses the candidate, or probes for it at the same time: it is not ours to take.
            self.cancel_probe(probe.ip)
            stats["arp.acd.conflict_probing"] += 1
            log.info("%s: %s is in use by %s; not using it", self.iface.name, ipaddress.IPv4Address(probe.ip),
                     pkt.sha.hex(":"))
            probe.on_done(False, now)
            return True
        if spa == bytes(4) or not any(a.ip.packed == spa for a in self.iface.ip4):
            return False
        last = self.defended.get(spa)
        if last is None or now - last >= self._acd("defend_interval"):
            self.defended[spa] = now
            stats["arp.acd.defend"] += 1
            self.send(ARP_OP_REQUEST, BROADCAST_MAC, spa, ZERO_MAC, spa)
            return True
        if not self.may_give_up(spa):
            # A static address: keep it and go on defending, at most once per interval (§2.4 (c)).
            stats["arp.acd.conflict_kept_static"] += 1
            # Logged once per defend interval: a flood of forged claims must not flood the log.
            if now - self.kept_logged_at.get(spa, -1e18) >= self._acd("defend_interval"):
                self.kept_logged_at[spa] = now
                log.warning("%s: %s claimed again by %s; it is configured by hand, so it stays", self.iface.name,
                            ipaddress.IPv4Address(spa), pkt.sha.hex(":"))
            return True
        stats["arp.acd.give_up"] += 1
        log.warning("%s: %s claimed again by %s within the defend interval; giving it up", self.iface.name,
                    ipaddress.IPv4Address(spa), pkt.sha.hex(":"))
        self.defended.pop(spa, None)
        for callback in list(self.on_conflict):
            callback(spa)
        return True

    # -- receiving ------------------------------------------------------------------------------------
    def receive(self, pkt: ArpPacket, now: float) -> None:
        stats = self.svc.stats
        spa, sha, tpa = pkt.spa, pkt.sha, pkt.tpa
        if sha == self.mac:
            stats["arp.drop.own_frame"] += 1
            return
        if sha[0] & 1:
            stats["arp.drop.multicast_sender"] += 1  # a sender MAC is never a group address
            return
        if (self.probes or self.iface.ip4) and self._check_conflict(pkt, now):
            return  # about one of our own addresses: never learned as a neighbour
        ours = any(a.ip.packed == tpa for a in self.iface.ip4)
        entry = self.entries.get(spa)
        if spa != bytes(4) and (entry is not None or ours):
            # RFC 826 merge: learn or refresh the sender.  A probe (spa 0.0.0.0, RFC 5227) teaches nothing.
            self.learn(spa, sha, pkt.oper == ARP_OP_REPLY, now)
        if not ours:
            stats["arp.rx.not_for_us"] += 1
            return
        if pkt.oper == ARP_OP_REQUEST:
            stats["arp.rx.request"] += 1
            self.send(ARP_OP_REPLY, sha, tpa, sha, spa)
        else:
            stats["arp.rx.reply"] += 1

    def learn(self, ip: bytes, mac: bytes, solicited: bool, now: float) -> None:
        entry = self.entries.get(ip)
        if entry is None:
            if not self._make_room(now):
                self.svc.stats[self.STATS + ".drop.table_full"] += 1
                return
            entry = Neighbour(ip, NeighState.STALE, mac)
            entry.created = now
            self.entries[ip] = entry
            self._arm(entry, now + self.knob("gc_stale_time"))
            return
        changed = entry.mac != mac
        entry.mac = mac
        if solicited:
            entry.probes = 0
            entry.confirmed = now
            self._enter(entry, NeighState.REACHABLE, now, self._reachable_time())
        elif changed or entry.state is NeighState.INCOMPLETE:
            # Unsolicited news (a request, a gratuitous ARP) is not proof of reachability: STALE.
            entry.probes = 0
            self._enter(entry, NeighState.STALE, now, self.knob("gc_stale_time"))
        self._flush(entry)

    def _flush(self, entry: Neighbour) -> None:
        mac = entry.mac
        assert mac is not None
        while entry.queue:
            frame = entry.queue.popleft()
            write_ethernet(frame, 0, mac, self.mac, self.ETHERTYPE)
            self.iface.tx.append(frame)

    def confirm(self, ip: bytes, now: float) -> None:
        """Upper-layer proof that ``ip`` is reachable (RFC 4861 §7.3.1), e.g. TCP acknowledged new data."""
        entry = self.entries.get(ip)
        if entry is not None and entry.mac is not None:
            entry.confirmed = now
            if entry.state is not NeighState.REACHABLE:
                entry.probes = 0
                self._enter(entry, NeighState.REACHABLE, now, self._reachable_time())

    # -- timers ---------------------------------------------------------------------------------------
    def _enter(self, entry: Neighbour, state: NeighState, now: float, timeout: float) -> None:
        entry.state = state
        self._arm(entry, now + timeout)

    def _arm(self, entry: Neighbour, when: float) -> None:
        if entry.timer is not None:
            entry.timer.cancel()
        entry.timer = self.svc.timers.schedule(when, functools.partial(self._expire, entry))

    def _expire(self, entry: Neighbour, now: float) -> None:
        state = entry.state
        if state is NeighState.REACHABLE:
            self._enter(entry, NeighState.STALE, now, self.knob("gc_stale_time"))
        elif state is NeighState.STALE:
            self._forget(entry, self.STATS + ".gc")
        elif state is NeighState.DELAY:
            if entry.confirmed >= now - self.knob("delay_first_probe_time"):
                self._enter(entry, NeighState.REACHABLE, now, self._reachable_time())
            else:
                entry.state = NeighState.PROBE
                entry.probes = 0
                self._solicit(entry, now)
        elif state is NeighState.PROBE:
            if entry.probes < int(self.knob("ucast_solicit")):
                self._solicit(entry, now)
            else:
                self._forget(entry, self.STATS + ".probe_failed")
        elif entry.probes < int(self.knob("mcast_solicit")):
            self._solicit(entry, now)
        else:
            dropped = len(entry.queue)
            self.svc.stats[self.STATS + ".drop.unresolved"] += dropped
            self._unreachable(entry, now)
            log.debug("%s: %s did not answer %s; %d packets dropped",
                      self.iface.name, ipaddress.ip_address(entry.ip), self.STATS, dropped)
            self._forget(entry, self.STATS + ".resolve_failed")

    def _unreachable(self, entry: Neighbour, now: float) -> None:
        """The neighbour never answered: the senders of what was queued for it learn EHOSTUNREACH, as
        Linux reports a neighbour failure (ipv4_link_failure: a host unreachable to itself)."""
        failures = self.failures
        if failures is None:
            return
        lh = self.iface.link_header_len
        for frame in entry.queue:
            failures.local_unreachable(memoryview(frame)[lh:], now)

    def _make_room(self, now: float) -> bool:
        """Room for one more entry, as Linux's forced garbage collection makes it: at ``gc_thresh3``
        entries an idle one (STALE, or INCOMPLETE with nothing queued) goes, oldest first; from
        ``gc_thresh2`` on only one idle for ``GC_MIN_AGE`` seconds.  False: the table is full of
        entries in use, and the new one is not made (a flood of forged sources cannot grow it)."""
        size = len(self.entries)
        hard = int(self.knob("gc_thresh3"))
        if size < int(self.knob("gc_thresh2")):
            return True
        for entry in self.entries.values():  # insertion order: the oldest first
            idle = entry.state is NeighState.STALE or (entry.state is NeighState.INCOMPLETE and not entry.queue)
            if idle and (size >= hard or now - max(entry.created, entry.confirmed) >= GC_MIN_AGE):
                self._forget(entry, self.STATS + ".gc.evicted")
                return True
        return size < hard

    def _forget(self, entry: Neighbour, counter: str) -> None:
        self.svc.stats[counter] += 1
        if entry.timer is not None:
            entry.timer.cancel()
        self.entries.pop(entry.ip, None)

    def table(self) -> list[tuple[str, str | None, str]]:
        """(ip, mac, state) rows, for tools and tests."""
        return [
            (str(ipaddress.ip_address(e.ip)), e.mac.hex(":") if e.mac else None, e.state.value)
            for e in self.entries.values()
        ]
