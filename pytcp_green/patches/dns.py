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
(``socket.gaierror``/``socket.herror`` with the glibc ``EAI_*`` codes and messages).  The
resolver itself is the sans-I/O core in :mod:`pytcp_green.stack.dns` (messages:
:mod:`pytcp_green.stack.wire.dns`); this module reads the hosts file, picks the servers and
performs the exchanges the core asks for over the stack's sockets, on ``time.monotonic``, the
runtime's clock.
"""

from __future__ import annotations

import _socket
import errno
import functools
import ipaddress
import os
import re
import secrets
import time
from typing import Any

from pytcp_green.green.sockets import GreenSocket
from pytcp_green.patches import _state
from pytcp_green.patches._common import (
    AF_INET,
    AF_INET6,
    AF_UNSPEC,
    IPPROTO_TCP,
    IPPROTO_UDP,
    SOCK_DGRAM,
    SOCK_RAW,
    SOCK_STREAM,
    family_enum,
    has_ipv6,
    kind_enum,
)
from pytcp_green.stack.dns import Exchange, Failure, HostsTable, Lookup, Resolver, Transport, parse_hosts
from pytcp_green.stack.ipv6.addrsel import order_destinations
from pytcp_green.stack.wire.dns import TYPE_A, TYPE_AAAA, TYPE_PTR, reverse_name

# What this module replaces in ``socket`` (see :func:`pytcp_green.patches._state.patch_module`).
__implements__ = ["getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo", "getfqdn"]


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
# Configuration: hosts file, name servers
# ==================================================================================================
HOSTS_FILE_ENV = "PYTCP_GREEN_HOSTS_FILE"
DNS_ENV = "PYTCP_GREEN_DNS"


class _HostsFile:
    """The hosts file's table, read again when the file's modification time or size changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._table = HostsTable()

    def table(self) -> HostsTable:
        try:
            st = os.stat(self.path)
        except OSError:
            self._table, self._stamp = HostsTable(), None
            return self._table
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            with open(self.path, encoding="utf-8", errors="replace") as f:
                self._table = HostsTable(parse_hosts(f))
            self._stamp = stamp
        return self._table


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


_servers: list[tuple[str, int]] = []
_hosts = _HostsFile("/etc/hosts")
# Message ids from the OS's CSPRNG (RFC 5452 §9.2).
_resolver = Resolver(lambda: secrets.randbelow(0x10000))


def configure(servers: list[str] | str | None = None, hosts_path: str | None = None,
              timeout: float | None = None) -> None:
    """Set the resolver's name servers and hosts file (patch_all calls this)."""
    global _hosts, _servers
    if servers is None:
        servers = os.environ.get(DNS_ENV) or None
    _servers = parse_servers(servers)
    path = hosts_path or os.environ.get(HOSTS_FILE_ENV) or "/etc/hosts"
    if path != _hosts.path:
        _hosts = _HostsFile(path)
    if timeout is not None:
        _resolver.timeout = timeout
    _resolver.cache.clear()


def name_servers() -> list[tuple[str, int]]:
    """The servers given explicitly (``patch_all(dns=...)``, ``--dns``, ``PYTCP_GREEN_DNS``)."""
    return list(_servers)


def effective_servers() -> list[tuple[str, int]]:
    """The servers queries go to: the explicit ones, else those the stack learned (DHCP option 6,
    RFC 2132 §3.8, kept current across renewals in ``Stack.dns_servers``)."""
    if _servers:
        return list(_servers)
    if not _state.has_host():
        return []
    learned = _state.current_host().stack.dns_servers
    return [(server, 53) for server in learned]


# ==================================================================================================
# Driving the resolver core over the stack's sockets
# ==================================================================================================
def _resolve(name: str, qtypes: list[int], *, search: bool = True) -> Lookup:
    """Run a look-up to its end: each exchange the core asks for over the stack's UDP or TCP."""
    lookup = _resolver.lookup(name, qtypes, effective_servers(), search=search)
    while (exchange := lookup.next_exchange(time.monotonic())) is not None:
        try:
            _exchange(exchange, lookup)
        except OSError:  # timed out, refused (ICMP port unreachable), reset
            lookup.fail()
    return lookup


def _exchange(exchange: Exchange, lookup: Lookup) -> None:
    """Send one message and feed the replies to ``lookup`` until it is satisfied; OSError on timeout."""
    host = _state.current_host()
    family = AF_INET6 if ":" in exchange.server[0] else AF_INET
    tcp = exchange.transport is Transport.TCP
    sock = GreenSocket(host.runtime, host.stack.socket(family, SOCK_STREAM if tcp else SOCK_DGRAM),
                       timeout=_resolver.timeout)
    try:
        if tcp:
            sock.connect(exchange.server)
            sock.sendall(exchange.data)
        else:
            # A connected socket only receives from the server (the core's demultiplexer filters), and
            # learns ICMP port-unreachable as ECONNREFUSED, so a dead server fails fast.
            sock.core.connect(exchange.server, host.runtime.now())
            sock.sendto(exchange.data, None)
        while True:
            remaining = exchange.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("timed out")
            data = sock.recv(65537, remaining) if tcp else sock.recvfrom(65535, remaining)[0]
            if tcp and not data:
                raise OSError(errno.ECONNRESET, "name server closed the connection early")
            if lookup.receive(data, time.monotonic()):
                return
    finally:
        sock.close()


_EAI_OF = {Failure.NO_NAME: _socket.EAI_NONAME, Failure.NO_DATA: EAI_NODATA, Failure.AGAIN: _socket.EAI_AGAIN,
           Failure.FAIL: _socket.EAI_FAIL}


# ==================================================================================================
# The socket module's resolver functions
# ==================================================================================================
_IPV4_LEGACY = re.compile(r"^(0[xX][0-9a-fA-F]+|[0-9]+)(\.(0[xX][0-9a-fA-F]+|[0-9]+)){0,3}$")


@functools.lru_cache(maxsize=1024)  # a pure function of the string, asked twice per create_connection()
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
    entries = _hosts.table().by_name(name)
    if entries:
        found = []
        for e in entries:
            fam = AF_INET6 if ":" in e.address else AF_INET
            if (fam == AF_INET and want4) or (fam == AF_INET6 and want6):
                found.append((fam, e.address))
        if found:
            return entries[0].canonical, found, list(entries[0].aliases)
    qtypes = [qtype for qtype, wanted in ((TYPE_A, want4), (TYPE_AAAA, want6)) if wanted]
    lookup = _resolve(name, qtypes)
    if lookup.failure is not None:
        raise _gai(_EAI_OF[lookup.failure])
    canonical = lookup.canonical
    aliases = [name] if canonical.lower() != name.lower().rstrip(".") else []
    return canonical, [(AF_INET if qtype == TYPE_A else AF_INET6, value) for qtype, value in lookup.results], aliases


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
    entry = _hosts.table().by_address(address)
    if entry is not None:
        return (entry.canonical, list(entry.aliases), [address])
    if address in ("127.0.0.1", "::1"):
        return ("localhost", [], [address])
    lookup = _resolve(reverse_name(address), [TYPE_PTR], search=False)
    if lookup.failure is Failure.AGAIN:
        raise herror(2, "Host name lookup failure")
    if lookup.failure is not None:
        raise herror(1, "Unknown host")
    names = [value for _qtype, value in lookup.results]
    return (names[0].rstrip("."), [n.rstrip(".") for n in names[1:]], [address])


def _with_scope(address: str, sockaddr: tuple[Any, ...]) -> str:
    """A numeric IPv6 host with its scope as glibc's getnameinfo writes it: ``%`` and the kernel
    interface's name for a link-local (unicast or multicast) address, else the number."""
    scope_id = int(sockaddr[3]) if len(sockaddr) > 3 else 0
    if not scope_id:
        return address
    ip = ipaddress.IPv6Address(address)
    if ip.is_link_local or (ip.is_multicast and ip.packed[1] & 0x0F == 2):
        try:
            return f"{address}%{_socket.if_indextoname(scope_id)}"
        except OSError:
            pass
    return f"{address}%{scope_id}"


def getnameinfo(sockaddr: Any, flags: int) -> tuple[str, str]:
    if not isinstance(sockaddr, tuple) or not 2 <= len(sockaddr) <= 4:
        # The C function keeps no reference to its argument: neither may this frame, which the
        # exception's traceback keeps alive.
        del sockaddr
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
    numeric_host = _with_scope(address, sockaddr) if family == AF_INET6 else address
    if flags & _socket.NI_NUMERICHOST:
        name = numeric_host
    else:
        try:
            name = gethostbyaddr(address)[0]
            if flags & _socket.NI_NOFQDN:
                name = name.split(".", 1)[0]
        except (herror, gaierror):
            if flags & _socket.NI_NAMEREQD:
                raise _gai(_socket.EAI_NONAME) from None
            name = numeric_host
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
    "configure", "effective_servers", "getaddrinfo", "getfqdn", "gethostbyaddr", "gethostbyname", "gethostbyname_ex",
    "getnameinfo", "has_ipv6", "name_servers", "resolve_for_socket",
]
