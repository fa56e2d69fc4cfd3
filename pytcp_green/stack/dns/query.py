"""One question asked of the name servers in turn: the stub resolver's retry loop, sans-I/O.

RFC 1035 §7.2 (send the query, wait for a reply up to a deadline, then try the next server),
RFC 1123 §6.1.3.3 (cycle through the servers, each round one more attempt), RFC 5452 §9.1
(a reply counts only when its id and question are ours), RFC 1035 §4.2.1-4.2.2 and RFC 7766 §5
(a reply with TC set is asked again over TCP, each message prefixed by its two-octet length).

The caller performs each :class:`Exchange` the query hands out: it sends ``data`` to ``server``
over ``transport``, feeds whatever comes back to :meth:`Query.receive`, and reports a timeout
(``deadline`` passed) or a transport error with :meth:`Query.fail`.  Nothing here reads a clock
or touches a socket.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.dns import (
    RCODE_NOERROR,
    RCODE_NXDOMAIN,
    RCODE_REFUSED,
    RCODE_SERVFAIL,
    TCP_LENGTH,
    BadName,
    Message,
    Question,
)

Server = tuple[str, int]


class Failure(enum.Enum):
    """Why a look-up has no answer (the patch maps these to getaddrinfo's EAI_* codes)."""

    NO_NAME = "no_name"  # NXDOMAIN, or nobody to ask
    NO_DATA = "no_data"  # the name exists without records of that type
    AGAIN = "again"  # no server answered usefully (timeouts, SERVFAIL, REFUSED)
    FAIL = "fail"  # a server answered with an error that asking again will not fix


class Transport(enum.Enum):
    UDP = "udp"
    TCP = "tcp"


@dataclass(frozen=True)
class Exchange:
    """Send ``data`` to ``server`` over ``transport``; give up at ``deadline`` (the caller's clock)."""

    server: Server
    transport: Transport
    data: bytes
    deadline: float


class Query:
    """``name``/``qtype`` asked of ``servers``, ``attempts`` rounds, ``timeout`` seconds an exchange.

    Done when :attr:`reply` (a NOERROR or NXDOMAIN reply to our question) or :attr:`failure` is set;
    :meth:`next_exchange` then returns None.
    """

    def __init__(self, name: str, qtype: int, servers: Sequence[Server], *, timeout: float, attempts: int,
                 ident: Callable[[], int]) -> None:
        self.name = name
        self.qtype = qtype
        self.reply: Message | None = None
        self.replied_at = 0.0  # when :attr:`reply` arrived: its TTLs count from then
        self.failure: Failure | None = None
        self._timeout = timeout
        self._ident = ident
        self._plan = deque(server for _ in range(attempts) for server in servers)
        self._last = Failure.AGAIN  # what the query fails with once the plan runs out
        self._current: Exchange | None = None
        self._id = 0
        self._stream = bytearray()  # the TCP reply so far
        self._over_tcp: Server | None = None  # the server whose UDP reply was truncated

    @property
    def done(self) -> bool:
        return self.reply is not None or self.failure is not None

    def next_exchange(self, now: float) -> Exchange | None:
        """The next message to send (a fresh id each time), or None when the query is done."""
        if self.done:
            return None
        if self._over_tcp is not None:
            server, transport = self._over_tcp, Transport.TCP
            self._over_tcp = None
        elif self._plan:
            server, transport = self._plan.popleft(), Transport.UDP
        else:
            self.failure = self._last
            return None
        ident = self._ident()
        try:
            data = Message(id=ident, rd=True, questions=[Question(self.name, self.qtype)]).build()
        except BadName:
            # No server can be asked a name that has no encoding: end as asking each of them would.
            self.failure = self._last
            return None
        if transport is Transport.TCP:
            data = TCP_LENGTH.pack(len(data)) + data
        self._id = ident
        self._stream.clear()
        self._current = Exchange(server, transport, data, now + self._timeout)
        return self._current

    def receive(self, data: bytes, now: float) -> bool:
        """Feed what arrived for the current exchange: one datagram over UDP, the stream's next bytes
        over TCP.  True when the exchange is over (ask :meth:`next_exchange`), False to keep waiting."""
        current = self._current
        if current is None:
            return True
        if current.transport is Transport.UDP:
            try:
                reply = Message.parse(memoryview(data))
            except Malformed:
                return False  # not a DNS message: wait for the real reply
            if not self._matches(reply):
                return False  # someone else's reply, or a forgery (RFC 5452 §9.1)
            if reply.tc:
                self._over_tcp = current.server
                self._current = None
                return True
        else:
            self._stream += data
            if len(self._stream) < TCP_LENGTH.size:
                return False
            (length,) = TCP_LENGTH.unpack_from(self._stream)
            if len(self._stream) < TCP_LENGTH.size + length:
                return False
            try:
                reply = Message.parse(memoryview(bytes(self._stream[TCP_LENGTH.size: TCP_LENGTH.size + length])))
            except Malformed:
                self.fail()
                return True
            if not self._matches(reply):  # a connection carries one reply: a wrong one ends it
                self.fail()
                return True
        self._current = None
        if reply.rcode in (RCODE_NOERROR, RCODE_NXDOMAIN):
            self.reply, self.replied_at = reply, now
        else:
            self._last = Failure.AGAIN if reply.rcode in (RCODE_SERVFAIL, RCODE_REFUSED) else Failure.FAIL
        return True

    def fail(self) -> None:
        """The current exchange timed out or its transport failed (refused, reset): try the next server."""
        self._current = None

    def _matches(self, reply: Message) -> bool:
        if not reply.qr or reply.id != self._id or len(reply.questions) != 1:
            return False
        q = reply.questions[0]
        return q.qtype == self.qtype and q.name.lower().rstrip(".") == self.name.lower().rstrip(".")
