"""One question asked of the servers in turn (RFC 1035 §7.2, RFC 1123 §6.1.3.3, RFC 5452 §9.1, RFC 7766 §5),
driven by hand: every exchange, reply, timeout and deadline is the test's."""

from __future__ import annotations

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR

from pytcp_green.stack.dns import Exchange, Failure, Query, Transport
from pytcp_green.stack.wire.dns import (
    RCODE_FORMERR,
    RCODE_NXDOMAIN,
    RCODE_REFUSED,
    RCODE_SERVFAIL,
    TCP_LENGTH,
    TYPE_A,
    TYPE_AAAA,
)

from .helpers import counter, question_of, reply_to

A, B = ("192.0.2.53", 53), ("2001:db8::53", 5353)


def _query(name: str = "www.test", qtype: int = TYPE_A, servers: tuple[tuple[str, int], ...] = (A, B),
           attempts: int = 2) -> Query:
    return Query(name, qtype, list(servers), timeout=2.0, attempts=attempts, ident=counter().__next__)


def _next(query: Query, now: float) -> Exchange:
    exchange = query.next_exchange(now)
    assert exchange is not None
    return exchange


def test_first_exchange_is_a_udp_query_to_the_first_server_with_a_deadline() -> None:
    query = _query()
    ex = _next(query, 10.0)
    assert (ex.server, ex.transport, ex.deadline) == (A, Transport.UDP, 12.0)
    pkt = DNS(ex.data)  # scapy reads the query we send
    assert (pkt.id, pkt.qr, pkt.rd, pkt.qd[0].qname, pkt.qd[0].qtype) == (100, 0, 1, b"www.test.", 1)
    assert query.receive(reply_to(ex, [("www.test", TYPE_A, 60, "198.18.0.1")]), 10.5)
    assert query.done and query.failure is None and query.reply is not None
    assert query.reply.answers[0].data == "198.18.0.1"
    assert query.next_exchange(11.0) is None


def test_scapy_built_reply_is_accepted() -> None:
    query = _query()
    _next(query, 0.0)
    raw = bytes(DNS(id=100, qr=1, qd=DNSQR(qname="www.test"), an=DNSRR(rrname="www.test", rdata="198.18.0.7")))
    assert query.receive(raw, 0.1)
    assert query.reply is not None and query.reply.answers[0].data == "198.18.0.7"


@pytest.mark.parametrize("bad", [
    b"garbage",  # not a DNS message
    "wrong_id",  # RFC 5452 §9.1: someone else's reply or a forgery
    "wrong_name",
    "wrong_type",
    "not_a_response",
])
def test_replies_that_are_not_ours_are_ignored_and_the_exchange_goes_on(bad: object) -> None:
    query = _query()
    ex = _next(query, 0.0)
    good = reply_to(ex, [("www.test", TYPE_A, 60, "198.18.0.1")])
    if bad == "wrong_id":
        raw = reply_to(ex, [("www.test", TYPE_A, 60, "6.6.6.6")], ident_delta=1)
    elif bad == "wrong_name":
        raw = bytes(DNS(id=100, qr=1, qd=DNSQR(qname="evil.test"), an=DNSRR(rrname="evil.test", rdata="6.6.6.6")))
    elif bad == "wrong_type":
        raw = bytes(DNS(id=100, qr=1, qd=DNSQR(qname="www.test", qtype="AAAA")))
    elif bad == "not_a_response":
        raw = bytes(DNS(id=100, qr=0, qd=DNSQR(qname="www.test")))
    else:
        assert isinstance(bad, bytes)
        raw = bad
    assert not query.receive(raw, 0.1)
    assert not query.done
    assert query.receive(good, 0.2) and query.reply is not None and query.reply.answers[0].data == "198.18.0.1"


def test_the_name_matches_without_case_or_final_dot() -> None:
    query = _query("WWW.Test.")
    _next(query, 0.0)
    raw = bytes(DNS(id=100, qr=1, qd=DNSQR(qname="www.test"), an=DNSRR(rrname="www.test", rdata="198.18.0.1")))
    assert query.receive(raw, 0.0) and query.reply is not None


def test_timeouts_cycle_through_the_servers_attempts_rounds_then_fail_again() -> None:
    query = _query(attempts=2)
    seen = []
    now = 0.0
    while (ex := query.next_exchange(now)) is not None:
        seen.append((ex.server, question_of(ex).id, ex.deadline))
        now = ex.deadline
        query.fail()
    assert seen == [(A, 100, 2.0), (B, 101, 4.0), (A, 102, 6.0), (B, 103, 8.0)]  # a fresh id each time
    assert query.failure is Failure.AGAIN and query.reply is None


@pytest.mark.parametrize(("rcode", "failure"), [(RCODE_SERVFAIL, Failure.AGAIN), (RCODE_REFUSED, Failure.AGAIN),
                                                (RCODE_FORMERR, Failure.FAIL), (4, Failure.FAIL)])
def test_error_replies_move_to_the_next_server_and_set_the_failure(rcode: int, failure: Failure) -> None:
    query = _query(attempts=1)
    ex = _next(query, 0.0)
    assert query.receive(reply_to(ex, rcode=rcode), 0.1)
    ex = _next(query, 0.1)
    assert ex.server == B
    query.fail()  # a timeout does not hide what the first server said
    assert query.next_exchange(2.1) is None
    assert query.failure is failure


def test_nxdomain_is_an_answer_not_a_failure() -> None:
    query = _query()
    ex = _next(query, 0.0)
    assert query.receive(reply_to(ex, rcode=RCODE_NXDOMAIN), 0.1)
    assert query.reply is not None and query.reply.rcode == RCODE_NXDOMAIN and query.failure is None


def test_a_second_server_answers_after_the_first_fails() -> None:
    query = _query("v6.test", TYPE_AAAA)
    _next(query, 0.0)
    query.fail()  # e.g. ICMP port unreachable: ECONNREFUSED
    ex = _next(query, 0.5)
    assert ex.server == B and ex.deadline == 2.5
    assert query.receive(reply_to(ex, [("v6.test", TYPE_AAAA, 60, "2001:db8::7")]), 0.6)
    assert query.reply is not None and query.reply.answers[0].data == "2001:db8::7"


def test_truncated_udp_reply_is_asked_again_over_tcp_of_the_same_server() -> None:
    query = _query()
    ex = _next(query, 0.0)
    assert query.receive(reply_to(ex, tc=True), 0.1)
    tcp = _next(query, 0.1)
    assert (tcp.server, tcp.transport, tcp.deadline) == (A, Transport.TCP, 2.1)
    (length,) = TCP_LENGTH.unpack_from(tcp.data)
    assert length == len(tcp.data) - 2 and question_of(tcp).id == 101
    many = [("www.test", TYPE_A, 60, f"198.18.1.{i}") for i in range(1, 60)]
    stream = reply_to(tcp, many, tc=True)  # TC over TCP means nothing more to try
    for i in range(len(stream) - 1):  # the stream arrives a byte at a time
        assert not query.receive(stream[i: i + 1], 0.2)
    assert query.receive(stream[-1:], 0.2)
    assert query.reply is not None and len(query.reply.answers) == 59


@pytest.mark.parametrize("bad", ["wrong_id", "malformed"])
def test_a_wrong_tcp_reply_ends_that_exchange(bad: str) -> None:
    query = _query()
    ex = _next(query, 0.0)
    query.receive(reply_to(ex, tc=True), 0.0)
    tcp = _next(query, 0.0)
    raw = reply_to(tcp, ident_delta=1) if bad == "wrong_id" else TCP_LENGTH.pack(3) + b"bad"
    assert query.receive(raw, 0.1)
    nxt = _next(query, 0.1)
    assert (nxt.server, nxt.transport) == (B, Transport.UDP)


def test_a_tcp_exchange_that_fails_moves_on_over_udp() -> None:
    query = _query(attempts=1)
    ex = _next(query, 0.0)
    query.receive(reply_to(ex, tc=True), 0.0)
    assert _next(query, 0.0).transport is Transport.TCP
    query.fail()  # connection refused or closed early
    nxt = _next(query, 0.1)
    assert (nxt.server, nxt.transport) == (B, Transport.UDP)


def test_a_name_with_no_encoding_fails_without_an_exchange() -> None:
    query = _query("a" * 64 + ".test")
    assert query.next_exchange(0.0) is None
    assert query.failure is Failure.AGAIN


def test_no_servers_no_exchange() -> None:
    query = _query(servers=())
    assert query.next_exchange(0.0) is None and query.failure is Failure.AGAIN
