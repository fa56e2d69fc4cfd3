"""Issue 11 (SYN cookies) against the Linux kernel: a spoofed SYN flood from the kernel's namespace fills a
stack listener's SYN queue, and a real kernel client still connects (by SYN cookie) and fetches intact
data while the flood goes on.

The flood is sent as raw Ethernet frames from an AF_PACKET socket on the kernel's side of the TAP, from
random sources that nobody answers for (198.18.0.10-249, or fd00:77::10-fff0 on the IPv6 run: the stack
ARPs or solicits for them in vain; its SYN-ACKs go nowhere), so every spoofed half-open entry lives
through its whole SYN-ACK retry period.

The fetch-loop tests (issue 11, "How it is checked") run a kernel client fetching in a loop from a
server on the stack while hping3 (IPv4) or the Python flooder (IPv6) floods, and count the fetches
that succeed during the flood and right after it stopped (pytcp_green/lab/synflood.py; the rates
are bench/synflood.py's).
"""

from __future__ import annotations

import hashlib
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import gevent
import pytest
from lab.helpers import KernelPeer

from kernel.test_tcp import finish, fresh_host, kernel_program, read_line, tcp_socket
from pytcp_green.cli import in_thread
from pytcp_green.green.sockets import GreenSocket
from pytcp_green.lab.synflood import FETCH_LOOP, FLOOD, hping3_flood, serve
from pytcp_green.stack.sockbase import AF_INET, AF_INET6

pytestmark = pytest.mark.lab

NBYTES = 2_000_000

# Connect to argv[1]:argv[2], read to EOF; prints: local_port received_n received_sha.
CLIENT = r"""
import hashlib, socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=120)
got, n = hashlib.sha256(), 0
while data := c.recv(65536):
    got.update(data)
    n += len(data)
print(c.getsockname()[1], n, got.hexdigest())
c.close()
"""


def _serve(listener: GreenSocket, payload: bytes, seen: dict[str, object]) -> None:
    conn, addr = listener.accept()
    tcb = conn.core.tcb
    seen.update(port=addr[1], syn_sent_at=tcb.syn_sent_at, ts_ok=tcb.ts_ok, sack_ok=tcb.sack_ok,
                snd_wscale=tcb.snd_wscale, snd_mss=tcb.snd_mss)
    conn.sendall(payload)
    conn.close()


@pytest.mark.parametrize("family", [AF_INET, AF_INET6], ids=["ipv4", "ipv6"])
def test_a_kernel_client_is_served_by_syn_cookie_through_a_spoofed_syn_flood(tmp_path: Path, family: int) -> None:
    with fresh_host(tmp_path) as lab:
        kernel = KernelPeer(lab.host, lab.pcap, family)
        stack = kernel.host.stack
        stats = stack.stats
        listener = tcp_socket(kernel, timeout=120)
        listener.bind(("", 0))
        listener.listen(16)
        port = int(listener.getsockname()[1])
        core = listener.core
        max_syn = stack.sysctl.int("net.ipv4.tcp_max_syn_backlog")
        payload = random.Random(11).randbytes(NBYTES)
        normal: dict[str, object] = {}  # a connection before the flood, for the options a handshake gives
        seen: dict[str, object] = {}
        iface = kernel.host.iface
        assert iface is not None and iface.mac is not None
        mac = iface.mac.hex(":")
        try:
            server = gevent.spawn(_serve, listener, payload, normal)
            before = kernel.python(CLIENT, kernel.stack_ip, str(port), timeout=180)
            assert before.returncode == 0, before.stderr
            server.get(timeout=60)
            assert stats["tcp.syncookies_sent"] == 0 and normal["syn_sent_at"] is not None
            with kernel_program(kernel, FLOOD, mac, kernel.stack_ip, str(port), "5") as flood:
                assert read_line(flood) == "ready"
                # The flood has filled the SYN queue and the listener answers with cookies.
                assert kernel.host.runtime.wait_until(
                    lambda: core.half_open >= max_syn and stats["tcp.syncookies_sent"] > 10, 120)
                server = gevent.spawn(_serve, listener, payload, seen)
                out = kernel.python(CLIENT, kernel.stack_ip, str(port), timeout=180)
                assert out.returncode == 0, out.stderr
                server.get(timeout=60)
                assert core.half_open >= max_syn  # the flood was still on when the client finished
                assert flood.stdin is not None
                flood.stdin.write("stop\n")
                flood.stdin.flush()
                frames = int(finish(flood).split()[-1])
        finally:
            listener.close()
        client_port, n, digest = out.stdout.split()
        assert int(n) == NBYTES and digest == hashlib.sha256(payload).hexdigest()
        assert seen["port"] == int(client_port)
        # Made from the cookie: no handshake RTT sample, and the kernel's options came back from the TSval.
        assert seen["syn_sent_at"] is None
        assert seen["ts_ok"] and seen["sack_ok"] and seen["snd_mss"] == (1460 if family == AF_INET else 1440)
        assert {k: v for k, v in seen.items() if k not in ("port", "syn_sent_at")} == {
            k: v for k, v in normal.items() if k not in ("port", "syn_sent_at")}
        assert stats["tcp.syncookies_recv"] == 1 and stats["tcp.syncookies_failed"] == 0
        assert stats["tcp.req_q_full_do_cookies"] == stats["tcp.syncookies_sent"] > 10
        assert stats["tcp.drop.listen_overflow"] == 0
        assert frames > max_syn


FETCHES = 5  # successes asked for in each phase: a count, not a rate


def _fetches(client: subprocess.Popen[str], want: int) -> tuple[int, int]:
    """Read the fetch loop's lines until ``want`` fetches succeeded; returns (ok, failed)."""
    ok = failed = 0
    while ok < want:
        line = read_line(client)
        if line.startswith("ok "):
            assert int(line.split()[1]) == PAYLOAD
            ok += 1
        else:
            failed += 1
    return ok, failed


PAYLOAD = 1000


@pytest.mark.parametrize("family", [AF_INET, AF_INET6], ids=["ipv4-hping3", "ipv6-python"])
def test_a_kernel_client_keeps_fetching_through_a_syn_flood_and_after_it(tmp_path: Path, family: int) -> None:
    if family == AF_INET and shutil.which("hping3") is None:
        pytest.skip("hping3 is not installed (scripts/setup.sh installs it)")
    with fresh_host(tmp_path) as lab:
        kernel = KernelPeer(lab.host, lab.pcap, family)
        stack = kernel.host.stack
        stats = stack.stats
        listener = tcp_socket(kernel, timeout=None)
        listener.bind(("", 0))
        listener.listen(128)
        port = int(listener.getsockname()[1])
        core = listener.core
        max_syn = stack.sysctl.int("net.ipv4.tcp_max_syn_backlog")
        iface = kernel.host.iface
        assert iface is not None and iface.mac is not None
        server = gevent.spawn(serve, listener, b"x" * PAYLOAD)
        try:
            with kernel_program(kernel, FETCH_LOOP, kernel.stack_ip, str(port), "10") as client:
                assert read_line(client) == "ready"
                assert _fetches(client, FETCHES)[0] == FETCHES  # before the flood
                if family == AF_INET:
                    flood = kernel.lab.popen(hping3_flood(kernel.stack_ip, port), stdin=subprocess.DEVNULL,
                                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                else:
                    flood = kernel.lab.popen([sys.executable, "-c", FLOOD, iface.mac.hex(":"), kernel.stack_ip,
                                              str(port), "7"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE, text=True)
                try:
                    assert kernel.host.runtime.wait_until(
                        lambda: core.half_open >= max_syn and stats["tcp.syncookies_sent"] > 10, 120)
                    during, _ = _fetches(client, FETCHES)
                    assert core.half_open >= max_syn  # still flooded when the last fetch succeeded
                finally:
                    flood.send_signal(signal.SIGINT)  # hping3 and the flooder stop on it; killed below if not
                    try:
                        in_thread(flood.wait, 30)
                    finally:
                        if flood.poll() is None:
                            flood.kill()
                            in_thread(flood.wait, 30)
                after, _ = _fetches(client, FETCHES)
                assert client.stdin is not None
                client.stdin.write("stop\n")
                client.stdin.flush()
                finish(client)
        finally:
            server.kill()
            listener.close()
        assert during == FETCHES and after == FETCHES
        assert stats["stack.drop.internal_error"] == 0
