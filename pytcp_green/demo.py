"""``make demo`` / ``pytcp-green demo``: unmodified HTTP programs talk to the Linux kernel over the stack.

In a lab namespace (kernel 198.18.0.1, stack 198.18.0.2 on a TAP), both directions:

1. ``examples/fetch.py``, a plain requests script, runs patched (as ``pytcp-green run --lab --peer
   'python3 -m http.server 8000' --wait-port 8000 examples/fetch.py URL...`` runs it) and fetches a
   page and a file from the kernel's ``http.server``, over one keep-alive session and then on new
   connections;
2. ``examples/serve.py``, the stdlib's ``http.server``, runs over the stack and ``curl`` on the
   kernel side downloads the same page and file from it.

It prints the requests, bytes, frames, retransmissions and times, and the pcap's path.  The exit
status is 0 only if every request answered 200 and every body's SHA-256 equals its file's.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pytcp_green.host import StackOptions

KERNEL_PORT = 8000  # the kernel's http.server
STACK_PORT = 8080  # examples/serve.py over the stack
FILE_SIZE = 4 * 1024 * 1024
FETCH_LINE = re.compile(r"^GET (\S+) -> (\d+), (\d+) bytes, sha256 ([0-9a-f]{64}), ([\d.]+) ms \((.+)\)$")
CURL_FORMAT = "%{http_code} %{size_download} %{num_connects} %{time_total} %{url_effective}\\n"
PAGE = """<!doctype html>
<html><head><title>pytcp_green demo</title></head>
<body><h1>Served through pytcp_green</h1>
<p>This page crossed a TCP/IP stack written in Python, on a TAP device, driven by gevent.</p>
<p><a href="data.bin">data.bin</a>: {size} random bytes.</p>
</body></html>
"""


def examples_dir() -> Path:
    """The repository's ``examples/`` (the demo runs its scripts unmodified)."""
    path = Path(__file__).resolve().parents[1] / "examples"
    if not (path / "fetch.py").is_file() or not (path / "serve.py").is_file():
        raise FileNotFoundError(f"the demo runs examples/fetch.py and examples/serve.py, not found in {path}")
    return path


def make_site(www: Path) -> dict[str, str]:
    """A page and a random file; returns name -> SHA-256."""
    www.mkdir(parents=True)
    (www / "index.html").write_text(PAGE.format(size=FILE_SIZE), encoding="utf-8")
    (www / "data.bin").write_bytes(os.urandom(FILE_SIZE))
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(www.iterdir())}


class Meter:
    """Counter deltas and elapsed time for one part of the demo."""

    def __init__(self, host: Any) -> None:
        self.host = host
        self.stats_before = Counter(host.stack.stats)
        self.frames_before = host.pcap.frames if host.pcap is not None else 0
        self.started = time.monotonic()

    def summary(self) -> str:
        stats = self.host.stack.stats
        delta = Counter({k: v - self.stats_before.get(k, 0) for k, v in stats.items()})
        frames = (self.host.pcap.frames if self.host.pcap is not None else 0) - self.frames_before
        rtx = delta["tcp.retransmit"] + delta["tcp.syn_retransmit"]
        return (f"{frames} frames captured, TCP segments {delta['tcp.tx']} out / {delta['tcp.rx']} in, "
                f"{delta['tcp.active_open'] + delta['tcp.passive_open']} connections, {rtx} retransmissions, "
                f"{time.monotonic() - self.started:.2f} s")


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n} bytes"


def client_direction(host: Any, www: Path, digests: dict[str, str], fetch: Path) -> bool:
    """requests over the stack -> the kernel's http.server."""
    from pytcp_green.patches.run import run_target, start_peer

    kernel_ip = str(host.lab.kernel_ip4.ip)
    urls = [f"http://{kernel_ip}:{KERNEL_PORT}/{name}" for name in digests]
    print("1. requests over the stack -> the kernel's http.server")
    print(f"   $ pytcp-green run --lab --peer 'python3 -m http.server {KERNEL_PORT}' --wait-port {KERNEL_PORT} "
          f"examples/fetch.py {' '.join(urls)}")
    meter = Meter(host)
    log = www.parent / "kernel-http-server.log"
    with open(log, "w", encoding="utf-8") as log_file:
        peer = start_peer(host, f"exec {shlex.quote(sys.executable)} -m http.server {KERNEL_PORT} "
                                f"--bind {kernel_ip} --directory {shlex.quote(str(www))}",
                          KERNEL_PORT, stdout=subprocess.DEVNULL, stderr=log_file)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = run_target(str(fetch), None, urls)
        peer.terminate()
        peer.wait(10)  # gevent's subprocess (the process is patched): waiting is cooperative
    ok = status == 0
    requests = bodies = 0
    intact = True
    for line in out.getvalue().splitlines():
        print(f"   | {line}")
        match = FETCH_LINE.match(line)
        if match is None:
            continue
        requests += 1
        bodies += int(match.group(3))
        name = match.group(1).rsplit("/", 1)[-1]
        intact &= match.group(2) == "200" and digests.get(name) == match.group(4)
    ok &= intact and requests == 2 * len(urls)
    served = sum(1 for line in log.read_text(encoding="utf-8").splitlines() if '"GET ' in line)
    print(f"   {requests} requests ({len(urls)} keep-alive, {len(urls)} on new connections), {_mb(bodies)} of "
          f"bodies, SHA-256 equal to the files: {'yes' if intact and requests else 'NO'}; "
          f"the kernel's http.server logged {served} GETs")
    print(f"   {meter.summary()}")
    return ok


def server_direction(host: Any, www: Path, digests: dict[str, str], serve: Path) -> bool:
    """curl on the kernel side -> examples/serve.py (http.server) over the stack."""
    import gevent

    from pytcp_green.patches.run import wait_for_port

    stack_ip = str(host.stack_ip4.ip)
    print(f"2. curl on the kernel side -> http.server over the stack (examples/serve.py on {stack_ip}:{STACK_PORT})")
    meter = Meter(host)
    server_log = io.StringIO()

    def run_server() -> None:
        # The unmodified script, as `pytcp-green run` runs it; killed (GreenletExit) when curl is done.
        sys.argv[:] = [str(serve), "--port", str(STACK_PORT), str(www)]
        runpy.run_path(str(serve), run_name="__main__")

    got = www.parent / "curl"
    got.mkdir()
    base = f"http://{stack_ip}:{STACK_PORT}"
    curl = ["curl", "-sS", "--fail", "--max-time", "30", "-w", CURL_FORMAT]
    # One curl fetching every file over one connection, then one more on a new connection.
    runs = [(curl + [a for name in digests for a in ("-o", str(got / f"1-{name}"), f"{base}/{name}")],
             [f"1-{name}" for name in digests]),
            ([*curl, "-o", str(got / "2-index.html"), f"{base}/index.html"], ["2-index.html"])]
    for argv, _ in runs:
        print(f"   $ ip netns exec {host.lab.netns} curl {' '.join(a for a in argv if a.startswith('http'))}")
    results: list[tuple[subprocess.CompletedProcess[str], list[str]]] = []
    with contextlib.redirect_stderr(server_log), contextlib.redirect_stdout(io.StringIO()):
        server = gevent.spawn(run_server)
        try:
            wait_for_port(host, stack_ip, STACK_PORT, timeout=10)
            for argv, files in runs:
                results.append((host.lab.run(argv, timeout=60), files))  # cooperative: the process is patched
        finally:
            server.kill(block=True, timeout=5)
    ok = all(done.returncode == 0 for done, _ in results)
    requests = bodies = 0
    intact = True
    lines = [pair for done, files in results for pair in zip(done.stdout.splitlines(), files, strict=False)]
    for line, file in lines:
        fields = line.split()
        if len(fields) != 5:
            continue
        code, size, connects, seconds, url = fields
        name = url.rsplit("/", 1)[-1]
        path = got / file
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""
        requests += 1
        bodies += int(size)
        match = code == "200" and digest == digests.get(name)
        intact &= match
        how = "new connection" if connects != "0" else "same connection"
        print(f"   | GET {url} -> {code}, {size} bytes, sha256 {digest[:16]}..., "
              f"{float(seconds) * 1000:.1f} ms ({how})")
    for done, _ in results:
        if done.returncode != 0:
            print(f"   | curl failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    ok &= intact and requests == len(digests) + 1 and len(results) == len(runs)
    logged = [line for line in server_log.getvalue().splitlines() if '"GET ' in line]
    print(f"   {requests} requests, {_mb(bodies)} of bodies, SHA-256 equal to the files: "
          f"{'yes' if intact and requests else 'NO'}; http.server over the stack logged {len(logged)} GETs")
    print(f"   {meter.summary()}")
    if not ok and server_log.getvalue().strip():
        print("   server's stderr:\n" + "\n".join(f"   ! {line}" for line in server_log.getvalue().splitlines()[-20:]))
    return ok


def run_demo(options: StackOptions) -> int:
    import pytcp_green
    from pytcp_green.patches import _state, stack_option_names
    from pytcp_green.patches.run import RunError

    examples = examples_dir()
    workdir = Path(tempfile.mkdtemp(prefix="pytcp-green-demo-"))
    started = time.monotonic()
    try:
        digests = make_site(workdir / "www")
        host = pytcp_green.patch_all(**{name: getattr(options, name) for name in stack_option_names()})
        try:
            assert host.lab is not None and host.stack_ip4 is not None
            os.environ.update(host.env())
            print(f"pytcp-green demo: lab {host.lab.netns}: Linux kernel {host.lab.kernel_ip4.ip} <-> pytcp_green "
                  f"{host.stack_ip4.ip} over TAP {host.lab.device.name} (MTU {options.mtu})")
            ok = True
            for direction, script in ((client_direction, "fetch.py"), (server_direction, "serve.py")):
                try:
                    ok &= direction(host, workdir / "www", digests, examples / script)
                except RunError as exc:  # a peer that never listened, a server that never started
                    print(f"   FAILED: {exc}")
                    ok = False
            stats = host.stack.stats
            frames = host.pcap.frames if host.pcap is not None else 0
            drops = ", ".join(f"{name} {count}" for name, count in stats.drops().items())
            print(f"total: {frames} frames, {stats['tcp.retransmit'] + stats['tcp.syn_retransmit']} TCP "
                  f"retransmissions, dropped on purpose: {drops or 'nothing'}")
        finally:
            if _state.has_host() and _state.current_host() is host:
                _state.set_host(None)
                host.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if options.pcap:
        print(f"pcap: {options.pcap}  (wireshark, or: tshark -r {options.pcap} -Y http)")
    elapsed = time.monotonic() - started
    if ok:
        print(f"OK: both directions worked and every body's SHA-256 matched its file, in {elapsed:.1f} s")
    else:
        print(f"FAILED (see above), in {elapsed:.1f} s")
    return 0 if ok else 1
