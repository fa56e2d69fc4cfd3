"""SYN floods from the kernel's side of a lab, and the kernel client that fetches through them (issue 11).

* :data:`FLOOD` — a Python flooder (raw Ethernet frames on an AF_PACKET socket, scapy-built) of
  spoofed SYNs with the options Linux sends, IPv4 or IPv6, from sources in the lab's subnet that
  nobody answers for, so every half-open entry lives through its whole SYN-ACK retry period.
  hping3 has no IPv6; this is the IPv6 flood of the test and the bench.
* :func:`hping3_flood` — the argv of ``hping3 --flood -S --rand-source`` (IPv4 only).
* :func:`serve` — the stack's side: answers every connection on a listener with a payload and closes it.
* :data:`FETCH_LOOP` — a kernel client that connects, reads to EOF and closes, over and over, and
  prints one line per fetch (``ok <bytes>`` or ``fail <error>``) until a line arrives on stdin.

Each program runs in the lab's namespace (``Lab.popen``); whoever starts one stops it by its handle.
"""

from __future__ import annotations

import gevent

from pytcp_green.green.sockets import GreenSocket

# Spoofed SYNs to argv[2]:argv[3] at MAC argv[1] (seeded by argv[4]) until a line arrives on stdin; prints
# "ready" once the socket is up, and the number of frames sent at the end.  The pause between bursts only
# paces the load; nothing waits on it.
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

# Fetch from argv[1]:argv[2] until a line arrives on stdin: connect, read to EOF, close; one line per fetch.
# A fetch that fails (refused, reset, no answer within argv[3] seconds) is reported and the loop goes on.
FETCH_LOOP = r"""
import select, socket, sys
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
print("ready", flush=True)
while not select.select([sys.stdin], [], [], 0)[0]:
    try:
        with socket.create_connection((host, port), timeout=timeout) as c:
            n = 0
            while data := c.recv(65536):
                n += len(data)
        print("ok", n, flush=True)
    except OSError as exc:
        print("fail", type(exc).__name__, flush=True)
"""


def hping3_flood(dst: str, port: int) -> list[str]:
    """hping3's SYN flood with random spoofed sources, as the issue's attacker runs it (IPv4 only)."""
    return ["hping3", "--flood", "-S", "--rand-source", "-p", str(port), "-q", dst]

# The bench's client: after "ready", each line "S" on stdin makes it fetch from argv[1]:argv[2] (as
# FETCH_LOOP does) for S seconds and print "<succeeded> <failed> <seconds>"; an empty line ends it.
FETCH_RATE = r"""
import socket, sys, time
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
print("ready", flush=True)
while (line := sys.stdin.readline().strip()):
    ok = failed = 0
    t0 = time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < float(line):
        try:
            with socket.create_connection((host, port), timeout=timeout) as c:
                while c.recv(65536):
                    pass
            ok += 1
        except OSError:
            failed += 1
    print(ok, failed, elapsed, flush=True)
"""

# The server of the kernel baseline: answers every connection on argv[1]:argv[2] with argv[3] bytes.
SERVER = r"""
import socket, sys, threading
family = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(128)
payload = b"x" * int(sys.argv[3])
def answer(c):
    try:
        c.sendall(payload)
    except OSError:
        pass
    c.close()
print("ready", flush=True)
while True:
    threading.Thread(target=answer, args=(s.accept()[0],), daemon=True).start()
"""


def serve(listener: GreenSocket, payload: bytes) -> None:
    """Answer every connection ``listener`` accepts with ``payload`` and close it; runs until killed."""
    while True:
        conn, _ = listener.accept()
        gevent.spawn(_answer, conn, payload)


def _answer(conn: GreenSocket, payload: bytes) -> None:
    try:
        conn.sendall(payload)
    except OSError:
        pass  # the client gave up on it (its timeout); the others go on
    finally:
        conn.close()
