"""TCP Fast Open (RFC 7413): data in the SYN, on a cookie the server handed out before.

* §4.1.1-4.1.2 the cookie: the server's is a keyed hash of the client's address and its own, 8 bytes
  as Linux makes them (BLAKE2b here, SipHash in Linux) under a secret the layer draws from the stack's
  rng, so no state is kept per client.  An empty option is a cookie request; the server answers it, or
  a cookie that does not check, with a fresh cookie in its SYN-ACK.
* §4.1.3 the client's cache: the cookie and the peer's MSS per destination address (Linux keeps them
  in tcp_metrics), within :data:`CACHE_SIZE` entries, the oldest forgotten first.
* §4.2.1 the client: a SYN with a cached cookie carries as much of the first data as one segment
  holds (Linux: the cached MSS less :data:`OPTION_SPACE`); without one it carries a cookie request and
  no data.  A SYN-ACK that does not acknowledge all of the SYN's data means the rest is sent again at
  once; a retransmitted SYN carries neither data nor the option, as Linux's.
* §4.2.2 the server: a SYN with a valid cookie makes a child that the application can accept at once,
  its SYN's data readable before the handshake completes, while at most the listener's
  ``TCP_FASTOPEN`` qlen such children are still in SYN-RECEIVED (§5.1's limit, Linux's fastopenq);
  beyond it, or with a bad cookie, the data is left unacknowledged and the handshake is an ordinary one.

``net.ipv4.tcp_fastopen`` as Linux: bit 1 enables the client side, bit 2 the server side; 0x200 takes a
SYN's data without a cookie, 0x400 makes every listener a Fast Open one (qlen: its backlog).  Counters:
``tcp.tfo_active`` / ``tcp.tfo_active_fail`` (SYN data acknowledged or not), ``tcp.tfo_cookie_req``
(requests sent), ``tcp.tfo_passive`` / ``tcp.tfo_passive_fail`` / ``tcp.tfo_cookie_reqd`` /
``tcp.tfo_listen_overflow`` (Linux's TCPFastOpen* names), ``tcp.tfo_syn_retransmit``.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Protocol

from pytcp_green.stack.tcp.state import SYN_RECEIVED
from pytcp_green.stack.wire.tcp import fastopen_option

if TYPE_CHECKING:
    from pytcp_green.stack.sysctl import Sysctl
    from pytcp_green.stack.tcp.tcb import Tcb
    from pytcp_green.stack.wire.checksum import Buffer
    from pytcp_green.stack.wire.tcp import TcpSegment

CLIENT = 1  # net.ipv4.tcp_fastopen bits (Linux TFO_CLIENT_ENABLE, TFO_SERVER_ENABLE)
SERVER = 2
SERVER_COOKIE_NOT_REQD = 0x200  # a SYN's data is taken without a cookie
SERVER_WO_SOCKOPT = 0x400  # every listener does Fast Open, its qlen the listen() backlog
COOKIE_LEN = 8  # Linux TCP_FASTOPEN_COOKIE_SIZE
OPTION_SPACE = 40  # Linux MAX_TCP_OPTION_SPACE: the SYN's data leaves room for any options
CACHE_SIZE = 1024  # destinations remembered (Linux sizes tcp_metrics from memory)


class Listener(Protocol):
    """What a listening :class:`~.socket.TcpSocket` keeps for Fast Open."""

    fastopen_qlen: int  # TCP_FASTOPEN: Fast Open children allowed in SYN-RECEIVED at once
    backlog: int
    fastopen_pending: set[Tcb]  # those children


def enabled(sysctl: Sysctl, side: int) -> bool:
    return bool(sysctl.int("net.ipv4.tcp_fastopen") & side)


class FastOpen:
    """One stack's Fast Open state: the server's cookie key and the client's cookie cache."""

    def __init__(self, secret: bytes) -> None:
        self._key = hashlib.blake2b(b"fastopen", key=secret, digest_size=32).digest()
        self.cache: dict[bytes, tuple[bytes, int]] = {}  # destination -> (cookie, its MSS)

    def cookie(self, client: bytes, server: bytes) -> bytes:
        """The cookie this server gives ``client`` (RFC 7413 §4.1.2)."""
        return hashlib.blake2b(client + server, key=self._key, digest_size=COOKIE_LEN).digest()

    def remember(self, dest: bytes, cookie: bytes, mss: int) -> None:
        cache = self.cache
        cache.pop(dest, None)
        if len(cache) >= CACHE_SIZE:
            del cache[next(iter(cache))]
        cache[dest] = (cookie, mss)


# -- client (RFC 7413 §4.2.1) --------------------------------------------------------------------------
def request(tcb: Tcb) -> None:
    """Make the coming SYN a Fast Open one: the cached cookie with the first queued data, or a cookie
    request."""
    tcb.tfo = True
    cached = tcb.layer.fastopen.cache.get(tcb.remote_addr)
    if cached is None:
        tcb.tfo_option = fastopen_option(b"")
        tcb.syn_data = 0
        tcb.stats["tcp.tfo_cookie_req"] += 1
        return
    cookie, mss = cached
    tcb.tfo_option = fastopen_option(cookie)
    tcb.syn_data = max(0, min(len(tcb.sbuf.data), min(mss, tcb.adv_mss) - OPTION_SPACE))


def defer(tcb: Tcb) -> bool:
    """TCP_FASTOPEN_CONNECT's connect (Linux's tcp_fastopen_defer_connect): with a cookie cached it
    returns at once and the SYN waits for the first send (True); without one the SYN goes now, asking
    for a cookie (False)."""
    if tcb.remote_addr in tcb.layer.fastopen.cache:
        tcb.tfo_deferred = True
        return True
    request(tcb)
    return False


def open_with(tcb: Tcb, data: Buffer, now: float) -> int:
    """Connect with ``data`` (as much as the send buffer takes) queued and its start in the SYN when
    a cookie for the destination is cached: the bytes queued.  Without a cookie the SYN asks for one
    and the data waits for the handshake: 0."""
    tcb.tfo_deferred = False
    size = 0
    if tcb.remote_addr in tcb.layer.fastopen.cache:
        with memoryview(data) as view:
            size = min(len(view), tcb.sock.send_limit(tcb))
            tcb.sbuf.append(view[:size])
    request(tcb)
    tcb.connect(now)
    return size


def syn_out(tcb: Tcb) -> tuple[bytes, int]:
    """The option and the data length of our SYN; a retransmitted SYN goes without either (Linux:
    the SYN that was lost may have been dropped for its data)."""
    if tcb.retries and tcb.tfo_option:
        tcb.tfo_option = b""
        tcb.syn_data = 0
        tcb.stats["tcp.tfo_syn_retransmit"] += 1
    tcb.snd_nxt = tcb.snd_max = tcb.iss + 1 + tcb.syn_data
    return tcb.tfo_option, tcb.syn_data


def synack_in(tcb: Tcb, seg: TcpSegment, ack: int) -> None:
    """A SYN-ACK for a Fast Open SYN: cache the cookie it brings; what it did not acknowledge of the
    SYN's data is sent again at once, as new data (the peer kept none of it)."""
    if not tcb.tfo:
        return
    if seg.fastopen:
        tcb.layer.fastopen.remember(tcb.remote_addr, seg.fastopen, tcb.snd_mss)
    if tcb.syn_data:
        tcb.stats["tcp.tfo_active" if ack == tcb.snd_max else "tcp.tfo_active_fail"] += 1
    if ack < tcb.snd_max:
        tcb.snd_nxt = tcb.snd_max = ack
    tcb.syn_data = 0


# -- server (RFC 7413 §4.2.2) --------------------------------------------------------------------------
def passive(listener: Listener, tcb: Tcb, seg: TcpSegment) -> bool:
    """A SYN reached ``listener`` for child ``tcb``: True when its cookie makes a Fast Open child (the
    SYN's data accepted, the child accepted at once); otherwise the SYN-ACK may carry a cookie."""
    bits = tcb.stack.sysctl.int("net.ipv4.tcp_fastopen")
    qlen = listener.fastopen_qlen or (listener.backlog if bits & SERVER_WO_SOCKOPT else 0)
    free_pass = bool(bits & SERVER_COOKIE_NOT_REQD and seg.payload)
    if not bits & SERVER or not qlen or (seg.fastopen is None and not free_pass):
        return False
    stats = tcb.stats
    want = tcb.layer.fastopen.cookie(tcb.remote_addr, tcb.local_addr)
    if seg.fastopen != want and not free_pass:
        stats["tcp.tfo_passive_fail" if seg.fastopen else "tcp.tfo_cookie_reqd"] += 1
        tcb.tfo_option = fastopen_option(want)
        return False
    pending = listener.fastopen_pending
    for child in [c for c in pending if c.dead or c.state != SYN_RECEIVED]:
        pending.discard(child)
    if len(pending) >= qlen:
        stats["tcp.tfo_listen_overflow"] += 1  # an ordinary handshake; no fresh cookie either (Linux)
        return False
    pending.add(tcb)
    tcb.tfo = True
    stats["tcp.tfo_passive"] += 1
    return True
