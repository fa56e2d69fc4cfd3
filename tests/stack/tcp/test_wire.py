"""The TCP codec against an implementation nobody here wrote (scapy), both ways, and fuzzed."""

from __future__ import annotations

import contextlib
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP

from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.tcp import (
    ACK,
    FIN,
    PSH,
    SYN,
    TcpSegment,
    build_tcp,
    sack_option,
    syn_options,
    verify_checksum,
)

SRC, DST = bytes((10, 0, 0, 1)), bytes((10, 0, 0, 2))
SRC_S, DST_S = "10.0.0.1", "10.0.0.2"


def scapy_bytes(tcp: TCP) -> bytes:
    """The TCP segment scapy builds (checksum over the IPv4 pseudo-header)."""
    return bytes(IP(src=SRC_S, dst=DST_S) / tcp)[20:]


def test_syn_options_as_scapy_reads_them() -> None:
    opts = syn_options(1460, 7, True, (123456, 0))
    raw = build_tcp(SRC, DST, 1234, 80, 0xDEADBEEF, 0, SYN, 65535, options=opts)
    parsed = TCP(bytes(raw))
    assert parsed.sport == 1234 and parsed.dport == 80 and parsed.seq == 0xDEADBEEF and parsed.flags == "S"
    options = dict((k, v) for k, v in parsed.options if k != "NOP")
    assert options["MSS"] == 1460 and options["WScale"] == 7 and options["SAckOK"] == b""
    assert options["Timestamp"] == (123456, 0)
    # scapy's own checksum over the same bytes agrees with ours
    assert IP(bytes(IP(src=SRC_S, dst=DST_S, proto=6) / parsed))[TCP].chksum == parsed.chksum
    assert verify_checksum(raw, SRC, DST)


def test_syn_options_without_timestamps() -> None:
    raw = build_tcp(SRC, DST, 1, 2, 5, 0, SYN, 1000, options=syn_options(536, None, True, None))
    options = [k for k, _ in TCP(bytes(raw)).options if k != "NOP"]
    assert options == ["MSS", "SAckOK"]


def test_data_segment_with_timestamps_and_sack_as_scapy_reads_it() -> None:
    payload = bytes(range(256)) * 4
    raw = build_tcp(SRC, DST, 5555, 443, 0xFFFFFFF0, 42, ACK | PSH, 501,
                    options=sack_option([(100, 200), (0xFFFFFF00, 0x10)]), ts=(7, 9), payload=payload)
    parsed = TCP(bytes(raw))
    assert parsed.seq == 0xFFFFFFF0 and parsed.ack == 42 and parsed.window == 501 and parsed.flags == "PA"
    options = dict((k, v) for k, v in parsed.options if k != "NOP")
    assert options["Timestamp"] == (7, 9)
    assert options["SAck"] == (100, 200, 0xFFFFFF00, 0x10)
    assert bytes(parsed.payload) == payload
    reference = scapy_bytes(TCP(sport=5555, dport=443, seq=0xFFFFFFF0, ack=42, flags="PA", window=501,
                                options=parsed.options) / payload)
    assert reference == bytes(raw)  # identical bytes, checksum included


def test_parse_what_scapy_builds() -> None:
    tcp = TCP(sport=80, dport=40000, seq=1, ack=2, flags="SA", window=29200,
              options=[("MSS", 1400), ("SAckOK", b""), ("Timestamp", (11, 22)), ("NOP", None), ("WScale", 9)])
    raw = scapy_bytes(tcp)
    seg = TcpSegment.parse(memoryview(raw))
    assert (seg.sport, seg.dport, seg.seq, seg.ack, seg.flags, seg.window) == (80, 40000, 1, 2, SYN | ACK, 29200)
    assert seg.mss == 1400 and seg.sack_perm and seg.ts_val == 11 and seg.ts_ecr == 22 and seg.wscale == 9
    assert verify_checksum(raw, SRC, DST)
    assert not verify_checksum(raw, SRC, bytes((10, 0, 0, 3)))


def test_parse_sack_blocks_and_payload_from_scapy() -> None:
    tcp = TCP(sport=1, dport=2, seq=3, ack=4, flags="A",
              options=[("NOP", None), ("NOP", None), ("SAck", (10, 20, 30, 40, 50, 60))]) / b"data!"
    seg = TcpSegment.parse(memoryview(scapy_bytes(tcp)))
    assert seg.sack == [(10, 20), (30, 40), (50, 60)]
    assert bytes(seg.payload) == b"data!" and seg.ts_val is None


def test_fast_path_timestamp_layout() -> None:
    raw = build_tcp(SRC, DST, 1, 2, 3, 4, ACK, 5, ts=(0xFFFFFFFF, 1), payload=b"xyz")
    seg = TcpSegment.parse(memoryview(raw))
    assert seg.ts_val == 0xFFFFFFFF and seg.ts_ecr == 1 and bytes(seg.payload) == b"xyz"
    assert TCP(bytes(raw)).options == [("NOP", None), ("NOP", None), ("Timestamp", (0xFFFFFFFF, 1))]


def test_seg_len_counts_syn_and_fin() -> None:
    raw = build_tcp(SRC, DST, 1, 2, 3, 4, SYN | FIN, 5, payload=b"ab")
    assert TcpSegment.parse(memoryview(raw)).seg_len == 4


def test_unknown_options_are_skipped_and_eol_ends() -> None:
    opts = bytes((30, 4, 0xAA, 0xBB)) + b"\x01" + bytes((2, 4)) + struct.pack("!H", 999) + b"\x00\x00\x00"
    raw = build_tcp(SRC, DST, 1, 2, 3, 4, ACK, 5, options=opts)
    seg = TcpSegment.parse(memoryview(raw))
    assert seg.mss == 999


def test_malformed_cases_have_reasons() -> None:
    good = bytes(build_tcp(SRC, DST, 1, 2, 3, 4, ACK, 5))
    cases = {
        "short": good[:19],
        "bad_data_offset": good[:12] + bytes((0x40,)) + good[13:],  # offset 4 words < 5
        "bad_option": bytes(build_tcp(SRC, DST, 1, 2, 3, 4, ACK, 5, options=bytes((2, 3, 0, 1)))),
    }
    for reason, raw in cases.items():
        try:
            TcpSegment.parse(memoryview(raw))
        except Malformed as exc:
            assert exc.reason == reason
        else:
            raise AssertionError(f"{reason} not detected")
    too_long = good[:12] + bytes((0xF0,)) + good[13:]  # claims 60 header bytes in 20
    try:
        TcpSegment.parse(memoryview(too_long))
    except Malformed as exc:
        assert exc.reason == "bad_data_offset"


@settings(max_examples=3000, deadline=None)
@given(st.binary(min_size=0, max_size=80))
def test_fuzz_parser_raises_only_malformed(data: bytes) -> None:
    try:
        seg = TcpSegment.parse(memoryview(data))
    except Malformed:
        return
    assert len(seg.payload) <= len(data)


@settings(max_examples=500, deadline=None)
@given(st.binary(min_size=20, max_size=20), st.binary(max_size=40), st.binary(max_size=30))
def test_fuzz_options_area_raises_only_malformed(header: bytes, options: bytes, payload: bytes) -> None:
    """Random option bytes behind a header whose data offset covers them."""
    options += bytes(-len(options) % 4)
    raw = bytearray(header) + options + payload
    raw[12] = ((20 + len(options)) // 4) << 4
    with contextlib.suppress(Malformed):
        TcpSegment.parse(memoryview(bytes(raw)))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFF), st.integers(0, 0xFFFF),
       st.binary(max_size=100), st.one_of(st.none(), st.tuples(st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF))))
def test_round_trip_through_scapy(seq: int, ack: int, flags: int, window: int, payload: bytes,
                                  ts: tuple[int, int] | None) -> None:
    raw = bytes(build_tcp(SRC, DST, 4242, 80, seq, ack, flags, window, ts=ts, payload=payload))
    parsed = TCP(raw)
    assert (parsed.seq, parsed.ack, int(parsed.flags), parsed.window) == (seq, ack, flags, window)
    assert bytes(parsed.payload) == payload
    assert scapy_bytes(TCP(raw)) == raw  # scapy recomputes nothing different, checksum included
    ours = TcpSegment.parse(memoryview(scapy_bytes(parsed)))
    assert (ours.seq, ours.ack, ours.flags, ours.window, bytes(ours.payload)) == (seq, ack, flags, window, payload)
    assert (ours.ts_val, ours.ts_ecr) == (ts if ts is not None else (None, 0))
