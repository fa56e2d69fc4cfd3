"""The stub resolver: search list, cache and answer interpretation around :class:`~.query.Query`, sans-I/O.

A :class:`Lookup` asks for the records of some types (A and AAAA, or PTR) of a name.  It tries
the name's search-list candidates in turn (resolv.conf(5) semantics: with at least ``ndots``
dots the name is tried as given first, otherwise after the search domains; a name ending in a
dot is only tried as given), each type from the cache first and else through a :class:`Query`
to the servers; the first candidate with any record ends it.  An answer follows the CNAME chain
in the answer section (RFC 1034 §3.6.2), is cached for the smallest TTL on the way (RFC 1035
§7.4, RFC 2181 §5.2) and a negative answer for a short fixed time (RFC 2308's idea, without its
SOA-derived TTL).

The caller drives it exactly as a Query: perform each :meth:`Lookup.next_exchange`, feed
:meth:`Lookup.receive`, report :meth:`Lookup.fail`; ``now`` comes in with every call.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

from pytcp_green.stack.dns.query import Exchange, Failure, Query, Server
from pytcp_green.stack.wire.dns import RCODE_NXDOMAIN, TYPE_CNAME, Message

NEGATIVE_TTL = 5.0
CACHE_LIMIT = 1024


class Answer:
    """What a server said about ``(name, qtype)``: the canonical name and the values, until ``expires``."""

    __slots__ = ("canonical", "expires", "rcode", "values")

    def __init__(self, rcode: int, canonical: str, values: list[str], expires: float) -> None:
        self.rcode = rcode
        self.canonical = canonical
        self.values = values
        self.expires = expires

    @property
    def failure(self) -> Failure | None:
        if self.rcode == RCODE_NXDOMAIN:
            return Failure.NO_NAME
        if not self.values:
            return Failure.NO_DATA
        return None


def interpret(reply: Message, name: str, qtype: int, now: float) -> Answer:
    """Follow the CNAME chain from ``name`` through the answer section (RFC 1034 §3.6.2)."""
    canonical = name
    ttl: float | None = None
    seen = {canonical.lower()}
    while True:
        for rr in reply.answers:
            if rr.rtype == TYPE_CNAME and rr.name.lower() == canonical.lower() and isinstance(rr.data, str):
                canonical = rr.data
                ttl = rr.ttl if ttl is None else min(ttl, rr.ttl)
                break
        else:
            break
        if canonical.lower() in seen:  # a CNAME loop
            break
        seen.add(canonical.lower())
    values: list[str] = []
    for rr in reply.answers:
        if rr.rtype == qtype and rr.name.lower() == canonical.lower() and isinstance(rr.data, str):
            values.append(rr.data)
            ttl = rr.ttl if ttl is None else min(ttl, rr.ttl)
    if reply.rcode == RCODE_NXDOMAIN or not values:
        return Answer(reply.rcode, canonical, [], now + NEGATIVE_TTL)
    return Answer(reply.rcode, canonical, values, now + (ttl or 0))


class Cache:
    """Answers by (lower-case name, qtype); emptied whole when full (names repeat, eviction order does not matter)."""

    def __init__(self, limit: int = CACHE_LIMIT) -> None:
        self._limit = limit
        self._entries: dict[tuple[str, int], Answer] = {}

    def get(self, name: str, qtype: int, now: float) -> Answer | None:
        hit = self._entries.get((name, qtype))
        return hit if hit is not None and hit.expires > now else None

    def put(self, name: str, qtype: int, answer: Answer) -> None:
        if len(self._entries) >= self._limit:
            self._entries.clear()
        self._entries[(name, qtype)] = answer

    def clear(self) -> None:
        self._entries.clear()


class Resolver:
    """The resolver's settings and cache; :meth:`lookup` starts one look-up.  ``ident`` draws message
    ids (RFC 5452 §9.2: unpredictable ones, so the caller passes a CSPRNG)."""

    def __init__(self, ident: Callable[[], int], *, timeout: float = 2.0, attempts: int = 2,
                 search: Sequence[str] = (), ndots: int = 1) -> None:
        self.ident = ident
        self.timeout = timeout
        self.attempts = attempts
        self.search = list(search)
        self.ndots = ndots
        self.cache = Cache()

    def candidates(self, name: str) -> list[str]:
        """The names to ask, in order, for ``name`` (lower case, without the final dot)."""
        base = name.lower().rstrip(".")
        if name.endswith(".") or not self.search:
            return [base]
        qualified = [f"{base}.{domain.strip('.').lower()}" for domain in self.search]
        return [base, *qualified] if base.count(".") >= self.ndots else [*qualified, base]

    def lookup(self, name: str, qtypes: Sequence[int], servers: Sequence[Server], *, search: bool = True) -> Lookup:
        """A look-up of ``qtypes`` records of ``name`` (``search=False``: the name as given, e.g. a PTR name)."""
        names = self.candidates(name) if search else [name.lower().rstrip(".")]
        return Lookup(self, names, list(qtypes), list(servers))


class Lookup:
    """The records of each of ``qtypes`` for the first of ``names`` that has any.

    When :meth:`next_exchange` returns None the look-up is over: :attr:`results` holds
    ``(qtype, value)`` pairs and :attr:`canonical` the name they belong to, or :attr:`failure` says
    why there are none.
    """

    def __init__(self, resolver: Resolver, names: list[str], qtypes: list[int], servers: list[Server]) -> None:
        self.canonical = names[0]
        self.results: list[tuple[int, str]] = []
        self.failure: Failure | None = None
        self._resolver = resolver
        self._servers = servers
        self._plan = deque((name, qtype) for name in names for qtype in qtypes)
        self._name = names[0]  # the candidate being asked
        self._query: Query | None = None
        self._errors: list[Failure] = []

    def next_exchange(self, now: float) -> Exchange | None:
        while True:
            query = self._query
            if query is not None:
                exchange = query.next_exchange(now)
                if exchange is not None:
                    return exchange
                self._settle(query)
                self._query = None
            if not self._advance(now):
                return None

    def receive(self, data: bytes, now: float) -> bool:
        """See :meth:`Query.receive`."""
        return self._query is None or self._query.receive(data, now)

    def fail(self) -> None:
        """See :meth:`Query.fail`."""
        if self._query is not None:
            self._query.fail()

    def _advance(self, now: float) -> bool:
        """Take the next (name, qtype) step from the cache or start its query; False when none is left."""
        plan = self._plan
        if not plan or (self.results and plan[0][0] != self._name):  # a name with records ends the search
            self._finish()
            return False
        self._name, qtype = plan.popleft()
        resolver = self._resolver
        hit = resolver.cache.get(self._name, qtype, now)
        if hit is not None:
            self._take(qtype, hit)
        elif not self._servers:
            self._errors.append(Failure.NO_NAME)
        else:
            self._query = Query(self._name, qtype, self._servers, timeout=resolver.timeout,
                                attempts=resolver.attempts, ident=resolver.ident)
        return True

    def _settle(self, query: Query) -> None:
        if query.reply is None:
            self._errors.append(query.failure or Failure.AGAIN)
            return
        answer = interpret(query.reply, query.name, query.qtype, query.replied_at)
        self._resolver.cache.put(query.name, query.qtype, answer)
        self._take(query.qtype, answer)

    def _take(self, qtype: int, answer: Answer) -> None:
        failure = answer.failure
        if failure is not None:
            self._errors.append(failure)
            return
        self.canonical = answer.canonical
        self.results.extend((qtype, value) for value in answer.values)

    def _finish(self) -> None:
        errors = self._errors
        if self.results:
            return
        if Failure.AGAIN in errors:
            self.failure = Failure.AGAIN
        elif errors and all(e is Failure.NO_DATA for e in errors):
            self.failure = Failure.NO_DATA
        else:
            self.failure = Failure.NO_NAME
