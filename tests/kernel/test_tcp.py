"""Issue 3 against the Linux kernel: TCP bulk both ways in both roles (and with the kernel's timestamps or
SACK off), 200 connections in a row leaving nothing behind, transfers through the impairment shim, the
TCP services, and the runtime's blocking/non-blocking/timeout/error behaviour.

Every transfer is hashed with SHA-256 at both ends: each side reports what it sent and what it received,
and the test compares one side's "sent" with the other side's "received".  The payload is a seeded
pseudo-random stream (no repeating pattern, so a misplaced segment cannot hash the same).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import gevent
import pytest
from lab.helpers import KernelPeer, lab_skip_reason, shim

from pytcp_green.cli import in_thread
from pytcp_green.green.sockets import GreenSocket
from pytcp_green.host import Host, StackOptions
from pytcp_green.stack.sockbase import POLLIN
from pytcp_green.stack.stack import SOCK_STREAM
from pytcp_green.stack.tcp.tcb import STATE_NAMES, TIME_WAIT

pytestmark = pytest.mark.lab

MB = 1_000_000
CHUNK = 1 << 20
SHUT_WR = 1

# --------------------------------------------------------------------------- kernel-side programs

# Bulk both ways over one connection: a thread sends ``nbytes`` of random.Random(seed) and then
# SHUT_WR, the main thread receives until EOF.  Prints: sent_n sent_sha received_n received_sha.
BULK_PEER = r"""
import hashlib, random, socket, sys, threading
role, ip, port, nbytes, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
CHUNK = 1 << 20
if role == "listen":
    srv = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET)
    srv.bind((ip, port))
    srv.listen(1)
    print(srv.getsockname()[1], flush=True)
    conn, _ = srv.accept()
    srv.close()
else:
    conn = socket.create_connection((ip, port), timeout=60)
conn.settimeout(300)
sent, errors = hashlib.sha256(), []
def send():
    try:
        rng, left = random.Random(seed), nbytes
        while left:
            block = rng.randbytes(min(CHUNK, left))
            sent.update(block)
            conn.sendall(block)
            left -= len(block)
        conn.shutdown(socket.SHUT_WR)
    except BaseException as exc:
        errors.append(exc)
sender = threading.Thread(target=send)
sender.start()
got, n = hashlib.sha256(), 0
buf = bytearray(CHUNK)
while k := conn.recv_into(buf):
    got.update(memoryview(buf)[:k])
    n += k
sender.join()
conn.close()
if errors:
    raise errors[0]
print(nbytes, sent.hexdigest(), n, got.hexdigest(), flush=True)
"""

# Many short connections, driven line by line from stdin so they interleave with the stack's:
#   serve K      accept one connection, read K bytes, answer their SHA-256, read EOF, close
#   connect P K  connect to the stack's port P, send K random bytes, check the SHA-256 answer,
#                SHUT_WR, read EOF (the stack closed too), close: this side holds TIME-WAIT
# Each command answers one line: "ok <kernel port>" or "bad ...".
SHORT_PEER = r"""
import hashlib, os, socket, sys
ip, stack_ip = sys.argv[1], sys.argv[2]
srv = socket.socket()
srv.bind((ip, 0))
srv.listen(16)
print(srv.getsockname()[1], flush=True)
def read_exact(s, k):
    data = b""
    while len(data) < k:
        part = s.recv(k - len(data))
        if not part:
            break
        data += part
    return data
for line in sys.stdin:
    cmd = line.split()
    if cmd[0] == "serve":
        conn, _ = srv.accept()
        conn.settimeout(30)
        data = read_exact(conn, int(cmd[1]))
        conn.sendall(hashlib.sha256(data).digest())
        tail = conn.recv(1)
        port = conn.getpeername()[1]
        conn.close()
        print("ok" if len(data) == int(cmd[1]) and tail == b"" else "bad serve", port, flush=True)
    elif cmd[0] == "connect":
        s = socket.create_connection((stack_ip, int(cmd[1])), timeout=30)
        payload = os.urandom(int(cmd[2]))
        s.sendall(payload)
        answer = read_exact(s, 32)
        s.shutdown(socket.SHUT_WR)
        tail = s.recv(1)
        port = s.getsockname()[1]
        s.close()
        print("ok" if answer == hashlib.sha256(payload).digest() and tail == b"" else "bad connect", port, flush=True)
srv.close()
"""

# One idle accepted connection, ended on a stdin command: "rst" (SO_LINGER 0 + close) or "close".
IDLE_PEER = r"""
import socket, struct, sys
srv = socket.socket()
srv.bind((sys.argv[1], 0))
srv.listen(1)
print(srv.getsockname()[1], flush=True)
conn, _ = srv.accept()
srv.close()
how = sys.stdin.readline().strip()
if how == "rst":
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
conn.close()
print("done", flush=True)
"""

# What Linux itself answers to send() after the peer reset the connection (kernel to kernel on lo).
LINUX_SEND_AFTER_RST = r"""
import select, socket, struct
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
c = socket.create_connection(srv.getsockname())
conn, _ = srv.accept()
conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
conn.close()
p = select.poll()
p.register(c, select.POLLIN)
p.poll(10000)
codes = []
for _ in range(2):
    try:
        c.send(b"x")
        codes.append(0)
    except OSError as exc:
        codes.append(exc.errno)
print(*codes)
"""

# A TCP client for the stack's services: connect to port, send ``nbytes`` random bytes (0: none),
# SHUT_WR, read to EOF.  Prints: sent_sha received_n received_sha, then the received bytes in hex if short.
SERVICE_CLIENT = r"""
import hashlib, os, socket, sys, threading
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
payload = os.urandom(int(sys.argv[3]))
def send():
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
sender = threading.Thread(target=send)
sender.start()
got = b""
while part := s.recv(1 << 20):
    got += part
sender.join()
s.close()
print(hashlib.sha256(payload).hexdigest(), len(got), hashlib.sha256(got).hexdigest())
if len(got) < 200:
    print(got.hex())
"""


# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def fresh_host(tmp_path: Path, impair: str | None = None) -> Iterator[KernelPeer]:
    """A stack on a lab of its own (counters and kernel state start from zero), with a pcap."""
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    pcap = tmp_path / "stack.pcap"
    with Host(StackOptions(lab=True, pcap=str(pcap), impair=impair)) as host:
        yield KernelPeer(host, pcap)


@contextlib.contextmanager
def kernel_program(kernel: KernelPeer, code: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """A Python program in the namespace with pipes; killed (by its own handle) if still running after."""
    proc: subprocess.Popen[str] = kernel.lab.popen([sys.executable, "-c", code, *args], stdin=subprocess.PIPE,
                                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            in_thread(proc.wait, 30)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError, ValueError):
                    pipe.close()


def read_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line: str = in_thread(proc.stdout.readline)
    if not line:
        assert proc.stderr is not None
        raise AssertionError(f"kernel program ended early: {in_thread(proc.stderr.read)}")
    return line.strip()


def finish(proc: subprocess.Popen[str], timeout: float = 180) -> str:
    """Wait for the program to end; what it printed after the lines :func:`read_line` took.

    Read through ``proc.stdout`` itself: ``communicate()`` reads the pipe's fd and would lose lines a
    ``readline`` already pulled into the stream's buffer (a program that prints its port and, at
    once, its result).  A program still running after ``timeout`` is killed, which ends the reads."""
    assert proc.stdout is not None and proc.stderr is not None
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()  # as communicate() does: a program reading to EOF may end now
    killer = gevent.spawn_later(timeout, proc.kill)
    try:
        out: str = in_thread(proc.stdout.read)
        err: str = in_thread(proc.stderr.read)
        in_thread(proc.wait, 30)
    finally:
        killer.kill()
    assert proc.returncode == 0, err or f"exit status {proc.returncode} (killed after {timeout} s?)"
    return out


# Blocking calls get generous bounds: at 20% loss a transfer crawls through RTO backoff, and a
# loaded machine stretches that further; a bound only has to catch a hang, never to time a transfer.
def tcp_socket(kernel: KernelPeer, timeout: float | None = 300) -> GreenSocket:
    return GreenSocket(kernel.host.runtime, kernel.host.stack.socket(kernel.family, SOCK_STREAM), timeout=timeout)


def stack_exchange(sock: GreenSocket, nbytes: int, seed: int) -> tuple[str, int, str]:
    """Send ``nbytes`` of random.Random(seed) then SHUT_WR while receiving to EOF, then close.

    Returns (sha256 sent, bytes received, sha256 received).
    """
    sent = hashlib.sha256()

    def send() -> None:
        rng, left = random.Random(seed), nbytes
        while left:
            block = rng.randbytes(min(CHUNK, left))
            sent.update(block)
            sock.sendall(block)
            left -= len(block)
        sock.shutdown(SHUT_WR)

    sender = gevent.spawn(send)
    try:
        got, n = hashlib.sha256(), 0
        while data := sock.recv(256 * 1024):
            got.update(data)
            n += len(data)
        sender.get()
    finally:
        sender.kill()
        sock.close()
    return sent.hexdigest(), n, got.hexdigest()


def bulk(kernel: KernelPeer, nbytes: int, *, stack_connects: bool,
         check: Callable[[GreenSocket], None] | None = None) -> None:
    """``nbytes`` each way over one connection, the stack connecting or accepting; hashes compared."""
    stack_seed, kernel_seed = random.getrandbits(32), random.getrandbits(32)
    if stack_connects:
        args = ("listen", kernel.kernel_ip, "0", str(nbytes), str(kernel_seed))
        with kernel_program(kernel, BULK_PEER, *args) as proc:
            port = int(read_line(proc))
            sock = tcp_socket(kernel)
            sock.connect((kernel.kernel_ip, port))
            if check is not None:
                check(sock)
            mine = stack_exchange(sock, nbytes, stack_seed)
            theirs = finish(proc).split()
    else:
        listener = tcp_socket(kernel)
        try:
            listener.bind(("", 0))
            listener.listen(1)
            port = int(listener.getsockname()[1])
            args = ("connect", kernel.stack_ip, str(port), str(nbytes), str(kernel_seed))
            with kernel_program(kernel, BULK_PEER, *args) as proc:
                sock, _ = listener.accept()
                listener.close()
                if check is not None:
                    check(sock)
                mine = stack_exchange(sock, nbytes, stack_seed)
                theirs = finish(proc).split()
        finally:
            listener.close()
    k_sent_n, k_sent, k_got_n, k_got = theirs
    assert int(k_sent_n) == nbytes
    assert (int(k_got_n), k_got) == (nbytes, mine[0]), "stack -> kernel: the kernel received other bytes"
    assert (mine[1], mine[2]) == (nbytes, k_sent), "kernel -> stack: the stack received other bytes"


def options_check(ts: bool, sack: bool) -> Callable[[GreenSocket], None]:
    """Assert what the handshake negotiated (so a sysctl that did not take effect cannot pass unseen)."""

    def check(sock: GreenSocket) -> None:
        tcb = sock.core.tcb
        assert (tcb.ts_ok, tcb.sack_ok) == (ts, sack)

    return check


def nstat(kernel: KernelPeer) -> dict[str, int]:
    """The namespace's absolute TCP counters (``nstat -asz``: absolute, no history file written)."""
    out = kernel.run(["nstat", "-asz"]).stdout
    counters = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            counters[parts[0]] = int(parts[1])
    return counters


def kernel_tcp_states(kernel: KernelPeer) -> list[tuple[str, str, str]]:
    """(state, local, peer) of every TCP socket in the namespace, from ``ss -tan``."""
    out = kernel.run(["ss", "-tanH"]).stdout
    return [(f[0], f[3], f[4]) for f in (line.split() for line in out.splitlines()) if f]


# --------------------------------------------------------------------------- 1. bulk


@pytest.fixture(scope="module")
def bulk_kernel() -> Iterator[KernelPeer]:
    """A lab without a capture: the bulk tests move 480 MB, which a pcap would keep on disk."""
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    with Host(StackOptions(lab=True)) as host:
        yield KernelPeer(host, Path(os.devnull))


@pytest.mark.parametrize("stack_connects", [True, False], ids=["stack-connects", "stack-accepts"])
def test_100_mb_each_way_arrive_intact(bulk_kernel: KernelPeer, stack_connects: bool) -> None:
    bulk(bulk_kernel, 100 * MB, stack_connects=stack_connects, check=options_check(ts=True, sack=True))


@pytest.mark.parametrize("option", ["tcp_timestamps", "tcp_sack"])
@pytest.mark.parametrize("stack_connects", [True, False], ids=["stack-connects", "stack-accepts"])
def test_20_mb_each_way_with_a_kernel_option_off(bulk_kernel: KernelPeer, option: str, stack_connects: bool) -> None:
    kernel = bulk_kernel
    key = f"net.ipv4.{option}"
    before = kernel.lab.sysctl(key)
    kernel.lab.sysctl(key, 0)
    try:
        check = options_check(ts=option != "tcp_timestamps", sack=option != "tcp_sack")
        bulk(kernel, 20 * MB, stack_connects=stack_connects, check=check)
    finally:
        kernel.lab.sysctl(key, before)


# --------------------------------------------------------------------------- 2. many connections

_OPEN_KERNEL_STATES = {"ESTAB", "CLOSE-WAIT", "FIN-WAIT-1", "FIN-WAIT-2", "LAST-ACK", "CLOSING", "SYN-SENT",
                       "SYN-RECV"}


def _serve_one(listener: GreenSocket, size: int) -> None:
    """The stack's side of a kernel-initiated exchange: read ``size`` bytes, answer their hash, await EOF."""
    conn, _ = listener.accept()
    try:
        data = b""
        while len(data) < size:
            part = conn.recv(size - len(data))
            assert part, "EOF before the request was complete"
            data += part
        conn.sendall(hashlib.sha256(data).digest())
        assert conn.recv(1) == b""
    finally:
        conn.close()


def test_200_connections_in_a_row_leave_only_the_active_closers_time_wait(tmp_path: Path) -> None:
    with fresh_host(tmp_path) as kernel:
        stack = kernel.host.stack
        conns = stack.tcp.conns
        listener = tcp_socket(kernel, timeout=30)
        listener.bind(("", 0))
        listener.listen(16)
        stack_port = int(listener.getsockname()[1])
        stack_client_ports: set[int] = set()  # our ephemeral ports: we closed first, we hold TIME-WAIT
        kernel_client_ports: set[int] = set()  # the kernel's: it closed first, it holds TIME-WAIT
        try:
            with kernel_program(kernel, SHORT_PEER, kernel.kernel_ip, kernel.stack_ip) as proc:
                assert proc.stdin is not None
                kernel_port = int(read_line(proc))
                for i in range(200):
                    size = 1 + i * 37
                    if i % 2 == 0:  # the stack connects to the kernel's listener and closes first
                        proc.stdin.write(f"serve {size}\n")
                        proc.stdin.flush()
                        sock = tcp_socket(kernel, timeout=30)
                        try:
                            sock.connect((kernel.kernel_ip, kernel_port))
                            payload = random.randbytes(size)
                            sock.sendall(payload)
                            answer = b""
                            while len(answer) < 32 and (part := sock.recv(32 - len(answer))):
                                answer += part
                            assert answer == hashlib.sha256(payload).digest()
                            sock.shutdown(SHUT_WR)
                            assert sock.recv(1) == b""  # the kernel's FIN: we are in TIME-WAIT now
                            stack_client_ports.add(int(sock.getsockname()[1]))
                        finally:
                            sock.close()
                    else:  # the kernel connects to the stack's listener and closes first
                        server = gevent.spawn(_serve_one, listener, size)
                        proc.stdin.write(f"connect {stack_port} {size}\n")
                        proc.stdin.flush()
                        server.get(timeout=60)
                    status, port = read_line(proc).split()
                    assert status == "ok", f"connection {i}: {status}"
                    (stack_client_ports if i % 2 == 0 else kernel_client_ports).add(int(port))
                finish(proc)
        finally:
            listener.close()
        assert len(stack_client_ports) == len(kernel_client_ports) == 100

        # The last frames (the final ACKs) may still be on the TAP when the loop ends: wait for them.
        def settled() -> bool:
            return all(t.state == TIME_WAIT for t in conns.values()) and not any(
                s[0] in _OPEN_KERNEL_STATES for s in kernel_tcp_states(kernel))

        assert kernel.host.runtime.wait_until(settled, 15)
        # The stack holds TIME-WAIT for exactly the connections it closed first (60 s, longer than this test).
        left = {STATE_NAMES[t.state] for t in conns.values()}
        assert left <= {"TIME_WAIT"}, left
        assert {t.local_port for t in conns.values()} == stack_client_ports
        assert all(t.remote_port == kernel_port for t in conns.values())
        assert not stack.tcp.listeners
        # The kernel holds TIME-WAIT for exactly the connections it closed first, and nothing else.
        states = kernel_tcp_states(kernel)
        assert {s[0] for s in states} <= {"TIME-WAIT"}, states
        assert {int(s[1].rsplit(":", 1)[1]) for s in states} == kernel_client_ports
        assert all(s[2] == f"{kernel.stack_ip}:{stack_port}" for s in states)
        assert stack.stats["tcp.rst_out"] == stack.stats["tcp.rst_in"] == 0
        assert stack.stats["tcp.active_open"] == stack.stats["tcp.passive_open"] == 100


# --------------------------------------------------------------------------- 3. through the impairment shim

# (spec, bytes each way, the stack connects?, kernel sysctls): the shim applies the spec to both
# directions with seeds derived from the one given, so each run replays.
IMPAIRMENTS = {
    "loss-5%": ("loss=5%,seed=11", 4 * MB, True, {}),
    "loss-20%": ("loss=20%,seed=12", 400_000, False, {}),
    "loss-5%-newreno": ("loss=5%,seed=13", 2 * MB, True, {"net.ipv4.tcp_sack": 0}),
    "reorder": ("reorder=10%,seed=14", 4 * MB, False, {}),
    "duplicate": ("dup=10%,seed=15", 4 * MB, True, {}),
    "corrupt": ("corrupt=5%,seed=16", 4 * MB, False, {}),
}


def assert_only_rsts_after_close(kernel: KernelPeer) -> None:
    """Every RST on the wire is the kernel answering a segment that reached it after its socket had
    closed: a duplicated or late segment from the stack in TIME-WAIT (Linux answers those with a RST
    from no socket, as any host does).  Such a RST follows the stack's ACK of the kernel's FIN and,
    as RFC 9293 3.10.7.1 has a closed port answer a segment with ACK set, carries SEQ = that
    segment's ACK: the kernel's FIN + 1, or an older ACK the shim delayed past the close.  Anything
    else (a RST from the stack, one during the transfer, one whose SEQ the stack never acked) fails.
    """
    assert kernel.host.pcap is not None
    kernel.host.pcap.flush()
    fields = ["frame.number", "ip.src", "tcp.flags.reset", "tcp.flags.fin", "tcp.seq_raw", "tcp.ack_raw", "tcp.len"]
    # A frame the shim corrupted (its checksums fail, the receiver drops it) may read as anything, a
    # RST included: only frames whose checksums hold count.
    out = subprocess.run(["tshark", "-r", str(kernel.pcap), "-o", "tcp.check_checksum:TRUE",
                          "-o", "ip.check_checksum:TRUE", "-Y",
                          "tcp and not tcp.checksum.status == 0 and not ip.checksum.status == 0", "-T", "fields",
                          *(x for f in fields for x in ("-e", f))], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    kernel_fin_end: int | None = None
    fin_acked = False
    acks_sent: set[int] = set()
    for line in out.stdout.splitlines():
        number, src, rst, fin, seq, ack, length = line.split("\t")
        from_kernel = src == kernel.kernel_ip
        if not from_kernel and ack:
            acks_sent.add(int(ack))
        if rst in ("1", "True"):
            assert from_kernel, f"frame {number}: the stack sent a RST"
            assert fin_acked, f"frame {number}: a RST before the connection closed"
            assert int(seq) in acks_sent, f"frame {number}: a RST with SEQ {seq}, which no segment of the stack acked"
        elif from_kernel and fin in ("1", "True"):
            kernel_fin_end = (int(seq) + int(length) + 1) & 0xFFFFFFFF
        elif not from_kernel and kernel_fin_end is not None and int(ack) == kernel_fin_end:
            fin_acked = True


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (it checks the RSTs)")
@pytest.mark.parametrize("case", list(IMPAIRMENTS))
def test_transfer_through_impairment_completes_intact_without_rst(tmp_path: Path, case: str) -> None:
    spec, nbytes, stack_connects, sysctls = IMPAIRMENTS[case]
    with fresh_host(tmp_path, impair=spec) as kernel:
        for key, value in sysctls.items():
            kernel.lab.sysctl(key, value)
        stats = kernel.host.stack.stats
        bulk(kernel, nbytes, stack_connects=stack_connects,
             check=options_check(ts=True, sack="net.ipv4.tcp_sack" not in sysctls))
        k = nstat(kernel)
        shim_stats = shim(kernel.host).stats
        report = (f"{case}: shim {shim_stats}\nstack {stats.matching('tcp.')}\n"
                  f"kernel { {n: v for n, v in k.items() if v and n.startswith(('Tcp', 'TcpExt'))} }")
        print(report)
        # No RST on a live connection, from either side.
        assert stats["tcp.rst_in"] == stats["tcp.rst_out"] == stats["tcp.rst_out.no_connection"] == 0, report
        assert k["TcpEstabResets"] == 0, report
        assert_only_rsts_after_close(kernel)
        if "loss" in case:
            assert shim_stats["lost"] > 0
            # Both senders lost segments and recovered them by retransmission.
            assert stats["tcp.retransmit"] > 0 and k["TcpRetransSegs"] > 0, report
            assert stats["tcp.fast_retransmit"] + stats["tcp.rto"] > 0, report
        elif case == "corrupt":
            assert shim_stats["corrupted"] > 0
            # Corrupted frames were refused by checksums (ours and the kernel's) and resent.
            assert stats["tcp.drop.bad_checksum"] + stats["ip4.drop.bad_checksum"] > 0, report
            assert k["TcpInCsumErrors"] + k["IpInHdrErrors"] > 0, report
            assert stats["tcp.retransmit"] > 0 and k["TcpRetransSegs"] > 0, report
        elif case == "reorder":
            assert shim_stats["reordered"] > 0
            # Both receivers queued segments that overtook earlier ones.
            assert stats["tcp.rx_out_of_order"] > 0 and k["TcpExtTCPOFOQueue"] > 0, report
        elif case == "duplicate":
            assert shim_stats["duplicated"] > 0
            # Both receivers saw duplicate data and answered it with an ACK (Linux: a D-SACK).
            assert stats["tcp.rx_out_of_window"] > 0 and k["TcpExtTCPDSACKOldSent"] > 0, report


# --------------------------------------------------------------------------- 4. the serve TCP services


def test_tcp_echo_returns_a_megabyte_intact(kernel: KernelPeer) -> None:
    served = kernel.host.stack.stats["service.tcp.7"]
    out = kernel.python(SERVICE_CLIENT, kernel.stack_ip, "7", str(MB))
    assert out.returncode == 0, out.stderr
    sent, n, got = out.stdout.split()[:3]
    assert (int(n), got) == (MB, sent)
    assert kernel.host.stack.stats["service.tcp.7"] == served + 1


def test_tcp_discard_takes_a_megabyte_and_closes_cleanly(kernel: KernelPeer) -> None:
    served = kernel.host.stack.stats["service.tcp.9"]
    out = kernel.python(SERVICE_CLIENT, kernel.stack_ip, "9", str(MB))
    # The client's recv() ended with EOF (the service's FIN), not ECONNRESET, after nothing came back.
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[1] == "0"
    assert kernel.host.stack.stats["service.tcp.9"] == served + 1


def test_tcp_daytime_sends_one_line(kernel: KernelPeer) -> None:
    out = kernel.python(SERVICE_CLIENT, kernel.stack_ip, "13", "0")
    assert out.returncode == 0, out.stderr
    text = bytes.fromhex(out.stdout.split()[3]).decode()
    assert re.fullmatch(r"[A-Z][a-z]+day, [A-Z][a-z]+ \d\d, \d{4} \d\d:\d\d:\d\d-\w*\r\n", text), repr(text)


# --------------------------------------------------------------------------- 5. runtime semantics


def test_connect_to_a_kernel_port_without_listener_is_refused(kernel: KernelPeer) -> None:
    sock = tcp_socket(kernel, timeout=10)
    try:
        with pytest.raises(ConnectionRefusedError) as info:
            sock.connect((kernel.kernel_ip, 1))
        assert info.value.errno == errno.ECONNREFUSED
    finally:
        sock.close()


def test_recv_timeout_nonblocking_and_send_after_the_kernel_reset(kernel: KernelPeer) -> None:
    linux = kernel.python(LINUX_SEND_AFTER_RST)
    assert linux.returncode == 0, linux.stderr
    linux_codes = [int(x) for x in linux.stdout.split()]
    assert linux_codes == [errno.ECONNRESET, errno.EPIPE]  # what the stack must match below
    with kernel_program(kernel, IDLE_PEER, kernel.kernel_ip) as proc:
        assert proc.stdin is not None
        port = int(read_line(proc))
        sock = tcp_socket(kernel, timeout=None)
        try:
            sock.connect((kernel.kernel_ip, port))
            with pytest.raises(TimeoutError):
                sock.recv(100, timeout=0.2)
            with pytest.raises(BlockingIOError) as info:
                sock.recv(100, timeout=0)
            assert info.value.errno == errno.EAGAIN
            sock.sendall(b"still alive")
            proc.stdin.write("rst\n")
            proc.stdin.flush()
            assert read_line(proc) == "done"
            assert sock.wait_for(POLLIN, timeout=10)  # the RST arrived: readable with an error
            codes = []
            for _ in range(2):
                with pytest.raises(OSError) as err:
                    sock.send(b"x")
                codes.append(err.value.errno)
            assert codes == linux_codes
        finally:
            sock.close()
        finish(proc)
