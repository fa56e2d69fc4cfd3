"""The stub resolver around one query: search list (resolv.conf(5)), cache (RFC 1035 §7.4, RFC 2181 §5.2),
negative answers, the CNAME chain (RFC 1034 §3.6.2) and how failures of A and AAAA combine."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from pytcp_green.stack.dns import Exchange, Failure, Lookup, Resolver
from pytcp_green.stack.dns.resolver import NEGATIVE_TTL, Cache, interpret
from pytcp_green.stack.wire.dns import (
    CLASS_IN,
    RCODE_NXDOMAIN,
    RCODE_SERVFAIL,
    TYPE_A,
    TYPE_AAAA,
    TYPE_CNAME,
    Message,
    Question,
    Record,
)

from .helpers import counter, question_of, reply_to

SERVER = ("192.0.2.53", 53)
Zone = Callable[[Exchange], bytes | None]


def _resolver(*, search: Sequence[str] = (), ndots: int = 1, attempts: int = 2) -> Resolver:
    return Resolver(counter().__next__, search=search, ndots=ndots, attempts=attempts)


def _run(lookup: Lookup, zone: Zone, now: float = 0.0) -> list[tuple[str, int]]:
    """Drive ``lookup`` against ``zone`` (None: the server stays silent); the questions asked, in order."""
    asked = []
    while (ex := lookup.next_exchange(now)) is not None:
        q = question_of(ex).questions[0]
        asked.append((q.name, q.qtype))
        raw = zone(ex)
        if raw is None:
            now = ex.deadline
            lookup.fail()
        else:
            assert lookup.receive(raw, now)
    return asked


def _zone(records: dict[tuple[str, int], list[tuple[str, int, int, str]]]) -> Zone:
    """Answers from ``records``; NXDOMAIN for names it has nothing for, NODATA for other types."""
    names = {name for name, _ in records}

    def answer(ex: Exchange) -> bytes:
        q = question_of(ex).questions[0]
        if (q.name, q.qtype) in records:
            return reply_to(ex, records[(q.name, q.qtype)])
        return reply_to(ex, rcode=0 if q.name in names else RCODE_NXDOMAIN)
    return answer


def test_candidates_follow_resolv_conf() -> None:
    assert _resolver().candidates("Host.Example.") == ["host.example"]
    r = _resolver(search=["corp.test", "lab.test."])
    assert r.candidates("web") == ["web.corp.test", "web.lab.test", "web"]  # fewer dots than ndots: search first
    assert r.candidates("web.eu") == ["web.eu", "web.eu.corp.test", "web.eu.lab.test"]
    assert r.candidates("web.") == ["web"]  # absolute
    assert _resolver(search=["corp.test"], ndots=2).candidates("web.eu") == ["web.eu.corp.test", "web.eu"]


def test_a_and_aaaa_with_a_cname_then_the_cache() -> None:
    resolver = _resolver()
    zone = _zone({("www.test", TYPE_A): [("www.test", TYPE_CNAME, 300, "real.test"),
                                          ("real.test", TYPE_A, 60, "198.18.0.1")],
                  ("www.test", TYPE_AAAA): [("www.test", TYPE_CNAME, 300, "real.test"),
                                             ("real.test", TYPE_AAAA, 30, "2001:db8::1")]})
    lookup = resolver.lookup("WWW.test", [TYPE_A, TYPE_AAAA], [SERVER])
    assert _run(lookup, zone) == [("www.test", TYPE_A), ("www.test", TYPE_AAAA)]
    assert lookup.failure is None and lookup.canonical == "real.test"
    assert lookup.results == [(TYPE_A, "198.18.0.1"), (TYPE_AAAA, "2001:db8::1")]
    # Within the smallest TTL of each chain: from the cache, nothing asked.
    again = resolver.lookup("www.test", [TYPE_A, TYPE_AAAA], [SERVER])
    assert _run(again, zone, now=29.0) == []
    assert again.results == lookup.results
    # AAAA's chain expired at 30 s, A's at 60 s.
    late = resolver.lookup("www.test", [TYPE_A, TYPE_AAAA], [SERVER])
    assert _run(late, zone, now=30.0) == [("www.test", TYPE_AAAA)]


def test_negative_answers_are_cached_for_a_short_time() -> None:
    resolver = _resolver()
    zone = _zone({})
    lookup = resolver.lookup("missing.test", [TYPE_A], [SERVER])
    assert _run(lookup, zone) == [("missing.test", TYPE_A)] and lookup.failure is Failure.NO_NAME
    assert _run(resolver.lookup("missing.test", [TYPE_A], [SERVER]), zone, now=NEGATIVE_TTL - 0.1) == []
    assert _run(resolver.lookup("missing.test", [TYPE_A], [SERVER]), zone, now=NEGATIVE_TTL) == [("missing.test", 1)]


def test_a_failed_query_is_not_cached() -> None:
    resolver = _resolver(attempts=1)
    lookup = resolver.lookup("slow.test", [TYPE_A], [SERVER])
    assert _run(lookup, lambda ex: None) == [("slow.test", TYPE_A)] and lookup.failure is Failure.AGAIN
    assert _run(resolver.lookup("slow.test", [TYPE_A], [SERVER]), lambda ex: None, now=3.0) == [("slow.test", 1)]


def test_no_servers_is_no_name_without_an_exchange() -> None:
    lookup = _resolver().lookup("www.test", [TYPE_A, TYPE_AAAA], [])
    assert lookup.next_exchange(0.0) is None and lookup.failure is Failure.NO_NAME and lookup.results == []


@pytest.mark.parametrize(("a", "aaaa", "failure"), [
    ("nodata", "nodata", Failure.NO_DATA),
    ("nxdomain", "nxdomain", Failure.NO_NAME),
    ("silent", "nodata", Failure.AGAIN),
    ("servfail", "nxdomain", Failure.AGAIN),
    ("formerr", "nodata", Failure.NO_NAME),  # a hard failure beside NODATA reads as "no such name", as ever
    ("nodata", "answer", None),
])
def test_how_the_failures_of_a_and_aaaa_combine(a: str, aaaa: str, failure: Failure | None) -> None:
    def zone(ex: Exchange) -> bytes | None:
        q = question_of(ex).questions[0]
        how = a if q.qtype == TYPE_A else aaaa
        if how == "silent":
            return None
        rcode = {"nxdomain": RCODE_NXDOMAIN, "servfail": RCODE_SERVFAIL, "formerr": 1}.get(how, 0)
        return reply_to(ex, [(q.name, TYPE_AAAA, 60, "2001:db8::9")] if how == "answer" else [], rcode=rcode)
    lookup = _resolver(attempts=1).lookup("x.test", [TYPE_A, TYPE_AAAA], [SERVER])
    _run(lookup, zone)
    assert lookup.failure is failure
    assert lookup.results == ([(TYPE_AAAA, "2001:db8::9")] if failure is None else [])


def test_search_list_moves_on_from_a_name_without_records_and_stops_at_the_first_with_some() -> None:
    resolver = _resolver(search=["corp.test", "lab.test", "far.test"])
    zone = _zone({("web.lab.test", TYPE_A): [("web.lab.test", TYPE_A, 60, "198.18.0.5")],
                  ("web.far.test", TYPE_A): [("web.far.test", TYPE_A, 60, "198.18.0.6")]})
    lookup = resolver.lookup("web", [TYPE_A, TYPE_AAAA], [SERVER])
    assert _run(lookup, zone) == [("web.corp.test", TYPE_A), ("web.corp.test", TYPE_AAAA),
                                  ("web.lab.test", TYPE_A), ("web.lab.test", TYPE_AAAA)]
    assert lookup.canonical == "web.lab.test" and lookup.results == [(TYPE_A, "198.18.0.5")]


def test_ptr_lookups_ignore_the_search_list() -> None:
    resolver = _resolver(search=["corp.test"])
    lookup = resolver.lookup("1.0.18.198.in-addr.arpa", [12], [SERVER], search=False)
    assert _run(lookup, _zone({})) == [("1.0.18.198.in-addr.arpa", 12)]
    assert lookup.failure is Failure.NO_NAME


def test_interpret_follows_the_chain_takes_the_smallest_ttl_and_stops_at_a_loop() -> None:
    reply = Message(qr=True, questions=[Question("a.test", TYPE_A)], answers=[
        Record("a.test", TYPE_CNAME, CLASS_IN, 100, "b.test"),
        Record("b.test", TYPE_CNAME, CLASS_IN, 40, "c.test"),
        Record("c.test", TYPE_A, CLASS_IN, 70, "198.18.0.3"),
        Record("other.test", TYPE_A, CLASS_IN, 1, "6.6.6.6"),  # not on the chain: ignored
    ])
    answer = interpret(reply, "a.test", TYPE_A, 1000.0)
    assert (answer.canonical, answer.values, answer.expires) == ("c.test", ["198.18.0.3"], 1040.0)
    loop = Message(qr=True, answers=[Record("x.test", TYPE_CNAME, CLASS_IN, 9, "y.test"),
                                     Record("y.test", TYPE_CNAME, CLASS_IN, 9, "x.test")])
    answer = interpret(loop, "x.test", TYPE_A, 0.0)
    assert answer.values == [] and answer.failure is Failure.NO_DATA and answer.expires == NEGATIVE_TTL


def test_cache_empties_when_full() -> None:
    cache = Cache(limit=2)
    answer = interpret(Message(qr=True, answers=[Record("a", TYPE_A, CLASS_IN, 60, "1.2.3.4")]), "a", TYPE_A, 0.0)
    cache.put("a", TYPE_A, answer)
    cache.put("b", TYPE_A, answer)
    cache.put("c", TYPE_A, answer)
    assert cache.get("a", TYPE_A, 1.0) is None and cache.get("c", TYPE_A, 1.0) is answer


def test_ttls_count_from_when_the_reply_arrived() -> None:
    resolver = _resolver()
    lookup = resolver.lookup("t.test", [TYPE_A], [SERVER])
    ex = lookup.next_exchange(0.0)
    assert ex is not None
    assert lookup.receive(reply_to(ex, [("t.test", TYPE_A, 60, "198.18.0.1")]), 10.0)
    assert lookup.next_exchange(50.0) is None and lookup.results == [(TYPE_A, "198.18.0.1")]
    assert resolver.lookup("t.test", [TYPE_A], [SERVER]).next_exchange(69.9) is None  # cached until 10 + 60
    assert resolver.lookup("t.test", [TYPE_A], [SERVER]).next_exchange(70.0) is not None
