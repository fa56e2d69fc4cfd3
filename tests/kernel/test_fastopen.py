"""TCP Fast Open (RFC 7413, issue 13) against the Linux kernel with ``net.ipv4.tcp_fastopen=3`` in its
namespace, both ways: the first connection fetches a cookie, the next ones carry their data in the SYN.

Checked on the wire (tshark on the stack's capture: SYNs with a payload, option kind 34 with a
cookie), in both stacks' counters (ours ``tcp.tfo_*``, the kernel's TcpExt TCPFastOpen*), and by the
SHA-256 of every payload, echoed back as a digest.  With ``net.ipv4.tcp_fastopen=0`` on our side no SYN
carries data (the check that the assertions depend on the feature)."""

from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
from pathlib import Path

import gevent
import pytest
from lab.helpers import KernelPeer

from kernel.test_tcp import finish, fresh_host, kernel_program, read_line, tcp_socket
from pytcp_green.green.sockets import GreenSocket
from pytcp_green.stack.sockbase import AF_INET, AF_INET6, POLLOUT

pytestmark = [pytest.mark.lab, pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark reads the capture")]

CONNECTIONS = 3
SIZE = 1000  # fits in one SYN: below the cached MSS less 40 option bytes, on either side

_NETSTAT = r"""
def tfo_counters():
    lines = [l.split() for l in open("/proc/net/netstat") if l.startswith("TcpExt:")]
    table = dict(zip(lines[0][1:], map(int, lines[1][1:])))
    return {k: v for k, v in table.items() if k.startswith("TCPFastOpen")}
"""

# A kernel listener with TCP_FASTOPEN: answers each connection with the SHA-256 of what it read to EOF,
# then prints its Fast Open counters.
SERVER = _NETSTAT + r"""
import hashlib, json, socket, sys
s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 16)
s.bind((sys.argv[1], 0))
s.listen(16)
print(s.getsockname()[1], flush=True)
for _ in range(int(sys.argv[2])):
    c, _ = s.accept()
    got = b""
    while data := c.recv(65536):
        got += data
    c.sendall(hashlib.sha256(got).digest())
    c.close()
print(json.dumps(tfo_counters()))
"""

# A kernel client: sendto(MSG_FASTOPEN) of argv[4]'s seeded payloads, each followed by SHUT_WR; prints
# whether every digest came back right, then its Fast Open counters.
CLIENT = _NETSTAT + r"""
import hashlib, json, random, socket, sys
ok = []
rng = random.Random(int(sys.argv[4]))
for _ in range(int(sys.argv[3])):
    payload = rng.randbytes(int(sys.argv[5]))
    # Blocking: a timeout would make CPython's socket non-blocking (sendto: EINPROGRESS).
    c = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET)
    c.sendto(payload, socket.MSG_FASTOPEN, (sys.argv[1], int(sys.argv[2])))
    c.settimeout(60)
    c.shutdown(socket.SHUT_WR)
    ok.append(c.recv(64) == hashlib.sha256(payload).digest())
    c.close()
print(json.dumps({"ok": ok, "counters": tfo_counters()}))
"""


def _kernel_fastopen(kernel: KernelPeer) -> None:
    out = kernel.run(["sysctl", "-qw", "net.ipv4.tcp_fastopen=3"])
    assert out.returncode == 0, out.stderr


def _syns_with_data(pcap: Path) -> list[tuple[str, int, str]]:
    """(source, payload length, option kinds) of every SYN without ACK that carries data."""
    out = subprocess.run(["tshark", "-r", str(pcap), "-Y", "tcp.flags.syn==1 && tcp.flags.ack==0 && tcp.len>0",
                          "-T", "fields", "-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.len", "-e", "tcp.option_kind"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return [(src4 or src6, int(n), kinds)
            for src4, src6, n, kinds in (line.split("\t") for line in out.stdout.splitlines())]


def _cookies_in_synacks(pcap: Path, source: str) -> list[str]:
    out = subprocess.run(["tshark", "-r", str(pcap), "-Y", "tcp.flags.syn==1 && tcp.flags.ack==1"
                          f" && {'ipv6' if ':' in source else 'ip'}.src=={source}"
                          " && tcp.option_kind==34", "-T", "fields", "-e", "tcp.options.tfo.cookie"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def _fastopen_fetch(sock: GreenSocket, addr: tuple[str, int], payload: bytes) -> bytes:
    """sendto(MSG_FASTOPEN) as the drop-in makes it, then SHUT_WR once connected; the digest back."""
    core = sock.core
    sent = sock.call(lambda now: core.sendto_fastopen(payload, addr, now))
    sock.wait_for(POLLOUT)  # a blocking sendto returns connected (Linux), so SHUT_WR is not a disconnect
    sock.sendall(payload[sent:])
    sock.shutdown(1)
    digest = sock.recv(64)
    sock.close()
    return digest


@pytest.mark.parametrize("family", [AF_INET, AF_INET6], ids=["ipv4", "ipv6"])
def test_the_stack_client_sends_data_in_the_syn_to_a_kernel_server(tmp_path: Path, family: int) -> None:
    with fresh_host(tmp_path) as lab:
        kernel = KernelPeer(lab.host, lab.pcap, family)
        _kernel_fastopen(kernel)
        stats = kernel.host.stack.stats
        rng = random.Random(13)
        payloads = [rng.randbytes(SIZE) for _ in range(CONNECTIONS)]
        with kernel_program(kernel, SERVER, kernel.kernel_ip, str(CONNECTIONS)) as server:
            addr = (kernel.kernel_ip, int(read_line(server)))
            digests = [_fastopen_fetch(tcp_socket(kernel, timeout=60), addr, p) for p in payloads]
            kernel_counters = finish(server).strip().splitlines()[-1]
        tfo = {k: v for k, v in stats.items() if k.startswith("tcp.tfo")}
        stack_ip = kernel.stack_ip
    assert digests == [hashlib.sha256(p).digest() for p in payloads]
    assert tfo == {"tcp.tfo_cookie_req": 1, "tcp.tfo_active": CONNECTIONS - 1}
    assert f'"TCPFastOpenPassive": {CONNECTIONS - 1}' in kernel_counters
    assert '"TCPFastOpenCookieReqd": 1' in kernel_counters
    syns = _syns_with_data(tmp_path / "stack.pcap")
    assert [(src, n) for src, n, _ in syns] == [(stack_ip, SIZE)] * (CONNECTIONS - 1)
    assert all("34" in kinds.split(",") for _, _, kinds in syns)


@pytest.mark.parametrize(("tfo", "family"), [(3, AF_INET), (3, AF_INET6), (0, AF_INET)],
                         ids=["ipv4", "ipv6", "off"])
def test_a_kernel_client_sends_data_in_the_syn_to_the_stack_server(tmp_path: Path, tfo: int, family: int) -> None:
    with fresh_host(tmp_path) as lab:
        kernel = KernelPeer(lab.host, lab.pcap, family)
        _kernel_fastopen(kernel)
        stack = kernel.host.stack
        stack.sysctl["net.ipv4.tcp_fastopen"] = tfo
        listener = tcp_socket(kernel, timeout=60)
        listener.bind(("", 0))
        listener.listen(16)
        listener.core.fastopen_qlen = 16  # setsockopt(TCP_FASTOPEN, 16) through the drop-in
        first_reads: list[tuple[int, bool]] = []

        def serve() -> None:
            for _ in range(CONNECTIONS):
                conn, _peer = listener.accept()
                tcb = conn.core.tcb
                assert tcb is not None
                first = conn.recv(65536)
                first_reads.append((len(first), tcb.tfo))
                while data := conn.recv(65536):
                    first += data
                conn.sendall(hashlib.sha256(first).digest())
                conn.close()

        server = gevent.spawn(serve)
        try:
            out = kernel.python(CLIENT, kernel.stack_ip, str(listener.getsockname()[1]), str(CONNECTIONS), "7",
                                str(SIZE), timeout=120)
            assert out.returncode == 0, out.stderr
            server.get(timeout=60)
        finally:
            server.kill()
            listener.close()
        tfo_stats = {k: v for k, v in stack.stats.items() if k.startswith("tcp.tfo")}
        kernel_ip, stack_ip = kernel.kernel_ip, kernel.stack_ip
    result = out.stdout.strip().splitlines()[-1]
    assert '"ok": [true, true, true]' in result
    syns = _syns_with_data(tmp_path / "stack.pcap")
    cookies = _cookies_in_synacks(tmp_path / "stack.pcap", stack_ip)
    if tfo == 0:  # nothing answers the kernel's cookie request: its SYNs never carry data
        assert syns == [] and cookies == [] and tfo_stats == {}
        assert all(not fast for _, fast in first_reads)
        return
    assert tfo_stats == {"tcp.tfo_cookie_reqd": 1, "tcp.tfo_passive": CONNECTIONS - 1}
    assert f'"TCPFastOpenActive": {CONNECTIONS - 1}' in result
    assert [(src, n) for src, n, _ in syns] == [(kernel_ip, SIZE)] * (CONNECTIONS - 1)
    assert len(cookies) == 1 and len(cookies[0].replace(":", "")) == 16  # our 8-byte cookie, once
    # The Fast Open children were accepted with the SYN's data already readable.
    assert first_reads[1:] == [(SIZE, True)] * (CONNECTIONS - 1)
