"""Raw IP sockets (raw(7)): a scapy-free ping written against SOCK_RAW runs the same over the stack and
over the kernel, IPv4 (the IP header comes with each packet, the ICMP checksum is the caller's) and
IPv6 (payload only; the ICMPv6 checksum is computed for the caller); so does a sender of its own IP
headers (IPPROTO_RAW / IP_HDRINCL).  Against the kernel peer in the
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


HDRINCL = """
import socket, struct
IP_HDRINCL, IPV6_HDRINCL = 3, 36
def hdrincl(host):
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind((host, 0))
    rx.settimeout(10)
    port = rx.getsockname()[1]
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    body = b"our own header"
    udp = struct.pack("!HHHH", 4242, port, 8 + len(body), 0) + body  # UDP checksum 0: none (RFC 768)
    # Total length, identification, checksum and source left zero: the stack fills them in, as Linux.
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 0, 0, 0, 17, 17, 0, bytes(4), socket.inet_aton(host))
    out = {"sent": s.sendto(ip + udp, (host, 0)), "proto": s.proto,
           "hdrincl": s.getsockopt(socket.IPPROTO_IP, IP_HDRINCL),
           "so_protocol": s.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL)}
    got, addr = rx.recvfrom(100)
    out.update(got=got.decode(), source=list(addr))
    out["short"] = attempt(lambda: s.sendto(b"\x45" + bytes(10), (host, 0)))
    out["too_long_header"] = attempt(lambda: s.sendto(b"\x4f" + bytes(30), (host, 0)))
    out["on_udp"] = attempt(lambda: rx.setsockopt(socket.IPPROTO_IP, IP_HDRINCL, 1))
    icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    out["icmp_default"] = icmp.getsockopt(socket.IPPROTO_IP, IP_HDRINCL)
    icmp.setsockopt(socket.IPPROTO_IP, IP_HDRINCL, 1)
    out["icmp_set"] = icmp.getsockopt(socket.IPPROTO_IP, IP_HDRINCL)
    for sock in (rx, s, icmp):
        sock.close()
    v6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
    out["v6_hdrincl"] = v6.getsockopt(socket.IPPROTO_IPV6, IPV6_HDRINCL)
    v6.close()
    return out
"""


def test_ipproto_raw_sends_the_callers_header_as_the_kernel() -> None:
    """raw(7): IPPROTO_RAW implies IP_HDRINCL; Linux fills in the total length, identification, checksum
    and a zero source; a UDP socket on the loopback reads the datagram the caller built."""
    program = HDRINCL + "report(hdrincl('127.0.0.1'))\n"
    stack = run_patched(program)
    kernel = run_patched(program, patch="")
    assert stack == kernel
    assert stack["got"] == "our own header" and stack["source"] == ["127.0.0.1", 4242]
    assert stack["hdrincl"] == 1 and stack["so_protocol"] == 255


def test_raw_sockets_refuse_protocol_zero() -> None:
    out = run_patched("""
        import socket
        report(attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, 0)))
    """)
    assert out == "errno 93"
