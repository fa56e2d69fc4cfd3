"""Kernel-side daemons in a lab namespace (dnsmasq, radvd) and stopping the processes the lab started.

A daemon's configuration goes into a work directory; it runs in the foreground through
:meth:`Lab.popen`, so the lab stops it at teardown if :meth:`LabDaemon.stop` was not called.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytcp_green.lab.netns import LabError

if TYPE_CHECKING:
    from pytcp_green.lab.netns import Lab

STOP_TIMEOUT = 5.0


def stop_process(proc: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM ``proc`` (by its PID) if it still runs, SIGKILL after ``timeout`` s, reap it; close its stderr pipe."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()


class LabDaemon:
    """One daemon with its configuration file ``conf`` in ``workdir``; subclasses give its command line."""

    name = "daemon"

    def __init__(self, lab: Lab, workdir: str | Path, conf_name: str) -> None:
        self.lab = lab
        self.workdir = Path(workdir)
        self.conf = self.workdir / conf_name
        self.proc: subprocess.Popen[Any] | None = None

    def write_conf(self, lines: Sequence[str]) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf.write_text("\n".join(lines) + "\n", encoding="ascii")

    def argv(self) -> list[str]:
        """The command line: the daemon in the foreground with :attr:`conf`, logging to stderr or a file."""
        raise NotImplementedError

    def prepare(self) -> None:
        """What must be done right before each start (none by default)."""

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            raise LabError(f"{self.name} is already running")
        self.prepare()
        self.proc = self.lab.popen(self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def stop(self) -> None:
        """Stop the daemon we started (by its PID) and reap it."""
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_process(proc)
