"""Issue 6 against the Linux kernel over IPv6: TCP 100 MB both ways in both roles and through the impairment
shim (SHA-256 at both ends), a patched ``requests`` fetching from the kernel's ``http.server --bind ::``,
and ``curl -6`` on the kernel side fetching from ``http.server`` running over the stack.

The transfers reuse the IPv4 suite's helpers (tests/kernel/test_tcp.py): a :class:`KernelPeer` built
for AF_INET6 makes them address the kernel's fd00:77::1 and the stack's fd00:77::2.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from kernel.test_tcp import MB, bulk, options_check
from lab.helpers import KernelPeer, lab_skip_reason, shim
from patches.helpers import run_fetch_from_kernel_http, run_python

from pytcp_green.host import Host, StackOptions
from pytcp_green.stack.sockbase import AF_INET6

from .helpers import PEER_IP6 as KERNEL_IP6
from .helpers import STACK_IP6

pytestmark = pytest.mark.lab


@contextlib.contextmanager
def kernel6(tmp_path: Path, impair: str | None = None) -> Iterator[KernelPeer]:
    """A stack on a lab of its own, talking IPv6 to the kernel (optimistic DAD: no wait at start)."""
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    pcap = tmp_path / "stack.pcap"
    with Host(StackOptions(lab=True, slaac=False, pcap=str(pcap), impair=impair)) as host:
        peer = KernelPeer(host, pcap, AF_INET6)
        assert (peer.kernel_ip, peer.stack_ip) == (KERNEL_IP6, STACK_IP6)
        yield peer


@pytest.mark.parametrize("stack_connects", [True, False], ids=["stack-connects", "kernel-connects"])
def test_100_mb_each_way_over_ipv6_intact(tmp_path: Path, stack_connects: bool) -> None:
    with kernel6(tmp_path) as kernel:
        bulk(kernel, 100 * MB, stack_connects=stack_connects, check=options_check(ts=True, sack=True))
        stats = kernel.host.stack.stats
        assert stats["ip6.rx"] > 100 * MB // 65536 and stats["tcp.rst_in"] == stats["tcp.rst_out"] == 0
        # The MSS follows the IPv6 header (1500 - 40 - 20), and no segment needed fragmenting.
        assert stats["ip6.tx.fragment"] == 0


@pytest.mark.parametrize("stack_connects", [True, False], ids=["stack-connects", "kernel-connects"])
def test_transfer_over_ipv6_through_5_percent_loss_intact(tmp_path: Path, stack_connects: bool) -> None:
    seed = 21 if stack_connects else 22
    with kernel6(tmp_path, impair=f"loss=5%,seed={seed}") as kernel:
        bulk(kernel, 4 * MB, stack_connects=stack_connects)
        lost = shim(kernel.host).stats["lost"]
        stats = kernel.host.stack.stats
        assert lost > 0 and stats["tcp.retransmit"] > 0  # the loss was real and the stack recovered from it
        assert stats["tcp.rst_in"] == stats["tcp.rst_out"] == 0


FETCH6 = """
import hashlib, json, os, requests
peer = os.environ["PYTCP_GREEN_PEER_IP6"]
url = f"http://[{peer}]:8000/blob.bin"
hashes = []
with requests.Session() as s:  # keep-alive
    hashes += [hashlib.sha256(s.get(url, timeout=30).content).hexdigest() for _ in range(2)]
hashes.append(hashlib.sha256(requests.get(url, timeout=30).content).hexdigest())  # a new connection
fds = [f"/proc/self/fd/{n}" for n in os.listdir("/proc/self/fd")]
# Kernel IP sockets only: the stack's control socket (PYTCP_GREEN_CTL) is a Unix one of its own.
inet = {f"socket:[{line.split()[9]}]" for t in ("tcp", "tcp6", "udp", "udp6", "raw", "raw6")
        for line in open(f"/proc/net/{t}").readlines()[1:]}
kernel_sockets = [p for p in fds if os.path.exists(p) and os.readlink(p) in inet]
print(json.dumps({"hashes": hashes, "peer": peer, "kernel_sockets": kernel_sockets}))
"""


def test_patched_requests_fetches_from_the_kernels_http_server_over_ipv6(tmp_path: Path) -> None:
    if lab_skip_reason():
        pytest.skip(lab_skip_reason() or "")
    body, pcap, proc = run_fetch_from_kernel_http(tmp_path, FETCH6, "fetch6.py", "::")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"hashes": [hashlib.sha256(body).hexdigest()] * 3, "peer": KERNEL_IP6, "kernel_sockets": []}
    if shutil.which("tshark"):
        import subprocess

        # The bodies crossed the stack's link as IPv6 (the --wait-port probe alone is IPv4).
        flows = subprocess.run(["tshark", "-r", str(pcap), "-Y", "ipv6 && tcp.srcport == 8000 && tcp.len > 0",
                                "-T", "fields", "-e", "tcp.len"], capture_output=True, text=True, timeout=120)
        assert flows.returncode == 0, flows.stderr
        assert sum(int(n) for n in flows.stdout.split()) >= 3 * len(body)


SERVE6 = """
import functools, hashlib, http.server, json, os, socket, sys, threading
import pytcp_green

www = sys.argv[1]

class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass

class Server(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6

httpd = Server(("::", 8080), functools.partial(Handler, directory=www))
threading.Thread(target=httpd.serve_forever, daemon=True).start()
stack = os.environ["PYTCP_GREEN_STACK_IP6"]
lab = pytcp_green.current_host().lab
one = ('o=$(mktemp); curl -6 -sS --fail --max-time 120 -o "$o" "$0"; rc=$?; '
       'echo "$rc $(sha256sum < "$o" | cut -c1-64)"; rm -f "$o"')
done = lab.run(["sh", "-c", one, f"http://[{stack}]:8080/blob.bin"], timeout=150)
httpd.shutdown()
print(json.dumps({"stack": stack, "out": done.stdout.split(), "rc": done.returncode, "err": done.stderr[-2000:]}))
"""


def test_curl_6_on_the_kernel_side_fetches_from_http_server_over_the_stack(tmp_path: Path) -> None:
    if lab_skip_reason():
        pytest.skip(lab_skip_reason() or "")
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    body = os.urandom(8_000_000)
    www = tmp_path / "www"
    www.mkdir()
    (www / "blob.bin").write_bytes(body)
    (tmp_path / "serve6.py").write_text(SERVE6)
    proc = run_python(["-m", "pytcp_green", "run", "--lab", "--no-slaac", str(tmp_path / "serve6.py"), str(www)],
                      timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["stack"] == STACK_IP6
    assert (out["rc"], out["out"]) == (0, ["0", hashlib.sha256(body).hexdigest()]), out["err"]
