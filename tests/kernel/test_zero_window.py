"""Issue 11 (a zero-window peer that goes silent) in the lab: a scapy peer on the kernel's side of the TAP
answers the stack's connection with a window of 0, then answers nothing; the stack's application writes
and either close()s (the orphan gives up after ``tcp_orphan_retries`` probes) or waits (ETIMEDOUT after
``tcp_retries2`` probes).  Both limits are lowered through the stack's sysctl so the run is short.

The peer's address (198.18.0.251) is not the kernel's: the scapy program answers ARP for it, and the kernel,
which does not forward, drops the stack's segments to it silently instead of resetting an unknown flow.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from kernel.test_tcp import finish, fresh_host, kernel_program, read_line, tcp_socket

pytestmark = pytest.mark.lab

PEER_IP = "198.18.0.251"
PEER_PORT = 7777

# Plays PEER_IP:PEER_PORT from an AF_PACKET socket: answers ARP for it, answers one SYN with a SYN-ACK
# advertising a zero window, then stays silent while it records what the stack sends, until a RST
# arrives (or 60 s pass).  Prints "ready", then one JSON line: the stack's ISN, the zero-window probes
# (ACKs without text at ISN, one below SND.UNA), any text, and the RST's sequence number.
PEER = r"""
import json, select, socket, sys, time
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import ARP, Ether
ip, port = sys.argv[1], int(sys.argv[2])
ifname = next(name for _, name in socket.if_nameindex() if name != "lo")
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((ifname, 0))
mac = s.getsockname()[4].hex(":")
print("ready", flush=True)
report = {"isn": None, "probes": 0, "text": 0, "rst_seq": None, "other": []}
end = time.monotonic() + 60
while report["rst_seq"] is None and time.monotonic() < end:
    if not select.select([s], [], [], 1)[0]:
        continue
    raw, addr = s.recvfrom(65535)
    if addr[2] == socket.PACKET_OUTGOING:
        continue
    frame = Ether(raw)
    if ARP in frame and frame[ARP].op == 1 and frame[ARP].pdst == ip:
        s.send(bytes(Ether(dst=frame.src, src=mac) / ARP(op=2, hwsrc=mac, psrc=ip, hwdst=frame.src,
                                                          pdst=frame[ARP].psrc)))
        continue
    if IP not in frame or frame[IP].dst != ip or TCP not in frame:
        continue
    seg = frame[TCP]
    flags = str(seg.flags)
    if "S" in flags:
        report["isn"] = seg.seq
        s.send(bytes(Ether(dst=frame.src, src=mac) / IP(src=ip, dst=frame[IP].src) / TCP(
            sport=port, dport=seg.sport, flags="SA", seq=1000, ack=seg.seq + 1, window=0)))
    elif "R" in flags:
        report["rst_seq"] = seg.seq
    elif len(seg.payload):
        report["text"] += len(seg.payload)
    elif report["isn"] is not None and seg.seq == report["isn"]:
        report["probes"] += 1  # one below SND.UNA (ISN + 1): a zero-window probe
    elif report["isn"] is not None and seg.seq == (report["isn"] + 1) % 2**32 and seg.ack == 1001:
        report["other"].append("ACK")  # the handshake's third segment
    else:
        report["other"].append(flags)
print(json.dumps(report), flush=True)
"""


@pytest.mark.parametrize("closed", [True, False], ids=["closed-orphan", "open"])
def test_a_silent_zero_window_peer_is_probed_then_reset(tmp_path: Path, closed: bool) -> None:
    with fresh_host(tmp_path) as kernel:
        stack = kernel.host.stack
        stack.sysctl["net.ipv4.tcp_orphan_retries"] = 2
        stack.sysctl["net.ipv4.tcp_retries2"] = 3
        stats = stack.stats
        with kernel_program(kernel, PEER, PEER_IP, str(PEER_PORT)) as peer:
            assert read_line(peer) == "ready"
            sock = tcp_socket(kernel, timeout=60)
            sock.connect((PEER_IP, PEER_PORT))
            tcb = sock.core.tcb
            assert tcb is not None and tcb.snd_wnd == 0
            assert sock.send(b"w" * 1000) == 1000  # buffered: nothing fits in the window
            if closed:
                sock.close()
                assert stack.tcp.orphans == 1  # type: ignore[union-attr]
                assert kernel.host.runtime.wait_until(lambda: tcb.dead, 60)
            else:
                with pytest.raises(OSError) as info:
                    sock.recv(100)
                assert info.value.errno == errno.ETIMEDOUT
                sock.close()
            report = json.loads(finish(peer).splitlines()[-1])
        assert not stack.tcp.conns and stack.tcp.orphans == 0  # type: ignore[union-attr]
    assert report["probes"] == (2 if closed else 3), report
    assert report["text"] == 0 and report["rst_seq"] == (report["isn"] + 1) & 0xFFFFFFFF, report
    assert report["other"] == ["ACK"], report
    assert stats["tcp.window_probe"] == report["probes"] and stats["tcp.abort_on_timeout"] == 1
