"""UDP request/response rate: stack -> kernel over the lab TAP, beside kernel -> kernel over veth.

    .venv/bin/python bench/udp_rtt.py [--count N] [--size BYTES]

Needs root.  One client sends a datagram, waits for the echo, repeats; the figure is round
trips per second.  The kernel baselines run the same client with the kernel's sockets between
two namespaces joined by veth, in the same run: once with gevent's ``patch_all()`` (what a program
under pytcp_green's drop-in would otherwise use, the baseline the HTTP rows use too) and once with
plain blocking sockets (no event loop at all: the floor of a Python round trip).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import VETH_B, Row, in_netns, ratio, veth_namespaces

from pytcp_green.cli import in_thread
from pytcp_green.green.sockets import GreenSocket
from pytcp_green.host import Host, StackOptions
from pytcp_green.stack.sockbase import AF_INET
from pytcp_green.stack.stack import SOCK_DGRAM

ECHO_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 7777))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(65535)
    if data == b"stop":
        break
    s.sendto(data, peer)
"""

KERNEL_CLIENT = """
import sys
if "--gevent" in sys.argv:
    from gevent import monkey
    monkey.patch_all()
import socket, time
n, size = int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
payload = b"x" * size
t0 = time.perf_counter()
for _ in range(n):
    s.sendto(payload, (sys.argv[1], 7777))
    s.recvfrom(65535)
print(n / (time.perf_counter() - t0))
s.sendto(b"stop", (sys.argv[1], 7777))
"""


def kernel_baseline(count: int, size: int, *, gevent: bool) -> float:
    with veth_namespaces() as (ns_a, ns_b):
        server = in_netns(ns_b, ECHO_SERVER, VETH_B)
        assert server.stdout is not None
        server.stdout.readline()
        client = in_netns(ns_a, KERNEL_CLIENT, VETH_B, str(count), str(size), *(["--gevent"] if gevent else []))
        out, _ = client.communicate(timeout=300)
        server.wait(timeout=10)
        return float(out)


def stack_rate(count: int, size: int) -> float:
    with Host(StackOptions(lab=True)) as host:
        assert host.lab is not None
        server = host.lab.popen([sys.executable, "-c", ECHO_SERVER, str(host.lab.kernel_ip4.ip)],
                                stdout=__import__("subprocess").PIPE, text=True)
        assert server.stdout is not None
        in_thread(server.stdout.readline)
        sock = GreenSocket(host.runtime, host.stack.socket(AF_INET, SOCK_DGRAM), timeout=5)
        peer = (str(host.lab.kernel_ip4.ip), 7777)
        payload = b"x" * size
        sock.sendto(payload, peer)
        sock.recvfrom(65535)  # ARP resolved before the clock starts
        t0 = time.perf_counter()
        for _ in range(count):
            sock.sendto(payload, peer)
            sock.recvfrom(65535)
        rate = count / (time.perf_counter() - t0)
        sock.sendto(b"stop", peer)
        in_thread(server.wait, 10)
        return rate


def rows(count: int, size: int) -> list[Row]:
    green = kernel_baseline(count, size, gevent=True)
    plain = kernel_baseline(count, size, gevent=False)
    ours = stack_rate(count, size)
    return [Row(f"UDP round trips, {size} B, stack -> kernel", "/s", ours, green, "gevent on kernel sockets, veth"),
            Row(f"UDP round trips, {size} B, stack -> kernel", "/s", ours, plain, "blocking kernel sockets, veth")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    print(f"UDP round trips/s, {args.size}-byte datagrams, {args.count} each:")
    for row in rows(args.count, args.size):
        print(f"  pytcp_green -> kernel (TAP): {row.ours:10.0f}   beside {row.baseline}: {row.kernel:10.0f}"
              f"   ({ratio(row.ours, row.kernel)})")


if __name__ == "__main__":
    main()
