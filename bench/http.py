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
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
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

CLIENT = """
import http.client, json, sys, time
if "--gevent" in sys.argv:
    from gevent import monkey
    monkey.patch_all()
import requests

host, port, seconds, SIZE = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
url = f"http://{host}:{port}/body.bin"

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


def kernel_rates(work: Path, seconds: float, body: int = BODY) -> dict[str, float]:
    """Client (gevent-patched kernel sockets) in one namespace, server in another, over veth."""
    with veth_namespaces() as (ns_a, ns_b):
        server = subprocess.Popen(["ip", "netns", "exec", ns_b, sys.executable, str(work / "server.py"),
                                   str(work / "www"), VETH_B, str(PORT), "--ready"], stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            if server.stdout.readline().strip() != "ready":
                raise SystemExit("the kernel-side server did not start")
            client = subprocess.run(["ip", "netns", "exec", ns_a, sys.executable, str(work / "client.py"),
                                     VETH_B, str(PORT), str(seconds), str(body), "--gevent"],
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


def both_rates(seconds: float, body: int) -> tuple[dict[str, float], dict[str, float]]:
    """(kernel, ours) requests/s per client mode, the stack as the client, ``body``-byte responses."""
    with tempfile.TemporaryDirectory(prefix="pytcp-green-bench-http-") as tmp:
        work = Path(tmp)
        (work / "www").mkdir()
        (work / "www" / "body.bin").write_bytes(os.urandom(body))
        (work / "server.py").write_text(SERVER)
        (work / "client.py").write_text(CLIENT)
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
