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
