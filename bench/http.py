"""HTTP request rate: requests and http.client against a kernel-side http.server, over the kernel and over the stack.

    .venv/bin/python bench/http.py [--seconds S]

Needs root.  The server is the stdlib's ThreadingHTTPServer with a tiny handler subclass
(``protocol_version = "HTTP/1.1"`` for keep-alive, ``disable_nagle_algorithm = True``) serving a
1 KB file.  The client program is the same in both runs and knows nothing of pytcp_green; each
mode runs for S seconds after a warm-up:

* requests: one ``Session`` (keep-alive) / ``requests.get`` (a new connection per request);
* http.client: one ``HTTPConnection`` reused / a new ``HTTPConnection`` per request.

Kernel baseline: the client, with ``gevent.monkey.patch_all()``, runs in one namespace and the
server in another, joined by veth.  Stack: ``pytcp-green run --lab --peer SERVER --wait-port 8000
CLIENT``, so the client's sockets are pytcp_green's and the server is the kernel's on the TAP's
far side.  Same run, same machine: the ratio is what to look at.

:func:`rows` does this for any body size (``make bench`` runs 1 KB and 1 MB); :func:`server_rows`
turns it round: http.server or gevent's WSGI server (``WSGI_SERVER``) runs over the stack under
``pytcp-green run --lab`` and the same client, on plain kernel sockets, runs in the lab as its
``--peer``; the baseline is the same server and client on kernel sockets over veth.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

# This file is named like the stdlib's http package: keep its directory behind the stdlib on
# sys.path, or `import http.client` (requests, the server) would find this script instead.
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE] + [_HERE]

from common import VETH_B, Row, ratio, veth_namespaces  # noqa: E402

PORT = 8000
BODY = 1024

SERVER = """
import functools, http.server, sys

class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # TCP_NODELAY: headers and body are separate writes
    def log_message(self, *args):
        pass

class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128

directory, address, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
server = Server((address, port), functools.partial(Handler, directory=directory))
if "--ready" in sys.argv:
    print("ready", flush=True)  # listening
server.serve_forever()
"""

WSGI_SERVER = """
import sys
from gevent import monkey
monkey.patch_all()
import socket
from gevent.pywsgi import WSGIHandler, WSGIServer

class Handler(WSGIHandler):
    def handle(self):
        # Headers and body are separate writes: without TCP_NODELAY, Nagle holds the body for the
        # client's delayed ACK (about 22 req/s on either stack), as http.server's option avoids.
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle()

directory, address, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
body = open(directory + "/body.bin", "rb").read()

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))])
    return [body]

server = WSGIServer((address, port), app, log=None, handler_class=Handler)
server.init_socket()
if "--ready" in sys.argv:
    print("ready", flush=True)
server.serve_forever()
"""

SERVERS = {"http.server": "server.py", "gevent WSGI": "wsgi.py"}

CLIENT = """
import http.client, json, sys, time
if "--gevent" in sys.argv:
    from gevent import monkey
    monkey.patch_all()
import requests

host, port, seconds, SIZE = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
url = f"http://{host}:{port}/body.bin"
if "--wait" in sys.argv:  # started before the server (as a --peer): wait until it listens
    import socket
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection((host, port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # polling a port that is not open yet; nothing to wait on

def rate(one):
    for _ in range(20):  # warm-up: ARP, caches, the server's threads
        one()
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        one()
        n += 1
    return n / elapsed

def check(status, body):
    if status != 200 or len(body) != SIZE:
        raise SystemExit(f"bad response: {status}, {len(body)} bytes")

session = requests.Session()
def requests_keepalive():
    r = session.get(url, timeout=10)
    check(r.status_code, r.content)
def requests_new():
    r = requests.get(url, timeout=10)
    check(r.status_code, r.content)

conn = http.client.HTTPConnection(host, port, timeout=10)
def client_keepalive():
    conn.request("GET", "/body.bin")
    r = conn.getresponse()
    check(r.status, r.read())
def client_new():
    c = http.client.HTTPConnection(host, port, timeout=10)
    c.request("GET", "/body.bin")
    r = c.getresponse()
    check(r.status, r.read())
    c.close()

out = {"requests keep-alive": rate(requests_keepalive), "requests new connection": rate(requests_new),
       "http.client keep-alive": rate(client_keepalive), "http.client new connection": rate(client_new)}
session.close()
conn.close()
print(json.dumps(out))
"""


def _last_json(proc: subprocess.CompletedProcess[str], what: str) -> dict[str, float]:
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def kernel_rates(work: Path, seconds: float, body: int = BODY, server_py: str = "server.py",
                 client_gevent: bool = True) -> dict[str, float]:
    """Client (gevent-patched kernel sockets, or plain ones) in one namespace, server in another, over veth."""
    with veth_namespaces() as (ns_a, ns_b):
        server = subprocess.Popen(["ip", "netns", "exec", ns_b, sys.executable, str(work / server_py),
                                   str(work / "www"), VETH_B, str(PORT), "--ready"], stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            if server.stdout.readline().strip() != "ready":
                raise SystemExit("the kernel-side server did not start")
            client = subprocess.run(["ip", "netns", "exec", ns_a, sys.executable, str(work / "client.py"),
                                     VETH_B, str(PORT), str(seconds), str(body),
                                     *(["--gevent"] if client_gevent else [])],
                                    capture_output=True, text=True, timeout=60 + 8 * seconds)
        finally:
            server.terminate()
            server.wait(timeout=10)
    return _last_json(client, "kernel client")


def stack_rates(work: Path, seconds: float, body: int = BODY) -> dict[str, float]:
    """The same client under `pytcp-green run --lab`, the server on the kernel side of the lab."""
    peer = (f"exec {shlex.quote(sys.executable)} {shlex.quote(str(work / 'server.py'))} "
            f"{shlex.quote(str(work / 'www'))} 198.18.0.1 {PORT}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTCP_GREEN_")}
    proc = subprocess.run([sys.executable, "-m", "pytcp_green", "run", "--lab", "--peer", peer,
                           "--wait-port", str(PORT), str(work / "client.py"), "198.18.0.1", str(PORT), str(seconds),
                           str(body)],
                          capture_output=True, text=True, timeout=60 + 8 * seconds, env=env, cwd=str(work))
    return _last_json(proc, "pytcp_green client")


def server_rates(work: Path, seconds: float, body: int, server_py: str) -> dict[str, float]:
    """The server under `pytcp-green run --lab`, the plain kernel client on the lab's kernel side (a
    --peer); the run serves until its client's figures come out, then SIGTERM takes the lab down."""
    peer = (f"exec {shlex.quote(sys.executable)} {shlex.quote(str(work / 'client.py'))} "
            f"198.18.0.2 {PORT} {seconds} {body} --wait")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTCP_GREEN_")}
    run = subprocess.Popen([sys.executable, "-m", "pytcp_green", "run", "--lab", "--peer", peer,
                            str(work / server_py), str(work / "www"), "0.0.0.0", str(PORT)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(work))
    timer = threading.Timer(60 + 8 * seconds, run.terminate)  # a client that never finishes
    timer.start()
    try:
        assert run.stdout is not None
        line = run.stdout.readline()  # the server prints nothing; the client prints one JSON line
    finally:
        timer.cancel()
        run.terminate()
        _, err = run.communicate(timeout=30)
    if not line.startswith("{"):
        raise SystemExit(f"pytcp_green server run gave no figures:\n{err}")
    result: dict[str, float] = json.loads(line)
    return result


def _workdir(tmp: str, body: int) -> Path:
    work = Path(tmp)
    (work / "www").mkdir()
    (work / "www" / "body.bin").write_bytes(os.urandom(body))
    (work / "server.py").write_text(SERVER)
    (work / "wsgi.py").write_text(WSGI_SERVER)
    (work / "client.py").write_text(CLIENT)
    return work


def server_rows(seconds: float, body: int) -> list[Row]:
    """The stack as the server (http.server, gevent's WSGI server), a plain kernel client."""
    out: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="pytcp-green-bench-http-") as tmp:
        work = _workdir(tmp, body)
        for name, script in SERVERS.items():
            kernel = kernel_rates(work, seconds, body, script, client_gevent=False)
            ours = server_rates(work, seconds, body, script)
            out += [Row(f"HTTP {mode}, stack as {name} server, {body // 1024} KB", "req/s", ours[mode],
                        kernel[mode], f"{name} on kernel sockets, veth") for mode in kernel]
    return out


def both_rates(seconds: float, body: int) -> tuple[dict[str, float], dict[str, float]]:
    """(kernel, ours) requests/s per client mode, the stack as the client, ``body``-byte responses."""
    with tempfile.TemporaryDirectory(prefix="pytcp-green-bench-http-") as tmp:
        work = _workdir(tmp, body)
        return kernel_rates(work, seconds, body), stack_rates(work, seconds, body)


def rows(seconds: float, body: int) -> list[Row]:
    kernel, ours = both_rates(seconds, body)
    size = f"{body // 1024} KB" if body < 1 << 20 else f"{body >> 20} MB"
    return [Row(f"HTTP {mode}, stack as client, {size}", "req/s", ours[mode], kernel[mode],
                "gevent on kernel sockets, veth") for mode in kernel]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per mode (default 2)")
    args = parser.parse_args()
    kernel, ours = both_rates(args.seconds, BODY)
    print(f"HTTP requests/s against the kernel's http.server ({BODY}-byte body, {args.seconds:g} s per mode):")
    print(f"  {'client, mode':30s} {'kernel+gevent':>14s} {'pytcp_green':>12s}  ratio")
    for mode in kernel:
        print(f"  {mode:30s} {kernel[mode]:14.0f} {ours[mode]:12.0f}  {ratio(ours[mode], kernel[mode])}")
    print("  (reference, PyTCP 3.0.9 as a client: 358 req/s keep-alive, 118 req/s one connection per request)")


if __name__ == "__main__":
    main()
