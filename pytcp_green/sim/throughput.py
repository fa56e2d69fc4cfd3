"""Seeded TCP throughput under the virtual clock: one flow per (loss x RTT x bottleneck buffer) and
congestion control, and two flows sharing one bottleneck.

Two stacks, a sender and a receiver, are cabled through a :class:`~pytcp_green.sim.bottleneck.Bottleneck`
of ``RATE`` bit/s in the sender's direction (random loss and half the RTT behind it; the ACK path
has the other half and no loss).  The sender's congestion control is Linux's sysctl
``net.ipv4.tcp_congestion_control`` (RFC 9438 CUBIC or RFC 5681 Reno).  Everything is derived from
the seed, so the table is the same on every machine; ``tests/sim/test_throughput_snapshot.py``
keeps it as a snapshot, so a change of behaviour in recovery or congestion control shows in review.

    python -m pytcp_green.sim.throughput      # print the table
"""

from __future__ import annotations

import contextlib
import itertools

from pytcp_green.link.impair import ImpairSpec
from pytcp_green.sim.bottleneck import throttle
from pytcp_green.sim.network import Simulation
from pytcp_green.stack.interface import LinkKind
from pytcp_green.stack.sockbase import AF_INET
from pytcp_green.stack.stack import SOCK_STREAM, Stack
from pytcp_green.stack.tcp import TcpSocket

RATE = 10e6  # bit/s at the bottleneck
NBYTES = 1_000_000  # per table cell
RCVBUF = 1 << 20  # the receiver's window never limits the flow: the bottleneck and the sender's CC do
LOSSES = (0.0, 0.005, 0.02)
RTTS = (0.01, 0.08)
BUFFERS = (16, 128)  # bottleneck queue, frames
CCS = ("reno", "cubic")
IP_SND, IP_RCV = "198.18.0.10", "198.18.0.11"
PORT = 5001
_BLOCK = bytes(range(256)) * 256


class _Net:
    """The sender and the receiver stacks on one bottlenecked link."""

    def __init__(self, seed: int, cc: str, loss: float, rtt: float, buffer: int, rate: float) -> None:
        self.sim = Simulation(seed)
        self.snd = self._stack("snd", "020000000a01", IP_SND, {"net.ipv4.tcp_congestion_control": cc})
        self.rcv = self._stack("rcv", "020000000b01", IP_RCV, {})
        link = self.sim.connect(self.snd, "eth0", self.rcv, "eth0", ImpairSpec(loss=loss), None, latency=rtt / 2)
        self.bottleneck = throttle(link.ab, rate, buffer)
        self.listener = self._socket(self.rcv)
        self.listener.bind(("", PORT))
        self.listener.listen(16)

    def _stack(self, name: str, mac: str, ip: str, sysctl: dict[str, int | str]) -> Stack:
        stack = Stack(seed=self.sim.derive_seed(name), sysctl=dict(sysctl))
        iface = stack.add_interface("eth0", LinkKind.ETHERNET, mac=bytes.fromhex(mac))
        stack.add_ip4(iface, f"{ip}/24")
        return stack

    @staticmethod
    def _socket(stack: Stack) -> TcpSocket:
        sock = stack.socket(AF_INET, SOCK_STREAM)
        assert isinstance(sock, TcpSocket)
        sock.rcvbuf = RCVBUF
        return sock

    def open(self, flows: int) -> list[tuple[TcpSocket, TcpSocket]]:
        """``flows`` connections, sender -> receiver, established at the same instant's run."""
        clients = []
        for _ in range(flows):
            client = self._socket(self.snd)
            with contextlib.suppress(BlockingIOError):
                client.connect((IP_RCV, PORT), self.sim.now)
            clients.append(client)
        accepted: list[TcpSocket] = []

        def ready() -> bool:
            with contextlib.suppress(BlockingIOError):
                while len(accepted) < flows:
                    accepted.append(self.listener.accept(self.sim.now)[0])
            return len(accepted) == flows and all(c.state == "ESTABLISHED" for c in clients)

        if not self.sim.run_until(ready, 60):
            raise RuntimeError("connections did not establish")
        # Accept order follows the handshakes; pair by the client's port.
        by_port = {s.getpeername()[1]: s for s in accepted}
        return [(c, by_port[c.getsockname()[1]]) for c in clients]


def _pump(sender: TcpSocket, receiver: TcpSocket, now: float, left: int | None) -> tuple[int, int]:
    """Fill the sender's buffer (up to ``left`` bytes; None: without end) and drain the receiver;
    returns (bytes sent, bytes received) in this call."""
    sent = 0
    view = memoryview(_BLOCK)
    with contextlib.suppress(BlockingIOError):
        while left is None or sent < left:
            n = sender.send(view if left is None else view[: left - sent], now)
            if not n:
                break
            sent += n
    got = 0
    with contextlib.suppress(BlockingIOError):
        while chunk := receiver.recv(1 << 16, now):
            got += len(chunk)
    return sent, got


def goodput(cc: str, loss: float, rtt: float, buffer: int, *, seed: int = 1, nbytes: int = NBYTES) -> float:
    """Mbit/s of application data for one ``nbytes`` transfer, from the established connection to
    the last byte read."""
    net = _Net(seed, cc, loss, rtt, buffer, RATE)
    ((sender, receiver),) = net.open(1)
    start = net.sim.now
    state = {"sent": 0, "got": 0}

    def done() -> bool:
        sent, got = _pump(sender, receiver, net.sim.now, nbytes - state["sent"])
        state["sent"] += sent
        state["got"] += got
        return state["got"] >= nbytes

    if not net.sim.run_until(done, 3600):
        raise RuntimeError(f"{cc} loss={loss} rtt={rtt} buffer={buffer}: the transfer stalled")
    net.sim.close()
    return nbytes * 8 / (net.sim.now - start) / 1e6


def share(cc: str, *, seed: int = 1, rtt: float = 0.02, buffer: int = 32, rate: float = 2e6,
          warmup: float = 10.0, measure: float = 60.0) -> tuple[int, int]:
    """Two flows of ``cc`` started together on one bottleneck: the bytes each delivered to the
    receiver in the ``measure`` seconds after ``warmup`` (once slow start and the first losses are over)."""
    net = _Net(seed, cc, 0.0, rtt, buffer, rate)
    flows = net.open(2)
    counted = [0, 0]
    counting = [False]

    def pump() -> bool:
        for i, (sender, receiver) in enumerate(flows):
            _, got = _pump(sender, receiver, net.sim.now, None)
            if counting[0]:
                counted[i] += got
        return False

    net.sim.run_until(pump, warmup)
    counting[0] = True
    net.sim.run_until(pump, measure)
    net.sim.close()
    return counted[0], counted[1]


def table() -> str:
    """The snapshot: goodput in Mbit/s of one 1 MB flow per cell, for each congestion control."""
    lines = [f"# goodput, Mbit/s: one {NBYTES // 1000} KB flow through a {RATE / 1e6:g} Mbit/s drop-tail "
             "bottleneck (seed 1, virtual time)",
             f"{'loss':>6} {'rtt':>6} {'buffer':>7} " + " ".join(f"{cc:>7}" for cc in CCS)]
    for loss, rtt, buffer in itertools.product(LOSSES, RTTS, BUFFERS):
        cells = " ".join(f"{goodput(cc, loss, rtt, buffer):7.3f}" for cc in CCS)
        lines.append(f"{loss * 100:5.1f}% {rtt * 1000:4.0f}ms {buffer:5d}fr {cells}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(table(), end="")
