"""Raw IP sockets (raw(7)): a scapy-free ping written against SOCK_RAW runs the same over the stack and
over the kernel, IPv4 (the IP header comes with each packet, the ICMP checksum is the caller's) and
IPv6 (payload only; the ICMPv6 checksum is computed for the caller).  Against the kernel peer in the
lab: tests/kernel/test_raw.py."""

from __future__ import annotations

import pytest

from .helpers import run_patched

PING = """
import os, socket, struct
def csum(data):
    data += b"\\0" * (len(data) & 1)
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
def ping(host):
    v6 = ":" in host
    fam, proto, req, rep = (socket.AF_INET6, socket.IPPROTO_ICMPV6, 128, 129) if v6 else \\
        (socket.AF_INET, socket.IPPROTO_ICMP, 8, 0)
    s = socket.socket(fam, socket.SOCK_RAW, proto)
    s.settimeout(10)
    ident = os.getpid() & 0xFFFF
    msg = struct.pack("!BBHHH", req, 0, 0, ident, 7) + b"are you there?"
    if not v6:
        msg = msg[:2] + struct.pack("!H", csum(msg)) + msg[4:]
    sent = s.sendto(msg, (host, 0))
    seen = []
    while True:
        data, addr = s.recvfrom(2048)
        icmp = data if v6 else data[(data[0] & 15) * 4:]
        seen.append(icmp[0])
        if icmp[0] == rep and struct.unpack("!H", icmp[4:6])[0] == ident:
            break
    pseudo = socket.inet_pton(fam, host) * 2 + struct.pack("!IxxxB", len(icmp), 58) if v6 else b""
    out = {"sent": sent, "from": addr[0], "port": addr[1], "ip_header": len(data) - len(icmp), "type": icmp[0],
           "code": icmp[1], "seq": struct.unpack("!H", icmp[6:8])[0], "data": icmp[8:].decode(),
           "csum_ok": csum(pseudo + icmp) == 0, "seen_request": req in seen, "kind": s.type.name, "proto": s.proto}
    s.close()
    return out
"""


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"], ids=["ipv4", "ipv6"])
def test_raw_ping_over_the_loopback_answers_as_the_kernel(host: str) -> None:
    program = PING + f"report(ping({host!r}))\n"
    stack = run_patched(program)
    kernel = run_patched(program, patch="")
    assert stack == kernel
    assert stack["type"] in (0, 129) and stack["data"] == "are you there?" and stack["csum_ok"]
    assert stack["ip_header"] == (20 if host == "127.0.0.1" else 0)


def test_raw_sockets_refuse_what_is_not_emulated() -> None:
    out = run_patched("""
        import socket
        report([attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, p)) for p in (0, socket.IPPROTO_RAW)])
    """)
    assert out == ["errno 93", "errno 93"]
