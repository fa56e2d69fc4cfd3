"""Property tests: no parser ever raises anything but Malformed, and write -> parse round-trips.

Random bytes alone mostly stop at the first check (version, length), so each parser is also
fed valid packets with random bytes overwritten and random truncation, which reaches the
deeper checks (options, checksums, LLC/SNAP).
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.packet import Raw

from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.arp import ARP_LEN, ArpPacket, write_arp
from pytcp_green.stack.wire.ethernet import ETH_HEADER_LEN, EthernetFrame, write_ethernet
from pytcp_green.stack.wire.icmp4 import ICMP4_HEADER_LEN, Icmp4Message, write_icmp4
from pytcp_green.stack.wire.ip4 import IP4_HEADER_LEN, Ip4Packet, write_ip4
from pytcp_green.stack.wire.udp import UDP_HEADER_LEN, UdpDatagram, write_udp

from .naive import ip4_header, naive_checksum

PROPS = settings(max_examples=300, deadline=None)

addr4 = st.binary(min_size=4, max_size=4)
addr6 = st.binary(min_size=16, max_size=16)
mac = st.binary(min_size=6, max_size=6)
u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)


def _parse_or_malformed(parse: Callable[[memoryview], object], data: bytes) -> None:
    try:
        parse(memoryview(data))
    except Malformed as exc:
        assert exc.reason and exc.reason.replace("_", "").isalpha() and exc.reason.islower()


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A valid packet with a few bytes overwritten and maybe cut or extended."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 4))):
        if data:
            data[draw(st.sampled_from(range(len(data))))] = draw(u8)  # uniform, unlike integers()
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut]) + draw(st.binary(max_size=8)) if draw(st.booleans()) else bytes(data)


ETH_SEEDS = [
    bytes.fromhex("ffffffffffff020000000001 0806") + bytes(46),
    bytes.fromhex("ffffffffffff020000000001 0030 aaaa03000000 0800") + bytes(40),
    bytes.fromhex("0180c2000000020000000001 0026 424203") + bytes(43),
]
IP4_SEEDS = [
    ip4_header(payload=b"abcdefgh"),
    ip4_header(options=b"\x94\x04\x00\x00", payload=b"x"),
    ip4_header(options=b"\x01\x07\x07\x04" + bytes(4) + b"\x44\x0c\x05\x00" + bytes(8), payload=b"p"),
]
ARP_SEED = bytes.fromhex("000108000604 0001 020000000001 c0000201 000000000000 c0000202")


def _icmp(body: bytes) -> bytes:
    buf = bytearray(ICMP4_HEADER_LEN + len(body))
    buf[ICMP4_HEADER_LEN:] = body
    write_icmp4(buf, 0, 8, 0, 0x00010002, len(body))
    return bytes(buf)


def _udp(payload: bytes, src: bytes, dst: bytes) -> bytes:
    buf = bytearray(UDP_HEADER_LEN + len(payload))
    buf[UDP_HEADER_LEN:] = payload
    write_udp(buf, 0, 1, 2, len(payload), src, dst)
    return bytes(buf)


ICMP_SEEDS = [_icmp(b""), _icmp(b"hello"), _icmp(ip4_header(payload=bytes(8)))]
S4, D4 = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"
UDP_SEEDS = [_udp(b"", S4, D4), _udp(b"odd", S4, D4), _udp(b"data" * 5, S4, D4)]


# --- never anything but Malformed ------------------------------------------------------------


@PROPS
@given(st.one_of(st.binary(max_size=80), mutated(ETH_SEEDS)))
def test_ethernet_fuzz(data: bytes) -> None:
    _parse_or_malformed(EthernetFrame.parse, data)


@PROPS
@given(st.one_of(st.binary(max_size=40), mutated([ARP_SEED])))
def test_arp_fuzz(data: bytes) -> None:
    _parse_or_malformed(ArpPacket.parse, data)


def _fix_ip4_checksum(data: bytes) -> bytes:
    """Recompute the header checksum after a mutation so the checks behind it get exercised."""
    if len(data) < 20:
        return data
    hl = max(20, min(len(data), (data[0] & 0x0F) * 4))
    hdr = bytearray(data[:hl])
    hdr[10:12] = b"\x00\x00"
    hdr[10:12] = naive_checksum(bytes(hdr)).to_bytes(2, "big")
    return bytes(hdr) + data[hl:]


@PROPS
@given(st.one_of(st.binary(max_size=80), mutated(IP4_SEEDS), mutated(IP4_SEEDS).map(_fix_ip4_checksum)))
def test_ip4_fuzz(data: bytes) -> None:
    def parse(buf: memoryview) -> object:
        pkt = Ip4Packet.parse(buf)
        pkt.iter_options()  # must not fail on anything parse accepted
        return pkt

    _parse_or_malformed(parse, data)


def _naive_options(opts: bytes) -> list[tuple[int, bytes]] | None:
    """RFC 791 option walk written independently; None when the list is malformed."""
    out = []
    rest = opts
    while rest and rest[0] != 0:
        if rest[0] == 1:
            rest = rest[1:]
            continue
        if len(rest) < 2 or rest[1] < 2 or rest[1] > len(rest):
            return None
        out.append((rest[0], rest[: rest[1]]))
        rest = rest[rest[1] :]
    return out


# Option bytes drawn from the values that matter (EOL, NOP, small lengths, real types).
option_bytes = st.lists(st.sampled_from([0, 1, 2, 3, 4, 7, 8, 40, 68, 130, 148, 255]), max_size=40).map(bytes)


@PROPS
@given(st.one_of(option_bytes, st.binary(max_size=40)))
def test_ip4_options_walk_matches_naive(opts: bytes) -> None:
    opts += bytes(-len(opts) % 4)
    raw = ip4_header(options=opts, payload=b"data")
    want = _naive_options(opts)
    try:
        pkt = Ip4Packet.parse(memoryview(raw))
    except Malformed as exc:
        assert exc.reason == "bad_option"
        assert want is None
    else:
        assert want is not None
        assert [(t, bytes(v)) for t, v in pkt.iter_options()] == want


@PROPS
@given(st.one_of(st.binary(max_size=60), mutated(ICMP_SEEDS)))
def test_icmp4_fuzz(data: bytes) -> None:
    _parse_or_malformed(Icmp4Message.parse, data)


@PROPS
@given(
    st.one_of(st.binary(max_size=60), mutated(UDP_SEEDS)),
    st.one_of(st.tuples(addr4, addr4), st.just((S4, D4)), st.tuples(addr6, addr6)),
    st.booleans(),
)
def test_udp_fuzz(data: bytes, addrs: tuple[bytes, bytes], verify: bool) -> None:
    _parse_or_malformed(lambda buf: UdpDatagram.parse(buf, addrs[0], addrs[1], verify), data)


# --- write -> parse gives the same fields ---------------------------------------------------


@PROPS
@given(mac, mac, st.integers(0x0600, 0xFFFF), st.binary(max_size=64))
def test_ethernet_round_trip(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> None:
    buf = bytearray(ETH_HEADER_LEN) + payload
    write_ethernet(buf, 0, dst, src, ethertype)
    frame = EthernetFrame.parse(memoryview(buf))
    assert (frame.dst, frame.src, frame.ethertype, bytes(frame.payload)) == (dst, src, ethertype, payload)


@PROPS
@given(st.sampled_from([1, 2]), mac, addr4, mac, addr4)
def test_arp_round_trip(oper: int, sha: bytes, spa: bytes, tha: bytes, tpa: bytes) -> None:
    buf = bytearray(ARP_LEN)
    write_arp(buf, 0, oper, sha, spa, tha, tpa)
    pkt = ArpPacket.parse(memoryview(buf))
    assert (pkt.oper, pkt.sha, pkt.spa, pkt.tha, pkt.tpa) == (oper, sha, spa, tha, tpa)


# One IPv4 option: NOP, or a type >= 2 with its data (type/len bytes added below).
ip4_option = st.one_of(
    st.just((1, b"")),
    st.tuples(st.integers(2, 255), st.binary(max_size=10)),
)


@PROPS
@given(
    src=addr4,
    dst=addr4,
    proto=u8,
    ident=u16,
    ttl=u8,
    tos=u8,
    df=st.booleans(),
    mf=st.booleans(),
    frag_units=st.integers(0, 0x1FFF),
    option_list=st.lists(ip4_option, max_size=5),
    payload=st.binary(max_size=40),
)
def test_ip4_round_trip(
    src: bytes,
    dst: bytes,
    proto: int,
    ident: int,
    ttl: int,
    tos: int,
    df: bool,
    mf: bool,
    frag_units: int,
    option_list: list[tuple[int, bytes]],
    payload: bytes,
) -> None:
    options = b"".join(bytes([t]) if t == 1 else bytes([t, 2 + len(d)]) + d for t, d in option_list)[:40]
    expected = []
    i = 0
    for t, d in option_list:  # the options that survived the 40-byte cut
        size = 1 if t == 1 else 2 + len(d)
        if i + size > len(options):
            options = options[:i]
            break
        if t != 1:
            expected.append((t, bytes([t, 2 + len(d)]) + d))
        i += size
    hl = IP4_HEADER_LEN + ((len(options) + 3) & ~3)
    buf = bytearray(hl) + payload
    got = write_ip4(
        buf, 0, src=src, dst=dst, proto=proto, total_len=hl + len(payload), ident=ident, ttl=ttl, tos=tos,
        df=df, mf=mf, frag_offset=frag_units * 8, options=options,
    )  # fmt: skip
    assert got == hl
    pkt = Ip4Packet.parse(memoryview(bytes(buf) + b"\x00" * 3))  # plus link padding
    assert (pkt.src, pkt.dst, pkt.proto, pkt.ident, pkt.ttl, pkt.tos) == (src, dst, proto, ident, ttl, tos)
    assert (pkt.df, pkt.mf, pkt.frag_offset) == (df, mf, frag_units * 8)
    assert pkt.is_fragment == (mf or frag_units > 0)
    assert (pkt.header_len, pkt.total_len) == (hl, hl + len(payload))
    assert bytes(pkt.options) == options + bytes(hl - IP4_HEADER_LEN - len(options))
    assert [(t, bytes(v)) for t, v in pkt.iter_options()] == expected
    assert bytes(pkt.payload) == payload


@PROPS
@given(u8, u8, u32, st.binary(max_size=100))
def test_icmp4_round_trip(type_: int, code: int, rest: int, body: bytes) -> None:
    buf = bytearray(ICMP4_HEADER_LEN) + body
    write_icmp4(buf, 0, type_, code, rest, len(body))
    msg = Icmp4Message.parse(memoryview(buf))
    assert (msg.type, msg.code, msg.rest, bytes(msg.body)) == (type_, code, rest, body)
    assert (msg.ident, msg.seq) == (rest >> 16, rest & 0xFFFF)


@PROPS
@given(u16, u16, st.binary(max_size=100), st.one_of(st.tuples(addr4, addr4), st.tuples(addr6, addr6)))
def test_udp_round_trip(sport: int, dport: int, payload: bytes, addrs: tuple[bytes, bytes]) -> None:
    src, dst = addrs
    buf = bytearray(UDP_HEADER_LEN) + payload
    write_udp(buf, 0, sport, dport, len(payload), src, dst)
    d = UdpDatagram.parse(memoryview(buf), src, dst)
    assert (d.sport, d.dport, d.length, bytes(d.payload)) == (sport, dport, 8 + len(payload), payload)
    assert d.checksum != 0


# --- random fields: our bytes equal scapy's bytes -------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    src=addr4, dst=addr4, ident=u16, ttl=u8, tos=u8, df=st.booleans(), sport=u16, dport=u16,
    payload=st.binary(max_size=40),
)  # fmt: skip
def test_ip4_udp_bytes_equal_scapy(
    src: bytes, dst: bytes, ident: int, ttl: int, tos: int, df: bool, sport: int, dport: int, payload: bytes
) -> None:
    total = IP4_HEADER_LEN + UDP_HEADER_LEN + len(payload)
    buf = bytearray(total)
    buf[IP4_HEADER_LEN + UDP_HEADER_LEN :] = payload
    write_ip4(buf, 0, src=src, dst=dst, proto=17, total_len=total, ident=ident, ttl=ttl, tos=tos, df=df)
    write_udp(buf, IP4_HEADER_LEN, sport, dport, len(payload), src, dst)
    ref = (
        IP(src=".".join(map(str, src)), dst=".".join(map(str, dst)), id=ident, ttl=ttl, tos=tos, flags=2 if df else 0)
        / UDP(sport=sport, dport=dport)
        / Raw(payload)
    )
    assert bytes(buf) == bytes(ref)
