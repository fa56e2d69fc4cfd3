"""``make demo`` / ``pytcp-green demo``: the Linux kernel talks to the stack in a lab, with a report.

What it shows: the kernel pings the stack (ARP resolution, ICMP echo), sends a UDP datagram to
the stack's echo service and gets it back, and its neighbour table holds the stack's MAC.
Every frame is in the pcap whose path is printed.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

import gevent

from pytcp_green.cli import in_thread
from pytcp_green.green.services import start_services
from pytcp_green.host import Host, StackOptions

UDP_PROBE = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
msg = b"hello from the Linux kernel"
t0 = time.monotonic()
s.sendto(msg, (sys.argv[1], 7))
data, _ = s.recvfrom(2048)
print(f"{(time.monotonic() - t0) * 1000:.2f} {data == msg} {data!r}")
"""


def _lab_run(host: Host, argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    assert host.lab is not None
    lab = host.lab

    def run() -> subprocess.CompletedProcess[str]:
        return lab.run(argv, timeout=timeout)

    # In a worker thread, so the hub keeps running the stack while the kernel-side command waits.
    result: subprocess.CompletedProcess[str] = in_thread(run)
    return result


def run_demo(options: StackOptions) -> int:
    ok = True
    started = time.monotonic()
    with Host(options) as host:
        assert host.lab is not None and host.stack_ip4 is not None
        services = start_services(host.runtime)
        stack_ip, kernel_ip = str(host.stack_ip4.ip), str(host.lab.kernel_ip4.ip)
        print(f"pytcp-green demo: namespace {host.lab.netns}: kernel {kernel_ip} <-> stack {stack_ip} "
              f"over TAP {host.lab.device.name}")

        ping = _lab_run(host, ["ping", "-c", "10", "-i", "0.05", "-W", "2", stack_ip])
        got = re.search(r"(\d+) packets transmitted, (\d+) received", ping.stdout)
        rtt = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)", ping.stdout)
        replies = int(got.group(2)) if got else 0
        ok &= replies == 10
        rtt_text = f", rtt min/avg/max {rtt.group(1)}/{rtt.group(2)}/{rtt.group(3)} ms" if rtt else ""
        print(f"  ping from the kernel: {replies}/10 replies{rtt_text}")

        udp = _lab_run(host, [sys.executable, "-c", UDP_PROBE, stack_ip])
        fields = udp.stdout.split(" ", 2)
        intact = udp.returncode == 0 and len(fields) == 3 and fields[1] == "True"
        ok &= intact
        if intact:
            print(f"  UDP echo: the kernel's datagram came back intact in {fields[0]} ms")
        else:
            print(f"  UDP echo: FAILED ({(udp.stderr or udp.stdout).strip()[-200:]})")

        neigh = _lab_run(host, ["ip", "neigh", "show", stack_ip])
        print(f"  kernel neighbour table: {neigh.stdout.strip() or '(empty)'}")
        stats = host.stack.stats
        print(f"  stack counters: {stats['ip4.rx']} IPv4 in, {stats['ip4.tx']} out, "
              f"{stats['arp.tx.reply']} ARP replies, {stats['icmp4.tx.echo_reply']} echo replies, "
              f"{stats['udp.rx']} UDP in")
        drops = ", ".join(f"{name} {count}" for name, count in stats.drops().items())
        print(f"  dropped on purpose: {drops or 'nothing'}")
        gevent.killall(services)
    print(f"  pcap: {options.pcap}  (open it with wireshark or: tshark -r {options.pcap})")
    print(f"  {'OK' if ok else 'FAILED'} in {time.monotonic() - started:.1f} s")
    return 0 if ok else 1
