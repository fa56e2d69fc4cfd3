"""UDP-Lite (RFC 3828) against the Linux kernel's UDP-Lite sockets, both directions, IPv4 and IPv6.

Kernel to stack: the kernel sends with partial coverage, and a kernel-side AF_PACKET socket resends
its own frame with one byte flipped; flipped outside the coverage the stack still delivers it
(corrupted, as RFC 3828 §3.3 means), inside it the stack drops and counts it.  A stack socket's
UDPLITE_RECV_CSCOV minimum turns away what covers less.  Stack to kernel: the kernel takes the
stack's partially and fully covered datagrams (its checksum check is the oracle), and a kernel
socket that asked for full coverage only (UDPLITE_RECV_CSCOV 0) drops the partial one, counted in
its UdpLite InErrors.  The sockopt values read back equal the kernel's.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import pytest
from lab.helpers import KernelPeer
from patches.helpers import run_patched

from kernel.test_tcp import finish, kernel_program, read_line
from pytcp_green.green.sockets import GreenSocket
from pytcp_green.stack.datagram.udplite import UdpLiteSocket
from pytcp_green.stack.sockbase import AF_INET, AF_INET6
from pytcp_green.stack.stack import SOCK_DGRAM
from pytcp_green.stack.wire.udplite import PROTO_UDPLITE

FAMILIES = pytest.mark.parametrize("family", [AF_INET, AF_INET6], ids=["ipv4", "ipv6"])

# Reads "port cscov flip" lines: sends PAYLOAD to argv[1]:port from a UDP-Lite socket with that
# UDPLITE_SEND_CSCOV, then, when flip >= 0, catches its own frame on the wire (AF_PACKET) and sends it
# again with the UDP-Lite octet at offset ``flip`` inverted; answers "sent" each time.
SENDER = r"""
import socket, sys
dst = sys.argv[1]
fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
ifname = next(name for _, name in socket.if_nameindex() if name != "lo")
cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
cap.bind((ifname, 0))
cap.settimeout(20)
s = socket.socket(fam, socket.SOCK_DGRAM, socket.IPPROTO_UDPLITE)
payload = bytes(range(32, 96))
print("ready", flush=True)
for line in sys.stdin:
    port, cscov, flip = map(int, line.split())
    s.setsockopt(socket.IPPROTO_UDPLITE, socket.UDPLITE_SEND_CSCOV, cscov)
    s.sendto(payload, (dst, port))
    if flip >= 0:
        while True:
            frame, addr = cap.recvfrom(65536)
            if addr[2] != socket.PACKET_OUTGOING:
                continue
            if fam == socket.AF_INET:
                if frame[12:14] != b"\x08\x00" or frame[23] != 136:
                    continue
                off = 14 + (frame[14] & 15) * 4
            else:
                if frame[12:14] != b"\x86\xdd" or frame[20] != 136:
                    continue
                off = 54
            if int.from_bytes(frame[off + 2:off + 4], "big") == port:
                break
        bad = bytearray(frame)
        bad[off + flip] ^= 0xFF
        cap.send(bytes(bad))
    print("sent", flush=True)
"""
PAYLOAD = bytes(range(32, 96))

# Two UDP-Lite sockets: "any" takes every coverage, "full" (UDPLITE_RECV_CSCOV 0) only full coverage.
# Prints their ports, then each datagram received (socket name, hex) as JSON, and InErrors' growth.
RECEIVER = r"""
import json, socket, sys
host = sys.argv[1]
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
def in_errors():
    if fam == socket.AF_INET:
        lines = [l.split() for l in open("/proc/net/snmp") if l.startswith("UdpLite:")]
        return int(lines[1][lines[0].index("InErrors")])
    return int(next(l.split()[1] for l in open("/proc/net/snmp6") if l.startswith("UdpLite6InErrors")))
socks = {}
for name in ("any", "full"):
    s = socket.socket(fam, socket.SOCK_DGRAM, socket.IPPROTO_UDPLITE)
    if name == "full":
        s.setsockopt(socket.IPPROTO_UDPLITE, socket.UDPLITE_RECV_CSCOV, 0)
    s.bind((host, 0))
    s.settimeout(20)
    socks[name] = s
before = in_errors()
print(socks["any"].getsockname()[1], socks["full"].getsockname()[1], flush=True)
got = [("any", socks["any"].recv(2000).hex()) for _ in range(2)]
got.append(("full", socks["full"].recv(2000).hex()))
print(json.dumps({"got": got, "in_errors": in_errors() - before}))
"""


def _peer(kernel: KernelPeer, family: int) -> KernelPeer:
    return kernel if family == kernel.family else KernelPeer(kernel.host, kernel.pcap, family)


@contextlib.contextmanager
def _udplite(kernel: KernelPeer, family: int) -> Iterator[GreenSocket]:
    """A stack UDP-Lite socket bound to the stack's address of ``family``."""
    sock = GreenSocket(kernel.host.runtime, kernel.host.stack.socket(family, SOCK_DGRAM, PROTO_UDPLITE), timeout=20)
    try:
        sock.bind((kernel.stack_ip, 0))
        yield sock
    finally:
        sock.close()


@pytest.mark.lab
@FAMILIES
def test_kernel_partial_coverage_reaches_the_stack_and_a_flip_inside_it_is_dropped(kernel: KernelPeer,
                                                                                   family: int) -> None:
    peer = _peer(kernel, family)
    stats = peer.host.stack.stats
    with _udplite(peer, family) as any_sock, _udplite(peer, family) as min_sock:
        core = min_sock.core
        assert isinstance(core, UdpLiteSocket)
        core.recv_cscov = 24  # UDPLITE_RECV_CSCOV: at least the header and 16 octets of data
        any_port, min_port = any_sock.getsockname()[1], min_sock.getsockname()[1]
        with kernel_program(peer, SENDER, peer.stack_ip) as sender:
            assert read_line(sender) == "ready"
            assert sender.stdin is not None

            def send(port: int, cscov: int, flip: int) -> None:
                assert sender.stdin is not None
                sender.stdin.write(f"{port} {cscov} {flip}\n")
                sender.stdin.flush()
                assert read_line(sender) == "sent"

            # Coverage 8 (the header alone); the copy has data octet 10 flipped: outside, delivered as it is.
            send(any_port, 8, 8 + 10)
            first, source = any_sock.recvfrom(2000)
            assert first == PAYLOAD and source[0] == peer.kernel_ip
            flipped, _ = any_sock.recvfrom(2000)
            assert flipped == PAYLOAD[:10] + bytes((PAYLOAD[10] ^ 0xFF,)) + PAYLOAD[11:]
            # Coverage 24; data octet 4 flipped: inside, the checksum fails, dropped and counted.
            bad_before = stats["udplite.drop.bad_checksum"]
            send(any_port, 24, 8 + 4)
            assert any_sock.recvfrom(2000)[0] == PAYLOAD
            assert peer.host.runtime.wait_until(lambda: stats["udplite.drop.bad_checksum"] == bad_before + 1, 20)
            assert not any_sock.core.queue
            # RECV_CSCOV 24: coverage 8 is turned away, 24 and full coverage (0) are taken.
            below_before = stats["udplite.drop.coverage_below_minimum"]
            send(min_port, 8, -1)
            assert peer.host.runtime.wait_until(
                lambda: stats["udplite.drop.coverage_below_minimum"] == below_before + 1, 20)
            send(min_port, 24, -1)
            send(min_port, 0, -1)
            assert min_sock.recvfrom(2000)[0] == PAYLOAD
            assert min_sock.recvfrom(2000)[0] == PAYLOAD
            assert not core.queue
            finish(sender)


@pytest.mark.lab
@FAMILIES
def test_the_kernel_checks_and_judges_the_stacks_coverage(kernel: KernelPeer, family: int) -> None:
    peer = _peer(kernel, family)
    with kernel_program(peer, RECEIVER, peer.kernel_ip) as receiver, _udplite(peer, family) as sock:
        any_port, full_port = map(int, read_line(receiver).split())
        core = sock.core
        assert isinstance(core, UdpLiteSocket)
        core.send_cscov = 8
        sock.sendto(PAYLOAD, (peer.kernel_ip, any_port))  # partial: the kernel's "any" takes it
        sock.sendto(PAYLOAD, (peer.kernel_ip, full_port))  # partial: "full" drops it
        core.send_cscov = 0
        sock.sendto(PAYLOAD[::-1], (peer.kernel_ip, any_port))
        sock.sendto(PAYLOAD[::-1], (peer.kernel_ip, full_port))
        out = json.loads(finish(receiver).splitlines()[-1])
    assert out["got"] == [["any", PAYLOAD.hex()], ["any", PAYLOAD[::-1].hex()], ["full", PAYLOAD[::-1].hex()]]
    assert out["in_errors"] == 1


# setsockopt then getsockopt of both coverages at both levels Linux takes them at, on UDP-Lite and
# UDP sockets of both families; reported as JSON, errors as their errno.
SOCKOPTS = """
import socket
rows = []
for fam in (socket.AF_INET, socket.AF_INET6):
    for proto in (socket.IPPROTO_UDPLITE, 0):
        s = socket.socket(fam, socket.SOCK_DGRAM, proto)
        rows.append(["protocol", s.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL)])
        for level in (socket.IPPROTO_UDPLITE, socket.IPPROTO_UDP):
            for opt in (socket.UDPLITE_SEND_CSCOV, socket.UDPLITE_RECV_CSCOV):
                rows.append(["initial", s.getsockopt(level, opt)])
                for value in (0, 1, 7, 8, 9, 100, 65535, 65536, -1):
                    rows.append([value, attempt(lambda: s.setsockopt(level, opt, value)),
                                 s.getsockopt(level, opt), s.getsockopt(level, opt, 4).hex()])
        s.close()
report(rows)
"""


def test_coverage_options_read_back_as_the_kernels() -> None:
    # The same program over the kernel (no patch) and over the stack.
    assert run_patched(SOCKOPTS) == run_patched(SOCKOPTS, patch="")
