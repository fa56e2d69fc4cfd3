"""``pytcp-green ctl`` against a running ``pytcp-green serve --lab``: the peer command (on the kernel
side, where ``PYTCP_GREEN_CTL`` names the stack's socket) changes the network under the stack
and checks the effect with the kernel's own sockets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

# Runs on the kernel side.  Prints one JSON line of findings; exits non-zero on the first surprise.
PEER = """
import json, os, socket, subprocess, sys, time
py, stack = sys.argv[1], os.environ["PYTCP_GREEN_STACK_IP4"]
found = {"socket": os.environ["PYTCP_GREEN_CTL"]}

def ctl(*words, ok=True):
    done = subprocess.run([py, "-m", "pytcp_green", "ctl", *words], capture_output=True, text=True, timeout=60)
    if ok and done.returncode != 0:
        sys.exit(f"ctl {words}: {done.returncode} {done.stderr}")
    return done

def echo_rtt(conn):
    started = time.monotonic()
    conn.sendall(b"x")
    assert conn.recv(1) == b"x"
    return time.monotonic() - started

conn = socket.create_connection((stack, 7), timeout=30)
found["plain_rtt"] = echo_rtt(conn)
found["added"] = json.loads(ctl("--json", "faults", "add", "latency", "delay=300ms", "direction=in", "port=7").stdout)
found["delayed_rtt"] = echo_rtt(conn)
found["listed"] = json.loads(ctl("--json", "faults", "list").stdout)
found["ss"] = json.loads(ctl("--json", "ss").stdout)
found["tcpinfo"] = json.loads(ctl("--json", "tcpinfo").stdout)
found["tcpinfo_text"] = ctl("tcpinfo").stdout
found["removed"] = json.loads(ctl("--json", "faults", "remove", str(found["added"]["id"])).stdout)
echo_rtt(conn)  # the same connection still echoes
found["after_remove"] = json.loads(ctl("--json", "faults", "list").stdout)
found["stats"] = json.loads(ctl("--json", "stats", "service.tcp.").stdout)
found["sysctl_set"] = json.loads(ctl("--json", "sysctl", "net.ipv4.tcp_sack=0").stdout)
found["sysctl_read"] = ctl("sysctl", "net.ipv4.tcp_sack").stdout.strip()
bad = ctl("faults", "add", "jam", ok=False)
found["bad_fault"] = [bad.returncode, bad.stderr.strip()]
bad = ctl("sysctl", "net.nope=1", ok=False)
found["bad_sysctl"] = [bad.returncode, bad.stderr.strip()]
bad = ctl("faults", "remove", "99", ok=False)
found["bad_remove"] = [bad.returncode, bad.stderr.strip()]
conn.close()
print(json.dumps(found), flush=True)
"""


def test_ctl_steers_a_running_stack_from_its_peer(tmp_path: Path) -> None:
    script = tmp_path / "peer.py"
    script.write_text(PEER)
    out = subprocess.run([sys.executable, "-m", "pytcp_green", "serve", "--lab", "--peer",
                          f"{sys.executable} {script} {sys.executable}"], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["socket"].endswith(".sock") and not os.path.exists(found["socket"])  # removed at exit
    assert found["delayed_rtt"] >= 0.3  # the echo's segments to the stack were held 300 ms
    assert found["added"] == {"id": 1, "fault": "latency delay=0.3s direction=in port=7"}
    (listed,) = found["listed"]
    assert listed["id"] == 1 and listed["stats"]["matched"] >= 1
    assert {"state": "LISTEN", "local": "*:7", "peer": "*:*"} in found["ss"]
    assert any(row["state"] == "ESTABLISHED" and row["local"].endswith(":7") for row in found["ss"])
    (info,) = [row for row in found["tcpinfo"] if row["local"].endswith(":7")]
    assert info["state"] == 1 and info["rtt"] > 0 and info["snd_cwnd"] > 0  # TCP_ESTABLISHED
    assert info["bytes_received"] == 2 and info["bytes_acked"] == 3  # two echoed bytes, + the SYN as Linux counts
    assert f"{info['local']} -> {info['peer']}" in found["tcpinfo_text"] and "snd_cwnd:" in found["tcpinfo_text"]
    assert found["removed"] == {"removed": 1} and found["after_remove"] == []  # removed, and the echo went on
    assert found["stats"]["service.tcp.7"] >= 1
    assert found["sysctl_set"] == {"net.ipv4.tcp_sack": 0}
    assert found["sysctl_read"] == "net.ipv4.tcp_sack = 0"
    assert found["bad_fault"][0] == 1 and "unknown fault 'jam'" in found["bad_fault"][1]
    assert "[EINVAL]" in found["bad_fault"][1]
    assert found["bad_sysctl"][0] == 1 and "unknown sysctl" in found["bad_sysctl"][1]
    assert found["bad_remove"][0] == 1 and "no fault 99" in found["bad_remove"][1]


def test_ctl_without_a_stack_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTCP_GREEN_CTL"}
    missing = tmp_path / "none.sock"
    out = subprocess.run([sys.executable, "-m", "pytcp_green", "ctl", "--socket", str(missing), "stats"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 1 and "cannot reach the stack" in out.stderr and "[ENOENT]" in out.stderr
    usage = subprocess.run([sys.executable, "-m", "pytcp_green", "ctl"], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "give a request" in usage.stderr
