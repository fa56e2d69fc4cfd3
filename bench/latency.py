"""Ping round-trip time and TCP connections per second, the stack as the server, beside the kernel.

    .venv/bin/python bench/latency.py [--count N]

Needs root.  Ping: the kernel's ``ping`` in the lab namespace asks the stack (which answers ICMP
echo, RFC 792) and, as the baseline, a second namespace's kernel over veth.  Connections: a
kernel-side client connects, reads one byte the server sends and closes, N times in a row; the
server is a stack listener over the TAP, or a kernel listener over veth.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import gevent

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import LISTENER, VETH_B, Row, in_netns, veth_namespaces

from pytcp_green.cli import in_thread
from pytcp_green.green.sockets import GreenSocket
from pytcp_green.host import Host, StackOptions
from pytcp_green.stack.sockbase import AF_INET
from pytcp_green.stack.stack import SOCK_STREAM

PORT = 5301
PINGS = 500

CONNECT_CLIENT = """
import socket, sys, time
n = int(sys.argv[2])
t0 = time.perf_counter()
for _ in range(n):
    s = socket.create_connection((sys.argv[1], int(sys.argv[3])), timeout=10)
    assert s.recv(1) == b"x"
    s.close()
print(n / (time.perf_counter() - t0), flush=True)
"""

KERNEL_SERVER = LISTENER + """
print("ready", flush=True)
for _ in range(int(sys.argv[3])):
    conn, _ = srv.accept()
    conn.sendall(b"x")
    conn.close()
"""


def ping_ms(output: str) -> float:
    """The average RTT in ``ping -q``'s summary, in milliseconds."""
    found = re.search(r"= [\d.]+/([\d.]+)/", output)
    if found is None:
        raise RuntimeError(f"no RTT in ping's output: {output!r}")
    return float(found.group(1))


def _ping(target: str, count: int) -> list[str]:
    return ["ping", "-q", "-n", "-c", str(count), "-i", "0.002", target]


def kernel_baseline(count: int) -> tuple[float, float]:
    """(ping ms, connections/s) kernel -> kernel over veth."""
    with veth_namespaces() as (ns_a, ns_b):
        rtt = ping_ms(subprocess.run(["ip", "netns", "exec", ns_a, *_ping(VETH_B, PINGS)], capture_output=True,
                                     text=True, timeout=120, check=True).stdout)
        server = in_netns(ns_b, KERNEL_SERVER, VETH_B, str(PORT), str(count))
        assert server.stdout is not None
        server.stdout.readline()
        client = in_netns(ns_a, CONNECT_CLIENT, VETH_B, str(count), str(PORT))
        out, _ = client.communicate(timeout=300)
        server.wait(timeout=30)
        return rtt, float(out)


def stack_figures(count: int) -> tuple[float, float]:
    """(ping ms, connections/s) the kernel in the lab against the stack over the TAP."""
    with Host(StackOptions(lab=True)) as host:
        assert host.lab is not None and host.stack_ip4 is not None
        me = str(host.stack_ip4.ip)
        pinger = host.lab.popen(_ping(me, PINGS), stdout=subprocess.PIPE, text=True)
        rtt = ping_ms(in_thread(pinger.communicate, timeout=120)[0])
        listener = GreenSocket(host.runtime, host.stack.socket(AF_INET, SOCK_STREAM), timeout=60)
        listener.bind(("", PORT))
        listener.listen(128)

        def serve() -> None:
            for _ in range(count):
                conn, _ = listener.accept()
                conn.sendall(b"x")
                conn.close()

        server = gevent.spawn(serve)
        client = host.lab.popen([sys.executable, "-c", CONNECT_CLIENT, me, str(count), str(PORT)],
                                stdout=subprocess.PIPE, text=True)
        out, _ = in_thread(client.communicate, timeout=300)
        server.get(timeout=30)
        listener.close()
        return rtt, float(out)


def rows(count: int) -> list[Row]:
    kernel_rtt, kernel_rate = kernel_baseline(count)
    rtt, rate = stack_figures(count)
    return [Row("ping RTT, kernel -> stack", "ms", rtt, kernel_rtt, "kernel -> kernel, veth", higher=False),
            Row("TCP connections/s, kernel client -> stack server", "conn/s", rate, kernel_rate,
                "kernel -> kernel, veth")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=2000, help="connections (default 2000)")
    args = parser.parse_args()
    for row in rows(args.count):
        print(f"  {row.name:50s} {row.ours:10.3f} {row.kernel:10.3f} {row.unit:7s} {row.ratio}")


if __name__ == "__main__":
    main()
