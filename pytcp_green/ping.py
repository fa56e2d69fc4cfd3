"""``pytcp-green ping``: ICMP echo (RFC 792) through the stack's ping socket, printed the way iputils' ping prints.

One greenlet sends a request every ``interval`` seconds; another reads replies and errors off a
connected ping socket (:mod:`pytcp_green.stack.datagram.ping`), so errors such as EHOSTUNREACH reach it as
they reach any Linux ping socket.  Each request carries its send time's sequence number; a reply
is matched back by it.  Large sizes simply produce fragmented datagrams both ways (RFC 791 §3.2).
"""

from __future__ import annotations

import ipaddress
import math
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

import gevent
from gevent.event import Event

from pytcp_green.green.sockets import GreenSocket
from pytcp_green.host import Host
from pytcp_green.stack.wire.icmp4 import ICMP4_HEADER_LEN, TYPE_ECHO_REPLY, TYPE_ECHO_REQUEST

MAX_SIZE = 65507  # 65535 - IP header - ICMP header


@dataclass
class PingResult:
    transmitted: int = 0
    received: int = 0
    errors: int = 0
    rtts: list[float] = field(default_factory=list)  # milliseconds


def echo_request(seq: int, size: int) -> bytes:
    """An echo request with ``size`` bytes of data in iputils' pattern (the stack fills in id and checksum)."""
    header = bytes((TYPE_ECHO_REQUEST, 0, 0, 0, 0, 0)) + (seq & 0xFFFF).to_bytes(2, "big")
    return header + bytes(i & 0xFF for i in range(size))


def ping(host: Host, target: str, *, count: int | None, interval: float = 1.0, size: int = 56,
         wait: float = 10.0, out: TextIO = sys.stdout, stop: Event | None = None) -> PingResult:
    """Ping ``target`` (numeric IPv4) over ``host``'s stack; prints per-reply lines and a summary."""
    try:
        ipaddress.IPv4Address(target)
    except ValueError:
        raise ValueError(f"ping: {target}: give a numeric IPv4 address") from None
    if not 0 <= size <= MAX_SIZE:
        raise ValueError(f"ping: -s {size}: must be between 0 and {MAX_SIZE}")
    sock = GreenSocket(host.runtime, host.stack.icmp4.ping.socket())
    sock.core.connect((target, 0), host.runtime.now())
    stop = stop or Event()
    result = PingResult()
    sent_at: dict[int, float] = {}
    all_sent = Event()
    print(f"PING {target} ({target}) {size}({size + 28}) bytes of data.", file=out, flush=True)

    def receiver() -> None:
        while True:
            try:
                data, address = sock.recvfrom(65535, None)
            except OSError as exc:
                result.errors += 1
                print(f"From {target} icmp_seq={result.transmitted}: {exc.strerror}", file=out, flush=True)
                continue
            if len(data) < ICMP4_HEADER_LEN or data[0] != TYPE_ECHO_REPLY:
                continue
            seq = int.from_bytes(data[6:8], "big")
            started = sent_at.pop(seq, None)
            if started is None:
                continue  # a duplicate, or a reply to a request of another run
            rtt = (time.monotonic() - started) * 1000.0
            result.received += 1
            result.rtts.append(rtt)
            print(f"{len(data)} bytes from {address[0]}: icmp_seq={seq} time={rtt:.3f} ms", file=out, flush=True)
            if all_sent.is_set() and not sent_at:
                stop.set()

    reader = gevent.spawn(receiver)
    began = time.monotonic()
    try:
        seq = 0
        while count is None or seq < count:
            seq += 1
            sent_at[seq & 0xFFFF] = time.monotonic()
            try:
                sock.sendto(echo_request(seq, size), None, None)
            except OSError as exc:
                sent_at.pop(seq & 0xFFFF, None)
                result.errors += 1
                print(f"ping: sendmsg: {exc.strerror}", file=out, flush=True)
            result.transmitted += 1
            if count is not None and seq >= count:
                break
            if stop.wait(interval):  # Ctrl-C (the interval is the pacing ping itself uses)
                break
        all_sent.set()
        if sent_at and not stop.is_set():
            stop.wait(wait)  # -W: how long to wait for the last replies
    finally:
        reader.kill()
        sock.close()
    elapsed = (time.monotonic() - began) * 1000.0
    loss = 100.0 * (result.transmitted - result.received) / result.transmitted if result.transmitted else 0.0
    print(f"\n--- {target} ping statistics ---", file=out)
    errors = f", +{result.errors} errors" if result.errors else ""
    print(f"{result.transmitted} packets transmitted, {result.received} received{errors}, {loss:.0f}% packet loss, "
          f"time {elapsed:.0f}ms", file=out)
    if result.rtts:
        avg = sum(result.rtts) / len(result.rtts)
        mdev = math.sqrt(sum((r - avg) ** 2 for r in result.rtts) / len(result.rtts))
        print(f"rtt min/avg/max/mdev = {min(result.rtts):.3f}/{avg:.3f}/{max(result.rtts):.3f}/{mdev:.3f} ms",
              file=out)
    out.flush()
    return result
