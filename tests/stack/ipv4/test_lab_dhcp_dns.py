"""Name resolution through the DNS servers DHCP taught the stack (RFC 2132 §3.8): the stub resolver falls back
to Stack.dns_servers when no server was given; patch_all(lab=True, dhcp=True) and ``pytcp-green run --lab --dhcp``
resolve web.lab through the lab's dnsmasq and fetch from the kernel's http.server with an unmodified requests."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from patches.helpers import REPO, run_patched

needs_dnsmasq = pytest.mark.skipif(shutil.which("dnsmasq") is None, reason="dnsmasq is not installed")

LEARNED = """
import socket, gevent
from pytcp_green.patches import _state, dns
from pytcp_green.stack.wire.dns import Message, Record, TYPE_A, CLASS_IN
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.1", 53))
def serve():
    while True:
        data, peer = udp.recvfrom(4096)
        q = Message.decode(data)
        r = Message(id=q.id, qr=True, rd=q.rd, ra=True, questions=q.questions)
        r.answers.append(Record(q.questions[0].name, TYPE_A, CLASS_IN, 60, "198.18.0.42"))
        udp.sendto(r.encode(), peer)
gevent.spawn(serve)
def err(name):
    try:
        return socket.gethostbyname(name)
    except socket.gaierror as e:
        return e.errno
before = err("learned.test")
_state.current_host().stack.dns_servers[:] = ["127.0.0.1"]  # what the DHCP client does when it binds
report({"before": before, "after": err("learned.test"), "explicit": dns.name_servers(),
        "effective": [list(s) for s in dns.effective_servers()]})
"""


def test_resolver_uses_the_servers_the_stack_learned() -> None:
    import socket

    out = run_patched(LEARNED)
    assert out == {"before": socket.EAI_NONAME, "after": "198.18.0.42", "explicit": [],
                   "effective": [["127.0.0.1", 53]]}


def test_dhcp_without_a_link_is_refused() -> None:
    from pytcp_green.host import StackOptions

    with pytest.raises(ValueError, match="needs a link"):
        StackOptions(dhcp=True).validate()
    StackOptions(dhcp=True, tap="tap9").validate()


FETCH = """
import hashlib, socket, sys, requests
r = requests.get("http://web.lab:8000/body.bin", timeout=30)
print(socket.gethostbyname("web.lab"), r.status_code, hashlib.sha256(r.content).hexdigest())
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTCP_GREEN_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.mark.lab
@needs_dnsmasq
def test_run_lab_dhcp_requests_resolves_web_lab_through_dnsmasq(tmp_path: Path) -> None:
    pytest.importorskip("requests")
    body = os.urandom(300_000)
    (tmp_path / "body.bin").write_bytes(body)
    script = tmp_path / "fetch.py"
    script.write_text(FETCH)
    peer = f"python3 -m http.server 8000 --bind 198.18.0.1 --directory {tmp_path}"
    out = subprocess.run([sys.executable, "-m", "pytcp_green", "run", "--lab", "--dhcp", "--peer", peer,
                          "--wait-port", "8000", str(script)], capture_output=True, text=True, timeout=180,
                         env=_env(), cwd=REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.split()[-3:] == ["198.18.0.1", "200", hashlib.sha256(body).hexdigest()], out.stdout


PATCH_ALL_DHCP = """
import json, pytcp_green
host = pytcp_green.patch_all(lab=True, dhcp=True)
import socket
from pytcp_green.patches import dns
print(json.dumps({"leased": str(host.stack_ip4), "learned": host.stack.dns_servers, "explicit": dns.name_servers(),
                  "web": socket.gethostbyname("web.lab"),
                  "gai": sorted({ai[4][0] for ai in socket.getaddrinfo("web.lab", 80, socket.AF_INET)})}))
"""


@pytest.mark.lab
@needs_dnsmasq
def test_patch_all_dhcp_true_leases_and_resolves() -> None:
    import ipaddress
    import json

    out = subprocess.run([sys.executable, "-c", PATCH_ALL_DHCP], capture_output=True, text=True, timeout=180,
                         env=_env(), cwd=REPO)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    leased = ipaddress.IPv4Interface(result["leased"])
    assert leased.network == ipaddress.IPv4Network("198.18.0.0/24")
    assert leased.ip != ipaddress.IPv4Address("198.18.0.2")  # leased from dnsmasq's range, not the static one
    assert result["learned"] == ["198.18.0.1"] and result["explicit"] == []
    assert result["web"] == "198.18.0.1" and result["gai"] == ["198.18.0.1"]
