"""DNS messages (RFC 1035 §4.1), with name compression (§4.1.4) and TCP framing (§4.2.2).

Layout::

    header (12): id | QR opcode AA TC RD RA Z rcode | qdcount | ancount | nscount | arcount
    question:    name | qtype (2) | qclass (2)
    record:      name | type (2) | class (2) | ttl (4) | rdlength (2) | rdata

Names are label sequences ending in the root label; any suffix may be a 14-bit pointer to an
earlier occurrence (§4.1.4), which :meth:`Message.build` uses and :meth:`Message.parse` follows,
bounding the jumps so a pointer loop is :class:`Malformed`, not a hang.  A/AAAA data decodes to
the address text, CNAME/PTR/NS data to a name (RFC 1035 §3.3.1, §3.3.11-12, RFC 3596 §2.2); any
other type keeps its raw bytes.  Records are copies, not views: they outlive the receive buffer
(the resolver caches them).  The TTL's top bit is cleared (RFC 2181 §8: values above 2^31-1 are
treated as zero by sane receivers; we keep the low 31 bits as we always did).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

from pytcp_green.stack.wire import Malformed

TYPE_A = 1
TYPE_NS = 2
TYPE_CNAME = 5
TYPE_SOA = 6
TYPE_PTR = 12
TYPE_AAAA = 28
CLASS_IN = 1

RCODE_NOERROR = 0
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_REFUSED = 5

DNS_HEADER_LEN = 12
_HEADER = struct.Struct("!HHHHHH")
_QFIXED = struct.Struct("!HH")
_RRFIXED = struct.Struct("!HHIH")
_POINTER = struct.Struct("!H")
# RFC 1035 §4.2.2: over TCP each message is prefixed by its length as two octets.
TCP_LENGTH = struct.Struct("!H")

_NAME_TYPES = (TYPE_CNAME, TYPE_PTR, TYPE_NS)
_MAX_JUMPS = 64  # more pointers than any real name has labels: a loop


class BadName(ValueError):
    """A name that cannot be encoded (a label longer than 63 octets, a name over 255)."""


@dataclass
class Question:
    name: str
    qtype: int
    qclass: int = CLASS_IN


@dataclass
class Record:
    """A resource record; ``data`` is decoded for A/AAAA (address string) and CNAME/PTR/NS (a name)."""

    name: str
    rtype: int
    rclass: int
    ttl: int
    data: str | bytes


@dataclass
class Message:
    id: int = 0
    qr: bool = False
    opcode: int = 0
    aa: bool = False
    tc: bool = False
    rd: bool = True
    ra: bool = False
    rcode: int = RCODE_NOERROR
    questions: list[Question] = field(default_factory=list)
    answers: list[Record] = field(default_factory=list)
    authority: list[Record] = field(default_factory=list)
    additional: list[Record] = field(default_factory=list)

    def build(self) -> bytes:
        """The message on the wire, names compressed; :class:`BadName` for a name that has no encoding."""
        flags = ((self.qr << 15) | ((self.opcode & 0xF) << 11) | (self.aa << 10) | (self.tc << 9)
                 | (self.rd << 8) | (self.ra << 7) | (self.rcode & 0xF))
        out = bytearray(_HEADER.pack(self.id, flags, len(self.questions), len(self.answers),
                                     len(self.authority), len(self.additional)))
        names: dict[str, int] = {}
        for q in self.questions:
            _write_name(out, q.name, names)
            out += _QFIXED.pack(q.qtype, q.qclass)
        for rr in (*self.answers, *self.authority, *self.additional):
            _write_name(out, rr.name, names)
            rdata = _rdata(rr, out, names)
            out += _RRFIXED.pack(rr.rtype, rr.rclass, rr.ttl, len(rdata))
            out += rdata
        return bytes(out)

    @classmethod
    def parse(cls, buf: memoryview) -> Message:
        """Parse the message in ``buf``; raise :class:`Malformed` when it does not hold together."""
        if len(buf) < DNS_HEADER_LEN:
            raise Malformed("too_short")
        ident, flags, qd, an, ns, ar = _HEADER.unpack_from(buf)
        msg = cls(id=ident, qr=bool(flags >> 15), opcode=(flags >> 11) & 0xF, aa=bool(flags & 0x400),
                  tc=bool(flags & 0x200), rd=bool(flags & 0x100), ra=bool(flags & 0x80), rcode=flags & 0xF)
        offset = DNS_HEADER_LEN
        for _ in range(qd):
            name, offset = _read_name(buf, offset)
            if offset + _QFIXED.size > len(buf):
                raise Malformed("truncated_question")
            qtype, qclass = _QFIXED.unpack_from(buf, offset)
            offset += _QFIXED.size
            msg.questions.append(Question(name, qtype, qclass))
        for section, count in ((msg.answers, an), (msg.authority, ns), (msg.additional, ar)):
            for _ in range(count):
                rr, offset = _read_record(buf, offset)
                section.append(rr)
        return msg

    # The bytes-in/bytes-out spelling the toy name servers in tests and user scripts have always used.
    @classmethod
    def decode(cls, data: bytes) -> Message:
        return cls.parse(memoryview(data))

    encode = build


def _write_name(out: bytearray, name: str, names: dict[str, int]) -> None:
    """Append ``name``, pointing at an earlier occurrence of any suffix (RFC 1035 §4.1.4)."""
    labels = [label for label in name.rstrip(".").split(".") if label] if name not in ("", ".") else []
    encoded = [label.encode("idna") if not label.isascii() else label.encode("ascii") for label in labels]
    if sum(len(e) + 1 for e in encoded) + 1 > 255:
        raise BadName(f"name too long: {name!r}")
    for i in range(len(encoded)):
        suffix = ".".join(labels[i:]).lower()
        pointer = names.get(suffix)
        if pointer is not None:
            out += _POINTER.pack(0xC000 | pointer)
            return
        if len(out) < 0x4000:  # a pointer has 14 bits of offset
            names[suffix] = len(out)
        if not 0 < len(encoded[i]) <= 63:
            raise BadName(f"bad label in {name!r}")
        out.append(len(encoded[i]))
        out += encoded[i]
    out.append(0)


def _read_name(buf: memoryview, offset: int) -> tuple[str, int]:
    """A name at ``offset`` and the offset after it (after the first pointer, if compressed)."""
    labels: list[str] = []
    end: int | None = None
    jumps = 0
    total = 0
    while True:
        if offset >= len(buf):
            raise Malformed("name_past_end")
        length = buf[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(buf):
                raise Malformed("truncated_pointer")
            if end is None:
                end = offset + 2
            jumps += 1
            if jumps > _MAX_JUMPS:
                raise Malformed("compression_loop")
            offset = ((length & 0x3F) << 8) | buf[offset + 1]
            continue
        if length & 0xC0:  # 0x40 and 0x80: the extended label types RFC 6891 §5 retired
            raise Malformed("reserved_label_type")
        offset += 1
        if length == 0:
            break
        if offset + length > len(buf):
            raise Malformed("label_past_end")
        total += length + 1
        if total > 255:
            raise Malformed("name_too_long")
        labels.append(bytes(buf[offset: offset + length]).decode("ascii", "replace"))
        offset += length
    return ".".join(labels), (offset if end is None else end)


def _rdata(rr: Record, out: bytearray, names: dict[str, int]) -> bytes:
    if rr.rtype == TYPE_A and isinstance(rr.data, str):
        return ipaddress.IPv4Address(rr.data).packed
    if rr.rtype == TYPE_AAAA and isinstance(rr.data, str):
        return ipaddress.IPv6Address(rr.data).packed
    if rr.rtype in _NAME_TYPES and isinstance(rr.data, str):
        # Compression inside RDATA needs the final offset: the name starts after the fixed fields.
        scratch = bytearray(out)
        scratch += b"\0" * _RRFIXED.size
        start = len(scratch)
        _write_name(scratch, rr.data, names)
        return bytes(scratch[start:])
    return bytes(rr.data) if isinstance(rr.data, (bytes, bytearray)) else rr.data.encode()


def _read_record(buf: memoryview, offset: int) -> tuple[Record, int]:
    name, offset = _read_name(buf, offset)
    if offset + _RRFIXED.size > len(buf):
        raise Malformed("truncated_record")
    rtype, rclass, ttl, rdlength = _RRFIXED.unpack_from(buf, offset)
    offset += _RRFIXED.size
    end = offset + rdlength
    if end > len(buf):
        raise Malformed("rdata_past_end")
    value: str | bytes
    if rtype == TYPE_A and rdlength == 4:
        value = str(ipaddress.IPv4Address(bytes(buf[offset:end])))
    elif rtype == TYPE_AAAA and rdlength == 16:
        value = str(ipaddress.IPv6Address(bytes(buf[offset:end])))
    elif rtype in _NAME_TYPES:
        value, _ = _read_name(buf, offset)
    else:
        value = bytes(buf[offset:end])
    return Record(name, rtype, rclass, ttl & 0x7FFFFFFF, value), end


def reverse_name(address: str) -> str:
    """The PTR owner name of an address: in-addr.arpa (RFC 1035 §3.5) or ip6.arpa (RFC 3596 §2.5)."""
    return ipaddress.ip_address(address).reverse_pointer
