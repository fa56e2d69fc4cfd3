"""The loopback needs no TCP checksum (issue 12, as Linux's lo): the stack sends its own frames with the
pseudo-header sum only and takes them back on trust, the data arrives intact, and a capture of the
loopback still holds frames whose checksums tshark verifies."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import gevent
import pytest

from pytcp_green.green.sockets import GreenSocket
from pytcp_green.host import Host, StackOptions
from pytcp_green.link.pcap import PcapDevice
from pytcp_green.stack.sockbase import AF_INET
from pytcp_green.stack.stack import SOCK_STREAM
from pytcp_green.stack.wire.checksum import ones_sum, pseudo_sum

NBYTES = 2_000_000


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark checks the capture's checksums")
def test_loopback_tcp_skips_checksums_and_its_capture_still_verifies(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    pcap = tmp_path / "lo.pcap"
    data = bytes(range(256)) * (NBYTES // 256)
    with Host(StackOptions(pcap=str(pcap))) as host:
        lo = host.stack.loopback
        assert lo.csum_free
        sent: list[bytes] = []
        capture = host.runtime.attachments[0].device
        assert isinstance(capture, PcapDevice)
        loopback = capture.inner
        write = loopback.write

        def spy(frame: bytes | bytearray | memoryview) -> None:
            sent.append(bytes(frame))
            write(frame)

        monkeypatch.setattr(loopback, "write", spy)
        listener = GreenSocket(host.runtime, host.stack.socket(AF_INET, SOCK_STREAM), timeout=60)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = GreenSocket(host.runtime, host.stack.socket(AF_INET, SOCK_STREAM), timeout=60)
        client.connect(listener.getsockname())
        server, _ = listener.accept()
        sender = gevent.spawn(lambda: (client.sendall(data), client.close()))
        got = hashlib.sha256()
        while chunk := server.recv(1 << 20):
            got.update(chunk)
        sender.get(timeout=60)
        server.close()
        listener.close()
        assert got.hexdigest() == hashlib.sha256(data).hexdigest()
        stats = host.stack.stats
        assert stats["tcp.drop.bad_checksum"] == 0
    # What crossed the loopback carried only the pseudo-header sum (nobody checked it)...
    tcp = [f for f in sent if f[0] >> 4 == 4 and f[9] == 6]
    assert tcp
    for frame in tcp:
        hl = (frame[0] & 0x0F) * 4
        length = len(frame) - hl
        assert int.from_bytes(frame[hl + 16:hl + 18], "big") == ones_sum(b"", pseudo_sum(
            frame[12:16], frame[16:20], 6, length))
    # ...and the capture shows it whole, as the peer's checksum check would see it.
    out = subprocess.run(["tshark", "-r", str(pcap), "-o", "tcp.check_checksum:TRUE", "-Y", "tcp", "-T", "fields",
                          "-e", "tcp.checksum.status"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    statuses = out.stdout.split()
    assert len(statuses) == len(tcp) and set(statuses) == {"1"}
