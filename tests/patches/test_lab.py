"""In a lab: an unmodified requests script, run by ``pytcp-green run``, fetches from the kernel's http.server."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from .helpers import run_python


def _lab_reason() -> str | None:
    try:
        from pytcp_green.lab import lab_unavailable_reason
    except ImportError as exc:
        return f"no lab module: {exc}"
    return lab_unavailable_reason()


pytestmark = [pytest.mark.lab, pytest.mark.skipif(_lab_reason() is not None, reason=str(_lab_reason()))]

FETCH = """
import hashlib, json, os, requests
peer = os.environ["PYTCP_GREEN_PEER_IP4"]
url = f"http://{peer}:8000/blob.bin"
hashes = []
with requests.Session() as s:  # keep-alive
    hashes += [hashlib.sha256(s.get(url, timeout=30).content).hexdigest() for _ in range(3)]
hashes += [hashlib.sha256(requests.get(url, timeout=30).content).hexdigest() for _ in range(2)]  # new connections
fds = [f"/proc/self/fd/{n}" for n in os.listdir("/proc/self/fd")]
kernel_sockets = [p for p in fds if os.path.exists(p) and os.readlink(p).startswith("socket:")]
print(json.dumps({"hashes": hashes, "stack_ip": os.environ["PYTCP_GREEN_STACK_IP4"], "peer_ip": peer,
                  "kernel_sockets": kernel_sockets}))
"""


def test_patched_requests_fetches_from_the_kernels_http_server(tmp_path: Path) -> None:
    body = os.urandom(3_000_000)
    www = tmp_path / "www"
    www.mkdir()
    (www / "blob.bin").write_bytes(body)
    script = tmp_path / "fetch.py"
    script.write_text(FETCH)
    pcap = tmp_path / "run.pcap"
    peer = f"exec python3 -m http.server 8000 --bind 0.0.0.0 --directory {www} 2>/dev/null"
    proc = run_python(["-m", "pytcp_green", "run", "--lab", "--pcap", str(pcap), "--peer", peer,
                       "--wait-port", "8000", str(script)], timeout=180)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    digest = hashlib.sha256(body).hexdigest()
    assert out == {"hashes": [digest] * 5, "stack_ip": "198.18.0.2", "peer_ip": "198.18.0.1",
                   "kernel_sockets": []}
    # The stack's own capture saw the HTTP traffic (pcap global header + frames).
    assert pcap.stat().st_size > len(body) * 5
