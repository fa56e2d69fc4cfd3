"""Loss recovery beside Linux's: the same bulk transfers through the same seeded impairment.

    .venv/bin/python bench/loss.py [--mbytes N] [--stall S] [--cap S] [--every S] [--seed N]
                                      [--kernel-cc CC] [--only SPEC ...]

For every impairment (0, 1, 2, 5, 10, 20 and 30% loss each way, and 20 ms delay each way with 1%
loss) it moves N MB (default 10) each way twice:

* kernel <-> kernel: two lab namespaces whose TAPs :class:`~pytcp_green.lab.relay.Relay` joins
  through the impairment (the way ``pytcp-green compare`` runs a program over the kernel);
* stack <-> kernel: the stack on the lab TAP with ``--impair`` set to the same spec and seed.

"up" is the stack's side sending (the app namespace's kernel in the kernel run), "down" the lab
kernel sending to it.  Each time runs from the sender's connect to the receiver's EOF, and the
receiver's SHA-256 must equal the sender's.  Every transfer is watched by the bytes its receiver
has: one that gains nothing for ``--stall`` seconds is reported as ``stall`` (stuck: an RTO backed
off to its maximum, retries running out, a window that never reopens), one still moving at the
overall ``--cap`` as ``>CAP`` (slow, not stuck), one the peer resets as ``reset``; none hangs the
run.  A transfer running longer than ``--every`` seconds prints a progress line now and then
(bytes so far, idle seconds).  Needs root.

Every kernel sender uses ``--kernel-cc`` (TCP_CONGESTION on its socket; default ``cubic``, the
stack's default), whatever the machine's ``net.ipv4.tcp_congestion_control`` says: a lab kernel
defaulting to BBR, which does not reduce its window on random loss, would otherwise be compared
with our CUBIC at 10% loss, which must.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import IO

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
    """One transfer: its time, or why there is none ("stall", ">CAP", "reset", "timedout", "corrupt", "error")."""

    seconds: float | None = None
    failure: str = ""

    def __str__(self) -> str:
        return f"{self.seconds:8.2f}s" if self.seconds is not None else f"{self.failure:>9s}"


@dataclass
class Watch:
    """How long a transfer may go without progress (``stall``) and in all (``cap``), and how often a
    long one reports; ``label`` names it in those reports."""

    stall: float
    cap: float
    every: float
    label: str = ""


class Progress:
    """The receiver's byte count as a transfer runs, and when it last grew."""

    def __init__(self, watch: Watch) -> None:
        self.watch = watch
        self.bytes = 0
        self.started = self.changed = self.shown = time.monotonic()

    def update(self, nbytes: int) -> None:
        if nbytes != self.bytes:
            self.bytes = nbytes
            self.changed = time.monotonic()

    def verdict(self) -> str:
        """Called about once a second: "stall" or ">CAP" to give up, "" to go on (with a progress
        line every ``watch.every`` seconds)."""
        now, watch = time.monotonic(), self.watch
        if now - self.changed >= watch.stall:
            return "stall"
        if now - self.started >= watch.cap:
            return f">{watch.cap:g}s"
        if now - self.shown >= watch.every:
            self.shown = now
            print(f"    ... {watch.label}: {self.bytes / 1e6:.1f} MB after {now - self.started:.0f} s, "
                  f"idle {now - self.changed:.0f} s", flush=True)
        return ""


def _sink_result(out: str, nbytes: int) -> Outcome | None:
    """The kernel SINK's report checked against the pattern; None when it is right."""
    words = out.split()
    if len(words) != 3:
        return Outcome(failure="error")
    if int(words[0]) != nbytes or words[1] != pattern(nbytes)[1]:
        return Outcome(failure="corrupt")
    return None


def _follow_sink(stdout: IO[str], progress: Progress, report: list[str]) -> None:
    """Read the kernel SINK's "+ N" lines into ``progress`` (a thread) and keep its final report."""
    for line in stdout:
        if line.startswith("+ "):
            progress.update(int(line[2:]))
        else:
            report.append(line)


def _sink(lab: Lab, ip: str, progress: Progress) -> tuple[subprocess.Popen[str], threading.Thread, list[str]]:
    """A kernel SINK in ``lab``, listening, its progress followed into ``progress``."""
    sink = lab.popen([sys.executable, "-c", SINK, ip, str(PORT), "progress"], stdout=subprocess.PIPE, text=True)
    assert sink.stdout is not None
    sink.stdout.readline()
    report: list[str] = []
    follower = threading.Thread(target=_follow_sink, args=(sink.stdout, progress, report), daemon=True)
    follower.start()
    return sink, follower, report


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


def kernel_transfer(src: Lab, dst: Lab, dst_ip: str, nbytes: int, watch: Watch, cc: str) -> Outcome:
    """The kernel SOURCE in ``src`` to the kernel SINK in ``dst``: the SOURCE's time, SINK-checked."""
    progress = Progress(watch)
    sink, follower, report = _sink(dst, dst_ip, progress)
    source = src.popen(source_argv(dst_ip, nbytes, cc),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while True:
        try:
            out, err = source.communicate(timeout=1)
            break
        except subprocess.TimeoutExpired:
            failure = progress.verdict()
            if failure:
                for proc in (source, sink):
                    proc.kill()
                source.communicate()
                sink.wait()
                return Outcome(failure=failure)
    try:
        sink.wait(timeout=30)
    except subprocess.TimeoutExpired:
        sink.kill()
        sink.wait()
    follower.join()
    if source.returncode != 0:  # the kernel gave up (tcp_syn_retries, tcp_retries2) or was reset
        return Outcome(failure="timedout" if "timed out" in err else "reset" if "Reset" in err else "error")
    return _sink_result("".join(report), nbytes) or Outcome(float(out))


def kernel_pair(spec: ImpairSpec, nbytes: int, watch: Watch, cc: str) -> tuple[Outcome, Outcome]:
    """Up and down between two kernels relayed through ``spec`` (a->b: the app side's outbound way)."""
    with Lab(kernel_ip4=f"{PEER_IP4}/{PREFIX}", stack_ip4=f"{APP_IP4}/{PREFIX}") as peer, \
            Lab(kernel_ip4=f"{APP_IP4}/{PREFIX}", stack_ip4=f"{PEER_IP4}/{PREFIX}") as app, \
            Relay(app.device, peer.device, impair=spec) as relay:
        up = kernel_transfer(app, peer, PEER_IP4, nbytes, replace(watch, label=f"{watch.label} kernel up"), cc)
        down = kernel_transfer(peer, app, APP_IP4, nbytes, replace(watch, label=f"{watch.label} kernel dn"), cc)
        if relay.error is not None:
            raise OSError(f"the relay failed: {relay.error}")
    return up, down


def _stack_up(host: Host, nbytes: int, progress: Progress) -> Outcome:
    assert host.lab is not None
    kernel_ip = str(host.lab.kernel_ip4.ip)
    sink, follower, report = in_thread(_sink, host.lab, kernel_ip, progress)
    try:
        seconds, _ = stack_send(host, (kernel_ip, PORT), nbytes, timeout=None)  # the watch decides
        in_thread(sink.wait, timeout=30)
        in_thread(follower.join)
    finally:  # a stall kills this greenlet: the SINK goes with it
        if sink.poll() is None:
            sink.kill()
            sink.wait()
    return _sink_result("".join(report), nbytes) or Outcome(seconds)


def _stack_down(host: Host, nbytes: int, progress: Progress, cc: str) -> Outcome:
    assert host.lab is not None and host.stack_ip4 is not None
    listener = GreenSocket(host.runtime, host.stack.socket(AF_INET, SOCK_STREAM), timeout=None)
    listener.bind(("", PORT))
    listener.listen(1)
    source = host.lab.popen(source_argv(str(host.stack_ip4.ip), nbytes, cc), stdout=subprocess.PIPE, text=True)
    try:
        conn, _ = listener.accept()
        conn.timeout = None  # the watch decides when no progress is a stall
        n, digest, _ = stack_receive(conn, progress.update)
        listener.close()
        out, _ = in_thread(source.communicate, timeout=30)
    finally:  # a stall kills this greenlet: the SOURCE goes with it
        if source.poll() is None:
            source.kill()
            source.wait()
    if n != nbytes or digest != pattern(nbytes)[1]:
        return Outcome(failure="corrupt")
    return Outcome(float(out))


def _watched(run: Callable[[Host, int, Progress], Outcome], host: Host, nbytes: int, watch: Watch) -> Outcome:
    """One stack transfer under ``watch``; a stall or reset is an outcome, not an error."""
    progress = Progress(watch)
    task = gevent.spawn(run, host, nbytes, progress)
    while not task.ready():
        task.join(timeout=1)
        failure = "" if task.ready() else progress.verdict()
        if failure:
            task.kill()
            return Outcome(failure=failure)
    try:
        outcome: Outcome = task.get()
        return outcome
    except TimeoutError:  # the stack gave up on the connection (ETIMEDOUT: SYN or data retries)
        return Outcome(failure="timedout")
    except ConnectionResetError:
        return Outcome(failure="reset")
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return Outcome(failure="error")


def stack_pair(spec: ImpairSpec, nbytes: int, watch: Watch, cc: str) -> tuple[Outcome, Outcome]:
    """Up and down between the stack and the lab kernel, the stack's link impaired by ``spec``."""
    results: list[Outcome] = []
    for name, run in (("up", _stack_up), ("dn", partial(_stack_down, cc=cc))):
        # A fresh host per direction: each transfer meets the spec's decision streams from the start,
        # as the kernel pair's first transfer does (and a stall cannot leave a connection behind).
        with Host(StackOptions(lab=True, impair=str(spec))) as host:
            results.append(_watched(run, host, nbytes, replace(watch, label=f"{watch.label} stack {name}")))
    return results[0], results[1]


def _ratio(ours: Outcome, kernel: Outcome) -> str:
    if ours.seconds is None or kernel.seconds is None:
        return "n/a"
    return ratio(ours.seconds, kernel.seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mbytes", type=float, default=10, help="megabytes per transfer (default 10)")
    # Longer than tcp_rto_max (120 s): a sender whose retransmission timer has backed off to its
    # maximum still makes progress now and then; only one silent for longer is stuck.
    parser.add_argument("--stall", type=float, default=130,
                        help="seconds without a received byte before a transfer is a stall (default 130)")
    parser.add_argument("--cap", type=float, default=900,
                        help="seconds a transfer may take in all; one still moving then is reported slow (default 900)")
    parser.add_argument("--every", type=float, default=30,
                        help="seconds between progress lines of a long transfer (default 30)")
    parser.add_argument("--seed", type=int, default=1, help="impairment seed (default 1)")
    parser.add_argument("--kernel-cc", default="cubic", help="kernel senders' congestion control (default cubic)")
    parser.add_argument("--only", nargs="+", metavar="SPEC",
                        help=f"impairments to run (default: {' '.join(SPECS)})".replace("%", "%%"))
    args = parser.parse_args()
    nbytes = int(args.mbytes * 1_000_000)
    print(f"Loss recovery, {args.mbytes:g} MB each way, seed {args.seed}, SHA-256 checked, "
          f"stall after {args.stall:g} s without progress, cap {args.cap:g} s, kernel senders {args.kernel_cc}; "
          "ratio = stack / kernel time", flush=True)
    print(f"  {'impairment':20s} {'kernel up':>9s} {'stack up':>9s} {'ratio':>6s}   "
          f"{'kernel dn':>9s} {'stack dn':>9s} {'ratio':>6s}", flush=True)
    started = time.monotonic()
    for text in args.only or SPECS:
        spec = ImpairSpec.parse(f"{text},seed={args.seed}")
        watch = Watch(args.stall, args.cap, args.every, text)
        k_up, k_down = kernel_pair(spec, nbytes, watch, args.kernel_cc)
        s_up, s_down = stack_pair(spec, nbytes, watch, args.kernel_cc)
        print(f"  {text:20s} {k_up!s:>9s} {s_up!s:>9s} {_ratio(s_up, k_up):>6s}   "
              f"{k_down!s:>9s} {s_down!s:>9s} {_ratio(s_down, k_down):>6s}", flush=True)
    print(f"  ({time.monotonic() - started:.0f} s in all)", flush=True)


if __name__ == "__main__":
    main()
