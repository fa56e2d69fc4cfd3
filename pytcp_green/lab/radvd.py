"""radvd as the lab's IPv6 router: router advertisements for SLAAC (RFC 4861 §6, RFC 4862), in a lab namespace.

The configuration goes into a work directory; radvd runs in the foreground (``--nodaemon``)
as a :class:`LabDaemon`, so the lab stops it at teardown if :meth:`Radvd.stop` was not
called.  radvd refuses to advertise unless the namespace forwards IPv6 (it checks
``net.ipv6.conf.all.forwarding``), so :meth:`Radvd.start` turns forwarding on inside the
namespace — the lab has one link, nothing is forwarded anywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pytcp_green.lab.daemon import LabDaemon

if TYPE_CHECKING:
    from pytcp_green.lab.netns import Lab


class Radvd(LabDaemon):
    name = "radvd"

    def __init__(self, lab: Lab, workdir: str | Path, *, prefix: str = "fd00:77::/64", valid: int = 86400,
                 preferred: int = 14400, router_lifetime: int = 1800, mtu: int | None = None,
                 interval: tuple[float, float] = (3.0, 4.0)) -> None:
        super().__init__(lab, workdir, "radvd.conf")
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
        self.write_conf(lines)

    def argv(self) -> list[str]:
        return ["radvd", "--nodaemon", "--config", str(self.conf), "--pidfile", str(self.pid_file),
                "--logmethod", "stderr"]

    def prepare(self) -> None:
        self.lab.sysctl("net.ipv6.conf.all.forwarding", 1)
