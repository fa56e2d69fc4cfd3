"""``pytcp-green compare`` end to end: one program over the Linux kernel and over the stack.

The peer is the kernel's own ``python3 -m http.server`` in the lab; the programs are small
scripts written by the test.  A program whose output does not depend on the stack must be
reported the same (exit 0), one that prints what ``recv()`` returned must be reported
different (exit 1) with the difference shown, and both runs' captures must open in tshark with
no malformed frame.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

SIZE = 300_000
BLOB = random.Random(10).randbytes(SIZE)

# Fetches the blob over HTTP and prints its length and hash: the same over any correct stack.
FETCH = """
import hashlib, os, urllib.request
url = f"http://{os.environ['PYTCP_GREEN_PEER_IP4']}:8000/blob.bin"
body = urllib.request.urlopen(url, timeout=30).read()
print(len(body), hashlib.sha256(body).hexdigest())
"""

# Prints the sizes recv() returned: how a stack segments and wakes its reader shows through.
RECV_SIZES = """
import os, socket
s = socket.create_connection((os.environ['PYTCP_GREEN_PEER_IP4'], 8000), timeout=30)
s.sendall(b"GET /blob.bin HTTP/1.0\\r\\n\\r\\n")
sizes = []
while chunk := s.recv(1 << 20):
    sizes.append(len(chunk))
print(len(sizes), sizes[:20])
"""


def serve(tmp_path: Path) -> str:
    www = tmp_path / "www"
    www.mkdir()
    (www / "blob.bin").write_bytes(BLOB)
    return f"exec python3 -m http.server 8000 --bind 198.18.0.1 --directory {www}"


def compare(tmp_path: Path, program: str, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, object]]:
    script = tmp_path / "program.py"
    script.write_text(program)
    report = tmp_path / "report.json"
    keep = tmp_path / "keep"
    out = subprocess.run([sys.executable, "-m", "pytcp_green", "compare", "--peer", serve(tmp_path),
                          "--wait-port", "8000", "--json", str(report), "--keep", str(keep), *extra,
                          "--", str(script)], capture_output=True, text=True, timeout=300)
    data = json.loads(report.read_text()) if report.exists() else {}
    return out, data


def assert_clean_captures(keep: Path, runs: int) -> None:
    for name in [f"{over}-{i}.pcap" for over in ("kernel", "stack") for i in range(1, runs + 1)]:
        pcap = keep / name
        assert pcap.exists(), f"{name} was not kept"
        tshark = subprocess.run(["tshark", "-r", str(pcap), "-Y", "_ws.malformed || _ws.expert.severity == error",
                                 "-T", "fields", "-e", "frame.number"], capture_output=True, text=True, timeout=120)
        assert tshark.returncode == 0, tshark.stderr
        assert tshark.stdout.strip() == "", f"{name}: malformed frames {tshark.stdout.split()}"


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (compare reads captures with it)")
def test_program_independent_of_the_stack_is_reported_same(tmp_path: Path) -> None:
    out, data = compare(tmp_path, FETCH, "--runs", "2")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "same behaviour" in out.stdout
    expected = f"{SIZE} {hashlib.sha256(BLOB).hexdigest()}\n"
    assert data["same"] is True and data["differences"] == []
    for over in ("kernel", "stack"):
        side = data[over]
        assert isinstance(side, dict)
        assert [run["stdout"] for run in side["runs"]] == [expected, expected]
        assert [run["status"] for run in side["runs"]] == [0, 0]
        for capture in side["captures"]:
            # One HTTP connection, the whole blob came in, nothing retransmitted on a clean link.
            assert capture["connections"] == 1, capture
            assert capture["bytes_in"] > SIZE, capture
            assert capture["resets"] == 0 and capture["malformed"] == 0, capture
    assert_clean_captures(tmp_path / "keep", runs=2)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (compare reads captures with it)")
def test_program_that_prints_recv_sizes_is_reported_different(tmp_path: Path) -> None:
    out, data = compare(tmp_path, RECV_SIZES)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "DIFFERENT behaviour" in out.stdout
    assert "--- stdout (kernel)" in out.stdout and "+++ stdout (stack)" in out.stdout
    assert data["same"] is False
    kernel, stack = data["kernel"], data["stack"]
    assert isinstance(kernel, dict) and isinstance(stack, dict)
    assert kernel["runs"][0]["stdout"] != stack["runs"][0]["stdout"]
    assert_clean_captures(tmp_path / "keep", runs=1)


def coloured_pixels(png: Path) -> int:
    """How many pixels of a PNG are clearly coloured (not white, grey or black): the graph's marks."""
    import matplotlib.image

    rgb = matplotlib.image.imread(str(png))[:, :, :3]
    return int((rgb.max(axis=2) - rgb.min(axis=2) > 0.25).sum())


def screenshot(page: Path, shot: Path) -> int:
    """Render ``page`` in headless Chromium into ``shot``; return its coloured pixels."""
    render = subprocess.run(["chromium-headless-shell", "--no-sandbox", f"--screenshot={shot}",
                             "--window-size=1300,1600", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert render.returncode == 0 and shot.exists(), render.stderr
    return coloured_pixels(shot)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (compare reads captures with it)")
@pytest.mark.skipif(shutil.which("chromium-headless-shell") is None, reason="chromium-headless-shell renders it")
@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None or importlib.util.find_spec("jinja2") is None,
                    reason="the report needs pytcp-green[report]")
def test_impairment_applies_to_both_runs_and_the_report_shows_it(tmp_path: Path) -> None:
    report = tmp_path / "report"
    out, data = compare(tmp_path, FETCH, "--impair", "loss=3%,seed=21", "--report", str(report))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"report: {report / 'index.html'}" in out.stdout
    page = (report / "index.html").read_text()
    assert "Same behaviour" in page and 'src="timeseq-1.png"' in page
    assert json.loads((report / "comparison.json").read_text()) == data
    assert data["impair"] == "loss=3%,seed=21" and data["same"] is True
    for over in ("kernel", "stack"):
        side = data[over]
        assert isinstance(side, dict)
        # The blob still arrives whole; the loss shows as retransmissions in each run's capture.
        assert side["runs"][0]["stdout"] == f"{SIZE} {hashlib.sha256(BLOB).hexdigest()}\n"
        assert side["captures"][0]["retransmissions"] > 0, (over, side["captures"][0])
    assert coloured_pixels(report / "timeseq-1.png") > 2000  # segments, ACKs and windows drawn
    # Rendered as a person would see it: the graph is on the page.  Without its picture the same page
    # has only its headline and links in colour.
    shown = screenshot(report / "index.html", tmp_path / "report-screenshot.png")
    print(f"report screenshot: {tmp_path / 'report-screenshot.png'}")
    (report / "timeseq-1.png").rename(tmp_path / "hidden.png")
    assert shown > screenshot(report / "index.html", tmp_path / "without-graph.png") + 2000


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    no_program = subprocess.run([sys.executable, "-m", "pytcp_green", "compare", "--peer", "true"],
                                capture_output=True, text=True, timeout=60)
    assert no_program.returncode == 2 and "give a script or -m MODULE" in no_program.stderr
    bad_impair = subprocess.run([sys.executable, "-m", "pytcp_green", "compare", "--impair", "loss=lots",
                                 "--", str(tmp_path / "x.py")], capture_output=True, text=True, timeout=60)
    assert bad_impair.returncode == 2 and "impair" in bad_impair.stderr
