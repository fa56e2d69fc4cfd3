"""PcapWriter: files that scapy's reader (an independent implementation) and tshark read back exactly."""

from __future__ import annotations

import shutil
import struct
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from scapy.utils import rdpcap

from pytcp_green.link.device import Frame
from pytcp_green.link.pcap import LINKTYPE_ETHERNET, LINKTYPE_RAW, PcapWriter, linktype_for
from pytcp_green.stack.interface import LinkKind

# An Ethernet frame carrying an ICMP echo request (checksums valid), and the bare IPv4 packet in it.
IP_PACKET = bytes.fromhex("4500001c000100004001f98cc0a80001c0a800020800f7fe00000001")
ETH_FRAME = bytes.fromhex("02 00 00 00 00 02  02 00 00 00 00 01  08 00") + IP_PACKET  # dst, src, IPv4

# Timestamps exactly representable in microseconds, including a carry-prone one.
STAMPS = [(1000, 0), (1000, 1), (1700000000, 999999), (1700000001, 500000)]


def stamp(sec: int, usec: int) -> float:
    return sec + usec / 1_000_000


def test_header_is_classic_microsecond_pcap(tmp_path: Path) -> None:
    path = tmp_path / "h.pcap"
    with PcapWriter(path, LINKTYPE_RAW) as w:
        w.write(IP_PACKET, 1.25)
    data = path.read_bytes()
    magic, major, minor, zone, sigfigs, snaplen, linktype = struct.unpack_from("<IHHiIII", data)
    assert (magic, major, minor, zone, sigfigs) == (0xA1B2C3D4, 2, 4, 0, 0)
    assert snaplen == 262144
    assert linktype == 101
    assert struct.unpack_from("<IIII", data, 24) == (1, 250000, len(IP_PACKET), len(IP_PACKET))
    assert data[40:] == IP_PACKET


@pytest.mark.parametrize(
    ("linktype", "frame"), [(LINKTYPE_ETHERNET, ETH_FRAME), (LINKTYPE_RAW, IP_PACKET)], ids=["ether", "raw"]
)
def test_scapy_reads_back_bytes_and_timestamps(tmp_path: Path, linktype: int, frame: bytes) -> None:
    path = tmp_path / "t.pcap"
    frames: list[Frame] = [frame, bytearray(frame), memoryview(frame), frame + b"\x00" * 100]
    with PcapWriter(path, linktype) as w:
        for f, (sec, usec) in zip(frames, STAMPS, strict=True):
            w.write(f, stamp(sec, usec))
        assert w.frames == 4
    packets = rdpcap(str(path))
    assert len(packets) == 4
    for pkt, f, (sec, usec) in zip(packets, frames, STAMPS, strict=True):
        assert bytes(pkt) == bytes(f)
        assert Decimal(pkt.time) == Decimal(sec) + Decimal(usec) / 1_000_000


def test_timestamp_rounds_to_nearest_microsecond_with_carry(tmp_path: Path) -> None:
    path = tmp_path / "r.pcap"
    with PcapWriter(path) as w:
        w.write(ETH_FRAME, 5.9999996)  # rounds up into the next second
    assert struct.unpack_from("<II", path.read_bytes(), 24) == (6, 0)


def test_snaplen_truncates_but_keeps_original_length(tmp_path: Path) -> None:
    path = tmp_path / "s.pcap"
    with PcapWriter(path, LINKTYPE_ETHERNET, snaplen=20) as w:
        w.write(ETH_FRAME, 1.0)
    data = path.read_bytes()
    assert struct.unpack_from("<IIII", data, 24) == (1, 0, 20, len(ETH_FRAME))
    assert data[40:] == ETH_FRAME[:20]
    (pkt,) = rdpcap(str(path))
    assert pkt.wirelen == len(ETH_FRAME)


def test_buffered_until_flush(tmp_path: Path) -> None:
    path = tmp_path / "b.pcap"
    w = PcapWriter(path)
    w.write(ETH_FRAME, 1.0)
    assert path.stat().st_size == 0  # nothing hit the disk per frame
    w.flush()
    assert path.stat().st_size == 24 + 16 + len(ETH_FRAME)
    w.close()
    w.close()  # idempotent
    assert w.closed
    with pytest.raises(ValueError, match="after close"):
        w.write(ETH_FRAME, 2.0)


def test_linktype_for_kind() -> None:
    assert linktype_for(LinkKind.ETHERNET) == LINKTYPE_ETHERNET == 1
    assert linktype_for(LinkKind.IP) == LINKTYPE_RAW == 101


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
@pytest.mark.parametrize(
    ("linktype", "frame", "proto"),
    [(LINKTYPE_ETHERNET, ETH_FRAME, "eth:ethertype:ip:icmp"), (LINKTYPE_RAW, IP_PACKET, "raw:ip:icmp")],
    ids=["ether", "raw"],
)
def test_tshark_reads_the_file(tmp_path: Path, linktype: int, frame: bytes, proto: str) -> None:
    path = tmp_path / "w.pcap"
    with PcapWriter(path, linktype) as w:
        for sec, usec in STAMPS:
            w.write(frame, stamp(sec, usec))
    out = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", "-e", "frame.time_epoch", "-e", "frame.protocols"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    assert [Decimal(t) for t, _ in rows] == [Decimal(s) + Decimal(u) / 1_000_000 for s, u in STAMPS]
    assert all(p == proto for _, p in rows)
