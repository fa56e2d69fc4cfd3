"""RFC 3927 against the kernel: --dhcp with a DHCP server that has nothing to offer on the link ends in a probed
169.254/16 address that the kernel can ping; the probes are on the wire and tshark finds nothing malformed."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from lab.helpers import run, tshark_problems

from pytcp_green.host import Host, StackOptions

pytestmark = [pytest.mark.lab, pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="dnsmasq is not installed")]

FAST = {
    "net.ipv4.acd.probe_wait": "0.2", "net.ipv4.acd.probe_min": "0.1", "net.ipv4.acd.probe_max": "0.2",
    "net.ipv4.acd.announce_wait": "0.3", "net.ipv4.acd.announce_interval": "0.1",
    "net.ipv4.linklocal.dhcp_timeout": "3",
}


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    pcap = tmp_path_factory.mktemp("ll") / "ll.pcap"
    # dnsmasq runs, but its only range is on another subnet: it offers nothing on this link.
    with Host(StackOptions(lab=True, dhcp=True, pcap=str(pcap), sysctl=dict(FAST)),
              dnsmasq={"first": "10.99.0.100", "last": "10.99.0.199"}) as h:
        yield h


def test_no_lease_gives_a_link_local_address_the_kernel_reaches(host: Host) -> None:
    assert host.linklocal is not None and host.linklocal.address is not None
    address = host.stack_ip4
    assert address is not None and address.network == ipaddress.IPv4Network("169.254.0.0/16")
    assert host.stack.stats["linklocal.claimed"] == 1
    assert host.lab is not None
    # The kernel side gets a link-local address too: with only 169.254/16 the stack reaches only that prefix.
    kernel_ll = next(a for a in ("169.254.254.254", "169.254.254.253") if a != str(address.ip))
    run(host, ["ip", "address", "add", f"{kernel_ll}/16", "dev", host.lab.device.name])
    out = run(host, ["ping", "-c", "2", "-i", "0.2", "-W", "3", "-I", kernel_ll, str(address.ip)])
    assert "2 packets transmitted, 2 received" in out.stdout, out.stdout + out.stderr


def test_probes_on_the_wire_and_tshark_clean(host: Host) -> None:
    assert host.pcap is not None and host.options.pcap is not None and host.stack_ip4 is not None
    host.pcap.flush()
    out = subprocess.run(["tshark", "-r", host.options.pcap, "-Y", f"arp.src.proto_ipv4 == 0.0.0.0 && "
                          f"arp.dst.proto_ipv4 == {host.stack_ip4.ip}", "-T", "fields", "-e", "arp.opcode"],
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["1", "1", "1"], out.stdout + out.stderr
    assert tshark_problems(host.options.pcap) == ""
