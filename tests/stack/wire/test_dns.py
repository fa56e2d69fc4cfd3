"""DNS messages (RFC 1035 §4.1), cross-checked with scapy's DNS layer both ways."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.dns import DNS, DNSQR, DNSRR

from pytcp_green.stack.wire import Malformed
from pytcp_green.stack.wire.dns import (
    CLASS_IN,
    RCODE_NXDOMAIN,
    TYPE_A,
    TYPE_AAAA,
    TYPE_CNAME,
    TYPE_NS,
    TYPE_PTR,
    BadName,
    Message,
    Question,
    Record,
    reverse_name,
)


def test_query_we_build_is_what_scapy_reads() -> None:
    raw = Message(id=0x1234, rd=True, questions=[Question("www.example.org", TYPE_A)]).build()
    pkt = DNS(raw)
    assert pkt.id == 0x1234 and pkt.qr == 0 and pkt.rd == 1 and pkt.qdcount == 1
    assert pkt.qd[0].qname == b"www.example.org." and pkt.qd[0].qtype == 1 and pkt.qd[0].qclass == 1
    assert raw == bytes(DNS(id=0x1234, rd=1, qd=DNSQR(qname="www.example.org", qtype="A")))


def test_response_scapy_builds_is_what_we_parse_including_compression() -> None:
    pkt = DNS(id=7, qr=1, rd=1, ra=1, qd=DNSQR(qname="alias.example.org", qtype="A"),
              an=[DNSRR(rrname="alias.example.org", type="CNAME", ttl=60, rdata="real.example.org"),
                  DNSRR(rrname="real.example.org", type="A", ttl=30, rdata="198.18.0.9"),
                  DNSRR(rrname="real.example.org", type="A", ttl=30, rdata="198.18.0.10")])
    msg = Message.parse(memoryview(bytes(pkt)))
    assert (msg.id, msg.qr, msg.rcode) == (7, True, 0)
    assert [(q.name, q.qtype) for q in msg.questions] == [("alias.example.org", 1)]
    assert [(r.name, r.rtype, r.ttl, r.data) for r in msg.answers] == [
        ("alias.example.org", 5, 60, "real.example.org"),
        ("real.example.org", 1, 30, "198.18.0.9"),
        ("real.example.org", 1, 30, "198.18.0.10"),
    ]


def test_our_compressed_response_is_what_scapy_reads() -> None:
    msg = Message(id=9, qr=True, questions=[Question("a.example.org", TYPE_A)], answers=[
        Record("a.example.org", TYPE_CNAME, CLASS_IN, 5, "b.example.org"),
        Record("b.example.org", TYPE_A, CLASS_IN, 5, "198.18.0.1"),
    ])
    raw = msg.build()
    assert raw.count(b"example") == 1  # every later "example.org" is a pointer
    pkt = DNS(raw)
    assert pkt.an[0].rdata == b"b.example.org." and pkt.an[1].rdata == "198.18.0.1"
    assert Message.parse(memoryview(raw)) == msg


def test_every_section_flag_and_record_type_both_ways() -> None:
    msg = Message(id=0xBEEF, qr=True, opcode=0, aa=True, tc=True, rd=False, ra=True, rcode=RCODE_NXDOMAIN,
                  questions=[Question("v6.example.net", TYPE_AAAA)],
                  answers=[Record("v6.example.net", TYPE_AAAA, CLASS_IN, 300, "2001:db8::1")],
                  authority=[Record("example.net", TYPE_NS, CLASS_IN, 3600, "ns1.example.net")],
                  additional=[Record("ns1.example.net", TYPE_A, CLASS_IN, 3600, "192.0.2.53"),
                              Record("1.2.0.192.in-addr.arpa", TYPE_PTR, CLASS_IN, 10, "host.example.net"),
                              Record("txt.example.net", 16, CLASS_IN, 10, b"\x05hello")])
    pkt = DNS(msg.build())
    assert (pkt.id, pkt.qr, pkt.aa, pkt.tc, pkt.rd, pkt.ra, pkt.rcode) == (0xBEEF, 1, 1, 1, 0, 1, 3)
    assert (pkt.qdcount, pkt.ancount, pkt.nscount, pkt.arcount) == (1, 1, 1, 3)
    assert pkt.an[0].rdata == "2001:db8::1" and pkt.ns[0].rdata == b"ns1.example.net."
    assert pkt.ar[0].rdata == "192.0.2.53" and pkt.ar[1].rdata == b"host.example.net."
    assert pkt.ar[2].rdata == [b"hello"]
    # scapy's re-encoding (uncompressed) parses to the same message.
    assert Message.parse(memoryview(bytes(DNS(bytes(pkt))))) == msg
    assert Message.parse(memoryview(msg.build())) == msg


def test_decode_and_encode_are_the_bytes_spelling() -> None:
    msg = Message(id=1, questions=[Question("x.test", TYPE_A)])
    assert msg.encode() == msg.build()
    assert Message.decode(msg.encode()) == msg


def test_ttl_top_bit_is_dropped() -> None:
    raw = bytes(DNS(id=1, qr=1, qd=DNSQR(qname="t.test"), an=DNSRR(rrname="t.test", ttl=0x80000010, rdata="1.2.3.4")))
    assert Message.parse(memoryview(raw)).answers[0].ttl == 0x10


def test_reverse_names() -> None:
    assert reverse_name("198.18.0.80") == "80.0.18.198.in-addr.arpa"
    assert reverse_name("2001:db8::1").endswith(".8.b.d.0.1.0.0.2.ip6.arpa")


@pytest.mark.parametrize(("raw", "reason"), [
    (b"\x00\x01\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01", "compression_loop"),
    (b"\x00\x01\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00\x05ab", "label_past_end"),
    (b"\x00\x01\x81", "too_short"),
    (b"\x00\x01\x81\x80\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01\x00\x01\x00\x00\x00\x05\x00\x09\x01",
     "rdata_past_end"),
    (b"\x00\x01\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00\x01a\x00\x00", "truncated_question"),
    (b"\x00\x01\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00\x01a", "name_past_end"),
    (b"\x00\x01\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00\xc0", "truncated_pointer"),
    (b"\x00\x01\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00\x41", "reserved_label_type"),
    (b"\x00\x01\x81\x80\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01", "truncated_record"),
    (b"\x00\x01\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00" + b"\x3f" + b"a" * 63 + b"\x3f" + b"b" * 63
     + b"\x3f" + b"c" * 63 + b"\x3f" + b"d" * 63 + b"\x00\x00\x01\x00\x01", "name_too_long"),
])
def test_malformed_messages(raw: bytes, reason: str) -> None:
    with pytest.raises(Malformed) as exc:
        Message.parse(memoryview(raw))
    assert exc.value.reason == reason


@pytest.mark.parametrize("name", ["a" * 64 + ".test", ".".join(["abcdefghi"] * 26), "a..b" + "." + "c" * 70])
def test_names_without_an_encoding(name: str) -> None:
    with pytest.raises(BadName):
        Message(questions=[Question(name, TYPE_A)]).build()


_label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)
_name = st.lists(_label, min_size=1, max_size=5).map(".".join)


@settings(max_examples=200, deadline=None)
@given(names=st.lists(_name, min_size=1, max_size=6), ident=st.integers(0, 0xFFFF),
       addrs=st.lists(st.ip_addresses(v=4).map(str), min_size=1, max_size=4))
def test_round_trip_and_scapy_agree(names: list[str], ident: int, addrs: list[str]) -> None:
    msg = Message(id=ident, qr=True, questions=[Question(names[0], TYPE_A)],
                  answers=[Record(names[i % len(names)], TYPE_A, CLASS_IN, 60, a) for i, a in enumerate(addrs)]
                  + [Record(n, TYPE_CNAME, CLASS_IN, 5, names[0]) for n in names[1:]])
    raw = msg.build()
    assert Message.parse(memoryview(raw)) == msg
    pkt = DNS(raw)
    assert [rr.rrname.decode().rstrip(".") for rr in pkt.an] == [rr.name for rr in msg.answers]
    assert Message.parse(memoryview(bytes(DNS(raw)))) == msg


_BASE = Message(id=9, qr=True, questions=[Question("a.example.org", TYPE_A)], answers=[
    Record("a.example.org", TYPE_CNAME, CLASS_IN, 5, "b.example.org"),
    Record("b.example.org", TYPE_A, CLASS_IN, 5, "198.18.0.1"),
    Record("b.example.org", TYPE_AAAA, CLASS_IN, 5, "2001:db8::1"),
], authority=[Record("example.org", TYPE_NS, CLASS_IN, 5, "ns.example.org")]).build()


def _parse_or_malformed(raw: bytes) -> None:
    """Anything but Malformed escaping (IndexError, struct.error, UnicodeError) is a bug."""
    try:
        Message.parse(memoryview(raw))
    except Malformed as exc:
        assert exc.reason.replace("_", "").isalpha() and exc.reason.islower()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_is_malformed_or_a_message(raw: bytes) -> None:
    _parse_or_malformed(raw)


@settings(max_examples=500, deadline=None)
@given(edits=st.lists(st.tuples(st.integers(0, len(_BASE) - 1), st.integers(0, 0xFF)), max_size=4),
       cut=st.integers(0, len(_BASE)))
def test_a_damaged_message_is_malformed_or_a_message(edits: list[tuple[int, int]], cut: int) -> None:
    raw = bytearray(_BASE)
    for offset, value in edits:
        raw[offset] = value
    _parse_or_malformed(bytes(raw[:cut]))
