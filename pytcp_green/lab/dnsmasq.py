"""dnsmasq as the lab's DHCP and DNS server, run inside a lab namespace (issue 5's real peer for DHCPv4).

Everything lives in one work directory: the configuration, the lease file (``dhcp-leasefile``)
and the log.  dnsmasq runs in the foreground (``--no-daemon``) as a :class:`LabDaemon`, so
the lab stops it at teardown if :meth:`Dnsmasq.stop` was not called.  ``no-ping`` skips
dnsmasq's own ICMP check before an offer (the client probes with ARP, RFC 5227, anyway), and
T1/T2 can be set (options 58/59) so renewals happen within seconds of a short lease: dnsmasq
will not lease for less than two minutes.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from pytcp_green.lab.daemon import LabDaemon
from pytcp_green.lab.netns import LabError

if TYPE_CHECKING:
    from pytcp_green.lab.netns import Lab


class Dnsmasq(LabDaemon):
    name = "dnsmasq"

    def __init__(self, lab: Lab, workdir: str | Path, *, first: str = "198.18.0.100", last: str = "198.18.0.199",
                 lease: str = "2m", t1: int | None = None, t2: int | None = None,
                 hosts: dict[str, str] | None = None) -> None:
        super().__init__(lab, workdir, "dnsmasq.conf")
        self.lease_file = self.workdir / "dnsmasq.leases"
        self.log_file = self.workdir / "dnsmasq.log"
        router = str(lab.kernel_ip4.ip)
        mask = str(lab.kernel_ip4.netmask)
        lines = [
            f"interface={lab.device.name}", "bind-interfaces", "except-interface=lo",
            f"dhcp-range={first},{last},{mask},{lease}", f"dhcp-option=option:router,{router}",
            f"dhcp-option=option:dns-server,{router}", f"dhcp-leasefile={self.lease_file}",
            "dhcp-authoritative", "no-ping", "no-resolv", "no-hosts", "log-dhcp", f"log-facility={self.log_file}",
            "user=root", "group=root", f"listen-address={router}",
        ]
        if t1 is not None:
            lines.append(f"dhcp-option=option:T1,{t1}")
        if t2 is not None:
            lines.append(f"dhcp-option=option:T2,{t2}")
        for name, address in (hosts or {}).items():
            lines.append(f"address=/{name}/{address}")
        self.write_conf(lines)

    def argv(self) -> list[str]:
        return ["dnsmasq", "--no-daemon", f"--conf-file={self.conf}"]

    def prepare(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.log_file.unlink()  # ready() reads the log of this run only

    def ready(self) -> bool:
        """True once dnsmasq logged that it serves DHCP; raises LabError if it died."""
        if self.proc is None:
            return False
        if self.proc.poll() is not None:
            err = self.proc.stderr.read() if self.proc.stderr is not None else ""
            raise LabError(f"dnsmasq exited with status {self.proc.returncode}: {err.strip()}")
        try:
            return "DHCP, IP range" in self.log_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return False

    def leases(self) -> list[str]:
        """The lease file's lines: ``expiry mac address hostname client-id``."""
        try:
            return [line for line in self.lease_file.read_text(encoding="ascii").splitlines() if line.strip()]
        except FileNotFoundError:
            return []

    def log(self) -> str:
        try:
            return self.log_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
