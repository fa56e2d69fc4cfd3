"""Multicast and ping against the Linux kernel: a stack UDP socket joined to 239.1.2.3 receives what the kernel
sends to the group (and the kernel's member receives ours), IGMPv3 reports on the wire that tshark decodes
cleanly, a directed-broadcast ping is ignored per sysctl, and ``pytcp-green ping --lab`` (3 replies; -s 4000)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab.helpers import python, run, tshark_problems

from pytcp_green.green.sockets import GreenSocket
from pytcp_green.host import Host, StackOptions
from pytcp_green.stack.datagram.udp import UdpSocket
from pytcp_green.stack.sockbase import AF_INET
from pytcp_green.stack.stack import SOCK_DGRAM

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
GROUP = "239.1.2.3"

KERNEL_SENDER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
for i in range(3):
    s.sendto(b"kernel to group %d" % i, (sys.argv[1], 5007))
"""

KERNEL_MEMBER = """
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", 5008))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, struct.pack("4s4s", socket.inet_aton(sys.argv[1]),
             socket.inet_aton("198.18.0.1")))
s.settimeout(20)
print("ready", flush=True)
data, peer = s.recvfrom(1000)
print(data.decode(), peer[0], flush=True)
"""


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    pcap = tmp_path_factory.mktemp("mcast") / "mcast.pcap"
    with Host(StackOptions(lab=True, pcap=str(pcap))) as h:
        assert h.lab is not None
        run(h, ["ip", "route", "add", "239.0.0.0/8", "dev", h.lab.device.name])
        yield h


def test_stack_member_receives_kernel_multicast_and_reports_igmp(host: Host) -> None:
    core = host.stack.socket(AF_INET, SOCK_DGRAM)
    assert isinstance(core, UdpSocket)
    sock = GreenSocket(host.runtime, core, timeout=20.0)
    sock.bind(("", 5007))
    sock.call(lambda now: core.add_membership(socket.inet_aton(GROUP), bytes(4), now), 0.0)
    assert host.stack.stats["igmp.tx.v3_report"] >= 1
    out = python(host, KERNEL_SENDER, GROUP)
    assert out.returncode == 0, out.stderr
    got = sorted(sock.recvfrom(1000)[0] for _ in range(3))
    assert got == [b"kernel to group %d" % i for i in range(3)]
    sock.call(lambda now: core.drop_membership(socket.inet_aton(GROUP), bytes(4), now), 0.0)
    sock.close()
    assert host.stack.stats["igmp.leave"] == 1


def test_kernel_member_receives_stack_multicast(host: Host) -> None:
    assert host.lab is not None
    member = host.lab.popen([sys.executable, "-c", KERNEL_MEMBER, "239.1.2.4"], stdout=subprocess.PIPE, text=True)
    try:
        from pytcp_green.cli import in_thread

        assert member.stdout is not None
        assert in_thread(member.stdout.readline).strip() == "ready"
        sock = GreenSocket(host.runtime, host.stack.socket(AF_INET, SOCK_DGRAM), timeout=5.0)
        sock.sendto(b"stack to group", ("239.1.2.4", 5008))
        line = in_thread(member.stdout.readline).strip()
        assert line == "stack to group 198.18.0.2"
        sock.close()
    finally:
        member.kill()
        member.wait()


def test_directed_broadcast_ping_follows_the_sysctl(host: Host) -> None:
    before = host.stack.stats["icmp4.drop.echo_ignored"]
    run(host, ["ping", "-b", "-c", "1", "-W", "1", "198.18.0.255"])
    assert host.stack.stats["icmp4.drop.echo_ignored"] == before + 1
    host.stack.sysctl["net.ipv4.icmp_echo_ignore_broadcasts"] = 0
    try:
        out = run(host, ["ping", "-b", "-c", "1", "-W", "3", "198.18.0.255"])
        assert "198.18.0.2" in out.stdout, out.stdout + out.stderr
    finally:
        host.stack.sysctl["net.ipv4.icmp_echo_ignore_broadcasts"] = 1


QUERIER = """
import sys
from scapy.layers.igmp import IGMPv3_MQ
from scapy.layers.inet import IP, IPOption_Router_Alert
from scapy.layers.l2 import Ether
from scapy.sendrecv import sendp
group = sys.argv[2]
dst = "224.0.0.1" if group == "0.0.0.0" else group
octets = [int(x) for x in dst.split(".")]
mac = "01:00:5e:%02x:%02x:%02x" % (octets[1] & 0x7F, octets[2], octets[3])  # RFC 1112 6.4
sendp(Ether(dst=mac) / IP(src="198.18.0.1", dst=dst, ttl=1, proto=2, options=[IPOption_Router_Alert()])
      / IGMPv3_MQ(mrcode=5, gaddr=group), iface=sys.argv[1], verbose=False)
"""


@pytest.mark.parametrize("queried", ["0.0.0.0", "239.1.2.5"])
def test_queries_from_the_wire_are_answered(host: Host, queried: str) -> None:
    assert host.lab is not None
    core = host.stack.socket(AF_INET, SOCK_DGRAM)
    assert isinstance(core, UdpSocket)
    sock = GreenSocket(host.runtime, core, timeout=5.0)
    sock.bind(("", 5009))
    sock.call(lambda now: core.add_membership(socket.inet_aton("239.1.2.5"), bytes(4), now), 0.0)
    stats = host.stack.stats
    queries, answers = stats["igmp.rx.query_v3"], stats["igmp.tx.query_answer"]
    out = python(host, QUERIER, host.lab.device.name, queried)
    assert out.returncode == 0, out.stderr
    # The answer leaves within the query's Max Resp Time (0.5 s); the bound only catches a hang.
    assert host.runtime.wait_until(lambda: stats["igmp.tx.query_answer"] > answers, 10.0)
    assert stats["igmp.rx.query_v3"] == queries + 1
    sock.close()


def test_igmp_on_the_wire_and_tshark_clean(host: Host) -> None:
    assert host.pcap is not None
    host.pcap.flush()
    path = host.options.pcap
    assert path is not None
    decoded = subprocess.run(["tshark", "-r", path, "-Y", "igmp && ip.src == 198.18.0.2", "-T", "fields",
                              "-e", "igmp.version",
                              "-e", "igmp.type", "-e", "ip.ttl", "-e", "ip.opt.ra"],
                             capture_output=True, text=True, timeout=120)
    rows = [line.split("\t") for line in decoded.stdout.splitlines() if line.strip()]
    assert rows, decoded.stderr
    assert all(r[0] == "3" and r[1] == "0x22" and r[2] == "1" for r in rows), rows
    records = subprocess.run(["tshark", "-r", path, "-Y", "igmp && ip.src == 198.18.0.2", "-T", "fields",
                              "-e", "igmp.record_type", "-e", "igmp.maddr"], capture_output=True, text=True,
                             timeout=120).stdout
    seen = {(t, g) for line in records.splitlines() for t, g in zip(*(f.split(",") for f in line.split("\t")),
                                                                        strict=False)}
    # joins (CHANGE_TO_EXCLUDE 4), leaves (CHANGE_TO_INCLUDE 3) and answers to the queries (MODE_IS_EXCLUDE 2)
    assert {("4", GROUP), ("3", GROUP), ("2", "239.1.2.5")} <= seen, records
    assert tshark_problems(path) == ""


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTCP_GREEN_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "pytcp_green", "ping", *args], capture_output=True, text=True,
                          timeout=120, env=env, cwd=REPO)


@pytest.mark.parametrize("size", [56, 4000])
def test_cli_ping_gets_replies(size: int, tmp_path: Path) -> None:
    pcap = tmp_path / "ping.pcap"
    out = _cli("--lab", "--pcap", str(pcap), "-c", "3", "-i", "0.2", "-s", str(size), "198.18.0.1")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3 packets transmitted, 3 received, 0% packet loss" in out.stdout
    assert out.stdout.count(f"{size + 8} bytes from 198.18.0.1: icmp_seq=") == 3
    if size > 1500:  # fragmented both ways
        frags = subprocess.run(["tshark", "-r", str(pcap), "-Y", "ip.flags.mf == 1", "-T", "fields", "-e", "ip.src"],
                               capture_output=True, text=True, timeout=120).stdout.split()
        assert {"198.18.0.1", "198.18.0.2"} <= set(frags)
    assert tshark_problems(pcap) == ""


def test_cli_ping_with_no_answer_exits_1() -> None:
    out = _cli("--lab", "-c", "1", "-W", "1", "198.18.0.77")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "1 packets transmitted, 0 received" in out.stdout


def test_tos_bits_on_the_wire(host: Host) -> None:
    """IP_TOS as tshark reads it: DSCP EF + ECT(1) on a datagram, DSCP AF11 on a TCP SYN (ECN bits TCP's own)."""
    from pytcp_green.stack.stack import SOCK_STREAM

    core = host.stack.socket(AF_INET, SOCK_DGRAM)
    core.tos = 0xB9
    udp = GreenSocket(host.runtime, core, timeout=5.0)
    udp.sendto(b"tos", ("198.18.0.1", 5999))
    udp.close()
    tcp_core = host.stack.socket(AF_INET, SOCK_STREAM)
    tcp_core.tos = 0x28
    tcp = GreenSocket(host.runtime, tcp_core, timeout=5.0)
    with pytest.raises(ConnectionRefusedError):
        tcp.connect(("198.18.0.1", 5998))
    tcp.close()
    assert host.pcap is not None and host.options.pcap is not None
    host.pcap.flush()

    def fields(filter_: str) -> list[str]:
        out = subprocess.run(["tshark", "-r", str(host.options.pcap), "-Y", filter_, "-T", "fields",
                              "-e", "ip.dsfield.dscp", "-e", "ip.dsfield.ecn"], capture_output=True, text=True,
                             timeout=120)
        return [line for line in out.stdout.splitlines() if line.strip()]

    assert fields("ip.src == 198.18.0.2 && udp.dstport == 5999 && !icmp") == ["46\t1"]
    assert fields("ip.src == 198.18.0.2 && tcp.dstport == 5998 && tcp.flags.syn == 1 && !icmp") == ["10\t0"]


MEMBER_SCRIPT = """
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("", 5010))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             struct.pack("4s4s", socket.inet_aton("239.1.2.6"), socket.inet_aton("0.0.0.0")))
s.settimeout(30)
data, peer = s.recvfrom(1000)
print("got", data.decode(), peer[0])
"""

PEER_SENDER = ("ip route add 239.0.0.0/8 dev $(ls /sys/class/net | grep pgt) && python3 -c 'import socket, time\n"
               "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
               "for _ in range(300):\n    s.sendto(b\"hello group\", (\"239.1.2.6\", 5010)); time.sleep(0.1)'")


def test_unmodified_program_joins_with_setsockopt_and_receives_from_the_kernel(tmp_path: Path) -> None:
    script = tmp_path / "member.py"
    script.write_text(MEMBER_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTCP_GREEN_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-m", "pytcp_green", "run", "--lab", "--peer", PEER_SENDER, str(script)],
                         capture_output=True, text=True, timeout=120, env=env, cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "got hello group 198.18.0.1" in out.stdout
