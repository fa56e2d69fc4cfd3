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
from typing import TYPE_CHECKING, Any

import gevent

from pytcp_green.control.paths import ENV_SOCKET
from pytcp_green.control.server import ControlServer
from pytcp_green.faults.control import Faults
from pytcp_green.green.runtime import Attachment, Runtime
from pytcp_green.link.device import Device
from pytcp_green.link.drive import SOFTWARE_GSO_MAX
from pytcp_green.link.impair import ImpairSpec
from pytcp_green.link.loopback import LoopbackDevice
from pytcp_green.link.pcap import LINKTYPE_ETHERNET, LINKTYPE_RAW, PcapWriter
from pytcp_green.stack.interface import Interface, LinkKind
from pytcp_green.stack.stack import Stack

if TYPE_CHECKING:
    from pytcp_green.lab import Lab
    from pytcp_green.lab.dnsmasq import Dnsmasq
    from pytcp_green.stack.ipv4.dhcp import Dhcp4Client
    from pytcp_green.stack.ipv4.linklocal import LinkLocal

log = logging.getLogger(__name__)

ENV_PREFIX = "PYTCP_GREEN_"
LAB_KERNEL_IP4 = "198.18.0.1/24"
LAB_STACK_IP4 = "198.18.0.2/24"
LAB_KERNEL_IP6 = "fd00:77::1/64"
LAB_STACK_IP6 = "fd00:77::2/64"
DHCP_WAIT = 60.0  # seconds Host waits for a lease (or for the lab's dnsmasq) before going on
DAD_WAIT = 10.0  # seconds Host waits for IPv6 duplicate address detection before going on


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
    dhcp: bool = False  # lease the address with DHCPv4 (with --lab, dnsmasq serves it in the namespace)
    dhcp_lease_file: str | None = None  # remembered lease, for INIT-REBOOT at the next start
    ip6: list[str] = field(default_factory=list)
    gateway6: str | None = None
    slaac: bool | None = None  # router solicitation + SLAAC (RFC 4862); None: on with an Ethernet link
    # A control socket (pytcp_green.control) at this path, "auto" for /run/pytcp-green/<pid>.sock;
    # not read from the environment, where PYTCP_GREEN_CTL names the socket of the stack one runs under.
    ctl: str | None = None
    # Open the TAP with the virtio-net header and TSO/checksum offloads (link/tap.py); off: plain frames.
    offload: bool = True

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
        for addr6 in self.ip6:
            try:
                iface6 = ipaddress.IPv6Interface(addr6)
            except ValueError as exc:
                raise ValueError(f"--ip6 {addr6!r}: {exc}") from None
            if "/" not in addr6:
                raise ValueError(f"--ip6 {addr6!r}: give a prefix length, e.g. {iface6.ip}/64")
        if self.gateway6 is not None:
            try:
                ipaddress.IPv6Address(self.gateway6.split("%", 1)[0])
            except ValueError as exc:
                raise ValueError(f"--gateway6 {self.gateway6!r}: {exc}") from None
        if (self.tap or self.tun) and not self.ip4 and not self.dhcp and not self.ip6 and not (
                self.tap and self.slaac is not False):
            raise ValueError("--tap/--tun need at least one --ip4 ADDR/LEN or --ip6 ADDR/LEN, or --dhcp (or SLAAC "
                             "with --tap)")
        if self.dhcp and self.tun:
            raise ValueError("--dhcp needs Ethernet: use --tap or --lab, not --tun")
        if self.dhcp and not (self.lab or self.tap):
            # Without a link there is nothing to lease on; say so instead of running without an address.
            raise ValueError("--dhcp needs a link: add --lab or --tap NAME (patch_all(dhcp=True, tap=...))")

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
            dhcp=(get("DHCP") or "0") not in ("0", "false", "no"),
            dhcp_lease_file=get("DHCP_LEASE_FILE"),
            ip6=[a for a in (get("IP6") or "").split(",") if a],
            gateway6=get("GATEWAY6"),
            slaac=None if get("SLAAC") is None else (get("SLAAC") or "0") not in ("0", "false", "no"),
            offload=(get("OFFLOAD") or "1") not in ("0", "false", "no"),
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
            "DHCP": "1" if self.dhcp else "",
            "DHCP_LEASE_FILE": self.dhcp_lease_file or "",
            "IP6": ",".join(self.ip6),
            "GATEWAY6": self.gateway6 or "",
            "SLAAC": "" if self.slaac is None else ("1" if self.slaac else "0"),
            "OFFLOAD": "" if self.offload else "0",
        }
        return {ENV_PREFIX + k: v for k, v in env.items() if v}


class Host:
    """Build and run a stack from :class:`StackOptions`; ``close()`` undoes everything it did."""

    def __init__(self, options: StackOptions, *, seed: int | None = None,
                 dnsmasq: dict[str, Any] | None = None) -> None:
        """``dnsmasq``: keyword arguments for the lab's :class:`~pytcp_green.lab.dnsmasq.Dnsmasq` (with dhcp)."""
        options.validate()
        self.options = options
        self.lab: Lab | None = None
        self.dhcp: Dhcp4Client | None = None
        self.linklocal: LinkLocal | None = None  # RFC 3927, when DHCP gives no address
        self.dnsmasq: Dnsmasq | None = None
        self._dnsmasq_args = dnsmasq or {}
        self._workdir: str | None = None
        self.devices: list[Device] = []
        self.iface: Interface | None = None
        # Optimistic DAD (RFC 4429) on unless the user says otherwise: the program starts at once
        # instead of after DAD (1-2 s), and the stack keeps to the RFC's rules meanwhile.
        self.stack = Stack(sysctl={"net.ipv6.conf.default.optimistic_dad": 1, **options.sysctl}, seed=seed)
        self.pcap: PcapWriter | None = None
        self.link: Attachment | None = None  # the device's attachment (not loopback's)
        self._faults: Faults | None = None
        self._seed = seed
        self.control: ControlServer | None = None
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
            self.lab = Lab(kernel_ip4=LAB_KERNEL_IP4, stack_ip4=stack_ip4, mtu=opts.mtu, kernel_ip6=LAB_KERNEL_IP6,
                           vnet_hdr=opts.offload)
            self.lab.__enter__()
            device = self.lab.device
            addresses = addresses if opts.dhcp else (addresses or [LAB_STACK_IP4])
        elif opts.tap or opts.tun:
            from pytcp_green.link.tap import open_offloaded

            device = open_offloaded(opts.tap or opts.tun or "", tun=bool(opts.tun), mtu=opts.mtu, offload=opts.offload)
        if self.options.pcap:
            # Without a device the capture is the loopback's, whose frames are bare IP.
            linktype = LINKTYPE_RAW if device is None or device.kind is LinkKind.IP else LINKTYPE_ETHERNET
            self.pcap = PcapWriter(self.options.pcap, linktype)
        self.runtime = Runtime(stack, pcap=self.pcap)
        loop_dev = LoopbackDevice()
        self.devices.append(loop_dev)
        self.runtime.attach(stack.loopback, loop_dev)
        if device is not None:
            self.devices.append(device)
            self.iface = stack.add_interface("eth0", device.kind, mtu=device.mtu, mac=device.mac,
                                             tso_max=device.tso_max or SOFTWARE_GSO_MAX)
            log.info("%s: %s", device.name, "TSO and checksum offload on" if device.tso_max
                     else "no offloads (one MTU-sized frame per write and read; TCP super-segments cut "
                          "in software before the write)")
            # RFC 5227: with net.ipv4.acd.enable, addresses are probed (on the running link) first.
            probe = bool(stack.sysctl.int("net.ipv4.acd.enable")) and device.kind is LinkKind.ETHERNET
            if not probe:
                for addr in addresses:
                    stack.add_ip4(self.iface, addr, now=self.runtime.now())
                if opts.gateway4:
                    stack.set_gateway4(opts.gateway4)
            self._start_ip6(self.iface)
            impair = ImpairSpec.parse(opts.impair) if opts.impair else None
            self.link = self.runtime.attach(self.iface, device, impair=impair)
        self.runtime.start()
        if device is not None and self.iface is not None and probe:
            self._probe_addresses(self.iface, addresses)
            if opts.gateway4:
                stack.set_gateway4(opts.gateway4)
        if opts.dhcp and self.iface is not None:
            self._start_dhcp(self.iface)
        if self.iface is not None:
            self._wait_dad(self.iface)
        if opts.ctl:
            self.control = ControlServer(self, opts.ctl)

    def _start_dhcp(self, iface: Interface) -> None:
        """Lease an address (RFC 2131) and wait, bounded, until it is bound before going on."""
        import json
        import tempfile

        from gevent.event import Event

        from pytcp_green.stack.ipv4.dhcp import Dhcp4Client, Dhcp4State, Lease

        if self.lab is not None:
            from pytcp_green.lab.dnsmasq import Dnsmasq

            self._workdir = tempfile.mkdtemp(prefix="pytcp-green-dnsmasq-")
            args = {"hosts": {"web.lab": str(self.lab.kernel_ip4.ip)}, **self._dnsmasq_args}
            self.dnsmasq = Dnsmasq(self.lab, self._workdir, **args)
            self.dnsmasq.start()
            with gevent.Timeout(DHCP_WAIT, False):
                while not self.dnsmasq.ready():
                    gevent.sleep(0.02)  # polling a log file for readiness: there is nothing to wait on
        remembered = None
        path = self.options.dhcp_lease_file
        if path and os.path.exists(path):
            try:
                with open(path, encoding="utf-8") as f:
                    remembered = Lease.from_dict(json.load(f))
            except (OSError, ValueError, KeyError) as exc:
                log.warning("dhcp: ignoring the remembered lease in %s: %s", path, exc)
        bound = Event()

        def changed(client: Dhcp4Client) -> None:
            if client.state is Dhcp4State.BOUND:
                bound.set()
                if self.linklocal is not None:  # a routable address now: drop 169.254/16 (RFC 3927 §1.9)
                    self.linklocal.stop()
                    self.linklocal = None
                if path and client.lease is not None:
                    try:
                        with open(path, "w", encoding="utf-8") as f:
                            json.dump(client.lease.to_dict(), f)
                    except OSError as exc:
                        log.warning("dhcp: cannot remember the lease in %s: %s", path, exc)

        self.dhcp = Dhcp4Client(self.stack, iface, hostname="pytcp-green", remembered=remembered, on_change=changed)
        self.dhcp.start(self.runtime.now())
        self.runtime.kick()
        linklocal = bool(self.stack.sysctl.int("net.ipv4.linklocal.enable"))
        wait = min(DHCP_WAIT, self.stack.sysctl.float("net.ipv4.linklocal.dhcp_timeout")) if linklocal else DHCP_WAIT
        if not bound.wait(timeout=wait):
            if linklocal:
                log.warning("dhcp: no lease after %.0f s; configuring a link-local address (RFC 3927) while the "
                            "client keeps trying", wait)
                self._start_linklocal(iface)
            else:
                log.warning("dhcp: no lease after %.0f s; going on without an address (the client keeps trying)",
                            wait)

    def _start_linklocal(self, iface: Interface) -> None:
        """Claim a 169.254/16 address (RFC 3927) and wait, bounded, until probing found one."""
        from gevent.event import Event

        from pytcp_green.stack.ipv4.linklocal import LinkLocal

        claimed = Event()
        self.linklocal = LinkLocal(self.stack, iface, lambda address: claimed.set() if address else None)
        self.linklocal.start(self.runtime.now())
        self.runtime.kick()
        sysctl = self.stack.sysctl
        bound = (sysctl.float("net.ipv4.acd.probe_wait") + sysctl.int("net.ipv4.acd.probe_num")
                 * sysctl.float("net.ipv4.acd.probe_max") + sysctl.float("net.ipv4.acd.announce_wait") + 5.0)
        if not claimed.wait(timeout=bound):
            log.warning("linklocal: no address claimed after %.0f s; going on (it keeps trying)", bound)

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

    def _start_ip6(self, iface: Interface) -> None:
        """IPv6 on the link: link-local + DAD + MLD, SLAAC unless turned off, the --ip6 addresses."""
        opts, stack = self.options, self.stack
        now = self.runtime.now()
        ethernet = iface.kind is LinkKind.ETHERNET
        stack.enable_ip6(iface, slaac=ethernet if opts.slaac is None else (opts.slaac and ethernet), now=now)
        # The lab's own address is chosen here, not entered by a user, so it may be optimistic
        # (RFC 4429 §3 advises against optimistic DAD only for manually entered addresses).
        optimistic = stack.sysctl.int("net.ipv6.conf.default.optimistic_dad") > 0
        if opts.ip6:
            for addr6 in opts.ip6:
                stack.add_ip6(iface, addr6, now=now)
        elif opts.lab:
            stack.add_ip6(iface, LAB_STACK_IP6, now=now, optimistic=optimistic)
        if opts.gateway6:
            gateway = ipaddress.IPv6Address(opts.gateway6.split("%", 1)[0])
            stack.ip6.set_gateway(gateway, iface if gateway.is_link_local else None)

    def _wait_dad(self, iface: Interface) -> None:
        """Wait, bounded, until DAD (RFC 4862 §5.4) ended for every tentative address, so a program
        started next has its addresses (a tentative address cannot be a source).  Optimistic ones
        (RFC 4429) are usable already: nothing to wait for unless a user gave static addresses."""
        from gevent.event import Event

        ip6 = self.stack.ip6
        if not ip6.tentative(iface):
            return
        done = Event()

        def check(_: object) -> None:
            if not ip6.tentative(iface):
                done.set()

        ip6.dad_listeners.append(check)
        try:
            if not done.wait(timeout=DAD_WAIT):
                log.warning("ipv6: duplicate address detection not finished after %.0f s; going on", DAD_WAIT)
        finally:
            ip6.dad_listeners.remove(check)
        for addr in ip6.ifs[iface].addrs:
            if addr.state.value == "duplicate":
                log.warning("ipv6: %s is in use on the link (DAD); not using it", addr.interface)

    @property
    def faults(self) -> Faults:
        """Live faults on the link (:mod:`pytcp_green.faults`): ``host.faults.add("latency", delay="50ms")``."""
        if self._faults is None:
            if self.link is None:
                raise RuntimeError("faults need a link: this host has only its loopback interface")
            self._faults = Faults(self.runtime, self.link, seed=self._seed or 0)
        return self._faults

    @property
    def stack_ip6(self) -> ipaddress.IPv6Address | None:
        """The first usable global IPv6 address (static first, then SLAAC), or None."""
        if self.iface is None or self.iface not in self.stack.ip6.ifs:
            return None
        for addr in self.stack.ip6.ifs[self.iface].addrs:
            if addr.usable and addr.origin != "link":
                return addr.interface.ip
        return None

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
        stack_ip6 = self.stack_ip6
        if stack_ip6 is not None:
            env["PYTCP_GREEN_STACK_IP6"] = str(stack_ip6)
        if self.lab is not None and self.lab.kernel_ip6 is not None:
            env["PYTCP_GREEN_PEER_IP6"] = str(self.lab.kernel_ip6.ip)
        elif self.options.gateway6:
            env["PYTCP_GREEN_PEER_IP6"] = self.options.gateway6
        if self.control is not None:
            env[ENV_SOCKET] = self.control.path
        return env

    def release_dhcp(self) -> None:
        """Give the DHCP lease back (RFC 2131 §4.4.6); waits, bounded, for the RELEASE to leave."""
        client, self.dhcp = self.dhcp, None
        runtime = getattr(self, "runtime", None)
        if client is None or runtime is None or not runtime.running:
            return
        client.release(runtime.now())
        runtime.kick()
        arp = client.iface.arp
        with gevent.Timeout(3.0, False):  # the server's MAC may need resolving first
            while arp is not None and any(e.queue for e in arp.entries.values()):
                gevent.sleep(0.01)

    def close(self) -> None:
        if getattr(self, "control", None) is not None:
            assert self.control is not None
            self.control.close()
            self.control = None
        if getattr(self, "dhcp", None) is not None:
            try:
                self.release_dhcp()
            except Exception:  # closing must go on whatever the release did
                log.exception("dhcp: release failed")
        runtime = getattr(self, "runtime", None)
        if runtime is not None:
            runtime.stop()
        if getattr(self, "dnsmasq", None) is not None:
            assert self.dnsmasq is not None
            self.dnsmasq.stop()
            self.dnsmasq = None
        for dev in self.devices:
            dev.close()
        self.devices.clear()
        if self.pcap is not None:
            self.pcap.close()
            self.pcap = None
        if self.lab is not None:
            lab, self.lab = self.lab, None
            lab.__exit__(None, None, None)
        if getattr(self, "_workdir", None):
            import shutil

            assert self._workdir is not None
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> Host:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
