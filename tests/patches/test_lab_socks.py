"""In a lab: requests through a SOCKS5 proxy (PySocks subclasses our socket) over the stack (issue 16).

PySocks' ``socksocket`` subclasses ``socket.socket`` and overrides ``recv()`` to call
``recvfrom()``; a patched socket whose ``recvfrom()`` called ``self.recv()`` died with
RecursionError.  The peer namespace runs ``microsocks`` (RFC 1928 SOCKS5) beside the kernel's
http.server; a process run by ``pytcp-green run --lab`` fetches a file through the proxy and
checks its SHA-256, and a proxy that closes every connection at once, or no proxy at all, makes
requests raise ``requests.exceptions.ConnectionError`` (not RecursionError, not a hang).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest
from lab.helpers import lab_skip_reason

from .helpers import run_python


def _missing() -> str | None:
    if lab_skip_reason() is not None:
        return str(lab_skip_reason())
    if shutil.which("microsocks") is None:
        return "needs microsocks (a SOCKS5 proxy) for the peer"
    if importlib.util.find_spec("socks") is None:
        return "needs PySocks (requests[socks])"
    return None


pytestmark = [pytest.mark.lab, pytest.mark.skipif(_missing() is not None, reason=str(_missing()))]

# Port 1081 accepts and closes every connection (a proxy that goes away); nothing listens on 1082.
CLOSER = ("python3 -c \"import socket; s = socket.create_server(('0.0.0.0', 1081)); "
          "[s.accept()[0].close() for _ in iter(int, 1)]\"")

FETCH = """
import hashlib, json, os, requests
peer = os.environ["PYTCP_GREEN_PEER_IP4"]
url = f"http://{peer}:8000/blob.bin"
out = {}
r = requests.get(url, proxies={"http": f"socks5://{peer}:1080"}, timeout=30)
out["status"], out["sha256"] = r.status_code, hashlib.sha256(r.content).hexdigest()
with requests.Session() as s:  # keep-alive through the proxy, the host name resolved by the proxy
    s.proxies = {"http": f"socks5h://{peer}:1080"}
    out["session"] = [hashlib.sha256(s.get(url, timeout=30).content).hexdigest() for _ in range(2)]
for case, port in (("closes", 1081), ("gone", 1082)):
    try:
        requests.get(url, proxies={"http": f"socks5://{peer}:{port}"}, timeout=10)
        out[case] = "no error"
    except Exception as exc:
        out[case] = f"{type(exc).__module__}.{type(exc).__qualname__}"
print(json.dumps(out))
"""


def test_requests_through_a_socks5_proxy_over_the_stack(tmp_path: Path) -> None:
    body = os.urandom(2_000_000)
    www = tmp_path / "www"
    www.mkdir()
    (www / "blob.bin").write_bytes(body)
    script = tmp_path / "fetch.py"
    script.write_text(FETCH)
    peer = (f"microsocks -i 0.0.0.0 -p 1080 & {CLOSER} & "
            f"exec python3 -m http.server 8000 --bind 0.0.0.0 --directory {www} 2>/dev/null")
    proc = run_python(["-m", "pytcp_green", "run", "--lab", "--peer", peer, "--wait-port", "8000", str(script)],
                      timeout=180)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    digest = hashlib.sha256(body).hexdigest()
    assert out == {"status": 200, "sha256": digest, "session": [digest, digest],
                   "closes": "requests.exceptions.ConnectionError", "gone": "requests.exceptions.ConnectionError"}
