"""Against the Linux kernel: a tail loss probe on the wire (RFC 8985 §7) and a spurious timeout undone
by F-RTO (RFC 5682 §3.1), each gone when its switch is off.

* Tail loss: the last three segments of a flight are taken by a live ``timeout`` fault on the
  stack's outbound path.  Nothing arrives after them, so no duplicate ACK can start recovery.  With
  RACK-TLP the first segment sent again (in the capture, read by tshark) is the flight's *last*
  one, the probe, and its SACK starts fast recovery for the other two: no retransmission timeout.
  With ``net.ipv4.tcp_recovery=0`` the timer fires and go-back-N resends the *first* lost segment.
* Spurious timeout: a ``latency`` fault holds the kernel's ACKs longer than the RTO.  The timer
  fires although nothing was lost; when the late ACKs acknowledge segments that were never
  retransmitted, F-RTO undoes the timeout: ``tcp.frto_undo`` counts it and TCP_INFO shows ssthresh
  back at "infinite" and cwnd no smaller than before.  With ``net.ipv4.tcp_frto=0`` the reduction
  stays.  Timestamps are off on our side and D-SACK on the kernel's, so F-RTO is the only test
  that can find the timeout spurious (RFC 5682 needs neither).  With timestamps on and F-RTO off,
  the late ACKs echo TSvals older than the retransmission's, and RFC 3522's test undoes it instead
  (``tcp.eifel_undo``).

Every transfer is checked by the kernel's SHA-256 of what it received.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from lab.helpers import KernelPeer

from kernel.test_tcp import finish, fresh_host, kernel_program, read_line, tcp_socket
from kernel.test_tcp_info import parse, stack_info
from pytcp_green.green.sockets import GreenSocket
from pytcp_green.stack.tcp.info import INFINITE_SSTHRESH
from pytcp_green.stack.tcp.tcb import Tcb

pytestmark = [pytest.mark.lab,
              pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark reads the capture")]

# Accept one connection, read it to EOF; print the port first, then the byte count and SHA-256.
SINK = r"""
import hashlib, socket, sys
srv = socket.create_server((sys.argv[1], 0))
print(srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
got, n = hashlib.sha256(), 0
while data := conn.recv(65536):
    got.update(data)
    n += len(data)
print(n, got.hexdigest(), flush=True)
"""
WAIT = 20.0  # seconds any single step may take on a loaded machine before the test fails


@contextmanager
def sink_connection(kernel: KernelPeer) -> Iterator[tuple[GreenSocket, Tcb, int, hashlib._Hash]]:
    """A stack connection to the kernel's sink (Nagle off, so each send leaves at once); yields the
    socket, its TCB, the sink's port and the running hash of what was sent, then checks what arrived."""
    with kernel_program(kernel, SINK, kernel.kernel_ip) as proc:
        port = int(read_line(proc))
        sock = tcp_socket(kernel)
        sock.core.nodelay = True
        sock.connect((kernel.kernel_ip, port))
        sent = hashlib.sha256()
        tcb = sock.core.tcb
        yield sock, tcb, port, sent
        sock.shutdown(socket.SHUT_WR)
        count, digest = finish(proc).split()
        sock.close()
        assert digest == sent.hexdigest(), f"the kernel got {count} bytes, not what was sent"


def send(sock: GreenSocket, sent: hashlib._Hash, data: bytes) -> None:
    sock.sendall(data)
    sent.update(data)


def all_acked(kernel: KernelPeer, tcb: Tcb) -> None:
    assert kernel.host.runtime.wait_until(lambda: tcb.snd_una == tcb.snd_max, WAIT), "data left unacknowledged"


def data_segments(kernel: KernelPeer, port: int) -> list[int]:
    """Raw sequence numbers of the data segments we sent on the wire, in order (tshark)."""
    assert kernel.host.pcap is not None
    kernel.host.pcap.flush()
    display = f"ip.src == {kernel.stack_ip} && tcp.port == {port} && tcp.len > 0"
    out = subprocess.run(["tshark", "-r", str(kernel.pcap), "-Y", display, "-T", "fields", "-e", "tcp.seq_raw"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [int(field) for field in out.stdout.split()]


@pytest.mark.parametrize("rack", [1, 0], ids=["tlp", "no-tlp"])
def test_a_lost_tail_is_probed_before_the_timeout(tmp_path: Path, rack: int) -> None:
    with fresh_host(tmp_path) as kernel:
        stack = kernel.host.stack
        stack.sysctl["net.ipv4.tcp_recovery"] = rack
        with sink_connection(kernel) as (sock, tcb, port, sent):
            send(sock, sent, b"w" * 100_000)  # RTT samples first: the probe timeout is 2 * SRTT
            all_acked(kernel, tcb)
            room = tcb.eff_mss
            send(sock, sent, b"a" * (4 * room))
            with kernel.host.faults.add("timeout", direction="out", port=port) as fault:
                tail = tcb.snd_max
                send(sock, sent, b"b" * (3 * room))  # the flight's last three segments: taken
                assert fault.stats["dropped"] >= 1 and tcb.snd_max == tail + 3 * room
            all_acked(kernel, tcb)
        # The capture is taken behind the fault: the three lost segments show only when sent again.
        lost = [(tail + i * room) & 0xFFFFFFFF for i in range(3)]
        again = [seq for seq in data_segments(kernel, port) if seq in lost]
        report = (again, lost, stack.stats.matching("tcp."))
        assert sorted(set(again)) == lost, report
        if rack:
            # RFC 8985 §7.3: the probe, the flight's highest segment, goes first; its SACK starts
            # fast recovery for the two below it, with no timeout.
            assert again[0] == lost[2] and stack.stats["tcp.tlp"] == 1, report
            assert stack.stats["tcp.rto"] == 0 and stack.stats["tcp.fast_retransmit"] == 1, report
        else:
            # The retransmission timer fires and go-back-N starts at the first lost segment.
            assert again[0] == lost[0] and stack.stats["tcp.rto"] >= 1 and not stack.stats["tcp.tlp"], report


@pytest.mark.parametrize(("frto", "ts"), [(2, 0), (0, 0), (0, 1)], ids=["frto", "no-frto", "eifel"])
def test_a_spurious_timeout_is_undone_by_frto(tmp_path: Path, frto: int, ts: int) -> None:
    with fresh_host(tmp_path) as kernel:
        stack = kernel.host.stack
        stack.sysctl["net.ipv4.tcp_frto"] = frto
        stack.sysctl["net.ipv4.tcp_timestamps"] = ts  # without, no Eifel (RFC 3522): F-RTO alone decides
        kernel.lab.sysctl("net.ipv4.tcp_dsack", 0)  # no D-SACK undo (RFC 3708) either
        with sink_connection(kernel) as (sock, tcb, port, sent):
            send(sock, sent, b"w" * 100_000)
            all_acked(kernel, tcb)
            before = parse(stack_info(sock))
            assert before["snd_ssthresh"] == INFINITE_SSTHRESH  # no loss so far
            # The kernel's ACKs are held two RTOs (in order, none lost: the timer fires once, halfway,
            # and its backed-off successor would come after them) until the timeout's recovery is
            # over (undone or completed); later ones pass at once.  Twice cwnd is written, so F-RTO
            # has new data for its step 2b, as a bulk sender would.
            fault = kernel.host.faults.add("latency", delay=f"{2 * tcb.rto.rto}s", direction="in", port=port)
            send(sock, sent, b"s" * (2 * tcb.cc.cwnd))
            assert kernel.host.runtime.wait_until(lambda: stack.stats["tcp.rto"] >= 1, WAIT)
            assert kernel.host.runtime.wait_until(lambda: not tcb.frto.loss, WAIT)
            fault.remove()
            all_acked(kernel, tcb)
            after = parse(stack_info(sock))
            report = (stack.stats.matching("tcp."), before, after)
            assert stack.stats["tcp.rto"] == 1, report
            if frto or ts:
                undone = "tcp.frto_undo" if frto else "tcp.eifel_undo"
                assert stack.stats["tcp.frto_spurious"] == frto // 2 and stack.stats[undone] == 1, report
                assert after["snd_ssthresh"] == INFINITE_SSTHRESH and after["snd_cwnd"] >= before["snd_cwnd"], report
            else:
                assert not stack.stats["tcp.frto_undo"] and not stack.stats["tcp.dsack_undo"], report
                assert after["snd_ssthresh"] < INFINITE_SSTHRESH, report
            send(sock, sent, b"e" * 50_000)  # and the connection goes on
