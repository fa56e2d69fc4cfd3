"""RFC 5227 against the Linux kernel: a held address is not used, arping is answered, a claim is defended."""

from __future__ import annotations

import ipaddress
import shutil
from collections.abc import Iterator

import pytest
from gevent.event import AsyncResult
from lab.helpers import python, run, tshark_problems

from pytcp_green.host import Host, StackOptions

pytestmark = pytest.mark.lab

FAST = {
    "net.ipv4.acd.enable": "1",
    "net.ipv4.acd.probe_wait": "0.2",
    "net.ipv4.acd.probe_min": "0.1",
    "net.ipv4.acd.probe_max": "0.2",
    "net.ipv4.acd.announce_wait": "0.5",
    "net.ipv4.acd.announce_interval": "0.2",
    "net.ipv4.acd.defend_interval": "30",
}


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    # Host probes 198.18.0.2 before using it (acd.enable), so this also checks the happy path.
    pcap = tmp_path_factory.mktemp("arp") / "arp.pcap"
    with Host(StackOptions(lab=True, pcap=str(pcap), sysctl=dict(FAST))) as h:
        yield h


def test_host_probed_its_address_before_using_it(host: Host) -> None:
    stats = host.stack.stats
    assert stats["arp.acd.probe_sent"] == 3 and stats["arp.acd.probe_ok"] == 1
    assert host.stack_ip4 == ipaddress.IPv4Interface("198.18.0.2/24")


def test_address_the_kernel_holds_is_not_used(host: Host) -> None:
    assert host.lab is not None and host.iface is not None
    run(host, ["ip", "address", "add", "198.18.0.7/24", "dev", host.lab.device.name], timeout=10)
    outcome: AsyncResult = AsyncResult()
    host.stack.ip4.probe_address(host.iface, ipaddress.IPv4Interface("198.18.0.7/24"), host.runtime.now(),
                                 lambda ok, _now: outcome.set(ok))
    host.runtime.kick()
    assert outcome.get(timeout=10) is False
    assert ipaddress.IPv4Address("198.18.0.7") not in [a.ip for a in host.iface.ip4]
    assert bytes([198, 18, 0, 7]) not in host.stack.ip4.local


@pytest.mark.skipif(shutil.which("arping") is None, reason="arping (iputils-arping) is not installed")
def test_arping_from_the_kernel_is_answered(host: Host) -> None:
    assert host.lab is not None
    out = run(host, ["arping", "-c", "3", "-w", "10", "-I", host.lab.device.name, "198.18.0.2"], timeout=20)
    assert out.returncode == 0, out.stdout + out.stderr
    mac = host.lab.device.mac
    assert mac is not None
    assert out.stdout.count(f"[{mac.hex(':').upper()}]") == 3, out.stdout


CLAIM = """
import sys, threading
from scapy.all import ARP, Ether, AsyncSniffer, sendp, conf
conf.verb = 0
iface, stack_mac = sys.argv[1], sys.argv[2]
def is_defence(p):
    return ARP in p and p[ARP].psrc == p[ARP].pdst == "198.18.0.2" and p[ARP].hwsrc == stack_mac
started = threading.Event()
sniffer = AsyncSniffer(iface=iface, lfilter=is_defence, count=1, started_callback=started.set)
sniffer.start()
started.wait(10)  # the capture socket is open: the answer to the claim cannot be missed
fake = "02:66:66:66:66:66"
sendp(Ether(src=fake, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=fake, psrc="198.18.0.2", pdst="198.18.0.2"),
      iface=iface)
sniffer.join(timeout=10)
if sniffer.running:
    sniffer.stop()
print(len(sniffer.results or []))
"""


def test_stack_defends_its_address_against_a_conflicting_announcement(host: Host) -> None:
    assert host.lab is not None and host.lab.device.mac is not None
    before = host.stack.stats["arp.acd.defend"]
    out = python(host, CLAIM, host.lab.device.name, host.lab.device.mac.hex(":"), timeout=30)
    assert out.stdout.strip() == "1", out.stdout + out.stderr
    assert host.stack.stats["arp.acd.defend"] == before + 1
    assert host.stack_ip4 == ipaddress.IPv4Interface("198.18.0.2/24")  # defended, still ours
    ping = run(host, ["ping", "-c", "1", "-W", "2", "198.18.0.2"])
    assert "1 received" in ping.stdout


FORGE = """
import sys
from scapy.all import ARP, Ether, sendp, conf
conf.verb = 0
iface, fake = sys.argv[1], "02:66:66:66:66:67"
claim = ARP(op=1, hwsrc=fake, psrc="198.18.0.2", pdst="198.18.0.2")  # an announcement
reply = ARP(op=2, hwsrc=fake, psrc="198.18.0.2", hwdst="ff:ff:ff:ff:ff:ff", pdst="198.18.0.2")  # a forged reply
sendp([Ether(src=fake, dst="ff:ff:ff:ff:ff:ff") / claim, Ether(src=fake, dst="ff:ff:ff:ff:ff:ff") / reply],
      iface=iface)
"""


def test_forged_claims_never_take_a_static_address(host: Host) -> None:
    assert host.lab is not None
    stats = host.stack.stats

    def answered() -> int:  # each claim is either defended or, within DEFEND_INTERVAL, kept without a word
        return stats["arp.acd.defend"] + stats["arp.acd.conflict_kept_static"]

    before = answered()
    out = python(host, FORGE, host.lab.device.name, timeout=30)
    assert out.returncode == 0, out.stderr
    # Two claims within DEFEND_INTERVAL would take a DHCP address; one set by hand stays (RFC 5227 §2.4 (c)).
    assert host.runtime.wait_until(lambda: answered() >= before + 2, 10)
    assert stats["arp.acd.conflict_kept_static"] >= 1
    assert stats["arp.acd.give_up"] == 0
    assert host.stack_ip4 == ipaddress.IPv4Interface("198.18.0.2/24")
    ping = run(host, ["ping", "-c", "1", "-W", "2", "198.18.0.2"])
    assert "1 received" in ping.stdout


def test_capture_has_no_malformed_frame(host: Host) -> None:
    assert host.pcap is not None and host.options.pcap is not None
    host.pcap.flush()
    assert tshark_problems(host.options.pcap) == ""
