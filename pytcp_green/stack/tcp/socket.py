"""The TCP socket the runtime and the socket patch drive: the user side of RFC 9293 §3.10 (OPEN, SEND,
RECEIVE, CLOSE, ABORT, STATUS) in BSD-socket form, with Linux's errno and poll(2) conventions.

Every call is non-blocking: when it cannot proceed it raises ``BlockingIOError(EAGAIN)`` (or
``EINPROGRESS`` from connect) and the runtime waits for :meth:`CoreSocket.wake`.  Readiness follows
Linux's ``tcp_poll``: readable with data, EOF or an error; writable once at least a third of the send
buffer is free (so a writer wakes to a worthwhile amount of room); POLLHUP when both directions are done.

A listener answers with SYN cookies (:mod:`.syncookies`, ``net.ipv4.tcp_syncookies``) when its SYN
queue (``net.ipv4.tcp_max_syn_backlog`` half-open children) is full, or always; with cookies off the
oldest half-open child makes room for a new SYN.  Its accept queue holds at most the backlog given
to listen() (capped by ``net.core.somaxconn``): while it is full, a new SYN (``tcp.drop.listen_overflow``)
and the final ACK of a handshake (``tcp.drop.listen_overflow_ack``; the child stays half-open until
a later ACK finds room) are dropped, as Linux drops them (its ListenOverflows counter is their sum).

Addresses inside the core are the bytes IP uses: 4 bytes for IPv4 (also for an AF_INET6 socket talking
to a v4-mapped address), 16 for IPv6, and ``b""`` for a wildcard local address.
"""

from __future__ import annotations

import errno
import os
import socket as _socket_constants  # constants only (SHUT_RD...); no socket is ever created here
from collections import deque
from typing import TYPE_CHECKING

from pytcp_green.stack.ports import Binding
from pytcp_green.stack.sockbase import (
    AF_INET,
    AF_INET6,
    POLLERR,
    POLLHUP,
    POLLIN,
    POLLOUT,
    POLLRDHUP,
    Address,
    CoreSocket,
    oserror,
    pack_host,
    sockaddr,
    would_block,
)
from pytcp_green.stack.tcp import fastopen, urgent
from pytcp_green.stack.tcp.cc import FALLBACK, MODULES, switch
from pytcp_green.stack.tcp.state import (
    CLOSE_WAIT,
    CLOSED,
    ESTABLISHED,
    STATE_NAMES,
    SYN_RECEIVED,
    SYN_SENT,
)
from pytcp_green.stack.tcp.tcb import Tcb

if TYPE_CHECKING:
    from pytcp_green.stack.tcp.layer import TcpLayer
    from pytcp_green.stack.wire.tcp import TcpSegment

SHUT_RD = int(_socket_constants.SHUT_RD)
SHUT_WR = int(_socket_constants.SHUT_WR)
SHUT_RDWR = int(_socket_constants.SHUT_RDWR)

_V4_MAPPED = b"\0" * 10 + b"\xff\xff"


def wire_addr(packed: bytes) -> bytes:
    """API form -> core form: v4-mapped IPv6 addresses travel as IPv4."""
    if len(packed) == 16 and packed[:12] == _V4_MAPPED:
        return packed[12:]
    return packed


def api_addr(family: int, addr: bytes, port: int) -> Address:
    """Core form -> the tuple Python's socket module returns for ``family``."""
    if family == AF_INET6 and len(addr) == 4:
        addr = _V4_MAPPED + addr
    elif not addr:
        addr = bytes(4 if family == AF_INET else 16)
    return sockaddr(family, addr, port)


class TcpSocket(CoreSocket):
    """One TCP endpoint: unconnected, listening, or the user's handle on a :class:`Tcb`."""

    __slots__ = ("_fastopen_connect", "_keepalive", "_rcvbuf", "_sndbuf", "_wmem_default", "_wmem_max",
                 "accept_queue", "backlog", "binding", "closed", "congestion", "connecting", "cookie_sent_at",
                 "fastopen_pending", "fastopen_qlen", "keepcnt", "keepidle", "keepintvl", "layer",
                 "linger_abort", "listening", "local_addr", "local_port", "nodelay", "oobinline",
                 "rcvbuf_locked", "rd_shut", "reuseaddr", "reuseport", "syn_queue", "tcb", "tos",
                 "user_timeout", "v6only", "wr_shut")

    def __init__(self, layer: TcpLayer, family: int) -> None:
        if family not in (AF_INET, AF_INET6):
            raise oserror(errno.EAFNOSUPPORT)
        super().__init__(family)
        self.layer = layer
        sysctl = layer.stack.sysctl
        self.tcb: Tcb | None = None
        self.local_addr = b""
        self.local_port = 0
        self.binding: Binding | None = None
        self.listening = False
        self.backlog = 0
        self.accept_queue: deque[TcpSocket] = deque()
        self.syn_queue: dict[Tcb, None] = {}  # half-open children, oldest first
        self.cookie_sent_at: float | None = None  # when this listener last answered with a SYN cookie
        self.closed = False
        self.rd_shut = False
        self.wr_shut = False
        # options (names as the socket patch maps them)
        self.nodelay = False
        self._keepalive = False
        self.keepidle = sysctl.float("net.ipv4.tcp_keepalive_time")
        self.keepintvl = sysctl.float("net.ipv4.tcp_keepalive_intvl")
        self.keepcnt = sysctl.int("net.ipv4.tcp_keepalive_probes")
        self.user_timeout = 0.0
        rmem = sysctl.ints("net.ipv4.tcp_rmem")
        wmem = sysctl.ints("net.ipv4.tcp_wmem")
        self._rcvbuf = rmem[1]
        self.rcvbuf_locked = False  # SO_RCVBUF was set: no auto-tuning (:mod:`.rcvbuf`)
        self._sndbuf = 0  # 0: auto-tuned from the congestion window, as Linux does until SO_SNDBUF is set
        self._wmem_default = wmem[1]
        self._wmem_max = wmem[2]
        self.reuseaddr = False
        self.reuseport = False
        self.v6only = False  # IPV6_V6ONLY: an AF_INET6 listener on :: also takes IPv4 (v4-mapped) unless set
        self.tos = 0  # IP_TOS: DSCP and (for datagrams only) ECN bits of every segment (RFC 2474 §3)
        # TCP_CONGESTION: the default module, or reno if the sysctl names none we have (as Linux)
        default = str(sysctl["net.ipv4.tcp_congestion_control"])
        self.congestion = default if default in MODULES else FALLBACK
        self.fastopen_qlen = 0  # TCP_FASTOPEN (RFC 7413, :mod:`.fastopen`) and its children in SYN-RECEIVED
        self.fastopen_pending: set[Tcb] = set()
        self._fastopen_connect = False  # TCP_FASTOPEN_CONNECT
        self.oobinline = False  # SO_OOBINLINE: the urgent byte stays in the stream (:mod:`.urgent`)
        self.linger_abort = False  # SO_LINGER on with a zero timeout: close() resets (Linux's tcp_close)
        self.connecting = False  # connect() said EINPROGRESS and no later connect() has reported the outcome

    # -- options -------------------------------------------------------------------------------------
    @property
    def rcvbuf(self) -> int:
        """The receive buffer, in payload bytes: the most the window offers."""
        return self._rcvbuf

    @rcvbuf.setter
    def rcvbuf(self, value: int) -> None:
        """SO_RCVBUF: the application's size, which auto-tuning then leaves alone (as Linux)."""
        self._rcvbuf = value
        self.rcvbuf_locked = True

    def autotune_rcvbuf(self, value: int) -> None:
        self._rcvbuf = value

    @property
    def keepalive(self) -> bool:
        return self._keepalive

    @keepalive.setter
    def keepalive(self, value: bool) -> None:
        self._keepalive = bool(value)
        tcb = self.tcb
        if tcb is not None and value:
            tcb.arm_keepalive(tcb.last_rx)

    def set_congestion(self, name: str) -> None:
        """TCP_CONGESTION (tcp(7)): ENOENT for a module we do not have, EPERM for one outside
        ``net.ipv4.tcp_allowed_congestion_control``; a live connection switches at once, keeping its
        window (Linux's tcp_set_congestion_control)."""
        if name not in MODULES:
            raise oserror(errno.ENOENT)
        if name not in str(self.layer.stack.sysctl["net.ipv4.tcp_allowed_congestion_control"]).split():
            raise oserror(errno.EPERM)
        self.congestion = name
        tcb = self.tcb
        if tcb is not None and tcb.cc.name != name:
            tcb.cc = switch(tcb.cc, name, tcb.eff_mss)

    @property
    def fastopen_connect(self) -> bool:
        return self._fastopen_connect

    @fastopen_connect.setter
    def fastopen_connect(self, value: bool) -> None:
        """TCP_FASTOPEN_CONNECT (tcp(7)): EOPNOTSUPP unless the client side is enabled, as Linux."""
        if not fastopen.enabled(self.layer.stack.sysctl, fastopen.CLIENT):
            raise oserror(errno.EOPNOTSUPP)
        self._fastopen_connect = bool(value)

    @property
    def sndbuf(self) -> int:
        tcb = self.tcb
        return self.send_limit(tcb) if tcb is not None else (self._sndbuf or self._wmem_default)

    @sndbuf.setter
    def sndbuf(self, value: int) -> None:
        self._sndbuf = max(int(value), 2048)

    def send_limit(self, tcb: Tcb) -> int:
        """Bytes of unacknowledged plus unsent data allowed: SO_SNDBUF if set, else room for two
        congestion windows (what keeps the pipe full across one round trip), within tcp_wmem."""
        if self._sndbuf:
            return self._sndbuf
        want = 2 * min(tcb.cc.cwnd, max(tcb.snd_wnd, tcb.eff_mss))
        return max(self._wmem_default, min(want, self._wmem_max))

    @property
    def state(self) -> str:
        if self.listening:
            return "LISTEN"
        tcb = self.tcb
        return STATE_NAMES[tcb.state] if tcb is not None else "CLOSED"

    # -- addressing ----------------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self.closed:
            raise oserror(errno.EBADF)

    def _parse(self, addr: Address) -> tuple[bytes, int]:
        if not isinstance(addr, tuple) or len(addr) < 2:
            raise oserror(errno.EINVAL, "bad address")
        port = int(addr[1])
        if not 0 <= port < 65536:
            raise OverflowError("port must be 0-65535.")
        return wire_addr(pack_host(self.family, str(addr[0]))), port

    def bind(self, addr: Address) -> None:
        self._check_open()
        if self.binding is not None or self.tcb is not None:
            raise oserror(errno.EINVAL, "already bound")
        local, port = self._parse(addr)
        if local.count(0) == len(local):
            local = b""
        elif not self.layer.stack.is_local(local):
            raise oserror(errno.EADDRNOTAVAIL)
        binding = Binding(local, port, self.reuseaddr, self.reuseport)
        ports = self.layer.ports
        self.binding = ports.bind_ephemeral(binding) if port == 0 else ports.bind(binding)
        self.local_addr = local
        self.local_port = self.binding.port

    def getsockname(self) -> Address:
        self._check_open()
        return api_addr(self.family, self.local_addr, self.local_port)

    def getpeername(self) -> Address:
        self._check_open()
        tcb = self.tcb
        if tcb is None or self.listening or (tcb.state in (CLOSED, SYN_SENT) and not tcb.fin_received):
            raise oserror(errno.ENOTCONN)
        return api_addr(self.family, tcb.remote_addr, tcb.remote_port)

    # -- opening -------------------------------------------------------------------------------------
    def listen(self, backlog: int) -> None:
        self._check_open()
        if self.tcb is not None:
            raise oserror(errno.EINVAL)
        sysctl = self.layer.stack.sysctl
        self.backlog = max(1, min(int(backlog), sysctl.int("net.core.somaxconn")))
        if self.listening:
            return
        if self.binding is None:
            self.binding = self.layer.ports.bind_ephemeral(Binding(b"", 0, self.reuseaddr, self.reuseport))
            self.local_port = self.binding.port
        self.binding.listening = True
        self.listening = True
        self.layer.add_listener(self)

    def connect(self, addr: Address, now: float) -> None:
        self._check_open()
        if self.listening:
            raise oserror(errno.EISCONN)
        tcb = self.tcb
        if tcb is not None:
            if tcb.state in (SYN_SENT, SYN_RECEIVED):
                raise oserror(errno.EALREADY)
            if self.connecting and tcb.state != CLOSED:
                self.connecting = False  # Linux: the first connect() after the handshake completed says 0
                return
            if tcb.state != CLOSED or tcb.fin_received:
                raise oserror(errno.EISCONN)
            if tcb.snd_una == tcb.iss:
                # The handshake failed (refused, timed out, an ICMP error): as Linux's __inet_stream_connect,
                # this call reports it (the error not yet taken, else ECONNABORTED) and disconnects the
                # socket, so that the next connect() starts afresh (from the same port).
                code = self.take_error() or errno.ECONNABORTED
                self.tcb = None
                self.connecting = False
                raise oserror(code)
            code = self.take_error()
            if code:
                raise oserror(code)
            raise oserror(errno.EISCONN)
        tcb = self._open(addr, now)
        if self._fastopen_connect and fastopen.defer(tcb):
            return  # TCP_FASTOPEN_CONNECT with a cookie: the first send makes the SYN
        tcb.connect(now)
        self.connecting = True
        raise BlockingIOError(errno.EINPROGRESS, os.strerror(errno.EINPROGRESS))

    def sendto_fastopen(self, data: bytes | bytearray | memoryview, addr: Address, now: float) -> int:
        """sendto(MSG_FASTOPEN) (tcp(7)): :func:`.fastopen.open_with`, EINPROGRESS when the data waits
        for the handshake (no cookie yet), as Linux; on a connected socket an ordinary send."""
        self._check_open()
        if self.tcb is not None or self.listening:
            return self.send(data, now)
        if not fastopen.enabled(self.layer.stack.sysctl, fastopen.CLIENT):
            raise oserror(errno.EOPNOTSUPP)
        sent = fastopen.open_with(self._open(addr, now), data, now)
        if not sent:
            raise BlockingIOError(errno.EINPROGRESS, os.strerror(errno.EINPROGRESS))
        return sent

    def _open(self, addr: Address, now: float) -> Tcb:
        """The connection to ``addr`` (its route, source address and port), registered and CLOSED."""
        remote, port = self._parse(addr)
        if port == 0:
            raise oserror(errno.ECONNREFUSED)
        if len(remote) == 4 and self.family == AF_INET6 and self.local_addr and len(self.local_addr) == 16:
            raise oserror(errno.ENETUNREACH)
        stack = self.layer.stack
        if stack.path_mtu(remote) is None:
            raise oserror(errno.ENETUNREACH)
        source = self.local_addr or stack.select_source(remote)
        if source is None:
            raise oserror(errno.ENETUNREACH)
        layer = self.layer
        if self.binding is None:
            self.binding = layer.ephemeral_for(Binding(b"", 0, self.reuseaddr, self.reuseport), source, remote, port)
        elif (source, self.binding.port, remote, port) in layer.conns:
            raise oserror(errno.EADDRNOTAVAIL)
        self.local_addr = source
        self.local_port = self.binding.port
        tcb = Tcb(layer, self, source, self.local_port, remote, port, now)
        self.tcb = tcb
        layer.conns[tcb.key] = tcb
        return tcb

    def accept(self, now: float) -> tuple[TcpSocket, Address]:
        self._check_open()
        if not self.listening:
            raise oserror(errno.EINVAL)
        if not self.accept_queue:
            raise would_block()
        child = self.accept_queue.popleft()
        tcb = child.tcb
        assert tcb is not None
        return child, api_addr(child.family, tcb.remote_addr, tcb.remote_port)

    # -- callbacks from the protocol -----------------------------------------------------------------
    def spawn(self) -> TcpSocket:
        """A child socket for a connection arriving at this listener, with the listener's options."""
        child = TcpSocket(self.layer, self.family)
        child.nodelay = self.nodelay
        child.tos = self.tos  # Linux: an accepted socket inherits the listener's IP_TOS
        child.oobinline = self.oobinline  # and its socket flags (SO_OOBINLINE)
        child.congestion = self.congestion  # and its congestion control (tcp_ca_openreq_child)
        child._keepalive = self._keepalive
        child.keepidle, child.keepintvl, child.keepcnt = self.keepidle, self.keepintvl, self.keepcnt
        child.user_timeout = self.user_timeout
        child.linger_abort = self.linger_abort  # socket flags are copied to the child (sk_clone_lock)
        child._rcvbuf, child.rcvbuf_locked = self._rcvbuf, self.rcvbuf_locked
        child._sndbuf = self._sndbuf
        child.local_port = self.local_port
        return child

    def child_tcb(self, seg: TcpSegment, src: bytes, dst: bytes, now: float, iss: int | None = None) -> Tcb:
        """A connection for a SYN (or a SYN cookie's ACK) at this listener, in the layer's table."""
        child = self.spawn()
        child.local_addr = dst
        tcb = Tcb(self.layer, child, dst, seg.dport, src, seg.sport, now, listener=self, iss=iss)
        child.tcb = tcb
        self.layer.conns[tcb.key] = tcb
        return tcb

    @property
    def half_open(self) -> int:
        return len(self.syn_queue)

    def accept_queue_full(self) -> bool:
        """The accept queue holds ``backlog`` connections (listen()'s, at most ``net.core.somaxconn``;
        Linux's sk_acceptq_is_full tests with ">" and so takes one more)."""
        return len(self.accept_queue) >= self.backlog

    def listen_overflow(self, counter: str) -> None:
        """A SYN or a handshake's final ACK dropped because the accept queue is full (Linux's
        ListenOverflows and ListenDrops): counted under ``counter``, logged once."""
        self.layer.limit_hit(counter, "accept queue of port %d is full (backlog %d); dropping",
                             self.local_port, self.backlog)

    def child_established(self, child: TcpSocket) -> None:
        if child.tcb is not None:
            self.syn_queue.pop(child.tcb, None)
        if self.closed:
            return
        self.accept_queue.append(child)
        self.wake()

    def child_gone(self, tcb: Tcb) -> None:
        self.syn_queue.pop(tcb, None)

    def set_error(self, code: int) -> None:
        self._error = code
        self.wake()

    def tcb_closed(self) -> None:
        """The connection reached CLOSED; the port goes back once the user has closed the socket too."""
        if self.closed:
            self._release()
        self.wake()

    def _release(self) -> None:
        if self.binding is not None:
            self.layer.ports.release(self.binding)
            self.binding = None

    # -- data ----------------------------------------------------------------------------------------
    def writable(self) -> bool:
        """Linux's sk_stream_is_writeable: free space at least half of what is queued."""
        tcb = self.tcb
        if tcb is None:
            return False
        queued = len(tcb.sbuf.data)
        free = self.send_limit(tcb) - queued
        return free > 0 and 2 * free >= queued

    def send(self, data: bytes | bytearray | memoryview, now: float, *, oob: bool = False) -> int:
        self._check_open()
        tcb = self.tcb
        if tcb is None or self.listening:
            raise oserror(errno.ENOTCONN)
        code = self.take_error()
        if code:
            raise oserror(code)
        if self.wr_shut:
            raise oserror(errno.EPIPE)
        if tcb.tfo_deferred and (sent := fastopen.open_with(tcb, data, now)):
            return sent  # TCP_FASTOPEN_CONNECT's first send: the SYN carries it
        state = tcb.state
        if state in (SYN_SENT, SYN_RECEIVED):
            raise would_block()
        if state not in (ESTABLISHED, CLOSE_WAIT):
            raise oserror(errno.EPIPE)
        if not data:
            return 0
        sent = tcb.user_send(data, now, oob)
        if sent == 0:
            raise would_block()
        return sent

    def _readable_or_raise(self) -> Tcb:
        self._check_open()
        tcb = self.tcb
        if tcb is None or self.listening:
            raise oserror(errno.ENOTCONN)
        return tcb

    def _empty_read(self, tcb: Tcb) -> None:
        """Nothing buffered: EOF once the peer's FIN is in (Linux's tcp_recvmsg checks SOCK_DONE before
        sk_err: a reset after the FIN, as a write into a closed peer draws, still reads as EOF), else
        the pending error, else EOF or EAGAIN."""
        if tcb.fin_received:
            return
        code = self.take_error()
        if code:
            raise oserror(code)
        if self.rd_shut or tcb.state == CLOSED:
            return
        raise would_block()

    def recv(self, bufsize: int, now: float, *, peek: bool = False) -> bytes:
        tcb = self._readable_or_raise()
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        if tcb.rbuf.size and bufsize:
            if tcb.urg.state:  # reads go around the urgent byte
                out = urgent.read(tcb, bufsize, now, peek=peek, inline=self.oobinline)
            elif peek:
                return tcb.rbuf.peek(bufsize)
            else:
                out = tcb.rbuf.read(bufsize)
                tcb.after_read(now)
            if out:
                return out
        if not bufsize:
            return b""
        self._empty_read(tcb)
        return b""

    def recv_oob(self, bufsize: int, now: float, *, peek: bool = False) -> bytes:
        """recv(MSG_OOB) (:func:`.urgent.recv_oob`)."""
        return urgent.recv_oob(self._readable_or_raise(), bufsize, peek=peek, inline=self.oobinline)

    def recv_into(self, buf: bytearray | memoryview, nbytes: int, now: float) -> int:
        tcb = self._readable_or_raise()
        with memoryview(buf) as view:
            if nbytes <= 0 or nbytes > len(view):
                nbytes = len(view)
            if tcb.urg.state and nbytes:
                data = self.recv(nbytes, now)
                view[:len(data)] = data
                return len(data)
            if tcb.rbuf.size and nbytes:
                count = tcb.rbuf.read_into(view, nbytes)
                tcb.after_read(now)
                return count
        if not nbytes:
            return 0
        self._empty_read(tcb)
        return 0

    # -- closing -------------------------------------------------------------------------------------
    def shutdown(self, how: int, now: float) -> None:
        self._check_open()
        if how not in (SHUT_RD, SHUT_WR, SHUT_RDWR):
            raise oserror(errno.EINVAL)
        tcb = self.tcb
        if tcb is None or self.listening or tcb.state == CLOSED:
            raise oserror(errno.ENOTCONN)
        if tcb.state == SYN_SENT:
            tcb.destroy()  # Linux disconnects a socket still connecting
            return
        if how in (SHUT_RD, SHUT_RDWR):
            self.rd_shut = True
        if how in (SHUT_WR, SHUT_RDWR):
            self.wr_shut = True
            tcb.shutdown_write(now)
        self.wake()

    def close(self, now: float) -> None:
        if self.closed:
            return
        self.closed = True
        if self.listening:
            self.listening = False
            self.layer.remove_listener(self)
            while self.accept_queue:
                child = self.accept_queue.popleft()
                child.closed = True
                if child.tcb is not None:
                    child.tcb.user_closed = True
                    child.tcb.abort(now)
            self.layer.abort_children(self, now)
        tcb = self.tcb
        if tcb is not None and tcb.state != CLOSED:
            if self.linger_abort:
                self.layer.stack.stats["tcp.abort_on_data"] += 1  # Linux's name (TCPAbortOnData) for this reset
                tcb.abort(now)
            else:
                tcb.close(now)
        if tcb is None or tcb.state == CLOSED:
            self._release()
        self.wake()

    # -- readiness -----------------------------------------------------------------------------------
    def poll_mask(self) -> int:
        if self.closed:
            return 0
        mask = POLLERR if self._error else 0
        if self.listening:
            return mask | (POLLIN if self.accept_queue else 0)
        tcb = self.tcb
        if tcb is None:
            return mask | POLLOUT | POLLHUP
        if tcb.tfo_deferred:
            return mask | POLLOUT  # TCP_FASTOPEN_CONNECT: waiting for the first send
        state = tcb.state
        if state in (SYN_SENT, SYN_RECEIVED):
            return mask | (POLLIN if tcb.rbuf.size else 0)  # a Fast Open child's SYN data is readable
        if tcb.urg.state:
            mask |= urgent.poll_bits(tcb, self.oobinline)  # POLLPRI; the urgent byte alone is not POLLIN
        if (tcb.rbuf.size and not tcb.urg.state) or tcb.fin_received or self.rd_shut:
            mask |= POLLIN
        if tcb.fin_received:
            mask |= POLLRDHUP
        if state == CLOSED:
            return mask | POLLIN | POLLOUT | POLLHUP
        if self.wr_shut or tcb.fin_queued:
            mask |= POLLOUT  # send() would fail at once, so it must not be waited for
            if tcb.fin_received:
                mask |= POLLHUP
        elif self.writable():
            mask |= POLLOUT
        else:
            # As tcp_poll sets SOCK_NOSPACE: a poller saw no room, so the ACK that frees room must wake it,
            # also when send() never met a full buffer (the limit shrank under queued data).
            tcb.write_blocked = True
        return mask
