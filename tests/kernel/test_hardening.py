"""RFC 1337 and RFC 5927 in the lab: a scapy program in the kernel's namespace forges what an attacker
on the path would send at a connection between the stack and the kernel (a RST into TIME-WAIT, ICMP
"fragmentation needed" errors quoting sequence numbers in and out of flight); the stack's state and
counters show what each rule did.  The scripted-peer versions, RFC 6191 included, are
tests/stack/tcp/test_hardening.py."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab.helpers import KernelPeer

from kernel.test_tcp import finish, fresh_host, kernel_program, read_line, tcp_socket
from pytcp_green.stack.tcp.state import TIME_WAIT
from pytcp_green.stack.tcp.tcb import Tcb

pytestmark = pytest.mark.lab

# Accepts one connection, reads to EOF and prints how many bytes came, waits for "close" on stdin, closes.
SINK = r"""
import socket, sys
s = socket.create_server((sys.argv[1], 0))
print(s.getsockname()[1], flush=True)
c, _ = s.accept()
n = 0
while data := c.recv(65536):
    n += len(data)
print("eof", n, flush=True)
sys.stdin.readline()
c.close()
print("closed", flush=True)
"""

# Forges one packet from the kernel's address: "rst SPORT DPORT SEQ" or "icmp SPORT DPORT SEQ MTU"
# (an ICMP fragmentation-needed quoting a segment the stack sent from DPORT to SPORT).
FORGE = r"""
import sys
from scapy.layers.inet import ICMP, IP, TCP
from scapy.sendrecv import send
kernel, stack, kind, kport, sport, seq = sys.argv[1], sys.argv[2], sys.argv[3], *map(int, sys.argv[4:7])
if kind == "rst":
    pkt = IP(src=kernel, dst=stack) / TCP(sport=kport, dport=sport, flags="R", seq=seq)
else:
    quoted = IP(src=stack, dst=kernel, flags="DF", len=1500) / TCP(  # a full-sized segment, cut to 8 bytes
        sport=sport, dport=kport, seq=seq, flags="A")
    pkt = IP(src=kernel, dst=stack) / ICMP(type=3, code=4, nexthopmtu=int(sys.argv[7])) / bytes(quoted)[:28]
send(pkt, verbose=0)
"""


@contextlib.contextmanager
def sink_connection(kernel: KernelPeer, size: int = 1000) -> Iterator[tuple[Tcb, int]]:
    """A stack connection to the kernel sink with ``size`` bytes sent: (its TCB, the sink's port).
    Leaving the block closes ours first (so we are the side that reaches TIME-WAIT), checks that the
    sink read them all, then closes the sink's."""
    with kernel_program(kernel, SINK, kernel.kernel_ip) as sink:
        port = int(read_line(sink))
        sock = tcp_socket(kernel, timeout=30)
        sock.connect((kernel.kernel_ip, port))
        tcb = sock.core.tcb
        assert tcb is not None
        sock.sendall(bytes(size))
        yield tcb, port
        sock.close()
        assert read_line(sink) == f"eof {size}"
        assert sink.stdin is not None
        sink.stdin.write("close\n")
        sink.stdin.flush()
        finish(sink)


@pytest.mark.parametrize("rfc1337", [0, 1])
def test_a_forged_rst_ends_time_wait_only_without_tcp_rfc1337(tmp_path: Path, rfc1337: int) -> None:
    with fresh_host(tmp_path) as kernel:
        stack = kernel.host.stack
        stack.sysctl["net.ipv4.tcp_rfc1337"] = rfc1337
        with sink_connection(kernel) as (tcb, port):
            pass
        runtime = kernel.host.runtime
        assert runtime.wait_until(lambda: tcb.state == TIME_WAIT, 30)
        forged = kernel.python(FORGE, kernel.kernel_ip, kernel.stack_ip, "rst", str(port), str(tcb.local_port),
                               str(tcb.rcv_nxt & 0xFFFFFFFF))
        assert forged.returncode == 0, forged.stderr
        counter = "tcp.rst_in.time_wait_ignored" if rfc1337 else "tcp.rst_in.time_wait"
        assert runtime.wait_until(lambda: stack.stats[counter] == 1, 30)
        assert tcb.state == TIME_WAIT if rfc1337 else tcb.dead


def test_icmp_errors_count_only_for_sequence_numbers_in_flight(tmp_path: Path) -> None:
    """RFC 5927 §4.1: the quoted sequence number must lie in SND.UNA..SND.NXT, else the error is
    ignored; one that does lowers the MSS (RFC 1191)."""
    with fresh_host(tmp_path) as kernel:
        stack = kernel.host.stack
        stats = stack.stats
        runtime = kernel.host.runtime
        with sink_connection(kernel) as (tcb, port):
            assert runtime.wait_until(lambda: tcb.snd_una == tcb.snd_max, 30)
            mss = tcb.snd_mss
            args = [kernel.kernel_ip, kernel.stack_ip, "icmp", str(port), str(tcb.local_port)]
            out = kernel.python(FORGE, *args, str((tcb.snd_una - 100_000) & 0xFFFFFFFF), "1280")
            assert out.returncode == 0, out.stderr
            assert runtime.wait_until(lambda: stats["tcp.drop.icmp_out_of_window"] == 1, 30)
            assert tcb.snd_mss == mss and stats["tcp.pmtu_update"] == 0
            out = kernel.python(FORGE, *args, str(tcb.snd_una & 0xFFFFFFFF), "1280")
            assert out.returncode == 0, out.stderr
            assert runtime.wait_until(lambda: stats["tcp.pmtu_update"] == 1, 30)
            assert tcb.snd_mss == 1280 - 40 and tcb.state_name == "ESTABLISHED"
