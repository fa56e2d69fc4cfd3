"""What a fault is: its kind, its parameters, which direction and which flows it touches.

The kinds are Toxiproxy's toxics (latency, bandwidth, slow_close, timeout, slicer, limit_data,
reset_peer) moved from a proxy onto the wire, plus ``down`` for a link that stops carrying
frames.  Directions are the stack's: ``in`` is what arrives for it (what the application
receives), ``out`` what it sends, ``both`` either.  A :class:`Match` narrows a fault to TCP
flows by the peer's address and a port (the peer's or the stack's); an empty match takes every
frame for the packet faults (latency, bandwidth, timeout, down) and every TCP flow for the
others.

Faults are written as words, the same in Python and in ``pytcp-green ctl faults add``:
``latency delay=100ms jitter=10ms direction=in port=8000``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, fields
from typing import ClassVar

from pytcp_green.link.impair import parse_rate, parse_time

DIRECTIONS = ("in", "out", "both")


@dataclass(frozen=True)
class Match:
    """Which TCP flows a fault touches: the peer's address and/or a port at either end (None: any)."""

    host: str | None = None
    port: int | None = None

    def __post_init__(self) -> None:
        if self.host is not None:
            object.__setattr__(self, "host", str(ipaddress.ip_address(self.host)))
        if self.port is not None and not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} is not in 1..65535")

    @property
    def any(self) -> bool:
        return self.host is None and self.port is None

    def packed_host(self) -> bytes | None:
        return ipaddress.ip_address(self.host).packed if self.host is not None else None

    def __str__(self) -> str:
        parts = [f"host={self.host}"] if self.host else []
        return " ".join([*parts, *([f"port={self.port}"] if self.port else [])])


@dataclass(frozen=True)
class Kind:
    """Base of the fault kinds: ``name`` is the word that names it, fields are its parameters."""

    name: ClassVar[str]
    packet_level: ClassVar[bool] = False  # True: applies to any frame when the match is empty
    default_direction: ClassVar[str] = "in"

    def words(self) -> str:
        out = [self.name]
        for f in fields(self):
            value = getattr(self, f.name)
            if value != f.default:
                out.append(f"{f.name}={_format(f.name, value)}")
        return " ".join(out)


@dataclass(frozen=True)
class Latency(Kind):
    """Each frame waits ``delay`` (± a uniform ``jitter``, never reordering them)."""

    name: ClassVar[str] = "latency"
    packet_level: ClassVar[bool] = True
    delay: float = 0.0
    jitter: float = 0.0


@dataclass(frozen=True)
class Bandwidth(Kind):
    """Frames leave one after the other at ``rate`` bits per second."""

    name: ClassVar[str] = "bandwidth"
    packet_level: ClassVar[bool] = True
    rate: float = 0.0


@dataclass(frozen=True)
class Timeout(Kind):
    """A stall: frames are taken and never delivered, until the fault is removed."""

    name: ClassVar[str] = "timeout"
    packet_level: ClassVar[bool] = True


@dataclass(frozen=True)
class Down(Kind):
    """The link is down: no frame either way, ARP and neighbour discovery included."""

    name: ClassVar[str] = "down"
    packet_level: ClassVar[bool] = True
    default_direction: ClassVar[str] = "both"


@dataclass(frozen=True)
class Slicer(Kind):
    """Each TCP segment's payload is cut into segments of ``size`` bytes, ``delay`` apart."""

    name: ClassVar[str] = "slicer"
    size: int = 1
    delay: float = 0.0


@dataclass(frozen=True)
class LimitData(Kind):
    """After ``bytes`` bytes of a flow's data (counted from the fault's first segment of it) the
    receiver gets a FIN at that byte and the sender a RST: EOF at the byte, as Toxiproxy's
    limit_data closes the connection."""

    name: ClassVar[str] = "limit_data"
    bytes: int = 0


@dataclass(frozen=True)
class ResetPeer(Kind):
    """The next segment of a matching flow, ``after`` seconds or later once added, resets the
    connection at both ends (a SYN is refused): the application sees ECONNRESET."""

    name: ClassVar[str] = "reset_peer"
    default_direction: ClassVar[str] = "both"
    after: float = 0.0


@dataclass(frozen=True)
class SlowClose(Kind):
    """A FIN (and a RST) is held ``delay`` before it goes on."""

    name: ClassVar[str] = "slow_close"
    delay: float = 0.0


KINDS: dict[str, type[Kind]] = {k.name: k for k in (Latency, Bandwidth, Timeout, Down, Slicer, LimitData,
                                                    ResetPeer, SlowClose)}
_TIMES = ("delay", "jitter", "after")


def _format(name: str, value: object) -> str:
    if name in _TIMES:
        return f"{value}s"
    if name == "rate":
        return f"{value}bit"
    return str(value)


@dataclass(frozen=True)
class FaultSpec:
    """One fault as asked for: a kind, a direction and a match."""

    kind: Kind
    direction: str = "in"
    match: Match = field(default_factory=Match)

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction {self.direction!r}: one of {', '.join(DIRECTIONS)}")

    def __str__(self) -> str:
        return " ".join(filter(None, (self.kind.words(), f"direction={self.direction}", str(self.match))))

    @classmethod
    def parse(cls, words: list[str] | str) -> FaultSpec:
        """``["latency", "delay=100ms", "direction=in", "port=8000"]`` (or the same as one string)."""
        if isinstance(words, str):
            words = words.split()
        if not words:
            raise ValueError(f"a fault starts with its kind: {', '.join(KINDS)}")
        kind_name, *items = words
        if kind_name not in KINDS:
            raise ValueError(f"unknown fault {kind_name!r}; known: {', '.join(KINDS)}")
        values: dict[str, str] = {}
        for item in items:
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"fault parameter {item!r} is not key=value")
            if key in values:
                raise ValueError(f"fault parameter {key} given twice")
            values[key] = value
        return make(kind_name, **values)


def make(kind_name: str, *, direction: str | None = None, host: str | None = None, port: int | str | None = None,
         **params: object) -> FaultSpec:
    """A :class:`FaultSpec` from keyword arguments: times and rates as numbers (seconds, bits/s) or
    strings with units (``"100ms"``, ``"1mbit"``)."""
    kind_type = KINDS.get(kind_name)
    if kind_type is None:
        raise ValueError(f"unknown fault {kind_name!r}; known: {', '.join(KINDS)}")
    known = {f.name for f in fields(kind_type)}
    unknown = set(params) - known
    if unknown:
        raise ValueError(f"{kind_name} has no parameter {', '.join(sorted(unknown))}; it takes: "
                         f"{', '.join(sorted(known)) or 'nothing'}, direction, host, port")
    converted: dict[str, float | int] = {}
    for name, value in params.items():
        converted[name] = _convert(kind_name, name, value)
    kind = kind_type(**converted)  # names checked against the dataclass fields above
    _check(kind)
    match = Match(host=host, port=int(port) if port is not None else None)
    return FaultSpec(kind, direction or kind_type.default_direction, match)


def _convert(kind_name: str, name: str, value: object) -> float | int:
    key = f"{kind_name} {name}"
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{key}={value!r}: expected a number or a string with a unit")
    if name in _TIMES:
        return parse_time(key, value) if isinstance(value, str) else float(value)
    if name == "rate":
        return parse_rate(key, value) if isinstance(value, str) else float(value)
    text = str(value)
    if not text.isdigit():
        raise ValueError(f"{key}={value!r}: expected a non-negative integer")
    return int(text)


def _check(kind: Kind) -> None:
    if isinstance(kind, Bandwidth) and kind.rate <= 0:
        raise ValueError("bandwidth needs rate > 0, e.g. rate=1mbit")
    if isinstance(kind, Slicer) and kind.size < 1:
        raise ValueError("slicer needs size >= 1 (bytes)")
    if isinstance(kind, LimitData) and kind.bytes < 0:
        raise ValueError("limit_data needs bytes >= 0")
    if isinstance(kind, Latency) and kind.jitter > kind.delay:
        raise ValueError("latency jitter cannot exceed its delay")
