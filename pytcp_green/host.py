"""A running stack: the core, its devices, the gevent runtime and (with ``--lab``) the lab around it.

:class:`StackOptions` is the one description of a stack that the CLI flags, the
``PYTCP_GREEN_*`` environment variables and ``patch_all(**options)`` all map onto, so the three
entry points cannot drift apart.  :class:`Host` turns options into a running stack.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pytcp_green.green.runtime import Runtime
from pytcp_green.link.device import Device, LinkKind
from pytcp_green.link.impair import ImpairSpec
from pytcp_green.link.loopback import LoopbackDevice
from pytcp_green.link.pcap import LINKTYPE_ETHERNET, LINKTYPE_RAW, PcapWriter
from pytcp_green.stack.interface import Interface
from pytcp_green.stack.stack import Stack

if TYPE_CHECKING:
    from pytcp_green.lab import Lab

log = logging.getLogger(__name__)

ENV_PREFIX = "PYTCP_GREEN_"
LAB_KERNEL_IP4 = "198.18.0.1/24"
LAB_STACK_IP4 = "198.18.0.2/24"


@dataclass
class StackOptions:
    """Where the stack attaches and how it is configured."""

    lab: bool = False
    tap: str | None = None
    tun: str | None = None
    ip4: list[str] = field(default_factory=list)
    gateway4: str | None = None
    mtu: int = 1500
    pcap: str | None = None
    impair: str | None = None
    log: str = "warning"
    sysctl: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        """Raise ValueError with a message a user can act on."""
        if sum(bool(x) for x in (self.lab, self.tap, self.tun)) > 1:
            raise ValueError("choose one of --lab, --tap NAME, --tun NAME")
        for addr in self.ip4:
            try:
                iface = ipaddress.IPv4Interface(addr)
            except ValueError as exc:
                raise ValueError(f"--ip4 {addr!r}: {exc}") from None
            if "/" not in addr:
                raise ValueError(f"--ip4 {addr!r}: give a prefix length, e.g. {iface.ip}/24")
        if self.gateway4 is not None:
            try:
                ipaddress.IPv4Address(self.gateway4)
            except ValueError as exc:
                raise ValueError(f"--gateway4 {self.gateway4!r}: {exc}") from None
        if not 68 <= self.mtu <= 65535:
            raise ValueError(f"--mtu {self.mtu}: must be between 68 and 65535")
        if self.impair:
            ImpairSpec.parse(self.impair)
        if (self.tap or self.tun) and not self.ip4:
            raise ValueError("--tap/--tun need at least one --ip4 ADDR/LEN (DHCP comes later)")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> StackOptions:
        """Options from ``PYTCP_GREEN_LAB``, ``_TAP``, ``_TUN``, ``_IP4`` (comma-separated), ``_GATEWAY4``…"""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            return env.get(ENV_PREFIX + name) or None

        opts = cls(
            lab=(get("LAB") or "0") not in ("0", "false", "no"),
            tap=get("TAP"),
            tun=get("TUN"),
            ip4=[a for a in (get("IP4") or "").split(",") if a],
            gateway4=get("GATEWAY4"),
            mtu=int(get("MTU") or 1500),
            pcap=get("PCAP"),
            impair=get("IMPAIR"),
            log=get("LOG") or "warning",
        )
        return opts

    def to_env(self) -> dict[str, str]:
        """The inverse of :meth:`from_env`, for handing options to a child process."""
        env = {
            "LAB": "1" if self.lab else "",
            "TAP": self.tap or "",
            "TUN": self.tun or "",
            "IP4": ",".join(self.ip4),
            "GATEWAY4": self.gateway4 or "",
            "MTU": str(self.mtu),
            "PCAP": self.pcap or "",
            "IMPAIR": self.impair or "",
            "LOG": self.log,
        }
        return {ENV_PREFIX + k: v for k, v in env.items() if v}


class Host:
    """Build and run a stack from :class:`StackOptions`; ``close()`` undoes everything it did."""

    def __init__(self, options: StackOptions, *, seed: int | None = None) -> None:
        options.validate()
        self.options = options
        self.lab: Lab | None = None
        self.devices: list[Device] = []
        self.iface: Interface | None = None
        self.stack = Stack(sysctl=dict(options.sysctl), seed=seed)
        self.pcap: PcapWriter | None = None
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        opts, stack = self.options, self.stack
        device: Device | None = None
        addresses = list(opts.ip4)
        probe = False
        if opts.lab:
            from pytcp_green.lab import Lab

            stack_ip4 = addresses[0] if addresses else LAB_STACK_IP4
            self.lab = Lab(kernel_ip4=LAB_KERNEL_IP4, stack_ip4=stack_ip4, mtu=opts.mtu)
            self.lab.__enter__()
            device = self.lab.device
            addresses = addresses or [LAB_STACK_IP4]
        elif opts.tap or opts.tun:
            from pytcp_green.link.tap import open_tap

            device = open_tap(opts.tap or opts.tun or "", tun=bool(opts.tun), mtu=opts.mtu)
        if self.options.pcap:
            linktype = LINKTYPE_RAW if device is not None and device.kind is LinkKind.IP else LINKTYPE_ETHERNET
            self.pcap = PcapWriter(self.options.pcap, linktype)
        self.runtime = Runtime(stack, pcap=self.pcap)
        loop_dev = LoopbackDevice()
        self.devices.append(loop_dev)
        self.runtime.attach(stack.loopback, loop_dev)
        if device is not None:
            self.devices.append(device)
            self.iface = stack.add_interface("eth0", device.kind, mtu=device.mtu, mac=device.mac)
            # RFC 5227: with net.ipv4.acd.enable, addresses are probed (on the running link) first.
            probe = bool(stack.sysctl.int("net.ipv4.acd.enable")) and device.kind is LinkKind.ETHERNET
            if not probe:
                for addr in addresses:
                    stack.add_ip4(self.iface, addr, now=self.runtime.now())
                if opts.gateway4:
                    stack.set_gateway4(opts.gateway4)
            impair = ImpairSpec.parse(opts.impair) if opts.impair else None
            self.runtime.attach(self.iface, device, impair=impair)
        self.runtime.start()
        if device is not None and self.iface is not None and probe:
            self._probe_addresses(self.iface, addresses)
            if opts.gateway4:
                stack.set_gateway4(opts.gateway4)

    def _probe_addresses(self, iface: Interface, addresses: list[str]) -> None:
        """Probe every address (RFC 5227 §2.1) and wait, bounded, for the outcome; conflicts raise."""
        import errno

        from gevent.event import Event

        results: dict[str, bool] = {}
        finished = Event()
        for addr in addresses:
            def report(ok: bool, now: float, addr: str = addr) -> None:
                results[addr] = ok
                if len(results) == len(addresses):
                    finished.set()

            self.stack.ip4.probe_address(iface, ipaddress.IPv4Interface(addr), self.runtime.now(), report)
        self.runtime.kick()
        sysctl = self.stack.sysctl
        bound = (sysctl.float("net.ipv4.acd.probe_wait") + sysctl.int("net.ipv4.acd.probe_num")
                 * sysctl.float("net.ipv4.acd.probe_max") + sysctl.float("net.ipv4.acd.announce_wait") + 5.0)
        finished.wait(timeout=bound)
        conflicts = [a for a in addresses if not results.get(a, False)]
        if conflicts:
            raise OSError(errno.EADDRINUSE, f"address conflict: {', '.join(conflicts)} already in use on the link "
                                            "(RFC 5227 probe)")

    @property
    def stack_ip4(self) -> ipaddress.IPv4Interface | None:
        return self.iface.ip4[0] if self.iface is not None and self.iface.ip4 else None

    def env(self) -> dict[str, str]:
        """What a peer command or a program run over the stack sees about the addresses."""
        env: dict[str, str] = {}
        if self.stack_ip4 is not None:
            env["PYTCP_GREEN_STACK_IP4"] = str(self.stack_ip4.ip)
        if self.lab is not None:
            env["PYTCP_GREEN_PEER_IP4"] = str(self.lab.kernel_ip4.ip)
        elif self.options.gateway4:
            env["PYTCP_GREEN_PEER_IP4"] = self.options.gateway4
        return env

    def close(self) -> None:
        runtime = getattr(self, "runtime", None)
        if runtime is not None:
            runtime.stop()
        for dev in self.devices:
            dev.close()
        self.devices.clear()
        if self.pcap is not None:
            self.pcap.close()
            self.pcap = None
        if self.lab is not None:
            lab, self.lab = self.lab, None
            lab.__exit__(None, None, None)

    def __enter__(self) -> Host:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
