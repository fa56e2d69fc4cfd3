"""In a lab: an unmodified requests script, run by ``pytcp-green run``, fetches from the kernel's http.server."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from lab.helpers import lab_skip_reason

from .helpers import run_fetch_from_kernel_http

pytestmark = [pytest.mark.lab, pytest.mark.skipif(lab_skip_reason() is not None, reason=str(lab_skip_reason()))]

FETCH = """
import hashlib, json, os, requests
peer = os.environ["PYTCP_GREEN_PEER_IP4"]
url = f"http://{peer}:8000/blob.bin"
hashes = []
with requests.Session() as s:  # keep-alive
    hashes += [hashlib.sha256(s.get(url, timeout=30).content).hexdigest() for _ in range(3)]
hashes += [hashlib.sha256(requests.get(url, timeout=30).content).hexdigest() for _ in range(2)]  # new connections
fds = [f"/proc/self/fd/{n}" for n in os.listdir("/proc/self/fd")]
# Kernel IP sockets only: the stack's control socket (PYTCP_GREEN_CTL) is a Unix one of its own.
inet = {f"socket:[{line.split()[9]}]" for t in ("tcp", "tcp6", "udp", "udp6", "raw", "raw6")
        for line in open(f"/proc/net/{t}").readlines()[1:]}
kernel_sockets = [p for p in fds if os.path.exists(p) and os.readlink(p) in inet]
print(json.dumps({"hashes": hashes, "stack_ip": os.environ["PYTCP_GREEN_STACK_IP4"], "peer_ip": peer,
                  "kernel_sockets": kernel_sockets}))
"""


def test_patched_requests_fetches_from_the_kernels_http_server(tmp_path: Path) -> None:
    body, pcap, proc = run_fetch_from_kernel_http(tmp_path, FETCH, "fetch.py", "0.0.0.0")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    digest = hashlib.sha256(body).hexdigest()
    assert out == {"hashes": [digest] * 5, "stack_ip": "198.18.0.2", "peer_ip": "198.18.0.1",
                   "kernel_sockets": []}
    # The stack's own capture saw the HTTP traffic (pcap global header + frames).
    assert pcap.stat().st_size > len(body) * 5
