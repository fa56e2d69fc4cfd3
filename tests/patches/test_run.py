"""``pytcp-green run`` and ``python -m pytcp_green``: a program patched from its first line."""

from __future__ import annotations

import json
from pathlib import Path

from .helpers import run_python

PROGRAM = """
import json, os, socket, sys
from socket import socket as early  # would be the original if patching came late
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
s.sendto(b"over the stack", s.getsockname())
data = s.recv(100)
s.close()
print(json.dumps({"argv": sys.argv, "name": __name__, "early": early.__module__, "data": data.decode(),
                  "mtu": __import__("pytcp_green").current_host().options.mtu}))
sys.exit(int(os.environ.get("EXIT_WITH", "0")))
"""


def _last_json(stdout: str) -> object:
    return json.loads([line for line in stdout.splitlines() if line.strip()][-1])


def test_python_dash_m_runs_a_script_patched_with_its_own_arguments(tmp_path: Path) -> None:
    script = tmp_path / "prog.py"
    script.write_text(PROGRAM)
    proc = run_python(["-m", "pytcp_green", "--mtu", "1400", str(script), "--mtu", "9", "x"],
                      env={"EXIT_WITH": "7"})
    assert proc.returncode == 7, proc.stderr
    assert _last_json(proc.stdout) == {"argv": [str(script), "--mtu", "9", "x"], "name": "__main__",
                                       "early": "pytcp_green.patches.socket", "data": "over the stack",
                                       "mtu": 1400}


def test_run_subcommand_with_a_module(tmp_path: Path) -> None:
    (tmp_path / "progmod.py").write_text(PROGRAM)
    proc = run_python(["-m", "pytcp_green", "run", "-m", "progmod", "--flag"], cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    out = _last_json(proc.stdout)
    assert isinstance(out, dict)
    assert out["argv"][1:] == ["--flag"]
    assert out["argv"][0].endswith("progmod.py")
    assert out["early"] == "pytcp_green.patches.socket"


def test_run_reports_usage_errors() -> None:
    proc = run_python(["-m", "pytcp_green", "run"])
    assert proc.returncode == 2
    assert "give a script or -m MODULE" in proc.stderr
    proc = run_python(["-m", "pytcp_green", "run", "--peer", "true", "x.py"])
    assert proc.returncode == 2
    assert "--peer runs its command in the lab: add --lab" in proc.stderr


def test_a_programs_uncaught_exception_is_reported_like_python_does(tmp_path: Path) -> None:
    script = tmp_path / "boom.py"
    script.write_text("import socket\nsocket.create_connection(('127.0.0.1', 1))\n")
    proc = run_python(["-m", "pytcp_green", str(script)])
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "ConnectionRefusedError: [Errno 111] Connection refused"
