"""ICMPv4 (RFC 792, RFC 1191), cross-checked with scapy."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, UDP, IPerror, TCPerror, UDPerror
from scapy.packet import Raw

from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.icmp4 import (
    CODE_ADMIN_PROHIBITED,
    CODE_FRAG_NEEDED,
    CODE_HOST_UNREACH,
    CODE_NET_UNREACH,
    CODE_PORT_UNREACH,
    CODE_PROTO_UNREACH,
    CODE_REASSEMBLY_EXCEEDED,
    CODE_TTL_EXCEEDED,
    ICMP4_HEADER_LEN,
    TYPE_DEST_UNREACH,
    TYPE_ECHO_REPLY,
    TYPE_ECHO_REQUEST,
    TYPE_PARAM_PROBLEM,
    TYPE_TIME_EXCEEDED,
    Icmp4Message,
    echo_rest,
    frag_needed_rest,
    param_problem_rest,
    write_icmp4,
)
from pytcp_green.stack.wire.ip4 import PROTO_ICMP, Ip4Packet

from .naive import naive_checksum


def _quoted_udp() -> bytes:
    """What an error quotes: the offending IPv4 header plus the first 8 bytes of its payload."""
    dgram = bytes(IP(src="192.0.2.1", dst="198.51.100.7", id=99) / UDP(sport=40000, dport=53) / Raw(b"query" * 9))
    return dgram[:28]


def _write(type_: int, code: int, rest: int, body: bytes) -> bytes:
    buf = bytearray(b"\xdd" * ICMP4_HEADER_LEN + body)  # stale header bytes must be overwritten
    write_icmp4(buf, 0, type_, code, rest, len(body))
    return bytes(buf)


def _scapy_rebuilt(raw: bytes) -> bytes:
    pkt = ICMP(raw)
    del pkt.chksum
    return bytes(pkt)


@pytest.mark.parametrize("data", [b"", b"a", b"ping!", bytes(range(56)), bytes(range(255)) * 4 + b"x"])
def test_write_echo_parsed_by_scapy(data: bytes) -> None:
    raw = _write(TYPE_ECHO_REQUEST, 0, echo_rest(0xBEEF, 7), data)
    pkt = ICMP(raw)
    assert (pkt.type, pkt.code, pkt.id, pkt.seq) == (8, 0, 0xBEEF, 7)
    assert bytes(pkt.payload) == data
    assert _scapy_rebuilt(raw) == raw
    assert raw == bytes(ICMP(type=8, id=0xBEEF, seq=7) / Raw(data))


def test_write_echo_reply_inside_ip_matches_scapy() -> None:
    ref = IP(src="192.0.2.1", dst="192.0.2.2", id=1) / ICMP(type=0, id=1, seq=65535) / Raw(b"odd")
    raw = _write(TYPE_ECHO_REPLY, 0, echo_rest(1, 65535), b"odd")
    assert raw == bytes(ref)[20:]


@pytest.mark.parametrize(
    ("type_", "code", "rest", "scapy_fields"),
    [
        (TYPE_DEST_UNREACH, CODE_PORT_UNREACH, 0, {}),
        (TYPE_DEST_UNREACH, CODE_NET_UNREACH, 0, {}),
        (TYPE_DEST_UNREACH, CODE_HOST_UNREACH, 0, {}),
        (TYPE_DEST_UNREACH, CODE_PROTO_UNREACH, 0, {}),
        (TYPE_DEST_UNREACH, CODE_ADMIN_PROHIBITED, 0, {}),
        (TYPE_DEST_UNREACH, CODE_FRAG_NEEDED, frag_needed_rest(1400), {"nexthopmtu": 1400}),
        (TYPE_TIME_EXCEEDED, CODE_TTL_EXCEEDED, 0, {}),
        (TYPE_TIME_EXCEEDED, CODE_REASSEMBLY_EXCEEDED, 0, {}),
        (TYPE_PARAM_PROBLEM, 0, param_problem_rest(20), {"ptr": 20}),
    ],
)
def test_write_errors_parsed_by_scapy(type_: int, code: int, rest: int, scapy_fields: dict[str, int]) -> None:
    quoted = _quoted_udp()
    raw = _write(type_, code, rest, quoted)
    pkt = ICMP(raw)
    assert (pkt.type, pkt.code) == (type_, code)
    for name, value in scapy_fields.items():
        assert getattr(pkt, name) == value
    # scapy dissects the quote as IPerror/UDPerror.
    assert pkt[IPerror].src == "192.0.2.1"
    assert pkt[UDPerror].dport == 53
    assert _scapy_rebuilt(raw) == raw
    ref = ICMP(type=type_, code=code)
    for name, value in scapy_fields.items():
        setattr(ref, name, value)
    assert raw == bytes(ref / Raw(quoted))


def test_parse_scapy_echo() -> None:
    pkt = IP(src="192.0.2.1", dst="192.0.2.2") / ICMP(type="echo-request", id=0x1234, seq=0x5678) / Raw(b"abcde")
    ip = Ip4Packet.parse(memoryview(bytes(pkt)))
    assert ip.proto == PROTO_ICMP
    msg = Icmp4Message.parse(ip.payload)
    assert msg.type == TYPE_ECHO_REQUEST
    assert msg.code == 0
    assert msg.checksum == IP(bytes(pkt))[ICMP].chksum
    assert msg.rest == 0x12345678
    assert (msg.ident, msg.seq) == (0x1234, 0x5678)
    assert not msg.is_error
    assert isinstance(msg.body, memoryview)
    assert bytes(msg.body) == b"abcde"


@pytest.mark.parametrize(
    ("icmp", "type_", "code"),
    [
        (ICMP(type=3, code=3), TYPE_DEST_UNREACH, CODE_PORT_UNREACH),
        (ICMP(type=3, code=13), TYPE_DEST_UNREACH, CODE_ADMIN_PROHIBITED),
        (ICMP(type=11, code=0), TYPE_TIME_EXCEEDED, CODE_TTL_EXCEEDED),
        (ICMP(type=11, code=1), TYPE_TIME_EXCEEDED, CODE_REASSEMBLY_EXCEEDED),
    ],
)
def test_parse_scapy_errors_with_quote(icmp: ICMP, type_: int, code: int) -> None:
    quote = IPerror(src="192.0.2.1", dst="198.51.100.7", proto=6) / TCPerror(sport=1234, dport=80)
    raw = bytes(icmp / quote)
    msg = Icmp4Message.parse(memoryview(raw))
    assert (msg.type, msg.code, msg.rest) == (type_, code, 0)
    assert msg.is_error
    assert bytes(msg.body) == bytes(quote)
    assert msg.body[9] == 6  # the quoted header's protocol, as a transport demux would read it


def test_parse_scapy_frag_needed() -> None:
    raw = bytes(ICMP(type=3, code=4, nexthopmtu=1280) / Raw(_quoted_udp()))
    msg = Icmp4Message.parse(memoryview(raw))
    assert msg.code == CODE_FRAG_NEEDED
    assert msg.next_hop_mtu == 1280
    assert bytes(msg.body) == _quoted_udp()


def test_parse_scapy_param_problem() -> None:
    raw = bytes(ICMP(type=12, code=0, ptr=9) / Raw(_quoted_udp()))
    msg = Icmp4Message.parse(memoryview(raw))
    assert msg.type == TYPE_PARAM_PROBLEM
    assert msg.pointer == 9
    assert msg.is_error


@pytest.mark.parametrize(
    ("type_", "is_error"),
    [(0, False), (3, True), (4, True), (5, True), (8, False), (9, False), (11, True), (12, True), (13, False)],
)
def test_is_error(type_: int, is_error: bool) -> None:
    msg = Icmp4Message.parse(memoryview(_write(type_, 0, 0, b"")))
    assert msg.is_error is is_error


def test_rest_helpers() -> None:
    assert echo_rest(0xABCD, 0x0102) == 0xABCD0102
    assert frag_needed_rest(1500) == 1500
    assert param_problem_rest(0xFF) == 0xFF000000


def test_write_at_offset_covers_only_the_message() -> None:
    buf = bytearray(b"\x77" * 20 + bytes(8) + b"xyz" + b"\x99" * 5)
    write_icmp4(buf, 20, TYPE_ECHO_REQUEST, 0, echo_rest(1, 2), 3)
    assert buf[:20] == b"\x77" * 20 and buf[31:] == b"\x99" * 5
    assert naive_checksum(bytes(buf[20:31])) == 0


def _bad_checksum(raw: bytes) -> bytes:
    return raw[:2] + bytes([raw[2] ^ 0x01]) + raw[3:]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(b"", "too_short", id="too_short-empty"),
        pytest.param(_write(8, 0, 0, b"")[:7], "too_short", id="too_short-7_bytes"),
        pytest.param(_bad_checksum(_write(8, 0, 0, b"")), "bad_checksum", id="bad_checksum-header_only"),
        pytest.param(_bad_checksum(_write(3, 3, 0, b"quote")), "bad_checksum", id="bad_checksum-with_body"),
        # The checksum covers the body: a change there must be caught too.
        pytest.param(_write(8, 0, 0, b"data")[:-1] + b"b", "bad_checksum", id="bad_checksum-body_changed"),
        pytest.param(bytes(8), "bad_checksum", id="bad_checksum-all_zero"),
        # Truncation (a body cut short) shows up as a checksum failure.
        pytest.param(_write(8, 0, 0, b"data!")[:-2], "bad_checksum", id="bad_checksum-truncated"),
    ],
)
def test_malformed(raw: bytes, reason: str) -> None:
    with pytest.raises(Malformed) as exc:
        Icmp4Message.parse(memoryview(raw))
    assert exc.value.reason == reason
