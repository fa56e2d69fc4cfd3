"""Reassembly and fragmentation against the Linux kernel: big pings, 60 KB UDP both ways, a fragment flood."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab.helpers import python, run, tshark_problems

from pytcp_green.cli import in_thread
from pytcp_green.green.services import start_services
from pytcp_green.green.sockets import GreenSocket
from pytcp_green.host import Host, StackOptions
from pytcp_green.stack.sockbase import AF_INET
from pytcp_green.stack.stack import SOCK_DGRAM

pytestmark = pytest.mark.lab

HIGH_THRESH = 400_000


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    pcap = tmp_path_factory.mktemp("frag") / "frag.pcap"
    sysctl = {"net.ipv4.ipfrag_high_thresh": str(HIGH_THRESH), "net.ipv4.ipfrag_low_thresh": str(HIGH_THRESH // 2)}
    with Host(StackOptions(lab=True, pcap=str(pcap), sysctl=sysctl)) as h:
        import gevent

        services = start_services(h.runtime)
        try:
            yield h
        finally:
            gevent.killall(services)


@pytest.mark.parametrize("size", [4000, 60000])
def test_kernel_big_ping_is_reassembled_and_answered(host: Host, size: int) -> None:
    before = host.stack.stats["ip4.reasm.ok"]
    out = run(host, ["ping", "-c", "3", "-i", "0.2", "-W", "3", "-s", str(size), "198.18.0.2"])
    assert "3 packets transmitted, 3 received" in out.stdout, out.stdout + out.stderr
    assert host.stack.stats["ip4.reasm.ok"] - before == 3


KERNEL_PEER = """
import hashlib, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
s.bind(("198.18.0.1", 0))
s.settimeout(20)
print(s.getsockname()[1], flush=True)
for _ in range(int(sys.argv[1])):
    data, peer = s.recvfrom(65535)
    s.sendto(hashlib.sha256(data).digest() + data[::-1], peer)
"""


def test_sixty_kilobyte_udp_datagrams_both_ways_arrive_intact(host: Host) -> None:
    rounds = 5
    assert host.lab is not None
    proc = host.lab.popen([sys.executable, "-c", KERNEL_PEER, str(rounds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(in_thread(proc.stdout.readline))
    sock = GreenSocket(host.runtime, host.stack.socket(AF_INET, SOCK_DGRAM), timeout=20)
    sock.core.rcvbuf = 1 << 20
    try:
        for i in range(rounds):
            payload = os.urandom(60000 - i)
            sock.sendto(payload, ("198.18.0.1", port))
            reply, _ = sock.recvfrom(65535)
            assert len(reply) == 32 + len(payload)
            assert reply[:32] == hashlib.sha256(payload).digest()
            assert reply[32:] == payload[::-1]
    finally:
        sock.close()
    assert in_thread(proc.wait, 20) == 0


FLOOD = """
import random, sys
from scapy.all import IP, UDP, fragment, send, conf
conf.verb = 0
rng = random.Random(5)
frames = []
for ident in range(int(sys.argv[1])):
    pkt = IP(src="198.18.0.1", dst="198.18.0.2", id=ident) / UDP(sport=9, dport=9) / rng.randbytes(6000)
    frames.extend(fragment(pkt, fragsize=1480)[:-1])  # the last piece never comes
send(frames)
print(len(frames))
"""


def test_fragment_flood_with_missing_pieces_leaves_memory_bounded(host: Host) -> None:
    reasm = host.stack.ip4.reassembler
    before = host.stack.stats["ip4.reasm.fragments"]
    peak = 0

    def watch() -> None:
        nonlocal peak
        import gevent

        while True:
            peak = max(peak, reasm.memory)
            gevent.sleep(0.001)

    import gevent

    watcher = gevent.spawn(watch)
    try:
        out = python(host, FLOOD, "600", timeout=120)
    finally:
        watcher.kill()
    assert out.returncode == 0, out.stderr
    sent = int(out.stdout.strip())
    # The stack saw the flood (a few frames may be lost on a busy TAP, never many).
    assert host.stack.stats["ip4.reasm.fragments"] - before >= sent * 0.9
    assert host.stack.stats["ip4.reasm.drop.memory"] > 0
    assert reasm.memory <= HIGH_THRESH and peak <= HIGH_THRESH + 1480 + 256
    # What is held is what the memory counter says: nothing leaks past the accounting.
    held = sum(len(p) for d in reasm.queues.values() for p in d.pieces.values())
    assert held <= reasm.memory


def test_capture_has_no_malformed_frame(host: Host) -> None:
    assert host.pcap is not None
    host.pcap.flush()
    assert tshark_problems(Path(host.options.pcap or "")) == ""
