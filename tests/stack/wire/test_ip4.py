"""IPv4 header (RFC 791, RFC 1122 §3.2.1), cross-checked with scapy."""

from __future__ import annotations

import socket

import pytest
from scapy.layers.inet import (
    IP,
    UDP,
    IPOption,
    IPOption_NOP,
    IPOption_Router_Alert,
    IPOption_RR,
    IPOption_Timestamp,
)
from scapy.packet import Raw

from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.ip4 import (
    IP4_HEADER_LEN,
    OPT_ROUTER_ALERT,
    OPT_RR,
    OPT_TS,
    PROTO_ICMP,
    PROTO_TCP,
    PROTO_UDP,
    Ip4Packet,
    write_ip4,
)

from .naive import ip4_header, naive_checksum

SRC = socket.inet_aton("192.0.2.1")
DST = socket.inet_aton("198.51.100.7")

ROUTER_ALERT = b"\x94\x04\x00\x00"  # RFC 2113
# Timestamp option (RFC 791 "Internet Timestamp"): type 68, length 12, pointer 5 (first slot
# free), overflow 0 / flag 0 (timestamps only), two 32-bit slots.
TIMESTAMP = bytes([68, 12, 5, 0]) + bytes(8)
RECORD_ROUTE = bytes([7, 7, 4]) + bytes(4)  # odd length: needs one byte of padding


def _scapy_rebuilt(raw: bytes) -> bytes:
    """scapy's encoding of ``raw`` with the IPv4 checksum recomputed by scapy."""
    pkt = IP(raw)
    del pkt.chksum
    return bytes(pkt)


def _build(payload: bytes = b"", **kw: object) -> tuple[bytearray, int]:
    options = kw.get("options", b"")
    assert isinstance(options, bytes)
    hl = IP4_HEADER_LEN + ((len(options) + 3) & ~3)
    buf = bytearray(b"\xcc" * (hl + len(payload)))  # stale bytes: the writer must overwrite
    buf[hl:] = payload
    defaults: dict[str, object] = {"src": SRC, "dst": DST, "proto": PROTO_UDP, "ident": 0x4242}
    defaults.update(kw)
    got = write_ip4(buf, 0, total_len=hl + len(payload), **defaults)  # type: ignore[arg-type]
    return buf, got


def test_write_basic_parsed_by_scapy() -> None:
    buf, hl = _build(b"abc", ttl=17, tos=0xB8 | 0x02, proto=PROTO_TCP)
    assert hl == 20
    pkt = IP(bytes(buf))
    assert pkt.version == 4
    assert pkt.ihl == 5
    assert pkt.tos == 0xBA
    assert pkt.len == 23
    assert pkt.id == 0x4242
    assert pkt.flags == 0
    assert pkt.frag == 0
    assert pkt.ttl == 17
    assert pkt.proto == PROTO_TCP
    assert pkt.src == "192.0.2.1"
    assert pkt.dst == "198.51.100.7"
    assert bytes(pkt.payload) == b"abc"
    assert _scapy_rebuilt(bytes(buf)) == bytes(buf)


@pytest.mark.parametrize(
    ("df", "mf", "frag_offset", "frag"),
    [
        (True, False, 0, 0),
        (False, True, 0, 0),
        (False, True, 1480, 185),
        (False, False, 2960, 370),
        (False, False, 65528, 8191),
        (True, True, 8, 1),
    ],
)
def test_write_flags_and_fragments(df: bool, mf: bool, frag_offset: int, frag: int) -> None:
    buf, _ = _build(b"x" * 8, df=df, mf=mf, frag_offset=frag_offset)
    pkt = IP(bytes(buf))
    assert df == pkt.flags.DF
    assert mf == pkt.flags.MF
    assert not pkt.flags.evil
    assert pkt.frag == frag
    assert _scapy_rebuilt(bytes(buf)) == bytes(buf)


@pytest.mark.parametrize(
    ("options", "scapy_options"),
    [
        (ROUTER_ALERT, [IPOption_Router_Alert()]),
        (b"\x01" + ROUTER_ALERT, [IPOption_NOP(), IPOption_Router_Alert()]),
        (TIMESTAMP, [IPOption_Timestamp(length=12, pointer=5, oflw=0, flg=0, timestamp=0) / Raw(bytes(4))]),
        (RECORD_ROUTE, [IPOption_RR(routers=["0.0.0.0"])]),
        (b"\x01\x01\x01" + RECORD_ROUTE + ROUTER_ALERT, None),
        (bytes([131, 39, 4]) + bytes(36), None),  # 39-byte LSRR: the largest that fits
    ],
)
def test_write_options_match_scapy(options: bytes, scapy_options: list[IPOption] | None) -> None:
    buf, hl = _build(b"payload", options=options, ttl=1, proto=PROTO_UDP)
    padded = (len(options) + 3) & ~3
    assert hl == 20 + padded
    assert buf[20 : 20 + len(options)] == options
    assert buf[20 + len(options) : hl] == bytes(padded - len(options))  # EOL padding, no stale bytes
    pkt = IP(bytes(buf))
    assert pkt.ihl == hl // 4
    assert pkt.len == hl + 7
    assert bytes(pkt.payload) == b"payload"
    assert _scapy_rebuilt(bytes(buf)) == bytes(buf)
    if scapy_options is not None:
        ref = IP(src="192.0.2.1", dst="198.51.100.7", id=0x4242, ttl=1, proto=PROTO_UDP, options=scapy_options)
        assert bytes(ref / Raw(b"payload")) == bytes(buf)


def test_write_at_offset() -> None:
    buf = bytearray(b"\xee" * 14 + bytes(20 + 4))
    hl = write_ip4(buf, 14, src=SRC, dst=DST, proto=PROTO_ICMP, total_len=24, ident=1)
    assert buf[:14] == b"\xee" * 14
    pkt = IP(bytes(buf[14:]))
    assert pkt.proto == PROTO_ICMP
    assert hl == 20
    assert naive_checksum(bytes(buf[14:34])) == 0


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"frag_offset": 4}, "multiple of 8"),
        ({"frag_offset": 65536}, "multiple of 8"),
        ({"frag_offset": -8}, "multiple of 8"),
        ({"options": bytes(41)}, "do not fit"),
    ],
)
def test_write_rejects_impossible_headers(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        write_ip4(bytearray(100), 0, src=SRC, dst=DST, proto=PROTO_UDP, total_len=60, ident=0, **kw)  # type: ignore[arg-type]


def test_parse_scapy_plain() -> None:
    pkt = IP(src="10.0.0.1", dst="10.0.0.2", tos=0x2E << 2 | 1, id=777, ttl=3, flags="DF") / UDP() / Raw(b"hi")
    raw = bytes(pkt)
    p = Ip4Packet.parse(memoryview(raw))
    assert p.header_len == 20
    assert p.tos == 0xB9
    assert (p.dscp, p.ecn) == (0x2E, 1)
    assert p.total_len == len(raw)
    assert p.ident == 777
    assert p.df is True
    assert p.mf is False
    assert p.frag_offset == 0
    assert not p.is_fragment
    assert p.ttl == 3
    assert p.proto == PROTO_UDP
    assert p.src == socket.inet_aton("10.0.0.1")
    assert p.dst == socket.inet_aton("10.0.0.2")
    assert len(p.options) == 0
    assert p.iter_options() == []
    assert bytes(p.payload) == bytes(pkt[UDP])
    assert bytes(p.header) == raw[:20]
    assert all(isinstance(v, memoryview) for v in (p.options, p.payload, p.header))


@pytest.mark.parametrize(
    ("scapy_options", "expected"),
    [
        ([IPOption_Router_Alert()], [(OPT_ROUTER_ALERT, ROUTER_ALERT)]),
        ([IPOption_NOP(), IPOption_Router_Alert()], [(OPT_ROUTER_ALERT, ROUTER_ALERT)]),
        (
            [IPOption_RR(routers=["1.2.3.4", "5.6.7.8"]), IPOption_NOP(), IPOption(TIMESTAMP)],
            [(OPT_RR, bytes([7, 11, 4]) + bytes([1, 2, 3, 4, 5, 6, 7, 8])), (OPT_TS, TIMESTAMP)],
        ),
    ],
)
def test_parse_scapy_options(scapy_options: list[IPOption], expected: list[tuple[int, bytes]]) -> None:
    pkt = IP(src="10.0.0.1", dst="10.0.0.2", options=scapy_options) / Raw(b"odd")
    raw = bytes(pkt)
    p = Ip4Packet.parse(memoryview(raw))
    assert p.header_len == IP(raw).ihl * 4
    assert bytes(p.options) == raw[20 : p.header_len]
    assert [(t, bytes(v)) for t, v in p.iter_options()] == expected
    assert bytes(p.payload) == b"odd"


@pytest.mark.parametrize(
    ("flags", "frag", "mf", "offset"),
    [("MF", 0, True, 0), ("MF", 185, True, 1480), ("", 185, False, 1480), ("DF", 0, False, 0)],
)
def test_parse_scapy_fragments(flags: str, frag: int, mf: bool, offset: int) -> None:
    raw = bytes(IP(src="10.0.0.1", dst="10.0.0.2", flags=flags, frag=frag, proto=PROTO_UDP) / Raw(b"z" * 16))
    p = Ip4Packet.parse(memoryview(raw))
    assert p.mf is mf
    assert p.frag_offset == offset
    assert p.is_fragment is (mf or offset > 0)


def test_parse_ignores_link_padding() -> None:
    # A 28-byte IPv4/UDP packet in a 46-byte minimum Ethernet payload.
    raw = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2))
    p = Ip4Packet.parse(memoryview(raw + b"\xab" * 18))
    assert p.total_len == 28
    assert bytes(p.payload) == raw[20:]


def test_parse_accepts_garbage_after_eol() -> None:
    # Whatever follows End of Option List is padding, not options (RFC 791).
    raw = ip4_header(options=b"\x01\x00\xff\x07", payload=b"x")
    p = Ip4Packet.parse(memoryview(raw))
    assert p.header_len == 24
    assert p.iter_options() == []


def test_parse_is_a_view_not_a_copy() -> None:
    buf = bytearray(ip4_header(payload=b"abcd"))
    p = Ip4Packet.parse(memoryview(buf))
    buf[20] = ord("X")
    assert bytes(p.payload) == b"Xbcd"


RA = ROUTER_ALERT


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(b"", "too_short", id="too_short-empty"),
        pytest.param(ip4_header()[:19], "too_short", id="too_short-19_bytes"),
        pytest.param(ip4_header(version=6), "bad_version", id="bad_version-6"),
        pytest.param(ip4_header(version=0), "bad_version", id="bad_version-0"),
        pytest.param(ip4_header(version=5), "bad_version", id="bad_version-5"),
        pytest.param(ip4_header(ihl=4), "bad_header_len", id="bad_header_len-ihl_4"),
        pytest.param(ip4_header(ihl=0), "bad_header_len", id="bad_header_len-ihl_0"),
        pytest.param(ip4_header(ihl=6), "bad_header_len", id="bad_header_len-24_byte_header_in_a_20_byte_buffer"),
        pytest.param(ip4_header(ihl=15, payload=bytes(20)), "bad_header_len", id="bad_header_len-ihl_15_in_40_bytes"),
        pytest.param(ip4_header(total_len=19), "bad_total_len", id="bad_total_len-19"),
        pytest.param(ip4_header(total_len=0), "bad_total_len", id="bad_total_len-0"),
        pytest.param(
            ip4_header(options=RA, total_len=22), "bad_total_len", id="bad_total_len-shorter_than_its_own_header"
        ),
        pytest.param(ip4_header(payload=b"abc", total_len=24), "bad_total_len", id="bad_total_len-beyond_the_buffer"),
        pytest.param(ip4_header(good_checksum=False), "bad_checksum", id="bad_checksum-plain"),
        pytest.param(ip4_header(options=RA, good_checksum=False), "bad_checksum", id="bad_checksum-with_options"),
        pytest.param(ip4_header(flags_frag=0x8000), "reserved_flag", id="reserved_flag-evil_bit"),
        pytest.param(ip4_header(flags_frag=0xC000), "reserved_flag", id="reserved_flag-with_df"),
        pytest.param(ip4_header(options=b"\x07\x01\x00\x00"), "bad_option", id="bad_option-length_1"),
        pytest.param(ip4_header(options=b"\x07\x00\x00\x00"), "bad_option", id="bad_option-length_0"),
        pytest.param(ip4_header(options=b"\x94\x05\x00\x00"), "bad_option", id="bad_option-runs_past_the_header"),
        pytest.param(ip4_header(options=b"\x01\x01\x01\x94"), "bad_option", id="bad_option-length_octet_missing"),
        pytest.param(
            ip4_header(options=RA + b"\x01\x01\x44\x0c"), "bad_option", id="bad_option-second_option_overruns"
        ),
        pytest.param(ip4_header(options=bytes([131, 41]) + bytes(38)), "bad_option", id="bad_option-longer_than_40"),
    ],
)
def test_malformed(raw: bytes, reason: str) -> None:
    with pytest.raises(Malformed) as exc:
        Ip4Packet.parse(memoryview(raw))
    assert exc.value.reason == reason
