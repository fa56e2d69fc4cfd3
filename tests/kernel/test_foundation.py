"""Issue 2 against the Linux kernel: ping, UDP both ways, port unreachable, ARP, and a clean pcap."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import subprocess
import sys

import pytest
from lab.helpers import KernelPeer, start_kernel_udp_peer

from pytcp_green.green.sockets import GreenSocket
from pytcp_green.stack.sockbase import AF_INET
from pytcp_green.stack.stack import SOCK_DGRAM

pytestmark = pytest.mark.lab


def test_kernel_pings_the_stack_fifty_times(kernel: KernelPeer) -> None:
    out = kernel.run(["ping", "-c", "50", "-i", "0.01", "-W", "2", kernel.stack_ip])
    assert "50 packets transmitted, 50 received" in out.stdout, out.stdout + out.stderr


def test_kernel_ping_record_route_shows_the_round_trip(kernel: KernelPeer) -> None:
    # RFC 1122 §3.2.2.6: the reply carries the request's Record Route, with the stack's address added.
    out = kernel.run(["ping", "-c", "1", "-W", "5", "-R", kernel.stack_ip])
    assert out.returncode == 0, out.stdout + out.stderr
    recorded = out.stdout.split("RR:", 1)[1].split("\n\n", 1)[0]
    route = re.findall(r"\d+\.\d+\.\d+\.\d+", recorded)
    assert kernel.stack_ip in route and kernel.kernel_ip in route, out.stdout


def test_nc_from_the_kernel_gets_its_data_back_from_echo(kernel: KernelPeer) -> None:
    message = "pytcp_green echo check\n"
    out = kernel.run(["sh", "-c", f"printf '{message}' | nc -u -w1 {kernel.stack_ip} 7"])
    assert out.stdout == message, out.stderr


def test_stack_udp_socket_talks_to_a_kernel_udp_socket(kernel: KernelPeer) -> None:
    import gevent

    from pytcp_green.cli import in_thread

    rounds = 20
    proc, port = start_kernel_udp_peer(kernel.lab, kernel.kernel_ip, rounds, 10)
    sock = GreenSocket(kernel.host.runtime, kernel.host.stack.socket(AF_INET, SOCK_DGRAM), timeout=10)
    try:
        for i in range(rounds):
            payload = os.urandom(1 + i * 70)
            sock.sendto(payload, (kernel.kernel_ip, port))
            reply, source = sock.recvfrom(65535)
            assert source == (kernel.kernel_ip, port)
            assert reply == hashlib.sha256(payload).digest() + payload[::-1]
    finally:
        sock.close()
    assert gevent.spawn(in_thread, proc.wait, 10).get() == 0


def test_datagram_to_closed_port_makes_kernel_socket_raise_econnrefused(kernel: KernelPeer) -> None:
    code = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.connect((sys.argv[1], 5999))
s.send(b"anyone there?")
try:
    s.recv(100)
except OSError as e:
    print(e.errno)
"""
    out = kernel.python(code, kernel.stack_ip)
    assert out.stdout.strip() == str(errno.ECONNREFUSED), out.stdout + out.stderr


def test_kernel_neighbour_table_holds_the_stacks_mac(kernel: KernelPeer) -> None:
    kernel.run(["ping", "-c", "1", "-W", "2", kernel.stack_ip])
    out = kernel.run(["ip", "neigh", "show", kernel.stack_ip])
    mac = kernel.lab.device.mac
    assert mac is not None
    assert mac.hex(":") in out.stdout
    assert re.search(r"REACHABLE|STALE|DELAY", out.stdout), out.stdout
    arp = kernel.host.stack.interfaces["eth0"].arp
    assert arp is not None
    assert any(ip == kernel.kernel_ip for ip, _, _ in arp.table())


def test_serve_runs_the_peer_command_and_exits_with_its_status(tmp_path: os.PathLike[str]) -> None:
    ping = "ping -c 3 -W 2 $PYTCP_GREEN_STACK_IP4 >/dev/null && test $PYTCP_GREEN_PEER_IP4 = 198.18.0.1 && exit 7"
    done = subprocess.run([sys.executable, "-m", "pytcp_green", "serve", "--lab", "--peer", ping],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 7, done.stderr


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_finds_no_malformed_frame_or_bad_checksum(kernel: KernelPeer) -> None:
    kernel.run(["ping", "-c", "30", "-i", "0.01", "-s", "1200", "-W", "2", kernel.stack_ip])
    kernel.run(["sh", "-c", f"printf 'for the capture' | nc -u -w1 {kernel.stack_ip} 7"])
    assert kernel.host.pcap is not None
    kernel.host.pcap.flush()
    prefs = ["-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE"]
    frames = subprocess.run(["tshark", "-r", str(kernel.pcap), *prefs], capture_output=True, text=True, timeout=60)
    assert frames.returncode == 0, frames.stderr
    assert frames.stdout.count("\n") >= 62  # the capture really holds this test's 60 ICMP frames + UDP
    bad = subprocess.run(
        ["tshark", "-r", str(kernel.pcap), *prefs, "-Y", "_ws.malformed || _ws.expert.severity >= error"],
        capture_output=True, text=True, timeout=60,
    )
    assert bad.stdout.strip() == "", bad.stdout


def test_runtime_impairment_duplicates_every_frame_as_told() -> None:
    from lab.helpers import lab_skip_reason

    from pytcp_green.cli import in_thread
    from pytcp_green.host import Host, StackOptions

    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    with Host(StackOptions(lab=True, impair="dup=100%,seed=3")) as host:
        assert host.lab is not None
        out = in_thread(host.lab.run, ["ping", "-c", "5", "-i", "0.05", "-W", "2", "198.18.0.2"], timeout=30)
        # Both directions double every frame: each request arrives twice, so the stack answers
        # twice, and each answer goes out twice.  ping stops counting at the fifth distinct reply,
        # so the last request's three duplicates may go uncounted.
        assert host.stack.stats["icmp4.rx.echo_request"] == 10
        assert host.stack.stats["icmp4.tx.echo_reply"] == 10
        dups = re.search(r"5 received, \+(\d+) duplicates", out.stdout)
        assert dups is not None and 12 <= int(dups.group(1)) <= 15, out.stdout
