"""radvd as the lab's IPv6 router: router advertisements for SLAAC (RFC 4861 §6, RFC 4862), in a lab namespace.

The configuration goes into a work directory; radvd runs in the foreground (``--nodaemon``)
through :meth:`Lab.popen`, so the lab stops it at teardown if :meth:`Radvd.stop` was not
called.  radvd refuses to advertise unless the namespace forwards IPv6 (it checks
``net.ipv6.conf.all.forwarding``), so :meth:`Radvd.start` turns forwarding on inside the
namespace — the lab has one link, nothing is forwarded anywhere.
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path
from typing import Any

from pytcp_green.lab.netns import Lab, LabError


class Radvd:
    def __init__(self, lab: Lab, workdir: str | Path, *, prefix: str = "fd00:77::/64", valid: int = 86400,
                 preferred: int = 14400, router_lifetime: int = 1800, mtu: int | None = None,
                 interval: tuple[float, float] = (3.0, 4.0)) -> None:
        self.lab = lab
        self.workdir = Path(workdir)
        self.conf = self.workdir / "radvd.conf"
        self.pid_file = self.workdir / "radvd.pid"
        lines = [
            f"interface {lab.device.name} {{",
            "  AdvSendAdvert on;",
            f"  MinRtrAdvInterval {interval[0]};",
            f"  MaxRtrAdvInterval {interval[1]};",
            f"  AdvDefaultLifetime {router_lifetime};",
            "  AdvSourceLLAddress on;",
        ]
        if mtu is not None:
            lines.append(f"  AdvLinkMTU {mtu};")
        lines += [
            f"  prefix {prefix} {{",
            "    AdvOnLink on;",
            "    AdvAutonomous on;",
            f"    AdvValidLifetime {valid};",
            f"    AdvPreferredLifetime {preferred};",
            "  };",
            "};",
        ]
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf.write_text("\n".join(lines) + "\n", encoding="ascii")
        self.proc: subprocess.Popen[Any] | None = None

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            raise LabError("radvd is already running")
        self.lab.sysctl("net.ipv6.conf.all.forwarding", 1)
        self.proc = self.lab.popen(["radvd", "--nodaemon", "--config", str(self.conf), "--pidfile",
                                    str(self.pid_file), "--logmethod", "stderr"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
