"""Loss recovery beside Linux's: the same bulk transfers through the same seeded impairment.

    .venv/bin/python bench/loss.py [--mbytes N] [--timeout S] [--seed N] [--kernel-cc CC] [--only SPEC ...]

For every impairment (0, 1, 2, 5, 10, 20 and 30% loss each way, and 20 ms delay each way with 1%
loss) it moves N MB (default 10) each way twice:

* kernel <-> kernel: two lab namespaces whose TAPs :class:`~pytcp_green.lab.relay.Relay` joins
  through the impairment (the way ``pytcp-green compare`` runs a program over the kernel);
* stack <-> kernel: the stack on the lab TAP with ``--impair`` set to the same spec and seed.

"up" is the stack's side sending (the app namespace's kernel in the kernel run), "down" the lab
kernel sending to it.  Each time runs from the sender's connect to the receiver's EOF, and the
receiver's SHA-256 must equal the sender's.  A transfer that does not finish within ``--timeout``
is reported as ``stall``, one the peer resets as ``reset``; neither hangs the run.  Needs root.

Every kernel sender uses ``--kernel-cc`` (TCP_CONGESTION on its socket; default ``cubic``, the
stack's default), whatever the machine's ``net.ipv4.tcp_congestion_control`` says: a lab kernel
defaulting to BBR, which does not reduce its window on random loss, would otherwise be compared
with our CUBIC at 10% loss, which must.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import gevent

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ratio
from tcp_bulk import SINK, SOURCE, pattern, stack_receive, stack_send

from pytcp_green.cli import in_thread
from pytcp_green.compare.runs import APP_IP4, PEER_IP4, PREFIX
from pytcp_green.green.sockets import GreenSocket
from pytcp_green.host import Host, StackOptions
from pytcp_green.lab import Lab
from pytcp_green.lab.relay import Relay
from pytcp_green.link.impair import ImpairSpec
from pytcp_green.stack.sockbase import AF_INET
from pytcp_green.stack.stack import SOCK_STREAM

PORT = 5301
SPECS = ("loss=0%", "loss=1%", "loss=2%", "loss=5%", "loss=10%", "loss=20%", "loss=30%", "delay=20ms,loss=1%")


@dataclass
class Outcome:
    """One transfer: its time, or why there is none ("stall", "reset", "corrupt", "error")."""

    seconds: float | None = None
    failure: str = ""

    def __str__(self) -> str:
        return f"{self.seconds:8.2f}s" if self.seconds is not None else f"{self.failure:>9s}"


def _sink_result(out: str, nbytes: int) -> Outcome | None:
    """The kernel SINK's report checked against the pattern; None when it is right."""
    words = out.split()
    if len(words) != 3:
        return Outcome(failure="error")
    if int(words[0]) != nbytes or words[1] != pattern(nbytes)[1]:
        return Outcome(failure="corrupt")
    return None


# Run before the kernel SOURCE: its connection gets the congestion control named in argv[4].
_CC_PRELUDE = """
import socket as _socket, sys as _sys
_connect = _socket.create_connection
def _with_cc(*args, **kwargs):
    sock = _connect(*args, **kwargs)
    sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_CONGESTION, _sys.argv[4].encode())
    return sock
_socket.create_connection = _with_cc
"""


def source_argv(dst_ip: str, nbytes: int, cc: str) -> list[str]:
    """The kernel SOURCE sending ``nbytes`` to ``dst_ip`` with congestion control ``cc``."""
    return [sys.executable, "-c", _CC_PRELUDE + SOURCE, dst_ip, str(PORT), str(nbytes), cc]


def kernel_transfer(src: Lab, dst: Lab, dst_ip: str, nbytes: int, timeout: float, cc: str) -> Outcome:
    """The kernel SOURCE in ``src`` to the kernel SINK in ``dst``: the SOURCE's time, SINK-checked."""
    sink = dst.popen([sys.executable, "-c", SINK, dst_ip, str(PORT)], stdout=subprocess.PIPE, text=True)
    assert sink.stdout is not None
    sink.stdout.readline()
    source = src.popen(source_argv(dst_ip, nbytes, cc),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = source.communicate(timeout=timeout)
        sunk, _ = sink.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        for proc in (source, sink):
            proc.kill()
            proc.communicate()
        return Outcome(failure="stall")
    if source.returncode != 0:
        return Outcome(failure="reset" if "Reset" in err else "error")
    return _sink_result(sunk, nbytes) or Outcome(float(out))


def kernel_pair(spec: ImpairSpec, nbytes: int, timeout: float, cc: str) -> tuple[Outcome, Outcome]:
    """Up and down between two kernels relayed through ``spec`` (a->b: the app side's outbound way)."""
    with Lab(kernel_ip4=f"{PEER_IP4}/{PREFIX}", stack_ip4=f"{APP_IP4}/{PREFIX}") as peer, \
            Lab(kernel_ip4=f"{APP_IP4}/{PREFIX}", stack_ip4=f"{PEER_IP4}/{PREFIX}") as app, \
            Relay(app.device, peer.device, impair=spec) as relay:
        up = kernel_transfer(app, peer, PEER_IP4, nbytes, timeout, cc)
        down = kernel_transfer(peer, app, APP_IP4, nbytes, timeout, cc)
        if relay.error is not None:
            raise OSError(f"the relay failed: {relay.error}")
    return up, down


def _stack_up(host: Host, nbytes: int) -> Outcome:
    assert host.lab is not None
    kernel_ip = str(host.lab.kernel_ip4.ip)
    sink = host.lab.popen([sys.executable, "-c", SINK, kernel_ip, str(PORT)], stdout=subprocess.PIPE, text=True)
    assert sink.stdout is not None
    in_thread(sink.stdout.readline)
    seconds, _ = stack_send(host, (kernel_ip, PORT), nbytes)
    out, _ = in_thread(sink.communicate, timeout=30)
    return _sink_result(out, nbytes) or Outcome(seconds)


def _stack_down(host: Host, nbytes: int, cc: str) -> Outcome:
    assert host.lab is not None and host.stack_ip4 is not None
    listener = GreenSocket(host.runtime, host.stack.socket(AF_INET, SOCK_STREAM), timeout=60)
    listener.bind(("", PORT))
    listener.listen(1)
    source = host.lab.popen(source_argv(str(host.stack_ip4.ip), nbytes, cc), stdout=subprocess.PIPE, text=True)
    conn, _ = listener.accept()
    n, digest, _ = stack_receive(conn)
    listener.close()
    out, _ = in_thread(source.communicate, timeout=30)
    if n != nbytes or digest != pattern(nbytes)[1]:
        return Outcome(failure="corrupt")
    return Outcome(float(out))


def _bounded(run: Callable[[Host, int], Outcome], host: Host, nbytes: int, timeout: float) -> Outcome:
    """One stack transfer under an overall deadline; a stall or reset is an outcome, not an error."""
    try:
        with gevent.Timeout(timeout):
            return run(host, nbytes)
    except gevent.Timeout:
        return Outcome(failure="stall")
    except TimeoutError:  # a socket operation made no progress for its whole timeout
        return Outcome(failure="stall")
    except ConnectionResetError:
        return Outcome(failure="reset")
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return Outcome(failure="error")


def stack_pair(spec: ImpairSpec, nbytes: int, timeout: float, cc: str) -> tuple[Outcome, Outcome]:
    """Up and down between the stack and the lab kernel, the stack's link impaired by ``spec``."""
    results: list[Outcome] = []
    for run in (_stack_up, partial(_stack_down, cc=cc)):
        # A fresh host per direction: each transfer meets the spec's decision streams from the start,
        # as the kernel pair's first transfer does (and a stall cannot leave a connection behind).
        with Host(StackOptions(lab=True, impair=str(spec))) as host:
            results.append(_bounded(run, host, nbytes, timeout))
    return results[0], results[1]


def _ratio(ours: Outcome, kernel: Outcome) -> str:
    if ours.seconds is None or kernel.seconds is None:
        return "n/a"
    return ratio(ours.seconds, kernel.seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mbytes", type=float, default=10, help="megabytes per transfer (default 10)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds before a transfer is a stall")
    parser.add_argument("--seed", type=int, default=1, help="impairment seed (default 1)")
    parser.add_argument("--kernel-cc", default="cubic", help="kernel senders' congestion control (default cubic)")
    parser.add_argument("--only", nargs="+", metavar="SPEC", help=f"impairments to run (default: {' '.join(SPECS)})")
    args = parser.parse_args()
    nbytes = int(args.mbytes * 1_000_000)
    print(f"Loss recovery, {args.mbytes:g} MB each way, seed {args.seed}, SHA-256 checked, "
          f"stall after {args.timeout:g} s, kernel senders {args.kernel_cc}; ratio = stack / kernel time", flush=True)
    print(f"  {'impairment':20s} {'kernel up':>9s} {'stack up':>9s} {'ratio':>6s}   "
          f"{'kernel dn':>9s} {'stack dn':>9s} {'ratio':>6s}", flush=True)
    started = time.monotonic()
    for text in args.only or SPECS:
        spec = ImpairSpec.parse(f"{text},seed={args.seed}")
        k_up, k_down = kernel_pair(spec, nbytes, args.timeout, args.kernel_cc)
        s_up, s_down = stack_pair(spec, nbytes, args.timeout, args.kernel_cc)
        print(f"  {text:20s} {k_up!s:>9s} {s_up!s:>9s} {_ratio(s_up, k_up):>6s}   "
              f"{k_down!s:>9s} {s_down!s:>9s} {_ratio(s_down, k_down):>6s}", flush=True)
    print(f"  ({time.monotonic() - started:.0f} s in all)", flush=True)


if __name__ == "__main__":
    main()
