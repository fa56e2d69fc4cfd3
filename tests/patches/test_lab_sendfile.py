"""In a lab: ``socket.sendfile()`` of a 50 MB file over a stack socket to a kernel peer (issues 12, 14).

The stack socket's descriptor is a stand-in, so the file goes by pread(2) blocks into the socket
(``patches/_sendfile.py``): the kernel peer's SHA-256 must equal the file's, and tracemalloc's peak
in the sender must stay within a few send buffers (the file is never read whole into memory).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from lab.helpers import lab_skip_reason

from .helpers import run_python

pytestmark = [pytest.mark.lab, pytest.mark.skipif(lab_skip_reason() is not None, reason=str(lab_skip_reason()))]

SIZE = 50 * 1024 * 1024

# The kernel side: hash what a connection sends until EOF, write the digest and byte count.  Empty
# connections (``--wait-port``'s probe) are not the sender's.
PEER = """
import hashlib, socket, sys
out = sys.argv[1]
total = 0
with socket.create_server(("0.0.0.0", 9000)) as listener:
    while not total:
        conn, _ = listener.accept()
        digest = hashlib.sha256()
        while block := conn.recv(1 << 20):
            digest.update(block)
            total += len(block)
        if total:
            conn.sendall(b"done")
        conn.close()
with open(out, "w") as f:
    f.write(f"{digest.hexdigest()} {total}")
"""

SENDER = """
import json, os, socket, sys, tracemalloc
path = sys.argv[1]
sock = socket.create_connection((os.environ["PYTCP_GREEN_PEER_IP4"], 9000), timeout=60)
with open(path, "rb") as f:
    tracemalloc.start()
    sent = sock.sendfile(f)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    position = f.tell()
sock.shutdown(socket.SHUT_WR)
reply = sock.recv(16)
sndbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
sock.close()
print(json.dumps({"sent": sent, "position": position, "peak": peak, "reply": reply.decode(), "sndbuf": sndbuf}))
"""


def test_sendfile_of_a_large_file_streams_it_to_the_kernel(tmp_path: Path) -> None:
    blob = tmp_path / "blob.bin"
    with open(blob, "wb") as f:
        for _ in range(SIZE // (1 << 20)):
            f.write(os.urandom(1 << 20))
    expected = hashlib.sha256(blob.read_bytes()).hexdigest()
    (tmp_path / "peer.py").write_text(PEER)
    (tmp_path / "sender.py").write_text(SENDER)
    digest_file = tmp_path / "digest.txt"
    proc = run_python(["-m", "pytcp_green", "run", "--lab", "--peer",
                       f"exec python3 {tmp_path / 'peer.py'} {digest_file}", "--wait-port", "9000",
                       str(tmp_path / "sender.py"), str(blob)], timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (out["sent"], out["position"], out["reply"]) == (SIZE, SIZE, "done")
    assert digest_file.read_text() == f"{expected} {SIZE}"
    # What memory the send costs is the stack's send buffer (its bytes, and the segments built from
    # them), not the file: the peak stays within a few send buffers, the file is ~16 of them.
    # (The send buffer grows with autotuning up to tcp_wmem's 4 MB, so it bounds the peak; the file's
    # quarter bounds it independently of that.)
    assert out["peak"] < 3 * out["sndbuf"] and out["peak"] < SIZE // 4, json.dumps(out)
