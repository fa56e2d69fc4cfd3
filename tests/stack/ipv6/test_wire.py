"""IPv6 / ICMPv6 / ND / MLDv2 codecs cross-checked against scapy in both directions, malformed tables, fuzz."""

from __future__ import annotations

import contextlib
import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import UDP
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6MLDMultAddrRec,
    ICMPv6MLQuery,
    ICMPv6MLQuery2,
    ICMPv6MLReport2,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_Redirect,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptMTU,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6PacketTooBig,
    ICMPv6ParamProblem,
    ICMPv6TimeExceeded,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    PadN,
    RouterAlert,
)
from scapy.packet import Raw

from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire import icmp6 as w6
from pytcp_green.stack.wire.ip6 import (
    NH_DEST_OPTS,
    NH_FRAGMENT,
    NH_HOP_BY_HOP,
    NH_ICMP6,
    NH_ROUTING,
    NH_UDP,
    OPT_ROUTER_ALERT,
    FragmentHeader,
    Ip6Packet,
    RoutingHeader,
    build_options_header,
    option_action,
    parse_options,
    router_alert_hbh,
    solicited_node,
    walk_extensions,
    write_fragment_header,
    write_ip6,
)

SRC = "fe80::1"
DST = "2001:db8::2"
S = ipaddress.IPv6Address(SRC).packed
D = ipaddress.IPv6Address(DST).packed
MAC = bytes.fromhex("020000000002")


def ours(raw: bytes) -> Ip6Packet:
    return Ip6Packet.parse(memoryview(raw))


# -- IPv6 header and extension headers ------------------------------------------------------------------


def test_fixed_header_from_scapy() -> None:
    raw = bytes(IPv6(src=SRC, dst=DST, tc=0xB8, fl=0xABCDE, hlim=17) / UDP(sport=1, dport=2) / b"hello") + b"\0pad"
    pkt = ours(raw)
    assert (pkt.traffic_class, pkt.flow_label, pkt.hop_limit, pkt.next_header) == (0xB8, 0xABCDE, 17, NH_UDP)
    assert pkt.src == S and pkt.dst == D
    assert pkt.payload_len == 13 and len(pkt.payload) == 13 and len(pkt.packet) == 53  # padding cut off


def test_fixed_header_to_scapy() -> None:
    buf = bytearray(40 + 4)
    buf[40:] = b"abcd"
    write_ip6(buf, 0, src=S, dst=D, next_header=59, payload_len=4, hop_limit=255, traffic_class=3, flow_label=9)
    p = IPv6(bytes(buf))
    assert (p.version, p.tc, p.fl, p.plen, p.nh, p.hlim, p.src, p.dst) == (6, 3, 9, 4, 59, 255, SRC, DST)


def test_extension_chain_from_scapy() -> None:
    raw = bytes(
        IPv6(src=SRC, dst=DST)
        / IPv6ExtHdrHopByHop(options=[RouterAlert(value=0)])
        / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\0\0\0\0")])
        / IPv6ExtHdrRouting(type=0, segleft=0, addresses=["2001:db8::9"])
        / IPv6ExtHdrFragment(offset=0, m=0, id=0xDEADBEEF)
        / UDP(sport=7, dport=9)
    )
    pkt = ours(raw)
    headers, upper, off = walk_extensions(pkt.packet, pkt.next_header)
    assert [h.kind for h in headers] == [NH_HOP_BY_HOP, NH_DEST_OPTS, NH_ROUTING, NH_FRAGMENT]
    assert upper == NH_UDP and raw[off : off + 2] == (7).to_bytes(2, "big")
    assert [o.type for o in parse_options(headers[0].data)] == [OPT_ROUTER_ALERT]
    assert parse_options(headers[1].data) == []  # padding only
    rh = RoutingHeader.parse(headers[2].data)
    assert (rh.routing_type, rh.segments_left, rh.next_header) == (0, 0, NH_FRAGMENT)
    fh = FragmentHeader.parse(headers[3].data)
    assert (fh.ident, fh.offset, fh.more, fh.is_atomic, fh.next_header) == (0xDEADBEEF, 0, False, True, NH_UDP)


def test_fragment_header_to_scapy_and_back() -> None:
    buf = bytearray(8)
    write_fragment_header(buf, 0, NH_UDP, 1448, True, 0x12345678)
    f = IPv6ExtHdrFragment(bytes(buf))
    assert (f.nh, f.offset, f.m, f.id) == (NH_UDP, 1448 // 8, 1, 0x12345678)
    fh = FragmentHeader.parse(memoryview(bytes(IPv6ExtHdrFragment(nh=6, offset=3, m=1, id=5))))
    assert (fh.next_header, fh.offset, fh.more, fh.ident) == (6, 24, True, 5)
    with pytest.raises(ValueError):
        write_fragment_header(buf, 0, NH_UDP, 3, False, 1)


@pytest.mark.parametrize("options", [[], [(OPT_ROUTER_ALERT, b"\0\0")], [(0x3E, b"x" * 5)], [(0x1E, b"")],
                                     [(0xDE, b"abc"), (0x07, b"1234567")]])
def test_options_header_to_scapy(options: list[tuple[int, bytes]]) -> None:
    hdr = build_options_header(NH_UDP, options)
    assert len(hdr) % 8 == 0
    h = IPv6ExtHdrDestOpt(hdr)
    got = [(o.otype, bytes(o)[2:]) for o in h.options if o.otype not in (0, 1)]
    assert got == options
    assert [(o.type, bytes(o.data)) for o in parse_options(memoryview(hdr))] == options


def test_router_alert_header_is_what_scapy_builds() -> None:
    assert router_alert_hbh(NH_ICMP6) == bytes(IPv6ExtHdrHopByHop(nh=NH_ICMP6, options=[RouterAlert(value=0)]))


def test_option_action_bits() -> None:
    assert [option_action(t) for t in (0x05, 0x4A, 0x8A, 0xC2)] == [0, 1, 2, 3]


def test_solicited_node() -> None:
    assert solicited_node(ipaddress.IPv6Address("2001:db8::12:3456:789a").packed) == \
        ipaddress.IPv6Address("ff02::1:ff56:789a").packed


MALFORMED_IP6 = [
    (b"", "too_short"),
    (b"\x60" + bytes(38), "too_short"),
    (b"\x40" + bytes(39), "bad_version"),
    (b"\x60\0\0\0\x00\x10\x3b\x40" + bytes(32) + bytes(8), "bad_payload_len"),
    (b"\x60\0\0\0\x00\x00\x00\x40" + bytes(32), "jumbogram"),
]


@pytest.mark.parametrize(("raw", "reason"), MALFORMED_IP6)
def test_malformed_ip6(raw: bytes, reason: str) -> None:
    with pytest.raises(Malformed) as exc:
        ours(raw)
    assert exc.value.reason == reason


@pytest.mark.parametrize(
    ("chain", "reason"),
    [
        (bytes((NH_UDP, 1)) + bytes(6), "truncated_ext_header"),  # says 16 octets, has 8
        (bytes((NH_UDP,)), "truncated_ext_header"),
    ],
)
def test_truncated_extension(chain: bytes, reason: str) -> None:
    buf = bytearray(40 + len(chain))
    write_ip6(buf, 0, src=S, dst=D, next_header=NH_DEST_OPTS, payload_len=len(chain))
    buf[40:] = chain
    pkt = ours(bytes(buf))
    with pytest.raises(Malformed) as exc:
        walk_extensions(pkt.packet, pkt.next_header)
    assert exc.value.reason == reason


def test_option_overrunning_its_header() -> None:
    hdr = bytes((NH_UDP, 0, 0x3E, 9)) + bytes(4)
    with pytest.raises(Malformed):
        parse_options(memoryview(hdr))


# -- ICMPv6: scapy -> ours ---------------------------------------------------------------------------


def parse_icmp(pkt: IPv6) -> w6.Icmp6Message:
    raw = bytes(pkt)
    ip = ours(raw)
    return w6.Icmp6Message.parse(ip.payload, ip.src, ip.dst)


def test_echo_from_scapy() -> None:
    for cls, kind in ((ICMPv6EchoRequest, 128), (ICMPv6EchoReply, 129)):
        m = parse_icmp(IPv6(src=SRC, dst=DST) / cls(id=0x1234, seq=7, data=b"ping"))
        assert (m.type, m.ident, m.seq, bytes(m.body)) == (kind, 0x1234, 7, b"ping")


@pytest.mark.parametrize(("layer", "kind", "code", "rest"), [
    (ICMPv6DestUnreach(code=4), 1, 4, 0),
    (ICMPv6PacketTooBig(mtu=1400), 2, 0, 1400),
    (ICMPv6TimeExceeded(code=1), 3, 1, 0),
    (ICMPv6ParamProblem(code=2, ptr=42), 4, 2, 42),
])
def test_errors_from_scapy(layer: object, kind: int, code: int, rest: int) -> None:
    quoted = IPv6(src=DST, dst=SRC) / UDP(sport=1, dport=2)
    m = parse_icmp(IPv6(src=SRC, dst=DST) / layer / quoted)
    assert (m.type, m.code, m.rest, m.is_error) == (kind, code, rest, True)
    assert bytes(m.body) == bytes(quoted)


def test_bad_checksum_and_short() -> None:
    raw = bytearray(bytes(IPv6(src=SRC, dst=DST) / ICMPv6EchoRequest()))
    raw[-1] ^= 1
    with pytest.raises(Malformed, match="bad_checksum"):
        w6.Icmp6Message.parse(memoryview(raw)[40:], S, D)
    with pytest.raises(Malformed, match="too_short"):
        w6.Icmp6Message.parse(memoryview(b"\x80\0\0"), S, D)


def test_rs_ra_from_scapy() -> None:
    m = parse_icmp(IPv6(src=SRC, dst="ff02::2") / ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01"))
    assert m.type == w6.TYPE_ROUTER_SOLICIT
    assert w6.RouterSolicit.parse(m).options.slla == bytes.fromhex("020000000001")
    ra = (IPv6(src=SRC, dst="ff02::1") / ICMPv6ND_RA(chlim=64, M=1, O=0, routerlifetime=1800, reachabletime=30000,
                                                      retranstimer=1000)
          / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01") / ICMPv6NDOptMTU(mtu=1400)
          / ICMPv6NDOptPrefixInfo(prefix="fd00:77::", prefixlen=64, L=1, A=1, validlifetime=7200,
                                  preferredlifetime=3600))
    r = w6.RouterAdvert.parse(parse_icmp(ra))
    assert (r.cur_hop_limit, r.managed, r.other, r.router_lifetime) == (64, True, False, 1800)
    assert (r.reachable_time, r.retrans_timer, r.options.mtu) == (30000, 1000, 1400)
    (p,) = r.options.prefixes
    assert (p.prefix, p.prefix_len, p.on_link, p.autonomous, p.valid, p.preferred) == (
        ipaddress.IPv6Address("fd00:77::").packed, 64, True, True, 7200, 3600)


def test_ns_na_redirect_from_scapy() -> None:
    ns = w6.NeighborSolicit.parse(parse_icmp(IPv6(src=SRC, dst="ff02::1:ff00:2") / ICMPv6ND_NS(tgt=DST)
                                             / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01")))
    assert ns.target == D and ns.options.slla == bytes.fromhex("020000000001")
    na = w6.NeighborAdvert.parse(parse_icmp(IPv6(src=DST, dst=SRC) / ICMPv6ND_NA(R=0, S=1, O=1, tgt=DST)
                                            / ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:02")))
    assert (na.router, na.solicited, na.override, na.target, na.options.tlla) == (False, True, True, D, MAC)
    rd = w6.Redirect.parse(parse_icmp(IPv6(src=SRC, dst=DST) / ICMPv6ND_Redirect(tgt="fe80::9", dst="2001:db8::77")
                                      / ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:09")))
    assert rd.target == ipaddress.IPv6Address("fe80::9").packed
    assert rd.dest == ipaddress.IPv6Address("2001:db8::77").packed
    assert rd.options.tlla == bytes.fromhex("020000000009")


def test_mld_from_scapy() -> None:
    q = w6.MldQuery.parse(parse_icmp(IPv6(src=SRC, dst="ff02::1", hlim=1) / ICMPv6MLQuery2(mrd=10000)))
    assert (q.version, q.max_resp_ms, q.group, q.sources) == (2, 10000, bytes(16), ())
    q = w6.MldQuery.parse(parse_icmp(IPv6(src=SRC, dst="ff02::1:ff00:2") / ICMPv6MLQuery2(
        mladdr="ff02::1:ff00:2", sources=["fe80::5"], mrd=40000)))
    assert q.group == solicited_node(D) and q.sources == (ipaddress.IPv6Address("fe80::5").packed,)
    assert q.max_resp_ms == w6.decode_max_resp(40000) > 40000
    v1 = w6.MldQuery.parse(parse_icmp(IPv6(src=SRC, dst="ff02::1") / ICMPv6MLQuery(mrd=1000)))
    assert (v1.version, v1.max_resp_ms) == (1, 1000)
    rep = IPv6(src=SRC, dst="ff02::16") / ICMPv6MLReport2(records=[
        ICMPv6MLDMultAddrRec(rtype=4, dst="ff02::1:ff00:2"),
        ICMPv6MLDMultAddrRec(rtype=1, dst="ff05::3", sources=["2001:db8::1"])])
    r = w6.MldReport.parse(parse_icmp(rep))
    assert [(x.type, x.group, len(x.sources)) for x in r.records] == [
        (4, solicited_node(D), 0), (1, ipaddress.IPv6Address("ff05::3").packed, 1)]


# -- ours -> scapy -----------------------------------------------------------------------------------


def as_scapy(kind: int, code: int, rest: int, body: bytes, src: str = SRC, dst: str = DST) -> IPv6:
    s, d = ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed
    msg = w6.build_icmp6(kind, code, rest, body, s, d)
    buf = bytearray(40 + len(msg))
    write_ip6(buf, 0, src=s, dst=d, next_header=NH_ICMP6, payload_len=len(msg), hop_limit=255)
    buf[40:] = msg
    pkt = IPv6(bytes(buf))
    layer = pkt.payload
    want = layer.cksum
    del layer.cksum
    assert IPv6(bytes(pkt)).payload.cksum == want  # scapy recomputes the same checksum
    return IPv6(bytes(buf))


def test_echo_and_errors_to_scapy() -> None:
    p = as_scapy(128, 0, w6.echo_rest(5, 6), b"data")
    assert (p[ICMPv6EchoRequest].id, p[ICMPv6EchoRequest].seq, p[ICMPv6EchoRequest].data) == (5, 6, b"data")
    p = as_scapy(129, 0, w6.echo_rest(5, 6), b"")
    assert p.haslayer(ICMPv6EchoReply)
    quoted = bytes(IPv6(src=DST, dst=SRC) / UDP(sport=1, dport=2))
    assert as_scapy(1, 4, 0, quoted)[ICMPv6DestUnreach].code == 4
    assert as_scapy(2, 0, 1300, quoted)[ICMPv6PacketTooBig].mtu == 1300
    assert as_scapy(3, 1, 0, quoted)[ICMPv6TimeExceeded].code == 1
    pp = as_scapy(4, 1, 6, quoted)[ICMPv6ParamProblem]
    assert (pp.code, pp.ptr) == (1, 6)


def test_nd_to_scapy() -> None:
    p = as_scapy(133, 0, 0, w6.nd_opt_lla(w6.OPT_SLLA, MAC), dst="ff02::2")
    assert p[ICMPv6NDOptSrcLLAddr].lladdr == "02:00:00:00:00:02" and p.haslayer(ICMPv6ND_RS)
    body = w6.ra_body(30000, 1000, w6.nd_opt_lla(w6.OPT_SLLA, MAC) + w6.nd_opt_mtu(1400)
                      + w6.nd_opt_prefix(ipaddress.IPv6Address("fd00:77::").packed, 64, valid=100, preferred=50))
    p = as_scapy(134, 0, w6.ra_rest(64, 1800, managed=True), body, dst="ff02::1")
    ra = p[ICMPv6ND_RA]
    assert (ra.chlim, ra.M, ra.O, ra.routerlifetime, ra.reachabletime, ra.retranstimer) == (64, 1, 0, 1800, 30000, 1000)
    assert p[ICMPv6NDOptMTU].mtu == 1400
    pi = p[ICMPv6NDOptPrefixInfo]
    assert (pi.prefix, pi.prefixlen, pi.L, pi.A, pi.validlifetime, pi.preferredlifetime) == ("fd00:77::", 64, 1, 1,
                                                                                            100, 50)
    p = as_scapy(135, 0, 0, D + w6.nd_opt_lla(w6.OPT_SLLA, MAC), dst="ff02::1:ff00:2")
    assert p[ICMPv6ND_NS].tgt == DST and p[ICMPv6NDOptSrcLLAddr].lladdr == "02:00:00:00:00:02"
    p = as_scapy(136, 0, w6.na_rest(True, False, True), D + w6.nd_opt_lla(w6.OPT_TLLA, MAC))
    na = p[ICMPv6ND_NA]
    assert (na.R, na.S, na.O, na.tgt) == (1, 0, 1, DST)
    assert p[ICMPv6NDOptDstLLAddr].lladdr == "02:00:00:00:00:02"
    p = as_scapy(137, 0, 0, S + D + w6.nd_opt_lla(w6.OPT_TLLA, MAC))
    assert (p[ICMPv6ND_Redirect].tgt, p[ICMPv6ND_Redirect].dst) == (SRC, DST)


def test_mld_to_scapy() -> None:
    rest, body = w6.mld_query()
    q = as_scapy(130, 0, rest, body, dst="ff02::1")[ICMPv6MLQuery2]
    assert (q.mrd, q.mladdr, q.QRV, q.QQIC, q.sources_number) == (10000, "::", 2, 125, 0)
    rest, body = w6.mld_report([w6.MldRecord(w6.CHANGE_TO_EXCLUDE, solicited_node(D)),
                                w6.MldRecord(w6.MODE_IS_INCLUDE, ipaddress.IPv6Address("ff05::3").packed, (S,))])
    r = as_scapy(143, 0, rest, body, dst="ff02::16")[ICMPv6MLReport2]
    assert r.records_number == 2
    flat = []  # scapy nests the second record as the payload of the first
    rec = r.records[0]
    while isinstance(rec, ICMPv6MLDMultAddrRec):
        flat.append((rec.rtype, rec.dst, list(rec.sources)))
        rec = rec.payload
    assert flat == [
        (4, "ff02::1:ff00:2", []), (1, "ff05::3", [SRC])]


MALFORMED_ND = [
    (w6.TYPE_NEIGHBOR_SOLICIT, bytes(15), "too_short"),
    (w6.TYPE_NEIGHBOR_SOLICIT, D + bytes((1, 0)) + bytes(6), "bad_nd_option"),  # zero length option
    (w6.TYPE_NEIGHBOR_SOLICIT, D + bytes((1, 2)) + bytes(6), "bad_nd_option"),  # runs past the end
    (w6.TYPE_NEIGHBOR_SOLICIT, D + bytes((1,)), "bad_nd_option"),
    (w6.TYPE_ROUTER_ADVERT, bytes(7), "too_short"),
    (w6.TYPE_ROUTER_ADVERT, bytes(8) + bytes((3, 1)) + bytes(6), "bad_nd_option"),  # prefix info of 8 octets
    (w6.TYPE_ROUTER_ADVERT, bytes(8) + bytes((5, 2)) + bytes(14), "bad_nd_option"),  # MTU option of 16
    (w6.TYPE_REDIRECT, bytes(31), "too_short"),
    (w6.TYPE_MLD_QUERY, bytes(18), "bad_length"),
    (w6.TYPE_MLD_QUERY, bytes(18) + b"\0\x01", "bad_length"),  # one source announced, none present
]


@pytest.mark.parametrize(("kind", "body", "reason"), MALFORMED_ND)
def test_malformed_nd_and_mld(kind: int, body: bytes, reason: str) -> None:
    msg = w6.Icmp6Message.parse(memoryview(w6.build_icmp6(kind, 0, 0, body, S, D)), S, D)
    parser = {133: w6.RouterSolicit, 134: w6.RouterAdvert, 135: w6.NeighborSolicit, 136: w6.NeighborAdvert,
              137: w6.Redirect, 130: w6.MldQuery}[kind]
    with pytest.raises(Malformed) as exc:
        parser.parse(msg)  # type: ignore[attr-defined]
    assert exc.value.reason == reason


def test_malformed_mld_report() -> None:
    msg = w6.Icmp6Message.parse(memoryview(w6.build_icmp6(143, 0, 2, bytes(20), S, D)), S, D)
    with pytest.raises(Malformed):
        w6.MldReport.parse(msg)


# -- fuzz ---------------------------------------------------------------------------------------------

PARSERS = (w6.RouterSolicit, w6.RouterAdvert, w6.NeighborSolicit, w6.NeighborAdvert, w6.Redirect, w6.MldQuery,
           w6.MldReport)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_parsers_raise_only_malformed(data: bytes) -> None:
    try:
        pkt = ours(data)
        walk_extensions(pkt.packet, pkt.next_header)
    except Malformed:
        pass
    try:
        msg = w6.Icmp6Message.parse(memoryview(data), S, D, verify=False)
    except Malformed:
        return
    for parser in PARSERS:
        with contextlib.suppress(Malformed):
            parser.parse(msg)  # type: ignore[attr-defined]
    with contextlib.suppress(Malformed):
        parse_options(memoryview(data))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 255), st.integers(0, 255), st.integers(0, 2**32 - 1), st.binary(max_size=64))
def test_fuzz_icmp6_round_trip(kind: int, code: int, rest: int, body: bytes) -> None:
    msg = w6.Icmp6Message.parse(memoryview(w6.build_icmp6(kind, code, rest, body, S, D)), S, D)
    assert (msg.type, msg.code, msg.rest, bytes(msg.body)) == (kind, code, rest, body)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(2, 255), st.binary(max_size=20)), max_size=5))
def test_fuzz_options_round_trip(options: list[tuple[int, bytes]]) -> None:
    hdr = build_options_header(NH_UDP, options)
    assert [(o.type, bytes(o.data)) for o in parse_options(memoryview(hdr))] == options
    assert bytes(IPv6ExtHdrDestOpt(hdr)) == hdr  # scapy takes it as is


def test_raw_payload_type_is_kept() -> None:
    assert Raw  # keep scapy's Raw imported for readers building their own frames
