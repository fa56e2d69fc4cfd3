"""SYN cookies: a listener answers a SYN without keeping state, as Linux does (``net.ipv4.tcp_syncookies``).

The design is Linux's (net/ipv4/syncookies.c, net/ipv6/syncookies.c; the RFC 4987 §3.6 technique), in
our own code:

* The ISN of the SYN-ACK is the cookie: ``H0(4-tuple) + peer ISN + (count << 24) +
  ((H1(4-tuple, count) + mss_index) mod 2**24)``, where ``count`` is a minute counter and H0/H1 are
  keyed hashes (BLAKE2b here, SipHash in Linux) under two secrets.  The final ACK's ``SEG.ACK - 1`` is
  checked against the counter of the last :data:`MAX_AGE` minutes and yields the MSS index back.
* The peer's MSS is kept as an index into Linux's tables (:data:`MSS_TABLE4`, :data:`MSS_TABLE6`).
* When the SYN carried timestamps, window scale, SACK-permitted and ECN go in the low
  :data:`TS_BITS` bits of our TSval (Linux's ``cookie_init_timestamp``) and come back in the ACK's
  TSecr; without timestamps they are lost, as on Linux (the SYN-ACK then offers only the MSS).
* A cookie ACK is only looked at within :data:`COOKIE_VALID` seconds after the listener last sent a
  cookie (Linux's ``tcp_synq_no_recent_overflow``); otherwise the ACK is answered with a RST as before.

Everything here is a pure function of its arguments and the secret; the listener (:mod:`.socket`) and
the layer (:mod:`.layer`, which owns the secret) do the rest.
"""

from __future__ import annotations

import hashlib

from pytcp_green.stack.tcp.seq import MASK

COOKIE_BITS = 24
COOKIE_MASK = (1 << COOKIE_BITS) - 1
MAX_AGE = 2  # counters accepted: this minute's and the one before (Linux MAX_SYNCOOKIE_AGE)
COOKIE_VALID = 120.0  # seconds after the last cookie sent in which ACKs are checked (TCP_SYNCOOKIE_VALID)

MSS_TABLE4 = (536, 1300, 1440, 1460)  # Linux net/ipv4/syncookies.c msstab
MSS_TABLE6 = (1220, 1420, 1440, 8940)  # Linux net/ipv6/syncookies.c: 1280, 1480, 1500, 9000 minus 60

TS_BITS = 6
TS_MASK = (1 << TS_BITS) - 1
TS_WSCALE_NONE = 0xF  # "no window scale" in the low four bits
TS_SACK = 1 << 4
TS_ECN = 1 << 5

_CMASK = MASK >> COOKIE_BITS  # the counter's 8 bits


def minute(now: float) -> int:
    """The cookie time counter: minutes of the stack clock (Linux: jiffies / (60 * HZ))."""
    return int(now // 60) & MASK


def mss_index(mss: int, v6: bool) -> int:
    """The largest table entry not above ``mss`` (the smallest entry when all are above it)."""
    table = MSS_TABLE6 if v6 else MSS_TABLE4
    index = len(table) - 1
    while index and mss < table[index]:
        index -= 1
    return index


def mss_of(index: int, v6: bool) -> int:
    return (MSS_TABLE6 if v6 else MSS_TABLE4)[index]


def encode_ts(ts_now: int, wscale: int | None, sack: bool, ecn: bool) -> int:
    """Our TSval for a cookie SYN-ACK: ``ts_now`` with the options in its low bits, never ahead of it."""
    options = TS_WSCALE_NONE if wscale is None else wscale
    if sack:
        options |= TS_SACK
    if ecn:
        options |= TS_ECN
    ts = (ts_now & ~TS_MASK & MASK) | options
    if (ts - ts_now) & MASK and not (ts - ts_now) & 0x80000000:  # after(ts, ts_now)
        ts = (ts - (1 << TS_BITS)) & MASK
    return ts


def decode_ts(tsecr: int) -> tuple[int | None, bool, bool]:
    """(window scale or None, SACK-permitted, ECN) from an ACK's TSecr (four bits hold 0-14 or "none")."""
    options = tsecr & TS_MASK
    wscale = options & 0xF
    return None if wscale == TS_WSCALE_NONE else wscale, bool(options & TS_SACK), bool(options & TS_ECN)


class SynCookies:
    """The keyed cookie function of one stack; ``secret`` comes from the stack's seeded rng."""

    def __init__(self, secret: bytes) -> None:
        self._keys = (hashlib.blake2b(b"cookie-0", key=secret, digest_size=32).digest(),
                      hashlib.blake2b(b"cookie-1", key=secret, digest_size=32).digest())
        self._ts_key = hashlib.blake2b(b"cookie-ts", key=secret, digest_size=32).digest()

    def _hash(self, which: int, tuple_bytes: bytes, count: int) -> int:
        digest = hashlib.blake2b(tuple_bytes + count.to_bytes(4, "big"), key=self._keys[which],
                                 digest_size=4).digest()
        return int.from_bytes(digest, "big")

    @staticmethod
    def _tuple(laddr: bytes, lport: int, raddr: bytes, rport: int) -> bytes:
        return raddr + laddr + rport.to_bytes(2, "big") + lport.to_bytes(2, "big")

    def make(self, laddr: bytes, lport: int, raddr: bytes, rport: int, peer_isn: int, count: int,
             data: int) -> int:
        """The cookie (our ISN) for a SYN from ``raddr:rport`` with sequence ``peer_isn``."""
        t = self._tuple(laddr, lport, raddr, rport)
        return (self._hash(0, t, 0) + peer_isn + (count << COOKIE_BITS)
                + ((self._hash(1, t, count) + data) & COOKIE_MASK)) & MASK

    def check(self, laddr: bytes, lport: int, raddr: bytes, rport: int, peer_isn: int, count: int,
              cookie: int) -> int | None:
        """The data (MSS index) a cookie carries, or None if it is not ours or older than MAX_AGE minutes.

        As in Linux the index is not authenticated apart from the hash: a forger who changes the two
        lowest bits of a valid cookie only picks another MSS from the table.
        """
        t = self._tuple(laddr, lport, raddr, rport)
        cookie = (cookie - self._hash(0, t, 0) - peer_isn) & MASK
        diff = (count - (cookie >> COOKIE_BITS)) & _CMASK
        if diff >= MAX_AGE:
            return None
        data = (cookie - self._hash(1, t, (count - diff) & MASK)) & COOKIE_MASK
        return data if data < len(MSS_TABLE4) else None

    def ts_offset(self, laddr: bytes, raddr: bytes) -> int:
        """The TSval offset of a cookie connection: derived from the addresses, as Linux's
        ``secure_tcp_ts_off``, so the connection made from the ACK continues the SYN-ACK's clock."""
        digest = hashlib.blake2b(raddr + laddr, key=self._ts_key, digest_size=4).digest()
        return int.from_bytes(digest, "big")
