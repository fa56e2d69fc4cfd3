"""Link impairment, sans-I/O and seeded: loss, duplication, reordering, corruption, delay, jitter, rate.

An :class:`Impairment` sits on one direction of a link.  The runtime (or the simulator) pushes
each frame with the current time and later collects the frames that are due; nothing here reads
a clock, sleeps or does I/O, so a run is fully determined by the seed and the call sequence and
a failing run can be replayed.

The model, per pushed frame, in this order:

1. ``limit``: when that many frames are already held, the frame is tail-dropped (``overflow``),
   like netem's queue limit; this is what makes a rate-limited bottleneck lose packets.
2. ``loss``: the frame is dropped (``lost``).  Dropped frames take no link time (as in netem).
3. ``duplicate``: a second copy follows the first (``duplicated``).  Each copy then goes on alone.
4. ``corrupt``: one byte at a random position at or after ``corrupt_offset`` is XORed with a
   random non-zero value, so the frame always changes (``corrupted``).  The simulator sets the
   offset to the link header length, so corruption lands in the IP packet, where checksums must
   catch it, rather than in the MAC addresses, where it would only look like loss.  A TCP
   checksum left partial (a device with checksum offload, link/device.py) is completed first, as
   Linux's ``skb_checksum_help`` does, and the frame leaves as a PlainFrame, for the receiver to
   check; every other frame keeps its type, a TrustedFrame its mark.
5. ``rate``: frames are serialized one after the other:
   ``done = max(now, previous_done) + len(frame) * 8 / rate``.
6. ``delay`` and ``jitter``: delivery at ``done + delay + uniform(-jitter, +jitter)``, never
   before ``done`` and never before the previous in-order frame: jitter varies latency but
   does not reorder.  Reordering is explicit:
7. ``ecn``: a frame carrying an ECN-capable IP packet (ECT(0) or ECT(1), RFC 3168 §5) leaves
   marked CE instead of being dropped, as an AQM router marks (``ce_marked``; IPv4's header
   checksum is fixed); a not-ECT packet draws the same and goes on unmarked (RFC 3168 §5: a router
   drops those; here it is left to ``loss``).
8. ``reorder``: the frame is held back until ``reorder_depth`` later frames have been
   scheduled, and is delivered right after the last of them.  If fewer come within
   ``reorder_max_hold`` seconds of its normal delivery time it is delivered then, behind those
   that did.  ``reordered`` counts the frames that arrived after at least one frame sent
   later, so a held frame that nothing overtook is not counted.

Each decision draws from its own random stream derived from the seed, so enabling corruption
does not change which frames are lost.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
import os
import random
import re
from decimal import Decimal, InvalidOperation

from pytcp_green.link.device import Frame, PlainFrame
from pytcp_green.stack.wire.checksum import checksum
from pytcp_green.stack.wire.offload import complete_tcp_checksum

_PROBABILITIES = ("loss", "duplicate", "reorder", "corrupt", "ecn")

# Keys accepted by ImpairSpec.parse, mapped to field names; str() writes the first spelling.
_KEYS = {
    "loss": "loss",
    "dup": "duplicate",
    "duplicate": "duplicate",
    "reorder": "reorder",
    "corrupt": "corrupt",
    "ecn": "ecn",
    "delay": "delay",
    "jitter": "jitter",
    "rate": "rate",
    "limit": "limit",
    "seed": "seed",
}
_CANONICAL_KEYS = {
    "loss": "loss",
    "duplicate": "dup",
    "reorder": "reorder",
    "corrupt": "corrupt",
    "ecn": "ecn",
    "delay": "delay",
    "jitter": "jitter",
    "rate": "rate",
    "limit": "limit",
    "seed": "seed",
}
_TIME_UNITS = {"s": Decimal(1), "ms": Decimal(10) ** 3, "us": Decimal(10) ** 6, "ns": Decimal(10) ** 9}
# SI bits per second only: tc's "kbps" means kilo*bytes* per second, an easy mix-up, so it is refused.
_RATE_UNITS = {
    "bit": Decimal(1),
    "kbit": Decimal(10) ** 3,
    "mbit": Decimal(10) ** 6,
    "gbit": Decimal(10) ** 9,
}
_NUMBER = re.compile(r"^\s*((?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z%]*)\s*$")


def _split_number(key: str, text: str) -> tuple[Decimal, str]:
    """``"10.5ms"`` -> ``(Decimal("10.5"), "ms")``.  Decimal keeps unit scaling exact, so str() and
    parse() round-trip floats bit for bit."""
    m = _NUMBER.match(text)
    if m is None:
        raise ValueError(f"impairment {key}={text!r}: expected a non-negative number with an optional unit")
    try:
        value = Decimal(m.group(1))
    except InvalidOperation:  # pragma: no cover - the regex admits only valid literals
        raise ValueError(f"impairment {key}={text!r}: not a number") from None
    return value, m.group(2).lower()


def _parse_probability(key: str, text: str) -> float:
    value, unit = _split_number(key, text)
    if unit == "%":
        value /= 100
    elif unit:
        raise ValueError(f"impairment {key}={text!r}: a probability is a fraction (0.05) or percentage (5%)")
    if value > 1:
        raise ValueError(f"impairment {key}={text!r}: a probability cannot exceed 100%")
    return float(value)


def parse_time(key: str, text: str) -> float:
    value, unit = _split_number(key, text)
    if unit not in _TIME_UNITS:
        # A bare "10" is refused: seconds or milliseconds is exactly the kind of guess that goes wrong.
        raise ValueError(f"impairment {key}={text!r}: give a time unit, one of {', '.join(_TIME_UNITS)}")
    return float(value / _TIME_UNITS[unit])


def parse_rate(key: str, text: str) -> float:
    value, unit = _split_number(key, text)
    if value == 0 and not unit:
        return 0.0
    if unit not in _RATE_UNITS:
        raise ValueError(
            f"impairment {key}={text!r}: give a rate unit, one of {', '.join(_RATE_UNITS)} (bits per second)"
        )
    return float(value * _RATE_UNITS[unit])


def _parse_int(key: str, text: str) -> int:
    text = text.strip()
    if not text.isdigit():
        raise ValueError(f"impairment {key}={text!r}: expected a non-negative integer")
    return int(text)


def _decimal_text(value: Decimal) -> str:
    """Plain notation without trailing zeros: Decimal('10.500') -> '10.5', Decimal('1E+2') -> '100'."""
    return format(value.normalize(), "f")


def _format_time(seconds: float) -> str:
    """``seconds`` in the largest unit that keeps the number >= 1 (ns otherwise): 0.0105 -> '10.5ms'."""
    exact = Decimal(repr(seconds))  # the shortest decimal that reads back as this float
    for unit, per_second in _TIME_UNITS.items():  # s, ms, us, ns
        scaled = exact * per_second
        if scaled >= 1 or unit == "ns":
            return _decimal_text(scaled) + unit
    raise AssertionError("unreachable")  # pragma: no cover


def _format_rate(bits_per_second: float) -> str:
    """A rate in the largest unit that keeps the number >= 1: 1.5e9 -> '1.5gbit'."""
    exact = Decimal(repr(bits_per_second))
    for unit, scale in reversed(_RATE_UNITS.items()):  # gbit, mbit, kbit, bit
        scaled = exact / scale  # a power of ten: exact in Decimal
        if scaled >= 1 or unit == "bit":
            return _decimal_text(scaled) + unit
    raise AssertionError("unreachable")  # pragma: no cover


@dataclasses.dataclass(frozen=True, slots=True)
class ImpairSpec:
    """What one direction of a link does to frames.  All zero (the default) is a perfect link.

    ``loss``, ``duplicate``, ``reorder``, ``corrupt``, ``ecn`` are probabilities in [0, 1]; ``delay`` and
    ``jitter`` are seconds; ``rate`` is bits per second (0: unlimited); ``limit`` is the most frames
    held at once (0: unlimited); ``seed`` fixes the random streams (None: the user of the spec
    picks one, see :class:`Impairment`).
    """

    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    corrupt: float = 0.0
    delay: float = 0.0
    jitter: float = 0.0
    rate: float = 0.0
    limit: int = 0
    seed: int | None = None
    ecn: float = 0.0  # last, so positional construction keeps its meaning

    def __post_init__(self) -> None:
        for name in _PROBABILITIES:
            p = getattr(self, name)
            if not (math.isfinite(p) and 0.0 <= p <= 1.0):
                raise ValueError(f"impairment {name}={p!r}: a probability must be within 0..1")
        for name in ("delay", "jitter", "rate"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0.0):
                raise ValueError(f"impairment {name}={v!r}: must be a finite number >= 0")
        if self.limit < 0:
            raise ValueError(f"impairment limit={self.limit!r}: must be >= 0")
        if self.seed is not None and self.seed < 0:
            raise ValueError(f"impairment seed={self.seed!r}: must be >= 0")

    @classmethod
    def parse(cls, text: str) -> ImpairSpec:
        """Read ``"loss=5%,delay=10ms,reorder=1%,dup=1%,corrupt=0.1%,ecn=5%,rate=100mbit,seed=7"``.

        Probabilities: ``5%`` or ``0.05``.  Times: ``s``, ``ms``, ``us``, ``ns`` (a unit is
        required).  Rates: ``bit``, ``kbit``, ``mbit``, ``gbit`` per second (SI), or ``0``.
        ``limit`` and ``seed`` are integers.  ``""`` and ``"none"`` mean no impairment.
        Raises ValueError naming the offending item.
        """
        text = text.strip()
        if text in ("", "none"):
            return cls()
        values: dict[str, float | int] = {}
        for raw_item in text.split(","):
            item = raw_item.strip()
            if not item:
                raise ValueError(f"impairment spec {text!r}: empty item (stray comma?)")
            key, sep, value = item.partition("=")
            key = key.strip().lower()
            if not sep:
                raise ValueError(f"impairment spec item {item!r} is not key=value")
            field = _KEYS.get(key)
            if field is None:
                raise ValueError(f"impairment spec: unknown key {key!r}; known keys: {', '.join(_KEYS)}")
            if field in values:
                raise ValueError(f"impairment spec: {field} given twice")
            value = value.strip()
            if field in _PROBABILITIES:
                values[field] = _parse_probability(key, value)
            elif field in ("delay", "jitter"):
                values[field] = parse_time(key, value)
            elif field == "rate":
                values[field] = parse_rate(key, value)
            else:
                values[field] = _parse_int(key, value)
        return cls(**values)  # type: ignore[arg-type]  # keys and value types checked above

    def __str__(self) -> str:
        """The canonical spec string; ``ImpairSpec.parse(str(spec)) == spec``."""
        parts: list[str] = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value == f.default:
                continue
            key = _CANONICAL_KEYS[f.name]
            if f.name in _PROBABILITIES:
                parts.append(f"{key}={_decimal_text(Decimal(repr(value)) * 100)}%")
            elif f.name in ("delay", "jitter"):
                parts.append(f"{key}={_format_time(value)}")
            elif f.name == "rate":
                parts.append(f"{key}={_format_rate(value)}")
            else:
                parts.append(f"{key}={value}")
        return ",".join(parts) if parts else "none"

    @property
    def is_perfect(self) -> bool:
        """True when frames pass untouched and at once (the seed does not matter)."""
        return dataclasses.replace(self, seed=None) == ImpairSpec()


def _ip_offset(data: bytes) -> int:
    """Where the IP header of a frame starts: after an Ethernet II header (TAP, pair) or at 0 (a bare
    IP packet: TUN, loopback); -1 when it holds neither IPv4 nor IPv6."""
    if len(data) >= 34 and data[12:14] in (b"\x08\x00", b"\x86\xdd") and data[14] >> 4 in (4, 6):
        return 14
    if len(data) >= 20 and data[0] >> 4 == 4 and data[0] & 0x0F >= 5:
        return 0
    if len(data) >= 40 and data[0] >> 4 == 6:
        return 0
    return -1


def _checksum_help(data: bytes) -> bytearray:
    """A copy of ``data`` with its TCP checksum whole (it may hold only the pseudo-header sum), as
    Linux's ``skb_checksum_help`` makes one before a device that cannot finish it.  Only a whole TCP
    packet has a checksum left partial: anything else (a fragment, a truncated header) is copied as it is."""
    off = _ip_offset(data)
    if off < 0:
        return bytearray(data)
    if data[off] >> 4 == 4:
        whole = int.from_bytes(data[off + 6:off + 8], "big") & 0x3FFF == 0  # neither MF nor an offset
        l4 = off + (data[off] & 0x0F) * 4
    else:
        whole, l4 = True, off + 40  # an IPv6 fragment's next header is not TCP: nothing to complete
    return complete_tcp_checksum(data, off) if whole and len(data) >= l4 + 20 else bytearray(data)


class _Held:
    """A frame held back for reordering."""

    __slots__ = ("data", "fallback", "remaining")

    def __init__(self, remaining: int, fallback: float, data: bytes) -> None:
        self.remaining = remaining  # scheduled frames still to overtake it
        self.fallback = fallback  # delivered in order at this time if not overtaken by then
        self.data = data


class Impairment:
    """One direction of an impaired link: :meth:`push` frames in, :meth:`pop_due` them out.

    ``seed`` overrides ``spec.seed``; when both are None a random seed is drawn and kept in
    :attr:`seed`, so it can be logged and the run replayed.  See the module docstring for the model.
    """

    def __init__(
        self,
        spec: ImpairSpec,
        *,
        seed: int | None = None,
        corrupt_offset: int = 0,
        reorder_depth: int = 1,
        reorder_max_hold: float = 0.010,
    ) -> None:
        if seed is None:
            seed = spec.seed
        if seed is None:
            seed = int.from_bytes(os.urandom(8), "big")
        if corrupt_offset < 0:
            raise ValueError(f"corrupt_offset must be >= 0, got {corrupt_offset}")
        if reorder_depth < 1:
            raise ValueError(f"reorder_depth must be >= 1, got {reorder_depth}")
        if not reorder_max_hold >= 0:
            raise ValueError(f"reorder_max_hold must be >= 0, got {reorder_max_hold}")
        self.spec = spec
        self.seed = seed
        self.corrupt_offset = corrupt_offset
        self.reorder_depth = reorder_depth
        self.reorder_max_hold = reorder_max_hold
        # One stream per decision (str seeds hash with SHA-512: stable across runs and versions).
        self._loss_rng = random.Random(f"{seed}/loss")
        self._dup_rng = random.Random(f"{seed}/duplicate")
        self._corrupt_rng = random.Random(f"{seed}/corrupt")
        self._reorder_rng = random.Random(f"{seed}/reorder")
        self._jitter_rng = random.Random(f"{seed}/jitter")
        self._ecn_rng = random.Random(f"{seed}/ecn")
        # Frames scheduled for delivery: (time, sequence, frame); the sequence keeps FIFO on ties.
        self._heap: list[tuple[float, int, bytes]] = []
        self._seq = itertools.count()
        self._held: list[_Held] = []  # frames held back for reordering, oldest first
        self._link_free_at = -math.inf  # when the serializer finishes the last frame (rate)
        self._last_in_order = -math.inf  # delivery time of the latest in-order frame
        self.stats: dict[str, int] = {
            "passed": 0,
            "lost": 0,
            "duplicated": 0,
            "reordered": 0,
            "corrupted": 0,
            "overflow": 0,
            "ce_marked": 0,
        }

    @classmethod
    def pair(cls, spec: ImpairSpec) -> tuple[Impairment, Impairment]:
        """The two directions of one impaired link: outbound with the spec's seed (or a random one),
        inbound with that seed + 1, so both replay from the one seed a run logs."""
        out = cls(spec)
        return out, cls(spec, seed=out.seed + 1)

    @property
    def pending(self) -> int:
        """Frames pushed but not yet handed out by :meth:`pop_due`."""
        return len(self._heap) + len(self._held)

    def push(self, frame: Frame, now: float) -> None:
        """Offer one frame to the link at time ``now``."""
        spec = self.spec
        stats = self.stats
        if spec.limit and self.pending >= spec.limit:
            stats["overflow"] += 1
            return
        if spec.loss and self._loss_rng.random() < spec.loss:
            stats["lost"] += 1
            return
        # Our own copy, as the caller may reuse its buffer; an immutable frame is kept as it is, so a
        # TrustedFrame keeps its mark.
        data = frame if isinstance(frame, bytes) else bytes(frame)
        if spec.ecn and self._ecn_rng.random() < spec.ecn:
            data = self._mark_ce(data)
        if spec.duplicate and self._dup_rng.random() < spec.duplicate:
            stats["duplicated"] += 1
            first = self._transmit(data, now, None)
            self._transmit(data, now, first)
        else:
            self._transmit(data, now, None)

    def _transmit(self, data: bytes, now: float, twin: _Held | None) -> _Held | None:
        """Schedule one copy; returns its hold record if reordering held it back.  ``twin`` is the
        held first copy of a duplicate: the second copy does not count as overtaking it, since
        nobody could see the difference."""
        spec = self.spec
        if spec.corrupt and self._corrupt_rng.random() < spec.corrupt:
            data = self._corrupt(data)
        if spec.rate:
            done = max(now, self._link_free_at) + len(data) * 8 / spec.rate
            self._link_free_at = done
        else:
            done = now
        when = done + spec.delay
        if spec.jitter:
            when = max(done, when + self._jitter_rng.uniform(-spec.jitter, spec.jitter))
        when = max(when, self._last_in_order)
        if spec.reorder and self._reorder_rng.random() < spec.reorder:
            held = _Held(self.reorder_depth, when + self.reorder_max_hold, data)
            self._held.append(held)
            return held
        self._last_in_order = when
        heapq.heappush(self._heap, (when, next(self._seq), data))
        if self._held:
            self._overtake(when, twin)
        return None

    def _corrupt(self, data: bytes) -> bytes:
        if len(data) <= self.corrupt_offset:
            return data  # nothing we are allowed to touch
        rng = self._corrupt_rng
        buf = _checksum_help(data)
        buf[rng.randrange(self.corrupt_offset, len(buf))] ^= rng.randint(1, 255)
        self.stats["corrupted"] += 1
        return PlainFrame(buf)

    def _mark_ce(self, data: bytes) -> bytes:
        """RFC 3168 §5: set CE on an ECT packet (IPv4 TOS or IPv6 traffic class); others unchanged."""
        off = _ip_offset(data)
        if off < 0:
            return data
        buf = bytearray(data)
        if buf[off] >> 4 == 4:
            if not buf[off + 1] & 3:
                return data
            buf[off + 1] |= 3
            ihl = (buf[off] & 0x0F) * 4
            buf[off + 10:off + 12] = b"\0\0"
            buf[off + 10:off + 12] = checksum(buf[off:off + ihl]).to_bytes(2, "big")
        else:
            if not buf[off + 1] & 0x30:  # the traffic class's low two bits sit in bits 4-5 here
                return data
            buf[off + 1] |= 0x30
        self.stats["ce_marked"] += 1
        return type(data)(buf)  # the TCP checksum is untouched: a mark stays

    def _overtake(self, when: float, twin: _Held | None) -> None:
        """A frame was just scheduled at ``when``: count it against every held frame (but its own
        ``twin``) and release those it was the last to overtake, right behind it."""
        still_held: list[_Held] = []
        for held in self._held:
            if held.fallback < when:
                # Its hold expires before this frame arrives: it goes out at the fallback, ahead of it.
                self._release(held)
            elif held is twin:
                still_held.append(held)
            elif held.remaining <= 1:
                self.stats["reordered"] += 1
                heapq.heappush(self._heap, (when, next(self._seq), held.data))
            else:
                held.remaining -= 1
                still_held.append(held)
        self._held = still_held

    def _release(self, held: _Held) -> None:
        """Deliver a held frame at its fallback time; it is reordered if anything overtook it meanwhile."""
        if held.remaining < self.reorder_depth:
            self.stats["reordered"] += 1
        heapq.heappush(self._heap, (held.fallback, next(self._seq), held.data))

    def _release_expired(self, now: float) -> None:
        still_held: list[_Held] = []
        for held in self._held:
            if held.fallback <= now:
                self._release(held)
            else:
                still_held.append(held)
        self._held = still_held

    def pop_due(self, now: float) -> list[bytes]:
        """Every frame whose delivery time is ``<= now``, in delivery order."""
        if self._held:
            self._release_expired(now)
        heap = self._heap
        out: list[bytes] = []
        while heap and heap[0][0] <= now:
            out.append(heapq.heappop(heap)[2])
        self.stats["passed"] += len(out)
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`pop_due` will next have something to return, or None when nothing is pending."""
        deadline = self._heap[0][0] if self._heap else None
        for held in self._held:
            if deadline is None or held.fallback < deadline:
                deadline = held.fallback
        return deadline

    def __repr__(self) -> str:
        return f"<Impairment {self.spec} seed={self.seed} pending={self.pending} {self.stats}>"
