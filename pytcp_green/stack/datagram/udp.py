"""UDP (RFC 768, RFC 1122 §4.1): endpoints with bind/connect/sendto/recvfrom and demultiplexing.

Demultiplexing picks, among the sockets bound to the destination port, the most specific one:
a connected socket whose peer matches beats a socket bound to the destination address, which
beats a wildcard socket.  Broadcast and multicast datagrams go to every matching socket
(RFC 1122 §4.1.3.5 / RFC 1112 §6.2).  Connected sockets learn ICMP errors (RFC 1122 §4.1.3.3)
as a pending error raised by their next call, as Linux does.  A datagram that fits in no
socket's receive buffer is dropped and counted, never partly kept.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from pytcp_green.stack.datagram.base import DatagramSocket, QueuedError, SocketTable
from pytcp_green.stack.ports import Binding, PortTable
from pytcp_green.stack.sockbase import (
    AF_INET6,
    Address,
    oserror,
    pack_host,
    sockaddr,
)
from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.ip4 import PROTO_UDP
from pytcp_green.stack.wire.ip6 import V4MAPPED_PREFIX
from pytcp_green.stack.wire.udp import UDP_HEADER_LEN, UdpDatagram, write_udp

if TYPE_CHECKING:
    from pytcp_green.stack.contracts import IcmpOrigin, Network, RxMeta
    from pytcp_green.stack.interface import Interface
    from pytcp_green.stack.ipv4.ip import Ip4Layer
    from pytcp_green.stack.services import Services

MAX_PAYLOAD4 = 65535 - 20 - UDP_HEADER_LEN
MAX_PAYLOAD6 = 65535 - UDP_HEADER_LEN  # the payload length field bounds it; no jumbograms (RFC 2675)


class UdpSocket(DatagramSocket):
    """One UDP endpoint.  Non-blocking: the runtime turns EAGAIN into a wait."""

    def __init__(self, layer: UdpLayer, family: int) -> None:
        super().__init__(family, layer.svc, layer.name + ".drop.rcvbuf_full")
        self.layer = layer
        self.remote_port = 0
        self.reuseport = False
        # SO_BINDTODEVICE: broadcasts leave through this interface, and while it has no address
        # the source is 0.0.0.0 (what a DHCP client needs, RFC 2131 §4.1).
        self.device: Interface | None = None
        # IPV6_V6ONLY: an AF_INET6 socket also talks IPv4 through v4-mapped addresses unless set
        # (RFC 3493 §5.3; Linux's net.ipv6.bindv6only default 0).
        self.v6only = False
        # IP_ADD_MEMBERSHIP (RFC 1112 §7.1): the (group, interface) pairs this socket joined, and the
        # IP_MULTICAST_TTL / IP_MULTICAST_LOOP of what it sends to groups (RFC 1112 §6.1 defaults: 1, on).
        self.memberships: set[tuple[bytes, Interface]] = set()
        self.multicast_ttl = 1
        self.multicast_loop = True
        self.multicast_if = bytes(4)  # IP_MULTICAST_IF: the address of the interface groups are sent from

    # -- addressing ----------------------------------------------------------------------------------
    def bind(self, addr: Address) -> None:
        self._check_open()
        if self.binding is not None:
            raise oserror(errno.EINVAL, "already bound")
        host, port = addr[0], int(addr[1])
        local = pack_host(self.family, host)
        layer = self.layer
        # A socket may bind a group's address to receive only that group, as Linux allows.
        if (local != self.wildcard and not layer.net.is_local(local) and local not in layer.ip4.broadcast
                and not (len(local) == 4 and 224 <= local[0] < 240)):
            raise oserror(errno.EADDRNOTAVAIL, host)
        self._claim(local, port)

    def _claim(self, local: bytes, port: int) -> None:
        binding = Binding(b"" if local == self.wildcard else local, port, self.reuseaddr, self.reuseport)
        ports = self.layer.ports
        self.binding = ports.bind_ephemeral(binding) if port == 0 else ports.bind(binding)
        self.local_addr = local
        self.local_port = self.binding.port
        self.layer.sockets.register(self)

    def _autobind(self) -> None:
        if self.binding is None:
            self._claim(self.wildcard, 0)

    def connect(self, addr: Address, now: float) -> None:
        self._check_open()
        remote = pack_host(self.family, addr[0])
        port = int(addr[1])
        if not 0 < port < 65536:
            raise oserror(errno.EINVAL, "port out of range")
        self._autobind()
        self.remote_addr, self.remote_port = remote, port
        if self.local_addr == self.wildcard:
            source = self.layer.net.select_source(remote)
            if source is None:
                raise oserror(errno.ENETUNREACH)
            # Linux fixes the source on connect, and getsockname() shows it.
            self.local_addr = source
        self.wake()

    def getsockname(self) -> Address:
        return sockaddr(self.family, self.local_addr, self.local_port)

    def getpeername(self) -> Address:
        if self.remote_addr is None:
            raise oserror(errno.ENOTCONN)
        return sockaddr(self.family, self.remote_addr, self.remote_port)

    # -- data ----------------------------------------------------------------------------------------
    def sendto(self, data: bytes | bytearray | memoryview, addr: Address | None, now: float, *,
               hops: int | None = None, tos: int | None = None, source: bytes | None = None) -> int:
        """Send one datagram; ``hops``, ``tos`` and ``source`` are sendmsg(2)'s per-call IP_TTL/IPV6_HOPLIMIT,
        IP_TOS/IPV6_TCLASS and IP_PKTINFO/IPV6_PKTINFO source address (None: the socket's own)."""
        self._check_open()
        self._raise_pending()
        if addr is None:
            if self.remote_addr is None:
                raise oserror(errno.EDESTADDRREQ)
            dst, dport = self.remote_addr, self.remote_port
        else:
            dst, dport = pack_host(self.family, addr[0]), int(addr[1])
            if not 0 < dport < 65536:
                raise oserror(errno.EINVAL, "port out of range")
        size = len(data)
        v4 = len(dst) == 4 or dst[:12] == V4MAPPED_PREFIX
        if v4 and len(dst) == 16 and self.v6only:
            raise oserror(errno.ENETUNREACH)
        if size > (MAX_PAYLOAD4 if v4 else MAX_PAYLOAD6):
            raise oserror(errno.EMSGSIZE)
        layer = self.layer
        if (dst == b"\xff\xff\xff\xff" or dst in layer.ip4.broadcast) and not self.broadcast:
            raise oserror(errno.EACCES, "sending to a broadcast address needs SO_BROADCAST")
        self._autobind()
        src = self.local_addr
        if source is not None and source != self.wildcard:
            if not layer.net.is_local(source):
                # As Linux: IPv4's route lookup finds no way from a foreign source, IPv6 refuses the option.
                raise oserror(errno.ENETUNREACH if len(source) == 4 else errno.EINVAL, "not a local address")
            src = source
        if tos is None:
            tos = self.tos
        mc_iface = (self.device or self._multicast_iface(dst)) if len(dst) == 4 and 224 <= dst[0] < 240 else None
        if src == self.wildcard or src in layer.ip4.broadcast or (len(src) == 4 and 224 <= src[0] < 240):
            chosen = layer.net.select_source(dst)
            pinned = self.multicast_if in layer.ip4.local
            if mc_iface is not None and (chosen is None or pinned):
                # IP_MULTICAST_IF's address is the source, as on Linux.
                chosen = self.multicast_if if pinned else mc_iface.ip4_source_for(dst)
            if chosen is None:
                if self.device is None or self.device.ip4:
                    raise oserror(errno.ENETUNREACH)
                chosen = self.wildcard
            src = chosen
        buf = bytearray(UDP_HEADER_LEN + size)
        buf[UDP_HEADER_LEN:] = data
        # v4-mapped: the IPv4 pseudo-header (RFC 768), the stack unmaps
        pseudo_src, pseudo_dst = (src[12:], dst[12:]) if v4 and len(dst) == 16 else (src, dst)
        layer.write_header(buf, self, dport, size, pseudo_src, pseudo_dst)
        proto = layer.proto
        if len(dst) == 4 and 224 <= dst[0] < 240:
            err = layer.ip4.output(src, dst, proto, buf, now, tos=tos, ttl=self.multicast_ttl if hops is None else hops,
                                   iface=mc_iface, mc_loop=self.multicast_loop)
        elif self.device is not None:
            err = layer.ip4.output(src, dst, proto, buf, now, tos=tos, ttl=self.ttl if hops is None else hops,
                                   iface=self.device)
        elif len(dst) == 4:
            err = layer.ip4.output(src, dst, proto, buf, now, tos=tos, ttl=self.ttl if hops is None else hops)
        else:
            err = layer.net.ip_output(src, dst, proto, buf, now, tos=tos, hops=hops)
        if err:
            raise oserror(err)
        layer.svc.stats[layer.name + ".tx"] += 1
        return size

    # -- multicast (RFC 1112 §7.1) ----------------------------------------------------------------------
    def _membership_iface(self, group: bytes, iface_addr: bytes) -> Interface:
        """The interface IP_ADD_MEMBERSHIP means: the one holding ``iface_addr``, or (0.0.0.0) the
        one the group routes through, as Linux's ip_mc_find_dev."""
        ip4 = self.layer.ip4
        if iface_addr != bytes(4):
            iface = ip4.local.get(iface_addr)
            if iface is None:
                raise oserror(errno.ENODEV)
            return iface
        found = ip4.route(group)
        if found is None:
            # No route and no Ethernet interface with an address: a loopback-only host still has
            # multicast among its own sockets.
            return self.layer.ip4.loopback
        return found[0]

    def set_multicast_if(self, address: bytes) -> None:
        """IP_MULTICAST_IF: send to groups from the interface holding ``address`` (0.0.0.0: by route)."""
        self._check_open()
        if address != bytes(4) and address not in self.layer.ip4.local:
            raise oserror(errno.EADDRNOTAVAIL)
        self.multicast_if = address

    def _multicast_iface(self, group: bytes) -> Interface | None:
        """Where a datagram to ``group`` leaves: IP_MULTICAST_IF's interface; else, when no route
        says (None: the route decides), an interface this socket joined on, else the loopback when
        the host's members are there."""
        layer = self.layer
        if self.multicast_if != bytes(4):
            chosen = layer.ip4.local.get(self.multicast_if)
            if chosen is not None:
                return chosen
        if layer.ip4.route(group) is not None:
            return None
        for _, iface in sorted(self.memberships, key=lambda m: m[0] != group):
            return iface
        if layer.ip4.igmp.joined(layer.ip4.loopback, group):
            return layer.ip4.loopback
        return None

    def add_membership(self, group: bytes, iface_addr: bytes, now: float) -> None:
        """IP_ADD_MEMBERSHIP: join ``group`` on the interface ``iface_addr`` names (0.0.0.0: by route)."""
        self._check_open()
        if len(group) != 4 or not 224 <= group[0] < 240:
            raise oserror(errno.EINVAL, "not a multicast group")
        iface = self._membership_iface(group, iface_addr)
        key = (group, iface)
        if key in self.memberships:
            raise oserror(errno.EADDRINUSE)
        if len(self.memberships) >= self.layer.svc.sysctl.int("net.ipv4.igmp_max_memberships"):
            raise oserror(errno.ENOBUFS)
        self.layer.ip4.igmp.join(iface, group, now)
        self.memberships.add(key)

    def drop_membership(self, group: bytes, iface_addr: bytes, now: float) -> None:
        """IP_DROP_MEMBERSHIP; EADDRNOTAVAIL when this socket is not a member (as Linux)."""
        self._check_open()
        try:
            iface = self._membership_iface(group, iface_addr)
        except OSError:
            raise oserror(errno.EADDRNOTAVAIL) from None
        key = (group, iface)
        if key not in self.memberships:
            raise oserror(errno.EADDRNOTAVAIL)
        self.memberships.discard(key)
        self.layer.ip4.igmp.leave(iface, group, now)

    def close(self, now: float | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        if self.binding is not None:
            self.layer.ports.release(self.binding)
            self.layer.sockets.unregister(self)
        igmp = self.layer.ip4.igmp
        for group, iface in sorted(self.memberships, key=lambda m: m[0]):
            igmp.leave(iface, group, 0.0 if now is None else now)
        self.memberships.clear()
        self.queue.clear()
        self.wake()


class UdpLayer:
    """UDP over ``net`` (both families, as TCP), with ``ip4`` itself for broadcast, multicast and
    SO_BINDTODEVICE, which only IPv4 has.

    UDP-Lite (:mod:`.udplite`) is this layer with another protocol number, counter prefix, codec
    and per-socket acceptance rule: the hooks :meth:`socket`, :meth:`parse`, :meth:`write_header`
    and :meth:`accepts`.
    """

    proto = PROTO_UDP
    name = "udp"  # the prefix of its counters

    def __init__(self, svc: Services, net: Network, ip4: Ip4Layer, *, port_secret: bytes | None = None) -> None:
        """``port_secret`` keys the ephemeral port choice (RFC 6056); by default drawn from the rng."""
        self.svc = svc
        self.net = net
        self.ip4 = ip4
        low, high = svc.sysctl.ints("net.ipv4.ip_local_port_range")
        self.port_secret = port_secret if port_secret is not None else svc.rng.randbytes(16)
        self.ports = PortTable(low, high, secret=self.port_secret)
        self.sockets: SocketTable[UdpSocket] = SocketTable()

    def socket(self, family: int) -> UdpSocket:
        return UdpSocket(self, family)

    def parse(self, segment: memoryview, src: bytes, dst: bytes) -> UdpDatagram:
        return UdpDatagram.parse(segment, src, dst)

    def write_header(self, buf: bytearray, sock: UdpSocket, dport: int, size: int, src: bytes, dst: bytes) -> None:
        """The header and checksum in front of the ``size`` bytes of payload already in ``buf``."""
        write_udp(buf, 0, sock.local_port, dport, size, src, dst)

    def accepts(self, sock: UdpSocket, dgram: UdpDatagram) -> bool:
        """Whether ``sock`` takes ``dgram`` once demultiplexing chose it (UDP: always)."""
        return True

    def receive(self, src: bytes, dst: bytes, segment: memoryview, now: float, *, bcast: bool,
                meta: RxMeta | None = None) -> bool:
        """Deliver one datagram; False when no socket listens on its port (the caller answers ICMP)."""
        stats = self.svc.stats
        name = self.name
        try:
            dgram = self.parse(segment, src, dst)
        except Malformed as exc:
            stats[name + ".drop." + exc.reason] += 1
            return True  # malformed: dropped, and no ICMP error about it
        stats[name + ".rx"] += 1
        candidates = self.sockets.on_port(dgram.dport)
        if not candidates:
            stats[name + ".drop.no_socket"] += 1
            return False
        sport = dgram.sport
        best: UdpSocket | None = None
        best_score = -1
        matched: list[UdpSocket] = []
        v4 = len(dst) == 4
        # AF_INET6 sockets see IPv4 peers as v4-mapped addresses unless IPV6_V6ONLY (RFC 3493 §3.7).
        msrc, mdst = (V4MAPPED_PREFIX + src, V4MAPPED_PREFIX + dst) if v4 else (src, dst)
        for sock in candidates:
            if sock.family == AF_INET6:
                if v4 and sock.v6only:
                    continue
                sdst, ssrc = mdst, msrc
            elif not v4:
                continue
            else:
                sdst, ssrc = dst, src
            if sock.local_addr != sock.wildcard and sock.local_addr != sdst and not bcast:
                continue
            if bcast and sock.local_addr != sdst and 224 <= sock.local_addr[-4] < 240 and len(sock.local_addr) == 4:
                continue  # bound to another group
            score = 0
            if sock.remote_addr is not None:
                if sock.remote_addr != ssrc or sock.remote_port != sport:
                    continue
                score += 2
            if sock.local_addr != sock.wildcard:
                score += 1
            matched.append(sock)
            if score > best_score:
                best, best_score = sock, score
        if best is None:
            stats[name + ".drop.no_socket"] += 1
            return False
        data = bytes(dgram.payload)
        source = sockaddr(best.family, msrc if best.family == AF_INET6 else src, sport)
        for sock in matched if bcast else (best,):
            if self.accepts(sock, dgram):
                sock.deliver(data, source, meta)
        return True

    def icmp_error(self, src: bytes, dst: bytes, quoted: memoryview, err: int, now: float,
                   origin: IcmpOrigin | None = None) -> None:
        """An ICMP error about a datagram we sent from ``src`` to ``dst``: pending on the connected socket
        it concerns; with IP_RECVERR on, queued (``origin`` saying who sent it) on the socket that sent it,
        connected or not, as Linux's __udp4_lib_err does."""
        if len(quoted) < 4:
            return
        sport = int.from_bytes(quoted[0:2], "big")
        dport = int.from_bytes(quoted[2:4], "big")
        for sock in self.sockets.on_port(sport):
            connected = sock.remote_addr in (dst, V4MAPPED_PREFIX + dst) and sock.remote_port == dport
            if origin is not None and sock.recverr and (connected or sock.remote_addr is None) and \
                    sock.local_addr in (src, V4MAPPED_PREFIX + src, sock.wildcard):
                sock.queue_error(QueuedError(err, origin, bytes(quoted[UDP_HEADER_LEN:]), dst, dport))
            elif connected:
                sock.set_error(err)
            else:
                continue
            self.svc.stats[self.name + ".icmp_error_delivered"] += 1
            return
