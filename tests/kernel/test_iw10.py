"""IW10 (RFC 6928) on the wire: the stack's first flight to a kernel receiver is ten full segments,
counted in the stack's capture (tshark) before the kernel's first acknowledgment of data."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from kernel.test_hardening import sink_connection
from kernel.test_tcp import fresh_host

pytestmark = [pytest.mark.lab, pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark reads the capture")]

def _first_flight(pcap: Path, stack_ip: str) -> list[int]:
    """Payload lengths of the stack's data segments sent before the peer acknowledged any data."""
    out = subprocess.run(["tshark", "-r", str(pcap), "-Y", "tcp", "-T", "fields", "-e", "ip.src", "-e", "tcp.len",
                          "-e", "tcp.ack", "-e", "tcp.flags.syn"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    flight = []
    for line in out.stdout.splitlines():
        src, length, ack, syn = line.split("\t")
        if src == stack_ip and int(length) and syn in ("0", "False"):
            flight.append(int(length))
        elif src != stack_ip and int(ack) > 1:  # relative: beyond our SYN, the first data acknowledged
            break
    return flight


def test_the_first_flight_is_ten_segments(tmp_path: Path) -> None:
    with fresh_host(tmp_path) as kernel:
        with sink_connection(kernel, 200_000) as (tcb, _port):
            mss = tcb.eff_mss
        stack_ip = kernel.stack_ip
    flight = _first_flight(tmp_path / "stack.pcap", stack_ip)
    assert flight == [mss] * 10  # RFC 6928 §2: min(10*MSS, max(2*MSS, 14600)) with MSS 1448
