"""TapDevice against the Linux kernel: frames we write reach it and its answers come back.

Each exchange runs in a lab namespace (the only place our frames go), built by hand with struct
(see frames.py), and waits by polling the device's fd, never by sleeping.
"""

from __future__ import annotations

import errno
import os
import select
import struct
import subprocess
import sys
from collections.abc import Callable

import pytest

from pytcp_green.lab import Lab
from pytcp_green.link import tap
from pytcp_green.link.device import Device
from pytcp_green.link.tap import open_tap
from pytcp_green.stack.interface import LinkKind, TrustedFrame

from .frames import (
    ETH_P_IP,
    arp_request,
    icmp_echo_request,
    parse_arp_reply,
    parse_icmp_echo_reply,
    transport_checksum_ok,
    wait_for_frame,
)

pytestmark = pytest.mark.lab


def _arp_exchange(lab: Lab) -> None:
    dev = lab.device
    assert dev.mac is not None and lab.kernel_mac is not None
    stack_ip, kernel_ip = str(lab.stack_ip4.ip), str(lab.kernel_ip4.ip)
    dev.write(arp_request(dev.mac, stack_ip, kernel_ip))

    def reply(frame: bytes) -> tuple[bytes, bytes, str, bytes, str] | None:
        parsed = parse_arp_reply(frame)
        return parsed if parsed is not None and parsed[2] == kernel_ip else None

    eth_dst, sha, spa, tha, tpa = wait_for_frame(dev, reply)
    assert (eth_dst, sha, spa, tha, tpa) == (dev.mac, lab.kernel_mac, kernel_ip, dev.mac, stack_ip)


def _ping_exchange(lab: Lab) -> None:
    dev = lab.device
    stack_ip, kernel_ip = str(lab.stack_ip4.ip), str(lab.kernel_ip4.ip)
    payload = os.urandom(56)
    dev.write(icmp_echo_request(stack_ip, kernel_ip, ident=0x4242, seq=7, payload=payload))

    def reply(packet: bytes) -> tuple[str, str, int, int, bytes] | None:
        parsed = parse_icmp_echo_reply(packet)
        return parsed if parsed is not None and parsed[2] == 0x4242 else None

    assert wait_for_frame(dev, reply) == (kernel_ip, stack_ip, 0x4242, 7, payload)


def test_tap_arp_request_gets_the_kernels_reply() -> None:
    with Lab() as lab:
        assert lab.device.kind is LinkKind.ETHERNET
        assert lab.device.mac is not None and lab.device.mac[0] & 0x03 == 0x02  # local, unicast
        assert lab.device.mac != lab.kernel_mac
        _arp_exchange(lab)


def test_tun_icmp_echo_gets_the_kernels_reply() -> None:
    with Lab(tun=True) as lab:
        assert lab.device.kind is LinkKind.IP
        assert lab.device.mac is None and lab.kernel_mac is None
        _ping_exchange(lab)


def test_vnet_hdr_tap_arp_round_trip() -> None:
    with Lab(vnet_hdr=True) as lab:
        assert lab.device.vnet_hdr and lab.device.offload == tap.OFFLOAD_DEFAULT
        _arp_exchange(lab)


def test_vnet_hdr_tun_icmp_round_trip() -> None:
    with Lab(tun=True, vnet_hdr=True) as lab:
        _ping_exchange(lab)


KERNEL_SENDS_UDP_AND_SYN = """
import socket, sys
stack = sys.argv[1]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.sendto(b"checksum me " * 40, (stack, 9))
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.setblocking(False)
t.connect_ex((stack, 9))   # one SYN is all we need; the lab kills us afterwards
"""


def test_vnet_hdr_partial_checksums_from_the_kernel_are_completed_or_trusted() -> None:
    # With TUNSETOFFLOAD CSUM the kernel leaves UDP/TCP checksums for the device to finish
    # (NEEDS_CSUM): read_batch completes the UDP one, and hands the TCP one up untouched as a
    # TrustedFrame, which TCP does not verify.
    with Lab(vnet_hdr=True) as lab:
        dev = lab.device
        assert dev.mac is not None
        stack_ip = str(lab.stack_ip4.ip)
        # A static neighbour entry, so the kernel sends to us without asking by ARP first.
        neigh = ["ip", "neigh", "replace", stack_ip, "lladdr", dev.mac.hex(":"), "dev", dev.name]
        lab.run(neigh, check=True)
        lab.run([sys.executable, "-c", KERNEL_SENDS_UDP_AND_SYN, stack_ip], check=True, timeout=30)

        def transport(proto: int) -> Callable[[bytes], bytes | None]:
            def match(frame: bytes) -> bytes | None:
                if frame[12:14] != struct.pack("!H", ETH_P_IP) or frame[14 + 9] != proto:
                    return None
                return frame

            return match

        udp = wait_for_frame(dev, transport(17))
        syn = wait_for_frame(dev, transport(6))
        assert transport_checksum_ok(udp[14:])
        assert type(udp) is bytes and dev.csum_finished >= 1  # it really was partial: completed
        assert type(syn) is TrustedFrame and dev.csum_trusted >= 1
        # The TCP field still holds only the pseudo-header sum, as the kernel left it for the device.
        assert not transport_checksum_ok(syn[14:])


def test_device_contract_details() -> None:
    with Lab(mtu=9000) as lab:
        dev = lab.device
        as_device: Device = dev  # TapDevice satisfies the Device protocol (checked by mypy)
        assert as_device.name.startswith("pgt")
        assert dev.mtu == 9000
        assert "mtu 9000" in lab.run(["ip", "link", "show", "dev", dev.name], check=True).stdout
        assert os.get_blocking(dev.fileno()) is False
        # read_batch never blocks: it drains whatever the kernel sent and then returns [].
        for _ in range(100):
            if dev.read_batch(limit=4) == []:
                break
        else:
            pytest.fail("read_batch never came back empty")
        fd = dev.fileno()
        dev.close()
        dev.close()  # idempotent
        assert dev.closed
        with pytest.raises(OSError) as info:
            os.fstat(fd)
        assert info.value.errno == errno.EBADF
        for call in (dev.fileno, dev.read_batch, lambda: dev.write(b"\0" * 60)):
            with pytest.raises(OSError) as info:
                call()
            assert info.value.errno == errno.EBADF and dev.name in str(info.value)


def test_read_after_the_namespace_vanished_raises_instead_of_spinning() -> None:
    # Deleting the namespace behind the stack's back destroys the interface; the fd must then
    # report an error (the runtime stops reading) rather than poll readable with nothing to read.
    with Lab() as lab:
        dev = lab.device
        subprocess.run(["ip", "netns", "del", lab.netns], check=True)
        # The namespace dies asynchronously; once it has, the fd polls readable and read fails.
        select.select([dev], [], [], 10)
        with pytest.raises(OSError) as info:
            for _ in range(1000):
                dev.read_batch()
                select.select([dev], [], [], 10)
        assert dev.name in str(info.value)


def test_missing_dev_net_tun_is_enoent_naming_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tap, "TUN_PATH", "/nonexistent/net/tun")
    with pytest.raises(FileNotFoundError) as info:
        open_tap("pgtmissing0")
    assert info.value.errno == errno.ENOENT
    assert "pgtmissing0" in str(info.value) and "/nonexistent/net/tun" in str(info.value)


def test_without_cap_net_admin_open_tap_is_eperm_naming_the_device() -> None:
    # A root child without CAP_NET_ADMIN (setpriv drops it from the bounding and inheritable sets).
    if subprocess.run(["sh", "-c", "command -v setpriv"], capture_output=True).returncode != 0:
        pytest.skip("setpriv (util-linux) is not installed")
    code = (
        "from pytcp_green.link.tap import open_tap\n"
        "from pytcp_green.lab import lab_unavailable_reason\n"
        "print(lab_unavailable_reason())\n"
        "try:\n    open_tap('pgtnocap0')\n"
        "except PermissionError as exc:\n    print(exc.errno, exc)\n"
    )
    out = subprocess.run(
        ["setpriv", "--inh-caps=-net_admin", "--bounding-set=-net_admin", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.splitlines()
    assert "CAP_NET_ADMIN" in out[0]
    assert out[1].startswith(f"{errno.EPERM} ") and "pgtnocap0" in out[1] and "TUNSETIFF" in out[1]


def test_bad_arguments_are_rejected_before_touching_the_kernel() -> None:
    with pytest.raises(ValueError):
        open_tap("a-name-that-is-too-long")
    with pytest.raises(ValueError):
        open_tap("pgt0", mtu=10)
    with pytest.raises(ValueError):
        open_tap("pgt0", tun=True, mac=b"\x02" * 6)
    with pytest.raises(ValueError):
        open_tap("pgt0", mac=b"\x01\x02\x03\x04\x05\x06")  # multicast
