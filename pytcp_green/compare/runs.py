"""The two runs of ``pytcp-green compare``: the same program over the Linux kernel and over the stack.

Both runs see the same network: a peer namespace whose kernel is 198.18.0.1 (where ``--peer``
runs) and, for the program, the address 198.18.0.2 with the same ``PYTCP_GREEN_*`` environment,
so URLs and configs need no change between them.

* Over the kernel, the program runs unpatched in a namespace of its own whose TAP is joined to
  the peer's by :class:`~pytcp_green.lab.relay.Relay`, through the same seeded impairment the
  stack's link gets, and the relay captures the peer's side of it, where the stack's capture is too
  (what crossed its TAP: the program's frames after the impairment, the peer's before).
* Over the stack, it runs under ``pytcp-green run --lab`` with the stack options given, the
  impairment and a capture.

Each run is a child process with its own timeout; its stdout, stderr, exit status and wall time
are kept as :class:`RunResult`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pytcp_green.lab import Lab
from pytcp_green.lab.relay import Relay
from pytcp_green.link.impair import ImpairSpec
from pytcp_green.link.pcap import PcapWriter

PEER_IP4 = "198.18.0.1"
APP_IP4 = "198.18.0.2"
PREFIX = 24
WAIT_PORT_TIMEOUT = 30.0
TIMED = "pytcp_green.compare.timed"

# Run in the program's namespace before the program, when --wait-port is given: the kernel-side
# equivalent of `pytcp-green run --wait-port` (bounded retries with backoff).
_WAIT_FOR_PORT = """
import socket, sys, time
host, port, deadline = sys.argv[1], int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
delay = 0.01
while True:
    try:
        socket.create_connection((host, port), timeout=5).close()
        break
    except OSError as exc:
        if time.monotonic() + delay > deadline:
            sys.exit(f"nothing listened on {host}:{port}: {exc}")
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
"""


@dataclass
class Program:
    """What to run and against what: ``argv`` is ``[script, args...]`` or ``["-m", module, args...]``."""

    argv: list[str]
    peer: str | None = None
    wait_port: int | None = None
    impair: ImpairSpec | None = None
    stack_args: list[str] = field(default_factory=list)  # stack options for the stack run, as typed
    timeout: float = 300.0


@dataclass
class RunResult:
    """One run of the program."""

    over: str  # "kernel" or "stack"
    status: int
    stdout: str
    stderr: str
    wall: float | None  # seconds from the program's first line to its exit (None: it never ran)
    started: float | None  # when the program started, seconds since the epoch
    pcap: str

    def as_dict(self) -> dict[str, object]:
        return {"over": self.over, "status": self.status, "stdout": self.stdout, "stderr": self.stderr,
                "wall": self.wall, "pcap": self.pcap, "started": self.started}


def peer_command(peer: str) -> str:
    """The peer's shell command with its output silenced, in both runs: only the program's output is compared."""
    return f"exec >/dev/null 2>&1\n{peer}"


def program_env() -> dict[str, str]:
    """The environment both runs give the program: ours without stale PYTCP_GREEN_* values, plus the
    addresses ``pytcp-green run --lab`` announces."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTCP_GREEN_")}
    env["PYTCP_GREEN_STACK_IP4"] = APP_IP4
    env["PYTCP_GREEN_PEER_IP4"] = PEER_IP4
    return env


def run_over_kernel(program: Program, pcap: Path) -> RunResult:
    """The program unpatched in its own namespace, relayed to the peer's through the impairment."""
    env = program_env()
    with Lab(kernel_ip4=f"{PEER_IP4}/{PREFIX}", stack_ip4=f"{APP_IP4}/{PREFIX}") as peer_lab, \
            Lab(kernel_ip4=f"{APP_IP4}/{PREFIX}", stack_ip4=f"{PEER_IP4}/{PREFIX}") as app_lab, \
            PcapWriter(pcap) as writer, \
            Relay(app_lab.device, peer_lab.device, impair=program.impair, capture=writer) as relay:
        peer = None
        if program.peer:
            peer = peer_lab.popen(["sh", "-c", peer_command(program.peer)], env=env)
        if program.wait_port is not None:
            wait = app_lab.run([sys.executable, "-c", _WAIT_FOR_PORT, PEER_IP4, str(program.wait_port),
                                str(WAIT_PORT_TIMEOUT)], timeout=WAIT_PORT_TIMEOUT + 10, env=env)
            if wait.returncode != 0:
                raise OSError(f"over the kernel: {wait.stderr.strip()}")
        timing = pcap.with_suffix(".wall")
        done = app_lab.run([sys.executable, "-m", TIMED, str(timing), *program.argv], timeout=program.timeout,
                           env=env)
        if peer is not None and peer.poll() is not None and peer.returncode not in (0, None):
            done.stderr += f"\n[pytcp-green compare: the peer command exited with status {peer.returncode}]\n"
        if relay.error is not None:
            raise OSError(f"over the kernel: the relay failed: {relay.error}")
    return RunResult("kernel", done.returncode, done.stdout, done.stderr, *_timing(timing), pcap=str(pcap))


def run_over_stack(program: Program, pcap: Path) -> RunResult:
    """The program under ``pytcp-green run --lab``, with the stack options, impairment and a capture."""
    argv = [sys.executable, "-m", "pytcp_green", "run", "--lab", *program.stack_args, "--pcap", str(pcap)]
    if program.impair is not None:
        argv += ["--impair", str(program.impair)]
    if program.peer:
        argv += ["--peer", peer_command(program.peer)]
    if program.wait_port is not None:
        argv += ["--wait-port", str(program.wait_port)]
    timing = pcap.with_suffix(".wall")
    done = subprocess.run([*argv, "-m", TIMED, str(timing), *program.argv], capture_output=True, text=True,
                          timeout=program.timeout, env=program_env())
    return RunResult("stack", done.returncode, done.stdout, done.stderr, *_timing(timing), pcap=str(pcap))


def _timing(timing: Path) -> tuple[float | None, float | None]:
    """(wall, start) as the timing wrapper wrote them; Nones when the program never got to run."""
    try:
        wall, start = timing.read_text().split()
        return float(wall), float(start)
    except (OSError, ValueError):
        return None, None


def stack_args_valid(words: Sequence[str]) -> None:
    """Refuse the stack options that would take the stack run out of the shared lab network."""
    for word in words:
        name = word.split("=", 1)[0]
        if name in ("--tap", "--tun", "--lab", "--pcap", "--impair", "--dhcp", "--dhcp-lease-file"):
            raise ValueError(f"{name} is set by compare itself (both runs use their own lab)")
