"""Fetches/s through a spoofed SYN flood (issue 11): before, during and after it, the stack beside the kernel.

    .venv/bin/python bench/synflood.py [--seconds S]

Needs root and hping3.  A kernel client fetches 1000 bytes per connection in a loop
(pytcp_green/lab/synflood.py FETCH_RATE) from a server on the stack (the lab's TAP), and from a
kernel server in another namespace (veth) for the baseline, for S seconds with no flood, S
seconds during a flood from the client's namespace (IPv4: ``hping3 --flood -S --rand-source``;
IPv6: the Python flooder of the lab, spoofed sources in the link's /64, since hping3 has no
IPv6), and S seconds right after the flood was stopped.  The rates are measured in the same
run; the failed fetches (connect or read timeouts, resets) are shown beside them.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gevent
from common import VETH_B, ip, veth_namespaces

from pytcp_green.cli import in_thread
from pytcp_green.green.sockets import GreenSocket
from pytcp_green.host import Host, StackOptions
from pytcp_green.lab.synflood import FETCH_RATE, FLOOD, SERVER, hping3_flood, serve
from pytcp_green.stack.sockbase import AF_INET, AF_INET6
from pytcp_green.stack.stack import SOCK_STREAM

PORT = 8080
PAYLOAD = 1000
VETH6_A, VETH6_B = "fd00:77::1", "fd00:77::2"
Popen = Callable[..., "subprocess.Popen[str]"]
Phases = dict[str, tuple[float, int]]  # phase -> (fetches/s, failed fetches)


def _line(proc: subprocess.Popen[str], wait: Callable[..., Any]) -> str:
    assert proc.stdout is not None
    line: str = wait(proc.stdout.readline)
    if not line:
        raise SystemExit(f"a lab program ended early: {proc.args}")
    return line.strip()


def _stop(proc: subprocess.Popen[str], wait: Callable[..., Any]) -> None:
    """Stop one program this bench started, by its handle: SIGINT (hping3 prints its totals), then kill."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            wait(proc.wait, 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            wait(proc.wait, 10)


def phases(popen: Popen, wait: Callable[..., Any], dst: str, dst_mac: str, family: int, seconds: float) -> Phases:
    """Run the fetch client for the three phases against ``dst``; the flood from the client's side."""
    client = popen([sys.executable, "-c", FETCH_RATE, dst, str(PORT), "5"], stdin=subprocess.PIPE,
                   stdout=subprocess.PIPE, text=True)
    out: Phases = {}
    try:
        assert _line(client, wait) == "ready" and client.stdin is not None

        def measure(name: str) -> None:
            assert client.stdin is not None
            client.stdin.write(f"{seconds}\n")
            client.stdin.flush()
            ok, failed, elapsed = _line(client, wait).split()
            out[name] = (int(ok) / float(elapsed), int(failed))

        measure("no flood")
        argv = hping3_flood(dst, PORT) if family == AF_INET else [sys.executable, "-c", FLOOD, dst_mac, dst,
                                                                    str(PORT), "3"]
        flood = popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        try:
            measure("during the flood")
        finally:
            _stop(flood, wait)
        measure("after the flood")
        client.stdin.write("\n")
        client.stdin.flush()
        wait(client.wait, 30)
    finally:
        _stop(client, wait)
    return out


def stack_phases(family: int, seconds: float) -> Phases:
    with Host(StackOptions(lab=True)) as host:
        assert host.lab is not None and host.iface is not None and host.iface.mac is not None
        listener = GreenSocket(host.runtime, host.stack.socket(family, SOCK_STREAM), timeout=None)
        listener.bind(("", PORT))
        listener.listen(128)
        server = gevent.spawn(serve, listener, b"x" * PAYLOAD)
        dst = str(host.stack_ip4.ip if family == AF_INET else host.stack_ip6)  # type: ignore[union-attr]
        try:
            return phases(host.lab.popen, in_thread, dst, host.iface.mac.hex(":"), family, seconds)
        finally:
            server.kill()
            listener.close()


@contextmanager
def _in_ns(ns: str) -> Iterator[Popen]:
    started: list[subprocess.Popen[str]] = []

    def popen(argv: list[str], **kw: Any) -> subprocess.Popen[str]:
        proc: subprocess.Popen[str] = subprocess.Popen(["ip", "netns", "exec", ns, *argv], **kw)
        started.append(proc)
        return proc

    try:
        yield popen
    finally:
        for proc in started:
            _stop(proc, _call)


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


def kernel_phases(family: int, seconds: float) -> Phases:
    with veth_namespaces() as (ns_a, ns_b), _in_ns(ns_a) as client_side, _in_ns(ns_b) as server_side:
        ip("-n", ns_a, "addr", "add", f"{VETH6_A}/64", "dev", "pgbv0", "nodad")
        ip("-n", ns_b, "addr", "add", f"{VETH6_B}/64", "dev", "pgbv1", "nodad")
        dst = VETH_B if family == AF_INET else VETH6_B
        server = server_side([sys.executable, "-c", SERVER, dst, str(PORT), str(PAYLOAD)], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)  # SIGINT at the end prints a traceback
        assert _line(server, _call) == "ready"
        link = subprocess.run(["ip", "-n", ns_b, "-j", "link", "show", "pgbv1"], check=True, capture_output=True,
                              text=True)
        mac = json.loads(link.stdout)[0]["address"]
        return phases(client_side, _call, dst, mac, family, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="measuring time per phase (default 5)")
    args = parser.parse_args()
    rows = []
    for family, name in ((AF_INET, "IPv4, hping3"), (AF_INET6, "IPv6, python flooder")):
        rows.append((name, "kernel", kernel_phases(family, args.seconds)))
        rows.append((name, "pytcp_green", stack_phases(family, args.seconds)))
    print(f"fetches/s ({PAYLOAD} bytes per connection; failed fetches in brackets), {args.seconds:g} s per phase:")
    print(f"  {'flood':22s} {'server':12s} {'no flood':>14s} {'during':>14s} {'after':>14s}")
    for flood, server, result in rows:
        cells = " ".join(f"{rate:8.0f} [{failed:3d}]" for rate, failed in result.values())
        print(f"  {flood:22s} {server:12s} {cells}")


if __name__ == "__main__":
    main()
