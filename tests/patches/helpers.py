"""Run code in a fresh, patched interpreter: patching is process-global, so every test gets its own.

The child prints one JSON document on its last stdout line; :func:`run_patched` returns it decoded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

PRELUDE = """
import json, sys
def report(value):
    print(json.dumps(value), flush=True)
def attempt(f):
    try:
        return f()
    except OSError as e:
        return "errno %d" % e.errno
"""


def run_python(args: list[str], *, env: dict[str, str] | None = None, timeout: float = 120,
               cwd: str | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PYTCP_GREEN_")}
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                          env=full_env, cwd=cwd or str(REPO))


def run_patched(code: str, *, patch: str = "pytcp_green.patch_all()", env: dict[str, str] | None = None,
                timeout: float = 120, flags: list[str] | None = None) -> Any:
    """Run ``code`` after ``import pytcp_green; <patch>``; return what it passed to ``report()``."""
    source = "import pytcp_green\n" + (patch + "\n" if patch else "") + PRELUDE + textwrap.dedent(code)
    proc = run_python([*(flags or []), "-c", source], env=env, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"child failed ({proc.returncode}):\nSTDOUT:\n{proc.stdout}\nSTDERR:\n{proc.stderr}")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines, f"child printed nothing; stderr:\n{proc.stderr}"
    return json.loads(lines[-1])


def run_fetch_from_kernel_http(tmp_path: Path, script: str, name: str, bind: str
                               ) -> tuple[bytes, Path, subprocess.CompletedProcess[str]]:
    """Serve 3 MB of random bytes as ``blob.bin`` from the kernel's ``http.server`` on ``bind`` port 8000 (the
    ``--peer``) and run ``script`` (saved as ``name``) with ``pytcp-green run --lab --pcap``, once port 8000
    answers.  Returns the body, the stack's capture and the finished run."""
    body = os.urandom(3_000_000)
    www = tmp_path / "www"
    www.mkdir()
    (www / "blob.bin").write_bytes(body)
    path = tmp_path / name
    path.write_text(script)
    pcap = tmp_path / "run.pcap"
    peer = f"exec python3 -m http.server 8000 --bind {bind} --directory {www} 2>/dev/null"
    proc = run_python(["-m", "pytcp_green", "run", "--lab", "--pcap", str(pcap), "--peer", peer,
                       "--wait-port", "8000", str(path)], timeout=180)
    return body, pcap, proc
