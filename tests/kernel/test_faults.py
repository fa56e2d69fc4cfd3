"""Live faults (pytcp_green.faults) against the Linux kernel, seen from the application's side.

The kernel runs a small server; the application is a stack socket.  Each test adds one fault
mid-connection, shows its effect the way an application would notice it (time a reply takes,
throughput, ECONNRESET, EOF at a byte, many small reads, a stall), removes it and shows that the
same connection (or the next one) behaves normally again.  Lower bounds on time are exact
consequences of the fault (a frame held 400 ms cannot arrive sooner), not guesses about speed;
that a removed fault no longer acts is read off its counters.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import random
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from lab.helpers import KernelPeer

from pytcp_green.cli import in_thread
from pytcp_green.green.sockets import GreenSocket
from pytcp_green.stack.stack import SOCK_STREAM

pytestmark = pytest.mark.lab

# One connection at a time; per line: "send N" answers N bytes of random.Random(N), "ping" answers
# "pong\n", "close" closes.  It prints its port, then each peer address it accepted.
SERVER = """
import random, socket, sys
srv = socket.create_server((sys.argv[1], 0))
print(srv.getsockname()[1], flush=True)
while True:
    conn, peer = srv.accept()
    print(peer[0], flush=True)
    try:
        with conn, conn.makefile("rb") as lines:
            for line in lines:
                cmd, *args = line.split()
                if cmd == b"send":
                    conn.sendall(random.Random(int(args[0])).randbytes(int(args[0])))
                elif cmd == b"ping":
                    conn.sendall(b"pong\\n")
                elif cmd == b"close":
                    break
    except ConnectionResetError:
        print("reset", flush=True)
"""
DELAY = 0.4
Server = tuple[subprocess.Popen[str], int]


@pytest.fixture
def server(kernel: KernelPeer) -> Iterator[Server]:
    proc: subprocess.Popen[str] = kernel.lab.popen([sys.executable, "-c", SERVER, kernel.kernel_ip],
                                                    stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc, int(in_thread(proc.stdout.readline))
    finally:
        kernel.host.faults.clear()
        proc.kill()
        in_thread(proc.wait, 30)
        assert proc.stdout is not None
        proc.stdout.close()


@contextlib.contextmanager
def connection(kernel: KernelPeer, port: int, timeout: float = 60) -> Iterator[GreenSocket]:
    sock = GreenSocket(kernel.host.runtime, kernel.host.stack.socket(kernel.family, SOCK_STREAM), timeout=timeout)
    try:
        sock.connect((kernel.kernel_ip, port))
        yield sock
    finally:
        sock.close()


def recv_exactly(sock: GreenSocket, n: int) -> bytes:
    chunks = []
    while n:
        chunk = sock.recv(n)
        assert chunk, "EOF too early"
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def ping(sock: GreenSocket) -> float:
    started = time.monotonic()
    sock.sendall(b"ping\n")
    assert recv_exactly(sock, 5) == b"pong\n"
    return time.monotonic() - started


def download(sock: GreenSocket, n: int) -> tuple[bytes, float, int]:
    """Ask for n bytes; (their bytes, seconds taken, how many recv() calls returned them)."""
    started = time.monotonic()
    sock.sendall(b"send %d\n" % n)
    chunks = []
    while sum(map(len, chunks)) < n:
        chunk = sock.recv(1 << 20)
        assert chunk, "EOF too early"
        chunks.append(chunk)
    return b"".join(chunks), time.monotonic() - started, len(chunks)


def expected(n: int) -> bytes:
    return random.Random(n).randbytes(n)


def test_latency_delays_every_reply_until_removed(kernel: KernelPeer, server: Server) -> None:
    _, port = server
    with connection(kernel, port) as sock:
        with kernel.host.faults.add("latency", delay=f"{DELAY}s", direction="in", port=port) as fault:
            assert ping(sock) >= DELAY
            assert fault.stats["matched"] >= 1
        held = fault.stats["matched"]
        ping(sock)  # the same connection answers, and none of its frames went through the fault
        assert fault.stats["matched"] == held


def test_bandwidth_limits_throughput_until_removed(kernel: KernelPeer, server: Server) -> None:
    _, port = server
    size, rate = 200_000, 2_000_000
    floor = size * 8 / rate  # payload alone at 2 Mbit/s; headers make it slower still
    with connection(kernel, port) as sock:
        with kernel.host.faults.add(f"bandwidth rate=2mbit direction=in port={port}") as fault:
            data, took, _ = download(sock, size)
            assert data == expected(size) and took >= floor
        limited = fault.stats["matched"]
        data, _, _ = download(sock, size)
        assert data == expected(size) and fault.stats["matched"] == limited  # no longer serialized


def test_timeout_stalls_the_flow_and_removing_it_delivers_what_was_asked(
        kernel: KernelPeer, server: Server) -> None:
    _, port = server
    with connection(kernel, port) as sock:
        assert ping(sock) >= 0
        fault = kernel.host.faults.add("timeout", direction="in", port=port)
        sock.sendall(b"ping\n")
        with pytest.raises(TimeoutError):
            sock.recv(5, timeout=1.0)
        assert fault.stats["dropped"] >= 1
        fault.remove()
        # The kernel retransmits what the stall swallowed: the answer arrives whole.
        assert recv_exactly(sock, 5) == b"pong\n"


def test_link_down_stops_everything_and_the_connection_survives_it(
        kernel: KernelPeer, server: Server) -> None:
    _, port = server
    with connection(kernel, port) as sock:
        with kernel.host.faults.link_down() as down:
            sock.sendall(b"send 50000\n")
            with pytest.raises(TimeoutError):
                sock.recv(1, timeout=1.0)
            # Nothing crossed: not even the kernel's answer to our request.
            assert down.stats["dropped"] >= 1
        got = recv_exactly(sock, 50_000)
        assert hashlib.sha256(got).digest() == hashlib.sha256(expected(50_000)).digest()


def test_reset_peer_is_econnreset_at_both_ends_and_refuses_new_connections(
        kernel: KernelPeer, server: Server) -> None:
    proc, port = server
    assert proc.stdout is not None
    with connection(kernel, port) as sock:
        assert ping(sock) >= 0
        with kernel.host.faults.add("reset_peer", port=port) as fault:
            with pytest.raises(ConnectionResetError) as info:
                sock.sendall(b"ping\n")
                sock.recv(5)
            assert info.value.errno == errno.ECONNRESET
            assert fault.stats["reset"] == 1
            with pytest.raises(ConnectionRefusedError), connection(kernel, port):
                pass
    assert in_thread(proc.stdout.readline).strip() == kernel.stack_ip  # the first connection's peer line
    assert in_thread(proc.stdout.readline).strip() == "reset"  # the kernel saw ECONNRESET too
    with connection(kernel, port) as sock:  # removed: connections work again
        assert ping(sock) >= 0


def test_limit_data_is_eof_at_that_byte(kernel: KernelPeer, server: Server) -> None:
    _, port = server
    limit, size = 100_000, 300_000
    with kernel.host.faults.add("limit_data", bytes=limit, port=port) as fault:
        with connection(kernel, port) as sock:
            sock.sendall(b"send %d\n" % size)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            assert b"".join(chunks) == expected(size)[:limit]  # every byte up to the limit, then EOF
        assert fault.stats["limited"] >= 1
    with connection(kernel, port) as sock:
        data, _, _ = download(sock, size)
        assert data == expected(size)


def test_slicer_makes_many_small_reads_until_removed(kernel: KernelPeer, server: Server) -> None:
    _, port = server
    size = 20_000
    with connection(kernel, port) as sock:
        with kernel.host.faults.add("slicer", size=100, delay="5ms", port=port) as fault:
            data, _, reads = download(sock, size)
            assert data == expected(size)
            assert fault.stats["slices"] >= size // 100
            # 200 slices 5 ms apart: a reader that keeps reading gets them in many small pieces.
            assert reads >= 20
        slices = fault.stats["slices"]
        data, _, _ = download(sock, size)
        assert data == expected(size) and fault.stats["slices"] == slices


def test_slow_close_holds_the_fin(kernel: KernelPeer, server: Server) -> None:
    _, port = server
    with kernel.host.faults.add("slow_close", delay=f"{DELAY}s", port=port) as fault, \
            connection(kernel, port) as sock:
        started = time.monotonic()
        sock.sendall(b"close\n")
        assert sock.recv(1) == b""
        assert time.monotonic() - started >= DELAY
        assert fault.stats["held"] >= 1


def test_address_change_renumbers_the_link(kernel: KernelPeer, server: Server) -> None:
    proc, port = server
    assert proc.stdout is not None
    old, new = f"{kernel.stack_ip}/24", "198.18.0.9/24"
    kernel.host.faults.change_address(new)
    try:
        with connection(kernel, port) as sock:
            assert ping(sock) >= 0
        assert in_thread(proc.stdout.readline).strip() == "198.18.0.9"  # the kernel saw the new source
        assert kernel.run(["ping", "-c", "1", "-W", "5", "198.18.0.9"]).returncode == 0
        assert kernel.run(["ping", "-c", "1", "-W", "1", kernel.stack_ip]).returncode != 0
    finally:
        kernel.host.faults.change_address(old, old=new)
    assert kernel.run(["ping", "-c", "1", "-W", "5", kernel.stack_ip]).returncode == 0
