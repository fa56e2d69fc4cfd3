"""Memory of 10,000 idle TCP connections, the stack as the server, beside the kernel.

    .venv/bin/python bench/idle.py [--count N]

Needs root.  A kernel-side client opens N connections and holds them open, idle.  Stack: the
growth of this process's resident set (VmRSS) from before the listener to when all N are
accepted: the TCBs, buffers and Python objects of the N server-side connections.  Kernel: the
kernel keeps its sockets outside any process, so its figure is the server process's VmRSS
growth plus half the growth of the machine's slab (/proc/meminfo Slab, where struct tcp_sock
lives; both ends are the kernel's there).  The slab is machine-wide, so other work on the box
adds noise to that figure (rerun it when it looks disturbed).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import LISTENER, VETH_B, Row, in_netns, veth_namespaces

from pytcp_green.cli import in_thread
from pytcp_green.green.sockets import GreenSocket
from pytcp_green.host import Host, StackOptions
from pytcp_green.stack.sockbase import AF_INET
from pytcp_green.stack.stack import SOCK_STREAM

PORT = 5401

HOLDER = """
import socket, sys
socks = [socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30) for _ in range(int(sys.argv[3]))]
print("held", flush=True)
sys.stdin.readline()
"""

KERNEL_SERVER = LISTENER + """
def rss():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:"))
before = rss()
print("ready", flush=True)
conns = [srv.accept()[0] for _ in range(int(sys.argv[3]))]
print(rss() - before, flush=True)
sys.stdin.readline()
"""


def _kib(path: str, key: str) -> int:
    return next(int(line.split()[1]) for line in Path(path).read_text().splitlines() if line.startswith(key))


def kernel_kib(count: int) -> float:
    with veth_namespaces() as (ns_a, ns_b):
        server = in_netns(ns_b, KERNEL_SERVER, VETH_B, str(PORT), str(count), stdin=subprocess.PIPE)
        client = None
        try:
            assert server.stdout is not None
            server.stdout.readline()
            slab = _kib("/proc/meminfo", "Slab:")
            client = in_netns(ns_a, HOLDER, VETH_B, str(PORT), str(count), stdin=subprocess.PIPE)
            assert client.stdout is not None
            grown = int(server.stdout.readline())
            client.stdout.readline()
            # Both ends' sockets are the kernel's: half the slab growth is the server's side.
            slab_grown = (_kib("/proc/meminfo", "Slab:") - slab) / 2
            client.communicate("\n", timeout=60)
            server.communicate("\n", timeout=60)
            return grown + slab_grown
        finally:
            for proc in (client, server):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait()


def stack_kib(count: int) -> float:
    with Host(StackOptions(lab=True)) as host:
        assert host.lab is not None and host.stack_ip4 is not None
        listener = GreenSocket(host.runtime, host.stack.socket(AF_INET, SOCK_STREAM), timeout=60)
        listener.bind(("", PORT))
        listener.listen(4096)
        before = _kib("/proc/self/status", "VmRSS:")
        client = host.lab.popen([sys.executable, "-c", HOLDER, str(host.stack_ip4.ip), str(PORT), str(count)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        conns = [listener.accept()[0] for _ in range(count)]
        assert client.stdout is not None
        in_thread(client.stdout.readline)
        grown = _kib("/proc/self/status", "VmRSS:") - before
        in_thread(client.communicate, "\n", timeout=60)
        for conn in conns:
            conn.close()
        listener.close()
        return float(grown)


def rows(count: int) -> list[Row]:
    kernel = kernel_kib(count)
    return [Row(f"memory of {count:,} idle connections (server side)", "KiB", stack_kib(count), kernel,
                "server RSS + half the slab growth, veth", higher=False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=10_000)
    args = parser.parse_args()
    for row in rows(args.count):
        print(f"  {row.name}: {row.ours:,.0f} KiB, kernel {row.kernel:,.0f} KiB ({row.ratio})")


if __name__ == "__main__":
    main()
