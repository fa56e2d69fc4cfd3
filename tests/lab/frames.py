"""Hand-built frames and small kernel-inspection helpers for the lab tests.

The frames are packed here with ``struct`` and a checksum written out longhand, independently of
``pytcp_green.stack.wire``, so these tests check the device plumbing against the kernel without
trusting the codecs under test elsewhere.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

from pytcp_green.link.tap import TapDevice

ETH_P_ARP = 0x0806
ETH_P_IP = 0x0800
BROADCAST = b"\xff" * 6

T = TypeVar("T")


def internet_checksum(data: bytes) -> int:
    """RFC 1071, word by word: slow and obvious on purpose."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for (word,) in struct.iter_unpack("!H", data):
        total += word
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def arp_request(sender_mac: bytes, sender_ip: str, target_ip: str) -> bytes:
    ethernet = BROADCAST + sender_mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack(
        "!HHBBH6s4s6s4s",
        1,  # hardware type: Ethernet
        ETH_P_IP,
        6,
        4,
        1,  # request
        sender_mac,
        socket.inet_aton(sender_ip),
        bytes(6),
        socket.inet_aton(target_ip),
    )
    return ethernet + arp


def parse_arp_reply(frame: bytes) -> tuple[bytes, bytes, str, bytes, str] | None:
    """(ethernet destination, sender MAC, sender IP, target MAC, target IP) of an ARP reply, else None."""
    if len(frame) < 42 or frame[12:14] != struct.pack("!H", ETH_P_ARP):
        return None
    _htype, _ptype, _hlen, _plen, op, sha, spa, tha, tpa = struct.unpack_from("!HHBBH6s4s6s4s", frame, 14)
    if op != 2:
        return None
    return frame[0:6], sha, socket.inet_ntoa(spa), tha, socket.inet_ntoa(tpa)


def ipv4_header(src: str, dst: str, proto: int, payload_len: int, ident: int = 0x1234) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + payload_len,
        ident,
        0,
        64,
        proto,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    return header[:10] + struct.pack("!H", internet_checksum(header)) + header[12:]


def icmp_echo_request(src: str, dst: str, ident: int, seq: int, payload: bytes) -> bytes:
    icmp = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + payload
    icmp = icmp[:2] + struct.pack("!H", internet_checksum(icmp)) + icmp[4:]
    return ipv4_header(src, dst, 1, len(icmp)) + icmp


def parse_icmp_echo_reply(packet: bytes) -> tuple[str, str, int, int, bytes] | None:
    """(source, destination, id, seq, payload) of a well-formed ICMP echo reply, else None."""
    if len(packet) < 28 or packet[0] != 0x45 or packet[9] != 1:
        return None
    total = struct.unpack_from("!H", packet, 2)[0]
    if internet_checksum(packet[:20]) != 0:
        return None
    icmp = packet[20:total]
    if icmp[0] != 0 or internet_checksum(icmp) != 0:
        return None
    ident, seq = struct.unpack_from("!HH", icmp, 4)
    return socket.inet_ntoa(packet[12:16]), socket.inet_ntoa(packet[16:20]), ident, seq, icmp[8:]


def transport_checksum_ok(packet: bytes) -> bool:
    """True when the TCP/UDP checksum of an IPv4 packet verifies (pseudo-header included)."""
    ihl = (packet[0] & 0x0F) * 4
    total = struct.unpack_from("!H", packet, 2)[0]
    segment = packet[ihl:total]
    pseudo = packet[12:20] + struct.pack("!BBH", 0, packet[9], len(segment))
    return internet_checksum(pseudo + segment) == 0


def wait_for_frame(device: TapDevice, match: Callable[[bytes], T | None], timeout: float = 5.0) -> T:
    """Read from ``device`` until ``match`` returns something; wait only by polling its fd.

    Frames are read one at a time so that nothing after the match is consumed and lost."""
    poller = select.poll()
    poller.register(device.fileno(), select.POLLIN)
    deadline = time.monotonic() + timeout
    seen = 0
    while True:
        for frame in device.read_batch(limit=1):
            seen += 1
            found = match(frame)
            if found is not None:
                return found
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no matching frame within {timeout}s ({seen} others seen)")
        poller.poll(remaining * 1000)


def netns_list() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def wait_exited(pid_fd: int, timeout: float = 10.0) -> bool:
    """True once the process behind ``pid_fd`` has exited (a pidfd polls readable then)."""
    ready, _, _ = select.select([pid_fd], [], [], timeout)
    return bool(ready)


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def open_pidfd(pid: int) -> int:
    return os.pidfd_open(pid)
