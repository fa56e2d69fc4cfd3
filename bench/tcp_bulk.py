"""TCP bulk throughput: stack->kernel and kernel->stack over the lab TAP, stack->stack over loopback,
and kernel->kernel over veth, all in one run, with ratios against the kernel.

    .venv/bin/python bench/tcp_bulk.py [--mbytes N] [--profile FILE]

Needs root.  Every transfer is checked: the receiver's SHA-256 must equal the sender's.
``--profile FILE`` writes cProfiles of the stack's side of stack->kernel (FILE.send) and
kernel->stack (FILE.recv); read them with ``python -m pstats``.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import gevent

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import LISTENER, VETH_B, Row, in_netns, ratio, veth_namespaces

from pytcp_green.cli import in_thread
from pytcp_green.green.sockets import GreenSocket
from pytcp_green.host import Host, StackOptions
from pytcp_green.stack.sockbase import AF_INET
from pytcp_green.stack.stack import SOCK_STREAM

PORT = 5201
CHUNK = 256 * 1024

# argv[3] "progress": a "+ N" line (bytes so far) at most twice a second, for bench/loss.py's watch.
SINK = LISTENER + """
import hashlib, time
progress = sys.argv[3:] == ["progress"]
print("ready", flush=True)
conn, _ = srv.accept()
h, n = hashlib.sha256(), 0
buf = bytearray(1 << 20)
t0 = None
shown = 0.0
while True:
    k = conn.recv_into(buf)
    if not k:
        break
    if t0 is None:
        t0 = time.perf_counter()
    n += k
    h.update(memoryview(buf)[:k])
    if progress and time.perf_counter() - shown >= 0.5:
        shown = time.perf_counter()
        print("+", n, flush=True)
print(n, h.hexdigest(), time.perf_counter() - t0, flush=True)
"""

SOURCE = """
import hashlib, socket, sys, time
n = int(sys.argv[3])
block = (bytes(range(256)) * 4096)[: 1 << 20]
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
t0 = time.perf_counter()
sent = 0
while sent < n:
    part = block[: min(len(block), n - sent)]
    s.sendall(part)
    sent += len(part)
s.shutdown(socket.SHUT_WR)
s.recv(1)
print(time.perf_counter() - t0, flush=True)
"""


def pattern(nbytes: int) -> tuple[bytes, str]:
    """The bytes the kernel SOURCE sends (repeating 0..255 in 1 MiB blocks) and their SHA-256."""
    block = (bytes(range(256)) * 4096)[: 1 << 20]
    h = hashlib.sha256()
    left = nbytes
    while left:
        h.update(block[: min(len(block), left)])
        left -= min(len(block), left)
    return block, h.hexdigest()


def mbit(nbytes: int, seconds: float) -> float:
    return nbytes * 8 / seconds / 1e6


def kernel_to_kernel(nbytes: int) -> float:
    with veth_namespaces() as (ns_a, ns_b):
        sink = in_netns(ns_b, SINK, VETH_B, str(PORT))
        assert sink.stdout is not None
        sink.stdout.readline()
        source = in_netns(ns_a, SOURCE, VETH_B, str(PORT), str(nbytes))
        source.communicate(timeout=600)
        out, _ = sink.communicate(timeout=60)
        n, digest, seconds = out.split()
        assert int(n) == nbytes and digest == pattern(nbytes)[1], "kernel baseline corrupted data"
        return mbit(nbytes, float(seconds))


def stack_send(host: Host, dst: tuple[str, int], nbytes: int, timeout: float | None = 60) -> tuple[float, str]:
    """Send the pattern from a stack socket; returns (seconds, sha256 of what was sent)."""
    block, digest = pattern(nbytes)
    sock = GreenSocket(host.runtime, host.stack.socket(AF_INET, SOCK_STREAM), timeout=timeout)
    sock.connect(dst)
    view = memoryview(block)
    t0 = time.perf_counter()
    sent = 0
    while sent < nbytes:
        part = min(len(block), nbytes - sent)
        sock.sendall(view[:part])
        sent += part
    sock.shutdown(1)
    sock.recv(1)  # wait for the peer's FIN: everything was received
    seconds = time.perf_counter() - t0
    sock.close()
    return seconds, digest


def stack_receive(sock: GreenSocket, progress: Callable[[int], None] | None = None) -> tuple[int, str, float]:
    """Read to EOF: (bytes, sha256, seconds from the first byte); ``progress`` gets the count so far."""
    h, n = hashlib.sha256(), 0
    t0 = None
    while data := sock.recv(CHUNK):
        if t0 is None:
            t0 = time.perf_counter()
        n += len(data)
        h.update(data)
        if progress is not None:
            progress(n)
    seconds = time.perf_counter() - (t0 or time.perf_counter())
    sock.close()
    return n, h.hexdigest(), seconds


@contextmanager
def profiled(path: str | None) -> Iterator[None]:
    """cProfile the block into ``path`` (nothing when None)."""
    if not path:
        yield
        return
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        profiler.dump_stats(path)


def stack_runs(nbytes: int, profile: str | None, offload: bool = True, loopback: bool = True) -> dict[str, float]:
    results: dict[str, float] = {}
    with Host(StackOptions(lab=True, offload=offload)) as host:
        assert host.lab is not None
        kernel_ip = str(host.lab.kernel_ip4.ip)
        # stack -> kernel
        sink = host.lab.popen([sys.executable, "-c", SINK, kernel_ip, str(PORT)], stdout=subprocess.PIPE, text=True)
        assert sink.stdout is not None
        in_thread(sink.stdout.readline)
        with profiled(profile and f"{profile}.send"):
            seconds, digest = stack_send(host, (kernel_ip, PORT), nbytes)
        out, _ = in_thread(sink.communicate, timeout=120)
        n, got, _ = out.split()
        assert int(n) == nbytes and got == digest, "stack -> kernel corrupted data"
        results["stack -> kernel (TAP)"] = mbit(nbytes, seconds)
        # kernel -> stack
        listener = GreenSocket(host.runtime, host.stack.socket(AF_INET, SOCK_STREAM), timeout=60)
        listener.bind(("", PORT))
        listener.listen(1)
        assert host.stack_ip4 is not None
        source = host.lab.popen([sys.executable, "-c", SOURCE, str(host.stack_ip4.ip), str(PORT), str(nbytes)],
                                stdout=subprocess.PIPE, text=True)
        conn, _ = listener.accept()
        with profiled(profile and f"{profile}.recv"):
            n2, got2, seconds2 = stack_receive(conn)
        in_thread(source.communicate, timeout=120)
        assert n2 == nbytes and got2 == pattern(nbytes)[1], "kernel -> stack corrupted data"
        results["kernel -> stack (TAP)"] = mbit(nbytes, seconds2)
        listener.close()
        if not loopback:
            return results
        # stack -> stack over the stack's loopback
        listener = GreenSocket(host.runtime, host.stack.socket(AF_INET, SOCK_STREAM), timeout=60)
        listener.bind(("127.0.0.1", PORT + 1))
        listener.listen(1)
        receiver = gevent.spawn(lambda: stack_receive(listener.accept()[0]))
        seconds3, digest3 = stack_send(host, ("127.0.0.1", PORT + 1), nbytes)
        n3, got3, _ = receiver.get(timeout=600)
        assert n3 == nbytes and got3 == digest3, "loopback corrupted data"
        results["stack -> stack (loopback)"] = mbit(nbytes, seconds3)
        listener.close()
    return results


def rows(mbytes: int, offload: bool, kernel: float) -> list[Row]:
    """The table's bulk rows for one offload mode, beside ``kernel`` (kernel -> kernel, veth)."""
    mode = "offloads on" if offload else "no offloads"
    base = "kernel -> kernel, veth"
    results = stack_runs(mbytes * 1_000_000, None, offload=offload, loopback=offload)
    return [Row(f"TCP bulk {name}, {mode}" if "loopback" not in name else f"TCP bulk {name}", "Mbit/s",
                value, kernel, base) for name, value in results.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mbytes", type=int, default=100, help="megabytes per transfer (default 100)")
    parser.add_argument("--profile", metavar="FILE",
                        help="cProfile the stack side of both TAP directions into FILE.send / FILE.recv")
    args = parser.parse_args()
    nbytes = args.mbytes * 1_000_000
    print(f"TCP bulk, {args.mbytes} MB per transfer, SHA-256 checked at the far end", flush=True)
    kernel = kernel_to_kernel(nbytes)
    print(f"  {'kernel -> kernel (veth)':28s} {kernel:9.1f} Mbit/s", flush=True)
    for name, value in stack_runs(nbytes, args.profile).items():
        print(f"  {name:28s} {value:9.1f} Mbit/s   ({ratio(value, kernel)} of the kernel)", flush=True)


if __name__ == "__main__":
    main()
