"""A toy name server for the resolver core's tests: it answers the bytes a core Exchange carries."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from pytcp_green.stack.dns import Exchange, Transport
from pytcp_green.stack.wire.dns import CLASS_IN, RCODE_NOERROR, TCP_LENGTH, Message, Record


def question_of(exchange: Exchange) -> Message:
    """The query an exchange sends (its TCP length prefix checked and removed)."""
    data = exchange.data
    if exchange.transport is Transport.TCP:
        (length,) = TCP_LENGTH.unpack_from(data)
        assert len(data) == TCP_LENGTH.size + length
        data = data[TCP_LENGTH.size:]
    return Message.decode(data)


def reply_to(exchange: Exchange, records: Sequence[tuple[str, int, int, str]] = (), *,
             rcode: int = RCODE_NOERROR, tc: bool = False, ident_delta: int = 0) -> bytes:
    """A reply to the exchange's query with ``(name, type, ttl, data)`` answers, framed for its transport."""
    query = question_of(exchange)
    reply = Message(id=(query.id + ident_delta) % 0x10000, qr=True, rd=query.rd, ra=True, rcode=rcode, tc=tc,
                    questions=query.questions,
                    answers=[Record(name, rtype, CLASS_IN, ttl, data) for name, rtype, ttl, data in records])
    raw = reply.build()
    return TCP_LENGTH.pack(len(raw)) + raw if exchange.transport is Transport.TCP else raw


def counter() -> itertools.count[int]:
    """Predictable message ids for tests (the patch draws them from a CSPRNG)."""
    return itertools.count(100)
