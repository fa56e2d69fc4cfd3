"""HTTP(S) over the stack against the Linux kernel, in a lab, with unmodified libraries.

* Client side: a process run by ``pytcp-green run --lab`` uses requests against the kernel's
  http.server and an https server (certificate from a ``trustme`` test CA): 200 requests over one
  keep-alive session, 200 on new connections and a 50 MB file per scheme, every body's SHA-256
  checked; at checkpoints during the transfers the process holds no kernel TCP socket (its socket
  fds' inodes are looked up in /proc/self/net/tcp{,6}); the stack's pcap has the connections and
  the bytes.
* Server side: http.server and gevent's pywsgi run over the stack in a patched process; curl in
  the namespace downloads 50 MB from each intact, and 100 concurrent curls per server all get the
  right body.
* ``pytcp-green demo`` passes.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections import defaultdict
from pathlib import Path

import pytest
from lab.helpers import lab_skip_reason

from .helpers import run_python

pytestmark = [pytest.mark.lab, pytest.mark.skipif(lab_skip_reason() is not None, reason=str(lab_skip_reason()))]

BIG = 50 * 1024 * 1024
SMALL = 16 * 1024
REQUESTS = 200
CLIENTS = 100


# -- the stack's capture --------------------------------------------------------------------------------
class Flows:
    """What a pcap (Ethernet, IPv4/TCP) shows per server port: connections accepted and payload bytes sent."""

    def __init__(self) -> None:
        self.accepted: dict[int, set[tuple[int, int]]] = defaultdict(set)  # port -> {(client port, client ISN)}
        self.sent: dict[int, int] = defaultdict(int)  # port -> TCP payload bytes from the server (retransmissions too)


def read_flows(path: Path, ports: set[int]) -> Flows:
    flows = Flows()
    with open(path, "rb") as f:
        header = f.read(24)
        assert struct.unpack("<I", header[:4])[0] == 0xA1B2C3D4 and struct.unpack("<I", header[20:24])[0] == 1
        while record := f.read(16):
            incl = struct.unpack("<IIII", record)[2]
            frame = f.read(incl)
            if len(frame) < 54 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
                continue
            ihl = (frame[14] & 0x0F) * 4
            total = struct.unpack("!H", frame[16:18])[0]
            tcp = 14 + ihl
            sport, dport, _seq, ack = struct.unpack("!HHII", frame[tcp:tcp + 12])
            if sport not in ports:
                continue
            offset, flags = (frame[tcp + 12] >> 4) * 4, frame[tcp + 13]
            if flags & 0x12 == 0x12:  # SYN+ACK: the server accepted a connection
                flows.accepted[sport].add((dport, (ack - 1) & 0xFFFFFFFF))
            flows.sent[sport] += total - ihl - offset
    return flows


def kernel_tcp_snippet() -> str:
    return '''
def kernel_tcp_sockets():
    """This process's fds that are kernel TCP sockets: socket inodes listed in /proc/self/net/tcp{,6}."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        with open(f"/proc/self/net/{table}") as f:
            inodes.update(line.split()[9] for line in list(f)[1:])
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            held.append(f"fd {fd}: {target}")
    return held
'''


# -- client side: requests over the stack -> the kernel's http.server and https server --------------------
KERNEL_SERVERS = """
import functools, http.server, ssl, sys, threading

www, pem, address = sys.argv[1:4]

class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    def log_message(self, *args):
        pass

handler = functools.partial(Handler, directory=www)
https = http.server.ThreadingHTTPServer((address, 8443), handler)
context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
context.load_cert_chain(pem)
https.socket = context.wrap_socket(https.socket, server_side=True)
http_ = http.server.ThreadingHTTPServer((address, 8000), handler)  # listens after 8443: --wait-port 8000 covers both
threading.Thread(target=https.serve_forever, daemon=True).start()
http_.serve_forever()
"""

CLIENT = """
import hashlib, json, os, sys
import requests

ca = sys.argv[1]
peer = os.environ["PYTCP_GREEN_PEER_IP4"]
""" + kernel_tcp_snippet() + """
def digest(response):
    return [response.status_code, hashlib.sha256(response.content).hexdigest()]

out = {"checks": []}
for scheme, port in (("http", 8000), ("https", 8443)):
    base = f"{scheme}://{peer}:{port}"
    keep = []
    with requests.Session() as session:
        for i in range(REQUESTS):
            keep.append(digest(session.get(f"{base}/small.bin", timeout=30, verify=ca)))
            if i == REQUESTS // 2:
                out["checks"].append([f"{scheme} keep-alive", kernel_tcp_sockets()])
    new = []
    for i in range(REQUESTS):
        new.append(digest(requests.get(f"{base}/small.bin", timeout=30, verify=ca)))
        if i == REQUESTS // 2:
            out["checks"].append([f"{scheme} new connections", kernel_tcp_sockets()])
    big = hashlib.sha256()
    with requests.get(f"{base}/big.bin", timeout=60, verify=ca, stream=True) as response:
        status = response.status_code
        for n, chunk in enumerate(response.iter_content(1 << 20)):
            big.update(chunk)
            if n == 10:
                out["checks"].append([f"{scheme} 50 MB", kernel_tcp_sockets()])
    out[scheme] = {"keep": sorted(set(map(tuple, keep))), "keep_n": len(keep),
                   "new": sorted(set(map(tuple, new))), "new_n": len(new), "big": [status, big.hexdigest()]}
print(json.dumps(out))
""".replace("REQUESTS", str(REQUESTS))


def test_requests_over_the_stack_to_the_kernels_http_and_https_servers(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    www = tmp_path / "www"
    www.mkdir()
    small, big = os.urandom(SMALL), os.urandom(BIG)
    (www / "small.bin").write_bytes(small)
    (www / "big.bin").write_bytes(big)
    ca = trustme.CA()
    cert = ca.issue_cert("198.18.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    (tmp_path / "servers.py").write_text(KERNEL_SERVERS)
    (tmp_path / "client.py").write_text(CLIENT)
    pcap = tmp_path / "client.pcap"
    import sys

    peer = f"exec {sys.executable} {tmp_path / 'servers.py'} {www} {tmp_path / 'server.pem'} 198.18.0.1"
    proc = run_python(["-m", "pytcp_green", "run", "--lab", "--pcap", str(pcap), "--peer", peer,
                       "--wait-port", "8000", str(tmp_path / "client.py"), str(tmp_path / "ca.pem")], timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])

    small_ok = [[200, hashlib.sha256(small).hexdigest()]]
    big_ok = [200, hashlib.sha256(big).hexdigest()]
    for scheme in ("http", "https"):
        assert out[scheme] == {"keep": small_ok, "keep_n": REQUESTS, "new": small_ok, "new_n": REQUESTS,
                               "big": big_ok}, scheme
    # No kernel TCP socket in the process at any checkpoint, and every checkpoint ran.
    assert [name for name, _ in out["checks"]] == [
        f"{scheme} {what}" for scheme in ("http", "https") for what in ("keep-alive", "new connections", "50 MB")]
    assert all(held == [] for _, held in out["checks"]), out["checks"]

    # The stack's capture holds it all: one connection for the keep-alive session, one per request on
    # new connections, one for the big file (+ the --wait-port probe on 8000), and at least the bodies.
    flows = read_flows(pcap, {8000, 8443})
    assert len(flows.accepted[8443]) == 1 + REQUESTS + 1
    assert len(flows.accepted[8000]) == 1 + REQUESTS + 1 + 1
    for port in (8000, 8443):
        assert flows.sent[port] > 2 * REQUESTS * SMALL + BIG


# -- server side: http.server and pywsgi over the stack, curl in the namespace ---------------------------
SERVERS_OVER_THE_STACK = """
import functools, http.server, json, os, sys, threading
from gevent import pywsgi
import pytcp_green

www = sys.argv[1]
files = {name: open(os.path.join(www, name), "rb").read() for name in ("small.bin", "big.bin")}

class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass

class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128  # listen() backlog for 100 clients at once (socketserver's default is 5)

httpd = Server(("0.0.0.0", 8080), functools.partial(Handler, directory=www))
threading.Thread(target=httpd.serve_forever, daemon=True).start()

def app(environ, start_response):
    body = files.get(environ["PATH_INFO"].lstrip("/"))
    if body is None:
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))])
    view = memoryview(body)
    return (bytes(view[i:i + 65536]) for i in range(0, len(body), 65536))

wsgi = pywsgi.WSGIServer(("0.0.0.0", 8081), app, log=None, error_log=None)
wsgi.start()

stack = os.environ["PYTCP_GREEN_STACK_IP4"]
one = ('o=$(mktemp); curl -sS --fail --max-time 120 -o "$o" "$0"; rc=$?; '
       'echo "$rc $(sha256sum < "$o" | cut -c1-64)"; rm -f "$o"')
clients = f"seq CLIENTS | xargs -P CLIENTS -I{{}} sh -c '{one}' \\"$0\\""
lab = pytcp_green.current_host().lab
out = {}
for name, port in (("http.server", 8080), ("pywsgi", 8081)):
    url = f"http://{stack}:{port}"
    big = lab.run(["sh", "-c", one, f"{url}/big.bin"], timeout=120)
    many = lab.run(["sh", "-c", clients, f"{url}/small.bin"], timeout=120)
    out[name] = {"big": big.stdout.split(), "many": sorted(many.stdout.splitlines()),
                 "rc": [big.returncode, many.returncode], "stderr": (big.stderr + many.stderr)[-2000:]}
wsgi.stop(timeout=5)
httpd.shutdown()
print(json.dumps(out))
""".replace("CLIENTS", str(CLIENTS))


def test_curl_from_the_kernel_to_http_server_and_pywsgi_over_the_stack(tmp_path: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    small, big = os.urandom(SMALL), os.urandom(BIG)
    (www / "small.bin").write_bytes(small)
    (www / "big.bin").write_bytes(big)
    (tmp_path / "servers.py").write_text(SERVERS_OVER_THE_STACK)
    pcap = tmp_path / "servers.pcap"
    proc = run_python(["-m", "pytcp_green", "run", "--lab", "--pcap", str(pcap), str(tmp_path / "servers.py"),
                       str(www)], timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    small_line = f"0 {hashlib.sha256(small).hexdigest()}"
    for name in ("http.server", "pywsgi"):
        result = out[name]
        assert result["rc"] == [0, 0], result["stderr"]
        assert result["big"] == ["0", hashlib.sha256(big).hexdigest()], (name, result["stderr"])
        assert result["many"] == [small_line] * CLIENTS, (name, result["stderr"])
    flows = read_flows(pcap, {8080, 8081})
    for port in (8080, 8081):
        assert len(flows.accepted[port]) == 1 + CLIENTS
        assert flows.sent[port] >= BIG + CLIENTS * SMALL


# -- the demo -----------------------------------------------------------------------------------------
def test_make_demo_passes(tmp_path: Path) -> None:
    pcap = tmp_path / "demo.pcap"
    proc = run_python(["-m", "pytcp_green", "demo", "--pcap", str(pcap)], timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1].startswith("OK: both directions worked")
    assert sum("SHA-256 equal to the files: yes" in line for line in lines) == 2
    assert f"pcap: {pcap}" in proc.stdout and pcap.stat().st_size > 2 * 4 * 1024 * 1024
