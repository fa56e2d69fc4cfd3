"""ICMP for IPv4 (RFC 792; "Fragmentation Needed" next-hop MTU per RFC 1191 §4).

Every message starts with the same 8 bytes::

    type (1) | code (1) | checksum (2) | rest of header (4)

The meaning of the 32-bit "rest" depends on the type: identifier/sequence for echo (RFC 792
"Echo or Echo Reply Message"), unused/next-hop MTU for destination unreachable code 4 (RFC
1191 §4), a pointer in the top byte for parameter problem (RFC 792 "Parameter Problem
Message"), unused for time exceeded.  Error messages quote the offending IP header plus at
least 8 bytes of its payload in the body (RFC 792; RFC 1812 §4.3.2.3 allows more).  RFC 4884
extension structures are not interpreted: the body is handed over whole.

The checksum covers the whole message, header and body (RFC 792).
"""

from __future__ import annotations

from pytcp_green.stack.wire.icmp import ICMP_HEADER_LEN, IcmpMessage, write_header
from pytcp_green.stack.wire.icmp import echo_rest as echo_rest  # the echo word is ICMPv6's too

ICMP4_HEADER_LEN = ICMP_HEADER_LEN

TYPE_ECHO_REPLY = 0
TYPE_DEST_UNREACH = 3
TYPE_SOURCE_QUENCH = 4
TYPE_REDIRECT = 5
TYPE_ECHO_REQUEST = 8
TYPE_TIME_EXCEEDED = 11
TYPE_PARAM_PROBLEM = 12

# Destination unreachable codes (RFC 792, RFC 1812 §5.2.7.1 for 13).
CODE_NET_UNREACH = 0
CODE_HOST_UNREACH = 1
CODE_PROTO_UNREACH = 2
CODE_PORT_UNREACH = 3
CODE_FRAG_NEEDED = 4
CODE_ADMIN_PROHIBITED = 13

# Time exceeded codes (RFC 792).
CODE_TTL_EXCEEDED = 0
CODE_REASSEMBLY_EXCEEDED = 1

# Types that report a problem with a datagram we sent and quote it (RFC 1122 §3.2.2: the
# ones a host must pass up to the transport layer).  Source quench is deprecated (RFC 6633)
# but is still an error by shape.
ERROR_TYPES = frozenset({TYPE_DEST_UNREACH, TYPE_SOURCE_QUENCH, TYPE_REDIRECT, TYPE_TIME_EXCEEDED, TYPE_PARAM_PROBLEM})


class Icmp4Message(IcmpMessage):
    """A parsed ICMPv4 message; ``body`` is a view of everything after the 8-byte header."""

    __slots__ = ()

    @classmethod
    def parse(cls, buf: memoryview) -> Icmp4Message:
        """Parse the ICMP message filling ``buf`` (the IPv4 payload, already trimmed)."""
        return cls._parse(buf, 0)

    @property
    def next_hop_mtu(self) -> int:
        """Next-hop MTU of a "fragmentation needed" message; 0 from pre-RFC 1191 routers."""
        return self.rest & 0xFFFF

    @property
    def pointer(self) -> int:
        """Parameter problem: the octet of the quoted header where the problem was found."""
        return self.rest >> 24

    @property
    def is_error(self) -> bool:
        return self.type in ERROR_TYPES


def write_icmp4(buf: bytearray, offset: int, type: int, code: int, rest: int, body_len: int) -> None:
    """Write the 8-byte header at ``offset`` and the checksum over it and the body.

    The body must already be in ``buf[offset + 8 : offset + 8 + body_len]``.
    """
    write_header(buf, offset, type, code, rest, body_len)


def frag_needed_rest(mtu: int) -> int:
    """The rest-of-header word of "fragmentation needed" (RFC 1191 §4: high 16 bits unused)."""
    return mtu & 0xFFFF


def param_problem_rest(pointer: int) -> int:
    """The rest-of-header word of a parameter problem: the pointer in the top octet."""
    return (pointer & 0xFF) << 24
