"""TCP_INFO over the stack and over the kernel, read with the same ``struct`` layout: after 1 MB each
way both must say ESTABLISHED with an RTT, a window and byte counts that match what was moved."""

from __future__ import annotations

import hashlib
import random
import socket
from pathlib import Path

from kernel.test_tcp import fresh_host, kernel_program, read_line, tcp_socket
from pytcp_green.green.sockets import GreenSocket
from pytcp_green.patches._sockopts import get_option
from pytcp_green.stack.stack import SOCK_STREAM
from pytcp_green.stack.tcp.info import FIELDS, LAYOUT

NBYTES = 1 << 20
NAMES = [name for name, _ in FIELDS]

# Connect, send NBYTES, receive NBYTES, print the SHA-256 of what came and TCP_INFO in hex, close on a line.
KERNEL_SIDE = r"""
import hashlib, socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)
n = int(sys.argv[3])
s.sendall(bytes(range(256)) * (n // 256))
got, k = hashlib.sha256(), 0
while k < n:
    data = s.recv(65536)
    if not data:
        break
    got.update(data)
    k += len(data)
print(got.hexdigest(), s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 512).hex(), flush=True)
sys.stdin.readline()  # the test has read the stack's TCP_INFO while the connection was established
s.close()
"""


def parse(raw: bytes) -> dict[str, int]:
    """The fields both answers have (a kernel may append more: only the common prefix is read)."""
    return dict(zip(NAMES, LAYOUT.unpack(raw[:LAYOUT.size].ljust(LAYOUT.size, b"\0")), strict=True))


def stack_info(sock: GreenSocket, buflen: int = 512) -> bytes:
    raw = get_option(sock, socket.AF_INET, SOCK_STREAM, {}, socket.IPPROTO_TCP, socket.TCP_INFO, buflen)
    assert isinstance(raw, bytes)
    return raw


def assert_sane(info: dict[str, int], who: str) -> None:
    assert info["state"] == 1, who  # TCP_ESTABLISHED
    assert info["rtt"] > 0 and info["rto"] >= 200_000, who
    assert info["snd_cwnd"] > 0 and info["snd_mss"] > 0 and info["advmss"] > 0, who
    assert info["options"] & 1 and info["options"] & 2, who  # timestamps, SACK
    assert info["bytes_received"] == NBYTES, who
    assert info["segs_out"] > 0 and info["segs_in"] > 0 and info["data_segs_in"] > 0, who


def test_tcp_info_reads_the_same_over_the_stack_and_the_kernel(tmp_path: Path) -> None:
    with fresh_host(tmp_path) as kernel:
        listener = tcp_socket(kernel)
        listener.bind(("", 0))
        listener.listen(1)
        assert parse(stack_info(listener))["state"] == 10  # TCP_LISTEN, the rest zero
        port = int(listener.getsockname()[1])
        with kernel_program(kernel, KERNEL_SIDE, kernel.stack_ip, str(port), str(NBYTES)) as proc:
            sock, _ = listener.accept()
            listener.close()
            got = b""
            while len(got) < NBYTES:
                got += sock.recv(NBYTES - len(got))
            assert got == bytes(range(256)) * (NBYTES // 256)
            payload = random.Random(1).randbytes(NBYTES)
            sock.sendall(payload)
            k_sha, k_hex = read_line(proc).split()
            assert k_sha == hashlib.sha256(payload).hexdigest()
            ours_raw = stack_info(sock)
            assert len(ours_raw) == LAYOUT.size and len(stack_info(sock, 8)) == 8  # cut to the buffer
            ours = parse(ours_raw)
            assert_sane(ours, "stack")
            assert proc.stdin is not None
            proc.stdin.write("close\n")
            proc.stdin.flush()
            assert sock.recv(1) == b""  # the kernel's FIN: it acknowledged all our data before it
            after = parse(stack_info(sock))
            theirs = parse(bytes.fromhex(k_hex))
        assert_sane(theirs, "kernel")
        # Linux's bytes_acked counts the SYN too (snd_una moves from the ISN): ours the same.
        assert theirs["bytes_acked"] == NBYTES + 1  # the kernel's data, acknowledged by us
        assert after["bytes_acked"] == NBYTES + 1 and after["state"] == 8  # CLOSE_WAIT
        assert after["data_segs_out"] >= NBYTES // ours["snd_mss"]
        print({name: (ours[name], theirs[name]) for name in NAMES if ours[name] or theirs[name]})
        sock.close()
