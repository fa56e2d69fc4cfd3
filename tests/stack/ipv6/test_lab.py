"""IPv6 against the Linux kernel in a lab namespace: SLAAC from radvd, DAD, ping6, big UDP, MLDv2, tshark."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import gevent
import pytest
from lab.helpers import run, start_kernel_udp_peer

from pytcp_green.cli import in_thread
from pytcp_green.green.sockets import GreenSocket
from pytcp_green.host import Host, StackOptions
from pytcp_green.stack.ipv6.addrconf import eui64_iid
from pytcp_green.stack.sockbase import AF_INET6
from pytcp_green.stack.stack import SOCK_DGRAM, SOCK_STREAM

from .helpers import PEER_IP6 as KERNEL_IP6
from .helpers import STACK_IP6

pytestmark = pytest.mark.lab


def wait_for(host: Host, predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait (woken by every core entry, see Runtime.wait_until) until ``predicate`` holds; fail after ``timeout``."""
    assert host.runtime.wait_until(predicate, timeout), f"timed out waiting for {what}"


def tshark(pcap: Path, display_filter: str, fields: list[str] | None = None) -> list[str]:
    argv = ["tshark", "-r", str(pcap), "-Y", display_filter]
    if fields:
        argv += ["-T", "fields"]
        for name in fields:
            argv += ["-e", name]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [line for line in out.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    from pytcp_green.lab import lab_unavailable_reason
    from pytcp_green.lab.radvd import Radvd

    reason = lab_unavailable_reason()
    if reason:
        pytest.skip(reason)
    if shutil.which("radvd") is None:
        pytest.skip("radvd is not installed")
    workdir = tmp_path_factory.mktemp("ip6lab")
    with Host(StackOptions(lab=True, pcap=str(workdir / "stack.pcap"))) as h:
        assert h.lab is not None and h.iface is not None and h.pcap is not None
        radvd = Radvd(h.lab, workdir)
        radvd.start()
        try:
            yield h
        finally:
            in_thread(radvd.stop)


def slaac_address(h: Host) -> str:
    assert h.iface is not None and h.iface.mac is not None
    return str(ipaddress.IPv6Address(ipaddress.IPv6Address("fd00:77::").packed[:8] + eui64_iid(h.iface.mac)))


def link_local(h: Host) -> str:
    assert h.iface is not None and h.iface.mac is not None
    return str(ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + eui64_iid(h.iface.mac)))


def test_slaac_from_radvd_and_the_kernel_pings_both_addresses(host: Host) -> None:
    glob, ll = slaac_address(host), link_local(host)
    stack = host.stack
    wanted = [ipaddress.IPv6Address(a).packed for a in (glob, ll, STACK_IP6)]
    # Optimistic (RFC 4429): usable at once, while DAD still runs on the wire for each.
    wait_for(host, lambda: all(stack.is_local(a) for a in wanted) and stack.stats["ip6.dad.ok"] >= 3, 40,
             "the link-local, static and SLAAC addresses, DAD done")
    assert stack.stats["nd.rx.ra"] >= 1
    assert host.env()["PYTCP_GREEN_PEER_IP6"] == KERNEL_IP6
    assert host.lab is not None
    dev = host.lab.device.name
    for target in (glob, f"{ll}%{dev}", STACK_IP6):
        out = run(host, ["ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", target])
        assert "3 packets transmitted, 3 received" in out.stdout, out.stdout + out.stderr
    assert host.pcap is not None
    host.pcap.flush()
    pcap = Path(host.options.pcap or "")
    # DAD on the wire: NS from :: for the link-local, the static and the SLAAC address.
    targets = set(tshark(pcap, "icmpv6.type == 135 && ipv6.src == ::", ["icmpv6.nd.ns.target_address"]))
    assert {ll, STACK_IP6, glob} <= targets, targets
    # A router solicitation, unless radvd's first unsolicited advertisement came before it was due.
    assert stack.stats["nd.tx.rs"] == 0 or tshark(pcap, "icmpv6.type == 133")


def test_kernel_ping6_with_4000_bytes_is_answered(host: Host) -> None:
    out = run(host, ["ping", "-6", "-c", "5", "-i", "0.2", "-s", "4000", "-W", "2", STACK_IP6])
    assert "5 packets transmitted, 5 received" in out.stdout, out.stdout + out.stderr
    assert host.stack.stats["ip6.reasm.ok"] >= 5 and host.stack.stats["ip6.tx.fragment"] >= 15


def test_60k_udp_datagrams_both_ways_intact(host: Host) -> None:
    assert host.lab is not None
    rounds = 5
    proc, port = start_kernel_udp_peer(host.lab, KERNEL_IP6, rounds, 20)
    sock = GreenSocket(host.runtime, host.stack.socket(AF_INET6, SOCK_DGRAM), timeout=20)
    try:
        for _ in range(rounds):
            payload = os.urandom(60000)
            sock.sendto(payload, (KERNEL_IP6, port))
            reply, source = sock.recvfrom(65535)
            assert source[:2] == (KERNEL_IP6, port)
            assert reply == hashlib.sha256(payload).digest() + payload[::-1]
    finally:
        sock.close()
    assert gevent.spawn(in_thread, proc.wait, 20).get() == 0


KERNEL_TCP6_CLIENT = """
import hashlib, socket, sys
data = bytes(range(256)) * 4096
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
c.sendall(data)
c.shutdown(socket.SHUT_WR)
got = b""
while chunk := c.recv(65536):
    got += chunk
print(got.decode() == hashlib.sha256(data).hexdigest())
"""


def test_tcp_over_ipv6_from_the_kernel(host: Host) -> None:
    listener = GreenSocket(host.runtime, host.stack.socket(AF_INET6, SOCK_STREAM), timeout=60)
    listener.bind(("::", 8086))
    listener.listen(4)

    def serve() -> None:
        conn, peer = listener.accept()
        assert peer[0] == KERNEL_IP6
        digest = hashlib.sha256()
        while chunk := conn.recv(65536):
            digest.update(chunk)
        conn.sendall(digest.hexdigest().encode())
        conn.close()

    server = gevent.spawn(serve)
    try:
        out = run(host, [sys.executable, "-c", KERNEL_TCP6_CLIENT, STACK_IP6, "8086"])
        server.get(timeout=30)
        assert out.stdout.strip() == "True", out.stdout + out.stderr
    finally:
        server.kill()
        listener.close()


MLD_QUERY = """
import sys
from scapy.all import Ether, sendp
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop, RouterAlert, ICMPv6MLQuery2
q = Ether(dst="33:33:00:00:00:01") / IPv6(src="fe80::1", dst="ff02::1", hlim=1) / IPv6ExtHdrHopByHop(
    options=[RouterAlert(value=0)]) / ICMPv6MLQuery2(mrd=500)
sendp(q, iface=sys.argv[1], verbose=False)
"""


def test_mldv2_reports_for_solicited_node_groups_and_query_answered(host: Host) -> None:
    assert host.lab is not None and host.pcap is not None
    pcap = Path(host.options.pcap or "")
    before = host.stack.stats["mld.tx.report"]
    out = run(host, [sys.executable, "-c", MLD_QUERY, host.lab.device.name])
    assert out.returncode == 0, out.stderr
    wait_for(host, lambda: host.stack.stats["mld.rx.query"] >= 1 and host.stack.stats["mld.tx.report"] > before, 10,
             "the answer to the MLD query")
    host.pcap.flush()
    groups = set()
    for line in tshark(pcap, "icmpv6.type == 143", ["icmpv6.mldr.mar.multicast_address"]):
        groups.update(line.split(","))
    assert {"ff02::1:ff00:2"} <= groups, groups
    ll_low24 = ipaddress.IPv6Address(link_local(host)).packed[13:]
    assert str(ipaddress.IPv6Address(b"\xff\x02" + bytes(9) + b"\x01\xff" + ll_low24)) in groups
    # the answer to the general query: a current-state record MODE_IS_EXCLUDE (2)
    assert tshark(pcap, "icmpv6.type == 143 && icmpv6.mldr.mar.record_type == 2")


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_finds_no_malformed_packet(host: Host) -> None:
    run(host, ["ping", "-6", "-c", "10", "-i", "0.05", "-s", "3000", "-W", "2", STACK_IP6])
    assert host.pcap is not None
    host.pcap.flush()
    pcap = Path(host.options.pcap or "")
    prefs = ["-o", "udp.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE"]
    # The big UDP test carries random bytes, which UDP/TCP heuristic dissectors (RTCP, QUIC...) may take
    # for their protocol and call malformed: those protocols are disabled, so only our headers are judged.
    table = subprocess.run(["tshark", "-G", "heuristic-decodes"], capture_output=True, text=True, timeout=60)
    for line in table.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in ("udp", "tcp") and parts[2] == "T":
            prefs += ["--disable-protocol", parts[1]]
    bad = subprocess.run(["tshark", "-r", str(pcap), *prefs, "-Y", "_ws.malformed || _ws.expert.severity >= error"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 0, bad.stderr
    assert bad.stdout.strip() == "", bad.stdout
    assert len(tshark(pcap, "ipv6")) > 50


def test_dad_detects_the_address_the_kernel_holds(tmp_path: Path) -> None:
    with Host(StackOptions(lab=True, ip6=[f"{KERNEL_IP6}/64"], slaac=False, pcap=str(tmp_path / "dad.pcap"))) as h:
        wait_for(h, lambda: h.stack.stats["ip6.dad.duplicate"] >= 1, 15, "DAD to find the duplicate")
        packed = ipaddress.IPv6Address(KERNEL_IP6).packed
        assert not h.stack.is_local(packed)
        assert h.stack.ip6.select_source(packed) != packed
        assert h.pcap is not None
        h.pcap.flush()
        # the kernel defended it with a neighbour advertisement
        assert tshark(tmp_path / "dad.pcap", f"icmpv6.type == 136 && icmpv6.nd.na.target_address == {KERNEL_IP6}")


def test_curl_6_on_the_kernel_side_fetches_from_the_stack(host: Host) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    listener = GreenSocket(host.runtime, host.stack.socket(AF_INET6, SOCK_STREAM), timeout=30)
    listener.bind(("::", 8087))
    listener.listen(4)
    body = b"served over IPv6 by pytcp_green\n" * 1000

    def serve() -> None:
        conn, _ = listener.accept()
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(4096)
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        conn.close()

    server = gevent.spawn(serve)
    try:
        out = run(host, ["curl", "-6", "-s", "-m", "20", f"http://[{STACK_IP6}]:8087/"])
        server.get(timeout=30)
        assert out.stdout.encode() == body, out.stderr
    finally:
        server.kill()
        listener.close()


FETCH6 = """
import os, urllib.request
print(urllib.request.urlopen(f"http://[{os.environ['PYTCP_GREEN_PEER_IP6']}]:8000/", timeout=20).status)
"""


def test_patched_program_fetches_from_a_kernel_http_server_over_ipv6(tmp_path: Path) -> None:
    from pytcp_green.lab import lab_unavailable_reason

    if lab_unavailable_reason():
        pytest.skip(lab_unavailable_reason() or "")
    script = tmp_path / "fetch6.py"
    script.write_text(FETCH6)
    argv = [sys.executable, "-m", "pytcp_green", "run", "--lab", "--wait-port", "8000", "--peer",
            f"{sys.executable} -m http.server --bind :: 8000", str(script)]
    # in a worker thread: the module's stack keeps answering its lab meanwhile
    out = in_thread(subprocess.run, argv, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("200"), out.stdout + out.stderr


def test_optimistic_addresses_answer_the_kernel_at_once_and_a_taken_one_is_withdrawn(tmp_path: Path) -> None:
    from pytcp_green.lab import lab_unavailable_reason
    from pytcp_green.stack.ipv6.ip import AddrState

    if lab_unavailable_reason():
        pytest.skip(lab_unavailable_reason() or "")
    pcap = tmp_path / "optimistic.pcap"
    with Host(StackOptions(lab=True, slaac=False, pcap=str(pcap))) as h:
        assert h.iface is not None and h.lab is not None and h.pcap is not None
        # RFC 4429: the Host did not wait for DAD; the lab address is in use while DAD still runs.
        assert h.stack.ip6.local[ipaddress.IPv6Address(STACK_IP6).packed].state is AddrState.OPTIMISTIC
        out = run(h, ["ping", "-6", "-c", "1", "-W", "5", STACK_IP6])
        assert "1 packets transmitted, 1 received" in out.stdout, out.stdout + out.stderr
        # The kernel's own address given to the stack as optimistic: DAD finds it, it is withdrawn.
        taken = ipaddress.IPv6Address(KERNEL_IP6).packed
        h.stack.add_ip6(h.iface, f"{KERNEL_IP6}/64", h.runtime.now(), optimistic=True)
        wait_for(h, lambda: h.stack.stats["ip6.dad.optimistic_withdrawn"] >= 1, 15, "DAD to withdraw the address")
        assert not h.stack.is_local(taken)
        wait_for(h, lambda: h.stack.stats["ip6.dad.ok"] >= 2, 15, "DAD of the link-local and the lab address")
        h.pcap.flush()
        # The first answers to the kernel's solicitation for the optimistic address had Override clear.
        flags = tshark(pcap, f"icmpv6.type == 136 && icmpv6.nd.na.target_address == {STACK_IP6}"
                             f" && ipv6.src == {STACK_IP6}", ["icmpv6.nd.na.flag.o"])
        assert flags and flags[0] in ("0", "False"), flags
