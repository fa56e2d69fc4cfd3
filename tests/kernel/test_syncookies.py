"""Issue 11 (SYN cookies) against the Linux kernel: a spoofed SYN flood from the kernel's namespace fills a
stack listener's SYN queue, and a real kernel client still connects (by SYN cookie) and fetches intact
data while the flood goes on.

The flood is sent as raw Ethernet frames from an AF_PACKET socket on the kernel's side of the TAP, from
random sources that nobody answers for (198.18.0.10-249, or fd00:77::10-fff0 on the IPv6 run: the stack
ARPs or solicits for them in vain; its SYN-ACKs go nowhere), so every spoofed half-open entry lives
through its whole SYN-ACK retry period.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import gevent
import pytest
from lab.helpers import KernelPeer

from kernel.test_tcp import finish, fresh_host, kernel_program, read_line, tcp_socket
from pytcp_green.green.sockets import GreenSocket
from pytcp_green.stack.sockbase import AF_INET, AF_INET6

pytestmark = pytest.mark.lab

NBYTES = 2_000_000

# Spoofed SYNs (with the options Linux sends) to argv[2]:argv[3] at MAC argv[1] until a line arrives on stdin;
# prints "ready" once the socket is up, and the number of frames sent at the end.  The pause between
# bursts only paces the load; nothing waits on it.
FLOOD = r"""
import random, select, socket, sys
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
mac, dst, port, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ifname = next(name for _, name in socket.if_nameindex() if name != "lo")
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
src_mac = s.getsockname()[4].hex(":")
rng = random.Random(seed)
print("ready", flush=True)
sent = 0
while not select.select([sys.stdin], [], [], 0.005)[0]:
    for _ in range(20):
        if ":" in dst:
            ip = IPv6(src=f"fd00:77::{rng.randrange(0x10, 0xfff0):x}", dst=dst)
        else:
            ip = IP(src=f"198.18.0.{rng.randrange(10, 250)}", dst=dst)
        frame = Ether(dst=mac, src=src_mac) / ip / TCP(
            sport=rng.randrange(1024, 65536), dport=port, flags="S", seq=rng.getrandbits(32), window=64240,
            options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (rng.getrandbits(32), 0)), ("NOP", None),
                     ("WScale", 7)])
        s.send(bytes(frame))
        sent += 1
print(sent, flush=True)
"""

# Connect to argv[1]:argv[2], read to EOF; prints: local_port received_n received_sha.
CLIENT = r"""
import hashlib, socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=120)
got, n = hashlib.sha256(), 0
while data := c.recv(65536):
    got.update(data)
    n += len(data)
print(c.getsockname()[1], n, got.hexdigest())
c.close()
"""


def _serve(listener: GreenSocket, payload: bytes, seen: dict[str, object]) -> None:
    conn, addr = listener.accept()
    tcb = conn.core.tcb
    seen.update(port=addr[1], syn_sent_at=tcb.syn_sent_at, ts_ok=tcb.ts_ok, sack_ok=tcb.sack_ok,
                snd_wscale=tcb.snd_wscale, snd_mss=tcb.snd_mss)
    conn.sendall(payload)
    conn.close()


@pytest.mark.parametrize("family", [AF_INET, AF_INET6], ids=["ipv4", "ipv6"])
def test_a_kernel_client_is_served_by_syn_cookie_through_a_spoofed_syn_flood(tmp_path: Path, family: int) -> None:
    with fresh_host(tmp_path) as lab:
        kernel = KernelPeer(lab.host, lab.pcap, family)
        stack = kernel.host.stack
        stats = stack.stats
        listener = tcp_socket(kernel, timeout=120)
        listener.bind(("", 0))
        listener.listen(16)
        port = int(listener.getsockname()[1])
        core = listener.core
        max_syn = stack.sysctl.int("net.ipv4.tcp_max_syn_backlog")
        payload = random.Random(11).randbytes(NBYTES)
        normal: dict[str, object] = {}  # a connection before the flood, for the options a handshake gives
        seen: dict[str, object] = {}
        iface = kernel.host.iface
        assert iface is not None and iface.mac is not None
        mac = iface.mac.hex(":")
        try:
            server = gevent.spawn(_serve, listener, payload, normal)
            before = kernel.python(CLIENT, kernel.stack_ip, str(port), timeout=180)
            assert before.returncode == 0, before.stderr
            server.get(timeout=60)
            assert stats["tcp.syncookies_sent"] == 0 and normal["syn_sent_at"] is not None
            with kernel_program(kernel, FLOOD, mac, kernel.stack_ip, str(port), "5") as flood:
                assert read_line(flood) == "ready"
                # The flood has filled the SYN queue and the listener answers with cookies.
                assert kernel.host.runtime.wait_until(
                    lambda: core.half_open >= max_syn and stats["tcp.syncookies_sent"] > 10, 120)
                server = gevent.spawn(_serve, listener, payload, seen)
                out = kernel.python(CLIENT, kernel.stack_ip, str(port), timeout=180)
                assert out.returncode == 0, out.stderr
                server.get(timeout=60)
                assert core.half_open >= max_syn  # the flood was still on when the client finished
                assert flood.stdin is not None
                flood.stdin.write("stop\n")
                flood.stdin.flush()
                frames = int(finish(flood).split()[-1])
        finally:
            listener.close()
        client_port, n, digest = out.stdout.split()
        assert int(n) == NBYTES and digest == hashlib.sha256(payload).hexdigest()
        assert seen["port"] == int(client_port)
        # Made from the cookie: no handshake RTT sample, and the kernel's options came back from the TSval.
        assert seen["syn_sent_at"] is None
        assert seen["ts_ok"] and seen["sack_ok"] and seen["snd_mss"] == (1460 if family == AF_INET else 1440)
        assert {k: v for k, v in seen.items() if k not in ("port", "syn_sent_at")} == {
            k: v for k, v in normal.items() if k not in ("port", "syn_sent_at")}
        assert stats["tcp.syncookies_recv"] == 1 and stats["tcp.syncookies_failed"] == 0
        assert stats["tcp.req_q_full_do_cookies"] == stats["tcp.syncookies_sent"] > 10
        assert stats["tcp.drop.listen_overflow"] == 0
        assert frames > max_syn
