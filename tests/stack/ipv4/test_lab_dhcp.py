"""The DHCPv4 client against dnsmasq in the lab: lease, renew, rebind across a dnsmasq restart, release."""

from __future__ import annotations

import ipaddress
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab.helpers import poll_external, run, tshark_problems

from pytcp_green.cli import in_thread
from pytcp_green.host import Host, StackOptions
from pytcp_green.stack.ipv4.dhcp import Dhcp4State

pytestmark = [pytest.mark.lab, pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="dnsmasq is not installed")]

T1, T2 = 3, 6
SHORT = {
    "net.ipv4.acd.probe_wait": "0.1", "net.ipv4.acd.probe_min": "0.1", "net.ipv4.acd.probe_max": "0.2",
    "net.ipv4.acd.announce_wait": "0.3", "net.ipv4.acd.announce_interval": "0.1",
    "net.ipv4.dhcp.renew_min_interval": "0.5", "net.ipv4.dhcp.renew_max_interval": "1",
}


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    tmp = tmp_path_factory.mktemp("dhcp")
    opts = StackOptions(lab=True, dhcp=True, pcap=str(tmp / "dhcp.pcap"), sysctl=dict(SHORT),
                        dhcp_lease_file=str(tmp / "lease.json"))
    with Host(opts, dnsmasq={"t1": T1, "t2": T2}) as h:
        yield h


def test_lease_configures_address_router_and_dns(host: Host) -> None:
    assert host.dhcp is not None and host.dhcp.state is Dhcp4State.BOUND
    address = host.stack_ip4
    assert address is not None and 100 <= address.ip.packed[3] <= 199  # dnsmasq hands out .100-.199
    assert address.network == ipaddress.IPv4Network("198.18.0.0/24")
    assert host.stack.dns_servers == ["198.18.0.1"]
    route = host.stack.ip4.routes.lookup(bytes([203, 0, 113, 1]))
    assert route is not None and route.gateway == bytes([198, 18, 0, 1])
    assert host.dnsmasq is not None
    assert any(str(address.ip) in line for line in host.dnsmasq.leases())
    assert json.loads(Path(host.options.dhcp_lease_file or "").read_text())["address"] == str(address)
    out = run(host, ["ping", "-c", "1", "-W", "2", str(address.ip)])
    assert "1 received" in out.stdout


def test_renews_at_t1(host: Host) -> None:
    before = host.stack.stats["dhcp4.renewed"]
    assert host.runtime.wait_until(lambda: host.stack.stats["dhcp4.renewed"] > before, T1 + 10)
    assert host.dhcp is not None and host.dhcp.state is Dhcp4State.BOUND


def test_rebinds_after_dnsmasq_is_stopped_past_t1_and_restarted(host: Host) -> None:
    assert host.dnsmasq is not None and host.dhcp is not None
    address = host.stack_ip4
    in_thread(host.dnsmasq.stop)
    dhcp = host.dhcp
    assert host.runtime.wait_until(lambda: dhcp.state is Dhcp4State.REBINDING, T2 + 10)
    assert host.stack.stats["dhcp4.tx.request"] > 0
    host.dnsmasq.start()
    assert host.runtime.wait_until(lambda: dhcp.state is Dhcp4State.BOUND, 20)
    assert host.stack.stats["dhcp4.rebound"] >= 1
    assert host.stack_ip4 == address  # the same lease, kept through the outage


def test_release_is_visible_in_the_lease_file(host: Host) -> None:
    assert host.dnsmasq is not None and host.stack_ip4 is not None
    address = str(host.stack_ip4.ip)
    dnsmasq = host.dnsmasq
    assert any(address in line for line in dnsmasq.leases())
    host.release_dhcp()
    assert host.stack_ip4 is None
    assert poll_external(lambda: not any(address in line for line in dnsmasq.leases()), 10), dnsmasq.leases()
    assert "DHCPRELEASE" in dnsmasq.log()


def test_capture_has_no_malformed_frame(host: Host) -> None:
    assert host.pcap is not None and host.options.pcap is not None
    host.pcap.flush()
    assert tshark_problems(host.options.pcap) == ""
