"""Name resolution for the patched ``socket`` module, without the kernel's resolver.

Order, as glibc's ``hosts: files dns``: numeric addresses, ``localhost`` (RFC 6761 §6.3), the
hosts file (``/etc/hosts``, or ``PYTCP_GREEN_HOSTS_FILE``), then a stub resolver that sends
RFC 1035 queries over the stack's own UDP (and TCP when a reply comes back truncated and the
stack has TCP) to the configured name servers (``patch_all(dns=[...])`` or ``PYTCP_GREEN_DNS``,
comma-separated, each ``ADDR`` or ``ADDR:PORT``), else to those the stack learned by DHCP
(``patch_all(dhcp=True)``, ``--dhcp``; looked up at each query, so a renewal's change applies).
With no name servers at all, names that the first three steps do not know fail with
``EAI_NONAME``: nothing ever reaches libc's ``getaddrinfo`` for a name.

Implements ``getaddrinfo``, ``gethostbyname``, ``gethostbyname_ex``, ``gethostbyaddr``,
``getnameinfo`` and ``getfqdn`` with the stdlib's signatures, results and errors
(``socket.gaierror``/``socket.herror`` with the glibc ``EAI_*`` codes and messages), and the DNS
message codec (:class:`Message`) used by the resolver and by tests' toy servers.
"""

from __future__ import annotations

import _socket
import errno
import ipaddress
import os
import re
import secrets
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from pytcp_green.patches import _state
from pytcp_green.patches._common import family_enum, has_ipv6, kind_enum

# What this module replaces in ``socket`` (see :func:`pytcp_green.patches._state.patch_module`).
__implements__ = ["getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo", "getfqdn"]

AF_UNSPEC = _socket.AF_UNSPEC
AF_INET = _socket.AF_INET
AF_INET6 = _socket.AF_INET6
SOCK_STREAM = _socket.SOCK_STREAM
SOCK_DGRAM = _socket.SOCK_DGRAM
SOCK_RAW = _socket.SOCK_RAW
IPPROTO_TCP = _socket.IPPROTO_TCP
IPPROTO_UDP = _socket.IPPROTO_UDP

gaierror = _socket.gaierror
herror = _socket.herror

# glibc's gai_strerror() texts, which Python programs see in gaierror.args[1].
_EAI_TEXT = {
    _socket.EAI_NONAME: "Name or service not known",
    _socket.EAI_AGAIN: "Temporary failure in name resolution",
    _socket.EAI_FAIL: "Non-recoverable failure in name resolution",
    _socket.EAI_FAMILY: "ai_family not supported",
    _socket.EAI_SOCKTYPE: "ai_socktype not supported",
    _socket.EAI_SERVICE: "Servname not supported for ai_socktype",
    _socket.EAI_BADFLAGS: "Bad value for ai_flags",
    getattr(_socket, "EAI_ADDRFAMILY", -9): "Address family for hostname not supported",
    getattr(_socket, "EAI_NODATA", -5): "No address associated with hostname",
}
EAI_ADDRFAMILY = getattr(_socket, "EAI_ADDRFAMILY", -9)
EAI_NODATA = getattr(_socket, "EAI_NODATA", -5)


def _gai(code: int) -> gaierror:
    return gaierror(code, _EAI_TEXT.get(code, "Unknown error"))


# ==================================================================================================
# RFC 1035 messages
# ==================================================================================================
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

_HEADER = struct.Struct("!HHHHHH")
_QFIXED = struct.Struct("!HH")
_RRFIXED = struct.Struct("!HHIH")


class DnsFormatError(ValueError):
    """A message that does not parse; the resolver treats it as no answer from that server."""


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

    # -- encoding ------------------------------------------------------------------------------------
    def encode(self) -> bytes:
        flags = ((self.qr << 15) | ((self.opcode & 0xF) << 11) | (self.aa << 10) | (self.tc << 9)
                 | (self.rd << 8) | (self.ra << 7) | (self.rcode & 0xF))
        out = bytearray(_HEADER.pack(self.id, flags, len(self.questions), len(self.answers),
                                     len(self.authority), len(self.additional)))
        names: dict[str, int] = {}
        for q in self.questions:
            _encode_name(out, q.name, names)
            out += _QFIXED.pack(q.qtype, q.qclass)
        for rr in (*self.answers, *self.authority, *self.additional):
            _encode_name(out, rr.name, names)
            rdata = _encode_rdata(rr, out, names)
            out += _RRFIXED.pack(rr.rtype, rr.rclass, rr.ttl, len(rdata))
            out += rdata
        return bytes(out)

    # -- decoding ------------------------------------------------------------------------------------
    @classmethod
    def decode(cls, data: bytes) -> Message:
        if len(data) < _HEADER.size:
            raise DnsFormatError("shorter than a header")
        ident, flags, qd, an, ns, ar = _HEADER.unpack_from(data)
        msg = cls(id=ident, qr=bool(flags >> 15), opcode=(flags >> 11) & 0xF, aa=bool(flags & 0x400),
                  tc=bool(flags & 0x200), rd=bool(flags & 0x100), ra=bool(flags & 0x80), rcode=flags & 0xF)
        offset = _HEADER.size
        for _ in range(qd):
            name, offset = _decode_name(data, offset)
            if offset + 4 > len(data):
                raise DnsFormatError("truncated question")
            qtype, qclass = _QFIXED.unpack_from(data, offset)
            offset += 4
            msg.questions.append(Question(name, qtype, qclass))
        for section, count in ((msg.answers, an), (msg.authority, ns), (msg.additional, ar)):
            for _ in range(count):
                rr, offset = _decode_record(data, offset)
                section.append(rr)
        return msg


def _encode_name(out: bytearray, name: str, names: dict[str, int]) -> None:
    """Append ``name``, pointing at an earlier occurrence of any suffix (RFC 1035 §4.1.4)."""
    labels = [label for label in name.rstrip(".").split(".") if label] if name not in ("", ".") else []
    encoded = [label.encode("idna") if not label.isascii() else label.encode("ascii") for label in labels]
    if sum(len(e) + 1 for e in encoded) + 1 > 255:
        raise DnsFormatError(f"name too long: {name!r}")
    for i in range(len(encoded)):
        suffix = ".".join(labels[i:]).lower()
        pointer = names.get(suffix)
        if pointer is not None:
            out += struct.pack("!H", 0xC000 | pointer)
            return
        if len(out) < 0x4000:
            names[suffix] = len(out)
        if not 0 < len(encoded[i]) <= 63:
            raise DnsFormatError(f"bad label in {name!r}")
        out.append(len(encoded[i]))
        out += encoded[i]
    out.append(0)


def _decode_name(data: bytes, offset: int) -> tuple[str, int]:
    """A name at ``offset`` and the offset after it (after the first pointer, if compressed)."""
    labels: list[str] = []
    end: int | None = None
    jumps = 0
    total = 0
    while True:
        if offset >= len(data):
            raise DnsFormatError("name runs past the message")
        length = data[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(data):
                raise DnsFormatError("truncated pointer")
            if end is None:
                end = offset + 2
            jumps += 1
            if jumps > 64:  # a pointer loop
                raise DnsFormatError("compression loop")
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            continue
        if length & 0xC0:
            raise DnsFormatError("reserved label type")
        offset += 1
        if length == 0:
            break
        if offset + length > len(data):
            raise DnsFormatError("label runs past the message")
        total += length + 1
        if total > 255:
            raise DnsFormatError("name longer than 255 octets")
        labels.append(data[offset: offset + length].decode("ascii", "replace"))
        offset += length
    return ".".join(labels), (offset if end is None else end)


def _encode_rdata(rr: Record, out: bytearray, names: dict[str, int]) -> bytes:
    if rr.rtype == TYPE_A and isinstance(rr.data, str):
        return ipaddress.IPv4Address(rr.data).packed
    if rr.rtype == TYPE_AAAA and isinstance(rr.data, str):
        return ipaddress.IPv6Address(rr.data).packed
    if rr.rtype in (TYPE_CNAME, TYPE_PTR, TYPE_NS) and isinstance(rr.data, str):
        # Compression inside RDATA needs the final offset: the name starts after the fixed fields.
        scratch = bytearray(out)
        scratch += b"\0" * _RRFIXED.size
        start = len(scratch)
        _encode_name(scratch, rr.data, names)
        return bytes(scratch[start:])
    return bytes(rr.data) if isinstance(rr.data, (bytes, bytearray)) else rr.data.encode()


def _decode_record(data: bytes, offset: int) -> tuple[Record, int]:
    name, offset = _decode_name(data, offset)
    if offset + _RRFIXED.size > len(data):
        raise DnsFormatError("truncated record")
    rtype, rclass, ttl, rdlength = _RRFIXED.unpack_from(data, offset)
    offset += _RRFIXED.size
    end = offset + rdlength
    if end > len(data):
        raise DnsFormatError("rdata runs past the message")
    value: str | bytes
    if rtype == TYPE_A and rdlength == 4:
        value = str(ipaddress.IPv4Address(data[offset:end]))
    elif rtype == TYPE_AAAA and rdlength == 16:
        value = str(ipaddress.IPv6Address(data[offset:end]))
    elif rtype in (TYPE_CNAME, TYPE_PTR, TYPE_NS):
        value, _ = _decode_name(data, offset)
    else:
        value = bytes(data[offset:end])
    return Record(name, rtype, rclass, ttl & 0x7FFFFFFF, value), end


def reverse_name(address: str) -> str:
    """The PTR owner name of an address (in-addr.arpa / ip6.arpa)."""
    return ipaddress.ip_address(address).reverse_pointer


# ==================================================================================================
# Configuration: hosts file, name servers
# ==================================================================================================
HOSTS_FILE_ENV = "PYTCP_GREEN_HOSTS_FILE"
DNS_ENV = "PYTCP_GREEN_DNS"


@dataclass
class HostsEntry:
    address: str
    canonical: str
    aliases: list[str]


class HostsFile:
    """/etc/hosts, re-read when its modification time changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self.entries: list[HostsEntry] = []

    def _load(self) -> None:
        try:
            st = os.stat(self.path)
        except OSError:
            self.entries, self._stamp = [], None
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        entries: list[HostsEntry] = []
        with open(self.path, encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split("#", 1)[0].split()
                if len(fields) < 2:
                    continue
                try:
                    addr = str(ipaddress.ip_address(fields[0].split("%", 1)[0]))
                except ValueError:
                    continue
                entries.append(HostsEntry(addr, fields[1], fields[2:]))
        self.entries, self._stamp = entries, stamp

    def by_name(self, name: str) -> list[HostsEntry]:
        self._load()
        key = name.lower().rstrip(".")
        return [e for e in self.entries if e.canonical.lower() == key or key in (a.lower() for a in e.aliases)]

    def by_address(self, address: str) -> HostsEntry | None:
        self._load()
        for e in self.entries:
            if e.address == address:
                return e
        return None


@dataclass
class Config:
    servers: list[tuple[str, int]] = field(default_factory=list)
    hosts_path: str = "/etc/hosts"
    timeout: float = 2.0
    attempts: int = 2


def parse_servers(spec: list[str] | str | None) -> list[tuple[str, int]]:
    """``["198.18.0.1", "127.0.0.1:5353", "[::1]:53"]`` or a comma-separated string -> (addr, port)."""
    if spec is None:
        return []
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s).strip() for s in spec]
    out: list[tuple[str, int]] = []
    for item in items:
        if not item:
            continue
        port = 53
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            if rest.startswith(":"):
                port = int(rest[1:])
        elif item.count(":") == 1:
            host, _, p = item.partition(":")
            port = int(p)
        else:
            host = item
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"name server {item!r}: give a numeric address") from None
        out.append((host, port))
    return out


_config = Config()
_hosts = HostsFile(_config.hosts_path)


def configure(servers: list[str] | str | None = None, hosts_path: str | None = None,
              timeout: float | None = None) -> None:
    """Set the resolver's name servers and hosts file (patch_all calls this)."""
    global _hosts
    if servers is None:
        servers = os.environ.get(DNS_ENV) or None
    _config.servers = parse_servers(servers)
    path = hosts_path or os.environ.get(HOSTS_FILE_ENV) or "/etc/hosts"
    if path != _config.hosts_path or _hosts.path != path:
        _config.hosts_path = path
        _hosts = HostsFile(path)
    if timeout is not None:
        _config.timeout = timeout
    _cache.clear()


def name_servers() -> list[tuple[str, int]]:
    """The servers given explicitly (``patch_all(dns=...)``, ``--dns``, ``PYTCP_GREEN_DNS``)."""
    return list(_config.servers)


def effective_servers() -> list[tuple[str, int]]:
    """The servers queries go to: the explicit ones, else those the stack learned (DHCP option 6,
    RFC 2132 §3.8, kept current across renewals in ``Stack.dns_servers``)."""
    if _config.servers:
        return list(_config.servers)
    if not _state.has_host():
        return []
    learned = _state.current_host().stack.dns_servers
    return [(server, 53) for server in learned]


# ==================================================================================================
# The stub resolver
# ==================================================================================================
class _Answer:
    __slots__ = ("addresses", "canonical", "expires", "rcode")

    def __init__(self, rcode: int, canonical: str, addresses: list[str], expires: float) -> None:
        self.rcode = rcode
        self.canonical = canonical
        self.addresses = addresses
        self.expires = expires


_cache: dict[tuple[str, int], _Answer] = {}
_NEGATIVE_TTL = 5.0
_CACHE_LIMIT = 1024


class ResolverError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def query(name: str, qtype: int) -> tuple[str, list[str]]:
    """Ask the name servers for ``qtype`` records of ``name``; (canonical name, values).

    Raises :class:`ResolverError` with an EAI_* code: EAI_NONAME (NXDOMAIN, or no servers),
    EAI_NODATA (the name exists without such records), EAI_AGAIN (no server answered usefully).
    """
    key = (name.lower().rstrip("."), qtype)
    now = time.monotonic()
    hit = _cache.get(key)
    if hit is not None and hit.expires > now:
        return _from_answer(hit)
    servers = effective_servers()
    if not servers:
        raise ResolverError(_socket.EAI_NONAME)
    answer = _ask_servers(key[0], qtype, servers)
    if len(_cache) >= _CACHE_LIMIT:
        _cache.clear()
    _cache[key] = answer
    return _from_answer(answer)


def _from_answer(answer: _Answer) -> tuple[str, list[str]]:
    if answer.rcode == RCODE_NXDOMAIN:
        raise ResolverError(_socket.EAI_NONAME)
    if not answer.addresses:
        raise ResolverError(EAI_NODATA)
    return answer.canonical, list(answer.addresses)


def _ask_servers(name: str, qtype: int, servers: list[tuple[str, int]]) -> _Answer:
    last = _socket.EAI_AGAIN
    for _attempt in range(_config.attempts):
        for server in servers:
            try:
                reply = _exchange(server, name, qtype)
            except (OSError, DnsFormatError):
                continue
            if reply.rcode in (RCODE_NOERROR, RCODE_NXDOMAIN):
                return _interpret(reply, name, qtype)
            last = _socket.EAI_AGAIN if reply.rcode in (RCODE_SERVFAIL, RCODE_REFUSED) else _socket.EAI_FAIL
    raise ResolverError(last)


def _interpret(reply: Message, name: str, qtype: int) -> _Answer:
    """Follow the CNAME chain from ``name`` through the answer section (RFC 1034 §3.6.2)."""
    now = time.monotonic()
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
        if canonical.lower() in seen:
            break
        seen.add(canonical.lower())
    values: list[str] = []
    for rr in reply.answers:
        if rr.rtype == qtype and rr.name.lower() == canonical.lower() and isinstance(rr.data, str):
            values.append(rr.data)
            ttl = rr.ttl if ttl is None else min(ttl, rr.ttl)
    if reply.rcode == RCODE_NXDOMAIN or not values:
        return _Answer(reply.rcode, canonical, [], now + _NEGATIVE_TTL)
    return _Answer(reply.rcode, canonical, values, now + (ttl or 0))


def _exchange(server: tuple[str, int], name: str, qtype: int) -> Message:
    """One query to one server over the stack's UDP; retried over TCP when the reply is truncated."""
    from pytcp_green.green.sockets import GreenSocket

    host = _state.current_host()
    family = AF_INET6 if ":" in server[0] else AF_INET
    ident = secrets.randbelow(0x10000)
    query_bytes = Message(id=ident, rd=True, questions=[Question(name, qtype)]).encode()
    sock = GreenSocket(host.runtime, host.stack.socket(family, SOCK_DGRAM), timeout=_config.timeout)
    try:
        # A connected socket only receives from the server (the core's demultiplexer filters), and
        # learns ICMP port-unreachable as ECONNREFUSED, so a dead server fails fast.
        sock.core.connect(server, host.runtime.now())
        sock.sendto(query_bytes, None)
        deadline = host.runtime.now() + _config.timeout
        while True:
            remaining = deadline - host.runtime.now()
            if remaining <= 0:
                raise TimeoutError("timed out")
            data, _source = sock.recvfrom(65535, remaining)
            try:
                reply = Message.decode(data)
            except DnsFormatError:
                continue
            if _matches(reply, ident, name, qtype):
                break
    finally:
        sock.close()
    if reply.tc:
        return _exchange_tcp(server, family, name, qtype)
    return reply


def _exchange_tcp(server: tuple[str, int], family: int, name: str, qtype: int) -> Message:
    """RFC 1035 §4.2.2 (and RFC 7766): the same query over TCP, each message prefixed by its length."""
    from pytcp_green.green.sockets import GreenSocket

    host = _state.current_host()
    ident = secrets.randbelow(0x10000)
    query_bytes = Message(id=ident, rd=True, questions=[Question(name, qtype)]).encode()
    sock = GreenSocket(host.runtime, host.stack.socket(family, SOCK_STREAM), timeout=_config.timeout)
    try:
        deadline = host.runtime.now() + _config.timeout
        sock.connect(server)
        sock.sendall(struct.pack("!H", len(query_bytes)) + query_bytes)
        buf = b""
        while True:
            if len(buf) >= 2 and len(buf) >= 2 + struct.unpack_from("!H", buf)[0]:
                break
            remaining = deadline - host.runtime.now()
            if remaining <= 0:
                raise TimeoutError("timed out")
            chunk = sock.recv(65537, remaining)
            if not chunk:
                raise OSError(errno.ECONNRESET, "name server closed the connection early")
            buf += chunk
        length = struct.unpack_from("!H", buf)[0]
        reply = Message.decode(buf[2: 2 + length])
        if not _matches(reply, ident, name, qtype):
            raise DnsFormatError("reply does not match the query")
        return reply
    finally:
        sock.close()


def _matches(reply: Message, ident: int, name: str, qtype: int) -> bool:
    """Accept only the reply to our question (RFC 5452: id and question must match)."""
    if not reply.qr or reply.id != ident or len(reply.questions) != 1:
        return False
    q = reply.questions[0]
    return q.qtype == qtype and q.name.lower().rstrip(".") == name.lower().rstrip(".")


# ==================================================================================================
# The socket module's resolver functions
# ==================================================================================================
_IPV4_LEGACY = re.compile(r"^(0[xX][0-9a-fA-F]+|[0-9]+)(\.(0[xX][0-9a-fA-F]+|[0-9]+)){0,3}$")


def numeric_address(host: str) -> tuple[int, str] | None:
    """(family, canonical string) when ``host`` is a numeric address (inet_aton forms included)."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0] if ":" in host else host)
    except ValueError:
        pass
    else:
        if ip.version == 4:
            return AF_INET, str(ip)
        return AF_INET6, (str(ip) + ("%" + host.split("%", 1)[1] if "%" in host else ""))
    if _IPV4_LEGACY.match(host):
        try:
            packed = _socket.inet_aton(host)
        except OSError:
            return None
        return AF_INET, _socket.inet_ntoa(packed)
    return None


def _is_localhost(name: str) -> bool:
    n = name.lower().rstrip(".")
    return n == "localhost" or n.endswith(".localhost")


def _host_text(host: Any) -> str:
    if isinstance(host, (bytes, bytearray)):
        return bytes(host).decode("ascii")
    if isinstance(host, str):
        try:
            return host.encode("idna").decode("ascii") if not host.isascii() else host
        except UnicodeError as exc:
            raise UnicodeError(f"encoding with 'idna' codec failed ({exc})") from None
    raise TypeError("getaddrinfo() argument 1 must be string or None")


def _lookup(name: str, family: int) -> tuple[str, list[tuple[int, str]], list[str]]:
    """(canonical name, [(family, address)], aliases) for a non-numeric name, or raise gaierror;
    the addresses in RFC 6724 §6 destination order (as glibc sorts every getaddrinfo answer)."""
    canonical, addrs, aliases = _lookup_unordered(name, family)
    return canonical, rfc6724_order(addrs), aliases


def rfc6724_order(addrs: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """``addrs`` sorted by :func:`pytcp_green.stack.ipv6.addrsel.order_destinations`, which asks the
    current host's stack for the source of each; unchanged with no host or a single address."""
    if len(addrs) < 2 or not _state.has_host():
        return addrs
    from pytcp_green.stack.ipv6.addrsel import order_destinations

    packed = [(b"\0" * 10 + b"\xff\xff" + _socket.inet_aton(text)) if fam == AF_INET
              else _socket.inet_pton(AF_INET6, text.partition("%")[0]) for fam, text in addrs]
    return [addrs[i] for i in order_destinations(_state.current_host().stack, packed)]


def _lookup_unordered(name: str, family: int) -> tuple[str, list[tuple[int, str]], list[str]]:
    want4 = family in (AF_UNSPEC, AF_INET)
    want6 = family == AF_INET6 or (family == AF_UNSPEC and has_ipv6())
    if _is_localhost(name):
        addrs: list[tuple[int, str]] = []
        if want4:
            addrs.append((AF_INET, "127.0.0.1"))
        if want6:
            addrs.append((AF_INET6, "::1"))
        if not addrs:
            raise _gai(EAI_ADDRFAMILY)
        return name, addrs, []
    entries = _hosts.by_name(name)
    if entries:
        found = []
        for e in entries:
            fam = AF_INET6 if ":" in e.address else AF_INET
            if (fam == AF_INET and want4) or (fam == AF_INET6 and want6):
                found.append((fam, e.address))
        if found:
            return entries[0].canonical, found, list(entries[0].aliases)
    results: list[tuple[int, str]] = []
    canonical = name
    errors: list[int] = []
    for fam, qtype, wanted in ((AF_INET, TYPE_A, want4), (AF_INET6, TYPE_AAAA, want6)):
        if not wanted:
            continue
        try:
            canon, values = query(name, qtype)
        except ResolverError as exc:
            errors.append(exc.code)
            continue
        canonical = canon
        results.extend((fam, v) for v in values)
    if results:
        aliases = [name] if canonical.lower() != name.lower().rstrip(".") else []
        return canonical, results, aliases
    if _socket.EAI_AGAIN in errors:
        raise _gai(_socket.EAI_AGAIN)
    if errors and all(code == EAI_NODATA for code in errors):
        raise _gai(EAI_NODATA)
    raise _gai(_socket.EAI_NONAME)


def resolve_for_socket(host: str, family: int) -> str:
    """The numeric address a socket call uses for ``host`` (connect/bind/sendto with a name)."""
    numeric = numeric_address(host)
    if numeric is not None:
        fam, text = numeric
        if fam == family:
            return text
        if family == AF_INET6 and fam == AF_INET:
            return "::ffff:" + text
        raise _gai(EAI_ADDRFAMILY)
    _canonical, addrs, _aliases = _lookup(_host_text(host), family)
    return addrs[0][1]


def _services(port: Any, socktypes: list[tuple[int, int]], flags: int) -> list[tuple[int, int, int]]:
    """[(socktype, proto, port)] for the requested socket types."""
    if port is None:
        return [(t, p, 0) for t, p in socktypes]
    if isinstance(port, int):
        if isinstance(port, bool):
            port = int(port)
        return [(t, p, port) for t, p in socktypes]
    if isinstance(port, (bytes, bytearray)):
        port = bytes(port).decode("ascii")
    if not isinstance(port, str):
        raise OSError("Int or String expected")
    if port.isdigit():
        number = int(port)
        if number > 65535:
            raise _gai(_socket.EAI_SERVICE)
        return [(t, p, number) for t, p in socktypes]
    if flags & _socket.AI_NUMERICSERV:
        raise _gai(_socket.EAI_NONAME)
    out = []
    for t, p in socktypes:
        protoname = "tcp" if t == SOCK_STREAM else "udp" if t == SOCK_DGRAM else None
        if protoname is None:
            continue
        try:
            # /etc/services through libc: a local file, no network involved.
            out.append((t, p, _socket.getservbyname(port, protoname)))
        except OSError:
            continue
    if not out:
        raise _gai(_socket.EAI_SERVICE)
    return out


def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0,
                flags: int = 0) -> list[tuple[Any, Any, int, str, tuple[Any, ...]]]:
    """Like ``socket.getaddrinfo``, resolving through the hosts file and the stub resolver."""
    if family not in (AF_UNSPEC, AF_INET, AF_INET6):
        raise _gai(_socket.EAI_FAMILY)
    known_flags = (_socket.AI_PASSIVE | _socket.AI_CANONNAME | _socket.AI_NUMERICHOST | _socket.AI_NUMERICSERV
                   | _socket.AI_V4MAPPED | _socket.AI_ALL | _socket.AI_ADDRCONFIG)
    if flags & ~known_flags:
        raise _gai(_socket.EAI_BADFLAGS)
    if type == 0:
        if proto == IPPROTO_TCP:
            socktypes = [(SOCK_STREAM, IPPROTO_TCP)]
        elif proto == IPPROTO_UDP:
            socktypes = [(SOCK_DGRAM, IPPROTO_UDP)]
        elif proto:
            socktypes = [(SOCK_RAW, proto)]
        else:
            socktypes = [(SOCK_STREAM, IPPROTO_TCP), (SOCK_DGRAM, IPPROTO_UDP), (SOCK_RAW, 0)]
    elif type == SOCK_STREAM:
        socktypes = [(SOCK_STREAM, proto or IPPROTO_TCP)]
    elif type == SOCK_DGRAM:
        socktypes = [(SOCK_DGRAM, proto or IPPROTO_UDP)]
    elif type == SOCK_RAW:
        socktypes = [(SOCK_RAW, proto)]
    else:
        raise _gai(_socket.EAI_SOCKTYPE)
    if host is None and port is None:
        raise _gai(_socket.EAI_NONAME)
    services = _services(port, socktypes, flags)

    canonical = ""
    addresses: list[tuple[int, str]]
    if host is None:
        passive = flags & _socket.AI_PASSIVE
        addresses = []
        if family in (AF_UNSPEC, AF_INET):
            addresses.append((AF_INET, "0.0.0.0" if passive else "127.0.0.1"))
        if family == AF_INET6 or (family == AF_UNSPEC and has_ipv6()):
            addresses.append((AF_INET6, "::" if passive else "::1"))
    else:
        name = _host_text(host)
        if not name:
            raise _gai(_socket.EAI_NONAME)
        numeric = numeric_address(name)
        if numeric is not None:
            fam, text = numeric
            if family not in (AF_UNSPEC, fam):
                raise _gai(EAI_ADDRFAMILY)
            addresses = [(fam, text)]
            canonical = text
        elif flags & _socket.AI_NUMERICHOST:
            raise _gai(_socket.EAI_NONAME)
        else:
            canonical, addresses, _aliases = _lookup(name, family)
    if flags & _socket.AI_ADDRCONFIG:
        addresses = [(f, a) for f, a in addresses if f == AF_INET or has_ipv6()]
        if not addresses:
            raise _gai(EAI_ADDRFAMILY)

    result: list[tuple[Any, Any, int, str, tuple[Any, ...]]] = []
    for fam, text in addresses:
        for socktype, sproto, portnum in services:
            sockaddr: tuple[Any, ...]
            if fam == AF_INET:
                sockaddr = (text, portnum)
            else:
                addr, _, scope = text.partition("%")
                scope_id = 0
                if scope:
                    scope_id = int(scope) if scope.isdigit() else _socket.if_nametoindex(scope)
                sockaddr = (addr, portnum, 0, scope_id)
            cname = canonical if (flags & _socket.AI_CANONNAME and not result) else ""
            result.append((family_enum(fam), kind_enum(socktype), sproto, cname, sockaddr))
    return result


def gethostbyname(hostname: Any) -> str:
    name = _host_text(hostname)
    if name == "":
        return "0.0.0.0"
    if name == "<broadcast>":
        return "255.255.255.255"
    return str(getaddrinfo(name, None, AF_INET)[0][4][0])


def gethostbyname_ex(hostname: Any) -> tuple[str, list[str], list[str]]:
    name = _host_text(hostname)
    if name == "":
        return ("0.0.0.0", [], ["0.0.0.0"])
    numeric = numeric_address(name)
    if numeric is not None:
        if numeric[0] != AF_INET:
            raise _gai(EAI_ADDRFAMILY)
        return (numeric[1], [], [numeric[1]])
    canonical, addrs, aliases = _lookup(name, AF_INET)
    seen: list[str] = []
    for _fam, a in addrs:
        if a not in seen:
            seen.append(a)
    return (canonical, aliases, seen)


def gethostbyaddr(ip_address: Any) -> tuple[str, list[str], list[str]]:
    text = _host_text(ip_address)
    numeric = numeric_address(text)
    if numeric is None:
        # The stdlib resolves a name first, then looks its address up.
        _canon, addrs, _aliases = _lookup(text, AF_UNSPEC)
        numeric = addrs[0]
    _family, address = numeric
    address = address.split("%", 1)[0]
    entry = _hosts.by_address(address)
    if entry is not None:
        return (entry.canonical, list(entry.aliases), [address])
    if address in ("127.0.0.1", "::1"):
        return ("localhost", [], [address])
    try:
        _canonical, names = query(reverse_name(address), TYPE_PTR)
    except ResolverError as exc:
        if exc.code == _socket.EAI_AGAIN:
            raise herror(2, "Host name lookup failure") from None
        raise herror(1, "Unknown host") from None
    return (names[0].rstrip("."), [n.rstrip(".") for n in names[1:]], [address])


def getnameinfo(sockaddr: Any, flags: int) -> tuple[str, str]:
    if not isinstance(sockaddr, tuple) or not 2 <= len(sockaddr) <= 4:
        raise TypeError("getnameinfo() argument 1 must be a tuple")
    host, port = sockaddr[0], sockaddr[1]
    if not isinstance(port, int):
        raise TypeError(f"'{type(port).__name__}' object cannot be interpreted as an integer")
    numeric = numeric_address(_host_text(host))
    if numeric is None:
        raise _gai(_socket.EAI_NONAME)
    family, address = numeric
    if len(sockaddr) > 2 and family != AF_INET6:
        raise OSError("IPv4 sockaddr must be 2 tuple")
    if len(sockaddr) > 2 and not 0 <= int(sockaddr[2]) <= 0xFFFFF:
        raise OverflowError("getnameinfo(): flowinfo must be 0-1048575.")
    if flags & _socket.NI_NUMERICHOST:
        name = address
    else:
        try:
            name = gethostbyaddr(address)[0]
            if flags & _socket.NI_NOFQDN:
                name = name.split(".", 1)[0]
        except (herror, gaierror):
            if flags & _socket.NI_NAMEREQD:
                raise _gai(_socket.EAI_NONAME) from None
            name = address
    if flags & _socket.NI_NUMERICSERV:
        service = str(port)
    else:
        try:
            service = _socket.getservbyport(port, "udp" if flags & _socket.NI_DGRAM else "tcp")
        except OSError:
            service = str(port)
    return name, service


def getfqdn(name: str = "") -> str:
    name = name.strip()
    if not name or name in ("0.0.0.0", "::"):
        name = _socket.gethostname()
    try:
        hostname, aliases, _addrs = gethostbyaddr(name)
    except OSError:
        return name
    for candidate in (hostname, *aliases):
        if "." in candidate:
            return candidate
    return hostname


__all__ = [
    "Message", "Question", "Record", "configure", "effective_servers", "getaddrinfo", "getfqdn", "gethostbyaddr",
    "gethostbyname", "gethostbyname_ex", "getnameinfo", "has_ipv6", "name_servers", "query", "resolve_for_socket",
]
