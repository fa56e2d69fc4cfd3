"""Urgent data (MSG_OOB) between a patched program on the stack and the Linux kernel over the lab's link.

A kernel-side server takes one connection per mode.  ``S``: the kernel sends b"abc", b"!" with MSG_OOB,
b"def"; the program (``pytcp-green run``, the drop-in) sees the exceptional condition in poll (POLLPRI)
and select (third list), reads b"!" once with MSG_OOB (then EINVAL) and b"abcdef" in the stream, and with
SO_OOBINLINE b"abc!def" in the stream instead.  ``R`` and ``I``: the program sends b"xyz", b"!" with
MSG_OOB, b"tail"; the kernel's socket reads the byte with MSG_OOB, or inline with SO_OOBINLINE.  ``T`` and ``B``:
one 100000-byte send with MSG_OOB each way, its last byte urgent.  The capture shows each side's
urgent segments the same way: URG on every segment before the mark, each pointing just past the
urgent byte, or 0xFFFF while that is further than the field reaches; the 100000 bytes leave both
sides as the same 70 segments with the same pointers.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lab.helpers import lab_skip_reason
from patches.helpers import run_python

pytestmark = [pytest.mark.lab, pytest.mark.skipif(lab_skip_reason() is not None, reason=str(lab_skip_reason()))]

PORT = 9050

KERNEL = r"""
import errno, hashlib, json, random, select, socket, sys
BIG = random.Random(7).randbytes(99999) + b"!"
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # the 100000 bytes wait unread for the urgent one
srv.bind(("0.0.0.0", 9050))
srv.listen(8)
srv.settimeout(60)
results = {}
def stream(c):
    parts = []
    while part := c.recv(100):
        parts.append(part)
    return b"".join(parts).decode()
while len(results) < 5:
    c, _ = srv.accept()
    c.settimeout(30)
    mode = c.recv(1).decode()
    if mode == "S":
        c.sendall(b"abc")
        c.send(b"!", socket.MSG_OOB)
        c.sendall(b"def")
        c.shutdown(socket.SHUT_WR)
        stream(c)
        results.setdefault("S", 0)
        results["S"] += 1
    elif mode == "R":
        exceptional = select.select([], [], [c], 30)[2] == [c]
        oob = c.recv(1, socket.MSG_OOB).decode()
        try:
            c.recv(1, socket.MSG_OOB)
            again = "no error"
        except OSError as exc:
            again = errno.errorcode[exc.errno]
        results["R"] = {"exceptional": exceptional, "oob": oob, "again": again, "stream": stream(c)}
    elif mode == "I":
        c.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
        results["I"] = {"stream": stream(c)}
    elif mode == "T":  # one send, queued whole (no wait for room, which would move the mark meanwhile)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        results["T"] = c.send(BIG, socket.MSG_OOB)
        c.shutdown(socket.SHUT_WR)
        stream(c)
    elif mode == "B":
        exceptional = select.select([], [], [c], 30)[2] == [c]
        oob = c.recv(1, socket.MSG_OOB).decode()
        parts = []
        while part := c.recv(65536):
            parts.append(part)
        results["B"] = {"exceptional": exceptional, "oob": oob, "sha256": hashlib.sha256(b"".join(parts)).hexdigest()}
    # Written before the close: the program ends once it sees this one, and then this peer is stopped.
    with open(sys.argv[1], "w") as f:
        json.dump(results, f)
    c.close()
"""

PROGRAM = r"""
import errno, hashlib, json, os, random, select, socket
from pytcp_green.patches import _state
BIG = random.Random(7).randbytes(99999) + b"!"
peer = os.environ["PYTCP_GREEN_PEER_IP4"]
out = {}
def connect(mode, inline=False):
    s = socket.create_connection((peer, 9050), timeout=30)
    if inline:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
    s.sendall(mode)
    return s
def oob(s):
    try:
        return s.recv(1, socket.MSG_OOB).decode()
    except OSError as exc:
        return errno.errorcode[exc.errno]
def pollpri(s):
    p = select.poll()
    p.register(s, select.POLLPRI)
    return p.poll(30000) == [(s.fileno(), select.POLLPRI)]
def stream(s):  # the first read (it stops at the urgent mark), then the rest
    parts = []
    while part := s.recv(100):
        parts.append(part)
    return [parts[0].decode(), b"".join(parts[1:]).decode()]

for inline in (False, True):
    s = connect(b"S", inline)
    got = {"before": oob(s), "pollpri": pollpri(s), "select": select.select([], [], [s], 0)[2] == [s]}
    got["oob"], got["again"] = oob(s), oob(s)
    got["stream"] = stream(s)
    out["inline" if inline else "oob"] = got
    s.close()
for mode in (b"R", b"I"):
    s = connect(mode)
    s.sendall(b"xyz")
    s.send(b"!", socket.MSG_OOB)
    s.sendall(b"tail")
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    s.close()
s = connect(b"T")
got = {"pollpri": pollpri(s), "oob": oob(s)}
parts = []
while part := s.recv(65536):
    parts.append(part)
got["sha256"] = hashlib.sha256(b"".join(parts)).hexdigest()
out["big_in"] = got
s.close()
s = connect(b"B")
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
out["big_sent"] = s.send(BIG, socket.MSG_OOB)
s.shutdown(socket.SHUT_WR)
s.recv(1)
s.close()
stats = _state.current_host().stack.stats
out["stats"] = {name: stats["tcp." + name] for name in ("urg_recv", "urg_replaced", "urg_sent")}
print(json.dumps(out))
"""


def _urgent_segments(pcap: Path) -> dict[tuple[str, int], list[tuple[int, int, int, str]]]:
    """Every segment with URG, as tshark reads it: (relative seq, length, urgent pointer, payload hex)
    by (source, TCP stream)."""
    fields = subprocess.run(
        ["tshark", "-r", str(pcap), "-Y", "tcp.flags.urg == 1", "-T", "fields", "-e", "ip.src", "-e", "tcp.stream",
         "-e", "tcp.seq", "-e", "tcp.len", "-e", "tcp.urgent_pointer", "-e", "tcp.payload"],
        capture_output=True, text=True, timeout=120, check=True)
    out: dict[tuple[str, int], list[tuple[int, int, int, str]]] = {}
    for line in fields.stdout.splitlines():
        src, stream, seq, length, pointer, payload = line.split("\t")
        out.setdefault((src, int(stream)), []).append((int(seq), int(length), int(pointer), payload.replace(":", "")))
    return out


@pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")
def test_urgent_data_both_ways_with_the_kernel(tmp_path: Path) -> None:
    kernel_file = tmp_path / "kernel.json"
    (tmp_path / "kernel.py").write_text(KERNEL)
    (tmp_path / "program.py").write_text(PROGRAM)
    pcap = tmp_path / "urgent.pcap"
    peer = f"exec {sys.executable} {tmp_path / 'kernel.py'} {kernel_file}"
    proc = run_python(["-m", "pytcp_green", "run", "--lab", "--pcap", str(pcap), "--peer", peer,
                       "--wait-port", str(PORT), str(tmp_path / "program.py")], timeout=180)
    assert proc.returncode == 0, proc.stderr
    ours = json.loads(proc.stdout.strip().splitlines()[-1])
    assert ours["oob"] == {"before": "EINVAL", "pollpri": True, "select": True, "oob": "!", "again": "EINVAL",
                           "stream": ["abc", "def"]}
    assert ours["inline"] == {"before": "EINVAL", "pollpri": True, "select": True, "oob": "EINVAL",
                              "again": "EINVAL", "stream": ["abc", "!def"]}
    big = hashlib.sha256(random.Random(7).randbytes(99999)).hexdigest()  # all but the urgent "!"
    assert ours["big_in"] == {"pollpri": True, "oob": "!", "sha256": big} and ours["big_sent"] == 100000
    assert json.loads(kernel_file.read_text()) == {
        "S": 2, "R": {"exceptional": True, "oob": "!", "again": "EINVAL", "stream": "xyztail"},
        "I": {"stream": "xyz!tail"}, "T": 100000, "B": {"exceptional": True, "oob": "!", "sha256": big}}
    # On the wire, the kernel's urgent segments and ours alike: every segment before the mark carries URG
    # and a pointer to the same place, just past the urgent byte "!" (BSD's urgent pointer, RFC 6093 §4),
    # also every segment of the 100000-byte send (not one super-segment toward the TSO device).
    by_stream = _urgent_segments(pcap)
    assert {src for src, _ in by_stream} == {"198.18.0.1", "198.18.0.2"}, by_stream
    for (src, _), segments in by_stream.items():
        marks = {seq + pointer for seq, _, pointer, _ in segments if pointer < 0xFFFF}
        assert len(marks) == 1, (src, segments)
        (mark,) = marks
        # Further than the field reaches: 0xFFFF, toward the mark (tcp_transmit_skb's rule).
        assert all(seq + pointer < mark for seq, _, pointer, _ in segments if pointer == 0xFFFF), (src, segments)
        last = [payload for seq, length, _, payload in segments if seq + length == mark]
        assert last and last[0].endswith("21"), (src, segments)
    # The first transmission of each sequence number (a tail loss probe may repeat the last segment).
    big_sends = {src: [(length, pointer) for _, length, pointer, _ in sorted({s[0]: s for s in reversed(segments)}
                                                                             .values())]
                 for (src, _), segments in by_stream.items() if len(segments) > 1}
    assert big_sends.keys() == {"198.18.0.1", "198.18.0.2"}
    assert big_sends["198.18.0.2"] == big_sends["198.18.0.1"]  # segment for segment, the kernel's pointers
    # Each 0xFFFF pointer the kernel sent was a newer mark for us, replaced by the next (as Linux takes
    # them); with the final one and the two small sends' marks, that is every mark we counted.
    far = sum(pointer == 0xFFFF for _, pointer in big_sends["198.18.0.1"])
    assert far > 0
    assert ours["stats"] == {"urg_recv": 3 + far, "urg_replaced": far, "urg_sent": 3}
