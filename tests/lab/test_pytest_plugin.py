"""The pytest plugin (pytcp_green.pytest_plugin) on a small project of its own, run in child pytest
processes: its sockets on the stack, the fixtures, a comparison with the kernel, xdist workers."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

# A project's tests: a threaded HTTP server on 127.0.0.1 (the same over any stack), and SO_MEMINFO,
# which the kernel has and the stack does not (ENOPROTOOPT): the outcome that must differ.
PROJECT_TESTS = '''
import hashlib, http.server, socket, threading, urllib.request

BODY = bytes(range(256)) * 400

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args):
        pass

def test_http_roundtrip():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/", timeout=30).read()
    finally:
        server.shutdown()
        server.server_close()
    assert hashlib.sha256(body).digest() == hashlib.sha256(BODY).digest()

def test_so_meminfo():
    with socket.create_server(("127.0.0.1", 0)) as srv, socket.create_connection(srv.getsockname()) as c:
        assert len(c.getsockopt(socket.SOL_SOCKET, 55, 36)) == 36  # SO_MEMINFO: 9 u32 of socket memory
'''

FIXTURE_TESTS = '''
import socket

def test_counters_show_the_stack(pytcp_stack):
    before = pytcp_stack.stack.stats["tcp.passive_open"]
    with socket.create_server(("127.0.0.1", 0)) as srv, socket.create_connection(srv.getsockname()):
        conn, _ = srv.accept()
        conn.close()
    assert pytcp_stack.stack.stats["tcp.passive_open"] == before + 1

def test_faults_fixture_adds(pytcp_faults):
    pytcp_faults.add("down")
    assert len(pytcp_faults.list()) == 1

def test_faults_are_gone_after_the_test(pytcp_stack, pytcp_lab):
    assert pytcp_stack.faults.list() == []
    assert pytcp_lab.kernel_ip4.ip.exploded == "198.18.0.1"
'''


def pytest_run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=project, capture_output=True, text=True, timeout=600)


def project_with(tmp_path: Path, tests: str) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_app.py").write_text(tests)
    return project


def outcomes(out: str) -> dict[str, int]:
    return {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|error)", out)}


def test_the_plugin_is_inactive_unless_asked(tmp_path: Path) -> None:
    project = project_with(tmp_path, PROJECT_TESTS)
    out = pytest_run(project)
    assert outcomes(out.stdout) == {"passed": 2}, out.stdout  # the kernel has SO_MEMINFO
    assert "pytcp-green" not in out.stdout


@pytest.mark.skipif(shutil.which("editcap") is None, reason="editcap cuts the failing test's capture")
def test_suite_runs_on_the_stack_and_keeps_the_failing_tests_capture(tmp_path: Path) -> None:
    project = project_with(tmp_path, PROJECT_TESTS)
    keep = tmp_path / "keep"
    out = pytest_run(project, "--pytcp-green", f"--pytcp-green-keep={keep}")
    assert outcomes(out.stdout) == {"passed": 1, "failed": 1}, out.stdout
    assert "ENOPROTOOPT" in out.stdout or "Protocol not available" in out.stdout
    (capture,) = keep.glob("*test_so_meminfo.pcap")
    assert handshakes(capture)  # the test's handshake is in it
    assert not list(keep.glob("*http_roundtrip*"))  # passing tests leave nothing
    assert not list(keep.glob("session-*"))


def handshakes(pcap: Path) -> list[str]:
    """The destination ports of the SYNs in a capture, as tshark reads it."""
    frames = subprocess.run(["tshark", "-r", str(pcap), "-Y", "tcp.flags.syn == 1 && tcp.flags.ack == 0",
                             "-T", "fields", "-e", "tcp.dstport"], capture_output=True, text=True, timeout=60)
    assert frames.returncode == 0, frames.stderr
    return frames.stdout.split()


@pytest.mark.skipif(shutil.which("editcap") is None, reason="editcap cuts the differing test's captures")
def test_compare_lists_the_test_whose_outcome_differs_with_both_captures(tmp_path: Path) -> None:
    project = project_with(tmp_path, PROJECT_TESTS)
    keep = tmp_path / "keep"
    out = pytest_run(project, "--pytcp-green-compare", f"--pytcp-green-keep={keep}")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "1 tests with the same outcome, 1 differ" in out.stdout
    assert "test_app::test_so_meminfo: kernel passed, stack failed" in out.stdout
    # Each run's capture of that test, and of nothing else: one handshake (the test's) in each.
    kernel, stack = keep / "test_app__test_so_meminfo.kernel.pcap", keep / "test_app__test_so_meminfo.stack.pcap"
    assert len(handshakes(kernel)) == 1 and len(handshakes(stack)) == 1
    assert sorted(p.name for p in keep.glob("*.pcap")) == sorted([kernel.name, stack.name])


def test_fixtures_in_the_lab(tmp_path: Path) -> None:
    project = project_with(tmp_path, FIXTURE_TESTS)
    out = pytest_run(project, "--pytcp-green=lab")
    assert outcomes(out.stdout) == {"passed": 3}, out.stdout + out.stderr
    skipped = pytest_run(project)  # without the plugin the fixtures skip, with the reason
    assert outcomes(skipped.stdout) == {"skipped": 3}, skipped.stdout


@pytest.mark.skipif(importlib.util.find_spec("xdist") is None, reason="pytest-xdist is not installed")
def test_xdist_workers_each_get_a_stack(tmp_path: Path) -> None:
    project = project_with(tmp_path, PROJECT_TESTS + FIXTURE_TESTS.replace("import socket\n", ""))
    out = pytest_run(project, "-n", "2", "--pytcp-green=lab", f"--pytcp-green-keep={tmp_path / 'keep'}")
    # The same outcomes as one process: TCP_INFO fails on the stack, everything else passes.
    assert outcomes(out.stdout) == {"passed": 4, "failed": 1}, out.stdout + out.stderr
