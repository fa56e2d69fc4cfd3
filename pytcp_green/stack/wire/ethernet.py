"""Ethernet framing: Ethernet II (RFC 894) and IEEE 802.3 with LLC/SNAP (RFC 1042).

Frame layout (IEEE 802.3 clause 3.1, preamble/SFD and FCS not included, a TAP device never
shows them)::

    destination MAC (6) | source MAC (6) | type-or-length (2) | payload ...

The two-byte field after the addresses is overloaded (IEEE 802.3 clause 3.2.6):

* ``>= 0x0600`` (1536): an EtherType, the frame is Ethernet II (RFC 894) and the payload
  runs to the end of the frame (it may carry padding up to the 60-byte minimum; the upper
  layer trims it with its own length field).
* ``<= 1500``: a length, the frame is IEEE 802.3 and begins with an 802.2 LLC header.  RFC
  1042 carries IP and ARP as LLC ``AA AA 03`` (SNAP) followed by a SNAP header whose OUI
  ``00 00 00`` means "the next two bytes are an EtherType".  That is the only LLC form
  accepted here; the length field trims the minimum-size padding.
* ``1501..1535``: undefined by the standard, rejected.
"""

from __future__ import annotations

import struct

from pytcp_green.stack.wire import Malformed

ETH_HEADER_LEN = 14
ETHERTYPE_IP4 = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_IP6 = 0x86DD
BROADCAST_MAC = b"\xff" * 6

# Largest 802.3 length value and smallest EtherType (IEEE 802.3 clause 3.2.6).
ETH_MAX_LENGTH_FIELD = 1500
ETH_MIN_ETHERTYPE = 0x0600
# 802.2 LLC (DSAP, SSAP, control) + SNAP (OUI, type): RFC 1042 "IEEE 802 Header" section.
LLC_SNAP_LEN = 8
_LLC_SNAP_PREFIX = b"\xaa\xaa\x03\x00\x00\x00"

_HEADER = struct.Struct("!6s6sH")
_LLC_SNAP = struct.Struct("!6sH")


class EthernetFrame:
    """A parsed Ethernet frame; ``payload`` is a view into the received buffer."""

    __slots__ = ("dst", "ethertype", "payload", "src")

    dst: bytes
    src: bytes
    ethertype: int
    payload: memoryview

    def __init__(self, dst: bytes, src: bytes, ethertype: int, payload: memoryview) -> None:
        self.dst = dst
        self.src = src
        self.ethertype = ethertype
        self.payload = payload

    @classmethod
    def parse(cls, buf: memoryview) -> EthernetFrame:
        """Parse ``buf`` (one whole frame, no FCS); raise :class:`Malformed` when invalid."""
        n = len(buf)
        if n < ETH_HEADER_LEN:
            raise Malformed("too_short")
        dst, src, type_or_len = _HEADER.unpack_from(buf)
        if type_or_len >= ETH_MIN_ETHERTYPE:
            # Ethernet II, the common case: no further checks, keep the padding for the
            # upper layer to trim (it knows its own length; we do not).
            return cls(dst, src, type_or_len, buf[ETH_HEADER_LEN:])
        if type_or_len > ETH_MAX_LENGTH_FIELD:
            raise Malformed("bad_ethertype")
        # IEEE 802.3: the field is the length of the LLC data, which must fit in the frame
        # and be long enough to hold the LLC/SNAP header we require.
        end = ETH_HEADER_LEN + type_or_len
        if end > n:
            raise Malformed("bad_length")
        # 802.3 frames are rare (a few old stacks still send RFC 1042 framing), so copying the
        # few LLC/SNAP bytes to compare them costs nothing that matters.
        if type_or_len >= 3 and bytes(buf[ETH_HEADER_LEN : ETH_HEADER_LEN + 3]) != _LLC_SNAP_PREFIX[:3]:
            # Some other LLC SAP (STP, NetBIOS, IPX...): nothing of ours lives there.
            raise Malformed("llc_unsupported")
        if type_or_len < LLC_SNAP_LEN:
            raise Malformed("bad_length")
        prefix, ethertype = _LLC_SNAP.unpack_from(buf, ETH_HEADER_LEN)
        if prefix != _LLC_SNAP_PREFIX:
            # A SNAP header with a vendor OUI: the type that follows is not an EtherType.
            raise Malformed("llc_unsupported")
        return cls(dst, src, ethertype, buf[ETH_HEADER_LEN + LLC_SNAP_LEN : end])

    def __repr__(self) -> str:
        return (
            f"EthernetFrame(dst={self.dst.hex(':')}, src={self.src.hex(':')}, "
            f"ethertype=0x{self.ethertype:04x}, payload_len={len(self.payload)})"
        )


def write_ethernet(buf: bytearray, offset: int, dst: bytes, src: bytes, ethertype: int) -> None:
    """Write an Ethernet II header at ``offset``; ``dst`` and ``src`` must be 6 bytes.

    We always send Ethernet II (RFC 1122 §2.3.3: hosts MUST be able to send and receive RFC 894
    framing, which is the default; RFC 1042 framing is only received).
    """
    _HEADER.pack_into(buf, offset, dst, src, ethertype)


def is_multicast_mac(mac: bytes) -> bool:
    """True for group addresses, broadcast included: the I/G bit, the low bit of the first octet."""
    return bool(mac[0] & 1)
