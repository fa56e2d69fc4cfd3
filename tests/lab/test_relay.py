"""The relay: two kernel namespaces joined through the seeded impairment (lab/relay.py).

The kernel's TCP on both ends is the oracle: data sent across the relay arrives intact (hashed),
loss shows up as the kernel's retransmissions and as the relay's own ``lost`` counts, and the
same seed makes the same decisions.
"""

from __future__ import annotations

import hashlib
import random
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from pytcp_green.lab import Lab
from pytcp_green.lab.relay import Relay
from pytcp_green.link.impair import ImpairSpec

pytestmark = pytest.mark.lab

PEER = "198.18.0.1"
APP = "198.18.0.2"
SIZE = 2_000_000
DIGEST = hashlib.sha256(random.Random(7).randbytes(SIZE)).hexdigest()

# Receives one connection and prints the SHA-256 of what it read; "ready" once it listens.
RECEIVER = f"""
import hashlib, socket, sys
srv = socket.create_server(("{PEER}", 9000))
print("ready", flush=True)
conn, _ = srv.accept()
h = hashlib.sha256()
while chunk := conn.recv(65536):
    h.update(chunk)
print(h.hexdigest(), flush=True)
"""
SENDER = f"""
import random, socket
data = random.Random(7).randbytes({SIZE})
with socket.create_connection(("{PEER}", 9000), timeout=60) as s:
    s.sendall(data)
"""


@contextmanager
def joined(impair: ImpairSpec | None) -> Iterator[tuple[Lab, Lab, Relay]]:
    """A peer namespace (198.18.0.1) and an app namespace (198.18.0.2), joined by a relay."""
    with Lab(kernel_ip4=f"{PEER}/24", stack_ip4=f"{APP}/24") as peer, \
            Lab(kernel_ip4=f"{APP}/24", stack_ip4=f"{PEER}/24") as app, \
            Relay(app.device, peer.device, impair=impair) as relay:
        yield peer, app, relay


def _retransmissions(lab: Lab) -> int:
    out = lab.run(["nstat", "-az", "TcpRetransSegs"], timeout=10, check=True).stdout
    match = re.search(r"TcpRetransSegs\s+(\d+)", out)
    assert match, out
    return int(match.group(1))


def _transfer(peer: Lab, app: Lab) -> str:
    receiver = peer.popen(["python3", "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    assert receiver.stdout is not None
    assert receiver.stdout.readline().strip() == "ready"
    app.run(["python3", "-c", SENDER], timeout=120, check=True)
    digest = receiver.stdout.readline().strip()
    assert receiver.wait(timeout=30) == 0
    return digest


def test_plain_relay_carries_ping_and_tcp_intact() -> None:
    with joined(None) as (peer, app, relay):
        ping = app.run(["ping", "-c", "2", "-i", "0.2", "-W", "2", PEER], timeout=20)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        digest = _transfer(peer, app)
        stats = relay.stats
    assert digest == DIGEST
    assert stats["a->b"]["bytes"] > SIZE > stats["b->a"]["bytes"] > 0
    assert stats["a->b"]["write_errors"] == stats["b->a"]["write_errors"] == 0


def test_lossy_relay_loses_frames_and_the_kernel_repairs_them() -> None:
    with joined(ImpairSpec.parse("loss=5%,seed=1")) as (peer, app, relay):
        digest = _transfer(peer, app)
        retrans = _retransmissions(app)
        stats = relay.stats
        seed = relay.seed
    assert digest == DIGEST
    assert seed == 1
    assert stats["a->b"]["lost"] > 0 and stats["b->a"]["lost"] > 0
    assert retrans > 0

