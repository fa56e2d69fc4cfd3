"""Seeded TCP transfer scenarios between two real stacks on an impaired simulated link.

One seed fixes everything: the impairment of each direction, the windows, which options each side
offers, who sends how much, Nagle, and how each side closes.  ``Scenario.from_seed(seed, cc, rack)``
draws them, with the congestion control module and RACK-TLP on or off (``net.ipv4.tcp_recovery``) set
on both sides from the arguments, not the seed, so one seed is the same scenario under each;
``run(scenario)`` plays it and returns an :class:`Outcome`.  A failure message always carries the seed,
and ``python -m tests.stack.tcp.scenario [--cc reno] [--no-rack] SEED...`` replays scenarios verbosely.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import random
import sys
from typing import Any

from pytcp_green.link.impair import ImpairSpec
from pytcp_green.sim.network import Simulation
from pytcp_green.stack.interface import LinkKind
from pytcp_green.stack.sockbase import AF_INET
from pytcp_green.stack.stack import SOCK_STREAM, Stack
from pytcp_green.stack.sysctl import Value
from pytcp_green.stack.tcp import TcpSocket

IP_A, IP_B = "198.18.0.10", "198.18.0.11"
PORT = 8080


@dataclasses.dataclass
class Scenario:
    seed: int
    spec_ab: str = "none"
    spec_ba: str = "none"
    latency: float = 0.001
    a_sends: int = 100_000  # client -> server bytes
    b_sends: int = 0  # server -> client bytes
    rcvbuf_a: int = 131072
    rcvbuf_b: int = 131072
    sysctl_a: dict[str, Value] = dataclasses.field(default_factory=dict)
    sysctl_b: dict[str, Value] = dataclasses.field(default_factory=dict)
    nodelay: bool = False
    chunk: int = 65536  # largest single send()
    shutdown_a: bool = False  # client half-closes with shutdown(SHUT_WR) instead of close()
    read_chunk: int = 65536

    @classmethod
    def from_seed(cls, seed: int, cc: str = "cubic", rack: bool = True) -> Scenario:
        rng = random.Random(f"tcp-scenario:{seed}")

        def spec() -> str:
            parts = []
            loss = rng.choice((0, 0, 1, 2, 5, 10, 20, 30))
            if loss:
                parts.append(f"loss={loss}%")
            if rng.random() < 0.4:
                parts.append(f"reorder={rng.choice((1, 5, 20))}%")
            if rng.random() < 0.3:
                parts.append(f"dup={rng.choice((1, 5))}%")
            if rng.random() < 0.3:
                parts.append(f"corrupt={rng.choice((1, 3))}%")
            if rng.random() < 0.3:
                parts.append(f"jitter={rng.choice((1, 5))}ms")
            return ",".join(parts) or "none"

        def options() -> dict[str, Value]:
            return {"net.ipv4.tcp_sack": int(rng.random() < 0.7),
                    "net.ipv4.tcp_timestamps": int(rng.random() < 0.7),
                    "net.ipv4.tcp_window_scaling": int(rng.random() < 0.8),
                    "net.ipv4.tcp_congestion_control": cc,
                    "net.ipv4.tcp_recovery": int(rack)}

        sizes = (0, 1, 100, 1460, 5000, 40_000, 100_000, 300_000)
        direction = rng.random()
        a_sends = rng.choice(sizes) if direction < 0.8 else 0
        b_sends = rng.choice(sizes) if direction > 0.5 else 0
        # Byte-at-a-time calls are worth testing, but only where they do not dominate the run time.
        tiny = max(a_sends, b_sends) <= 5000
        return cls(
            seed=seed,
            spec_ab=spec(),
            spec_ba=spec(),
            latency=rng.choice((0.0001, 0.001, 0.01, 0.05)),
            a_sends=a_sends,
            b_sends=b_sends,
            rcvbuf_a=rng.choice((2048, 8192, 65536, 131072, 1 << 20)),
            rcvbuf_b=rng.choice((2048, 8192, 65536, 131072, 1 << 20)),
            sysctl_a=options(),
            sysctl_b=options(),
            nodelay=rng.random() < 0.5,
            chunk=rng.choice((1, 100, 1000, 65536, 1 << 20) if tiny else (1000, 65536, 1 << 20)),
            shutdown_a=rng.random() < 0.3,
            read_chunk=rng.choice((1, 1000, 65536) if tiny else (1000, 65536)),
        )


@dataclasses.dataclass
class Outcome:
    scenario: Scenario
    completed: bool
    a_got: bytes
    b_got: bytes
    a_expected: bytes
    b_expected: bytes
    time: float
    stats_a: dict[str, int]
    stats_b: dict[str, int]
    states: tuple[str, str]
    link: dict[str, dict[str, int]]

    @property
    def intact(self) -> bool:
        return self.a_got == self.b_expected and self.b_got == self.a_expected

    def describe(self) -> str:
        s = self.scenario
        return (f"seed={s.seed} completed={self.completed} intact={self.intact} t={self.time:.3f}s "
                f"states={self.states} b_got={len(self.b_got)}/{len(self.a_expected)} "
                f"a_got={len(self.a_got)}/{len(self.b_expected)}\n  {s}\n"
                f"  a: {tcp_stats(self.stats_a)}\n  b: {tcp_stats(self.stats_b)}\n  link: {self.link}\n"
                f"  replay: python -m tests.stack.tcp.scenario {self.replay_flags()}{s.seed}")

    def replay_flags(self) -> str:
        """The replay command's options that set this outcome's congestion control and RACK."""
        a = self.scenario.sysctl_a
        cc, rack = a.get("net.ipv4.tcp_congestion_control", "cubic"), a.get("net.ipv4.tcp_recovery", 1)
        return (f"--cc {cc} " if cc != "cubic" else "") + ("--no-rack " if not rack else "")


def tcp_stats(stats: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in sorted(stats.items()) if k.startswith(("tcp.", "stack."))}


def payload(label: str, size: int) -> bytes:
    """Deterministic, non-repeating bytes (a SHA-256 counter stream)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{label}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def make_host(sim: Simulation, name: str, mac: str, ip: str, sysctl: dict[str, Value]) -> tuple[Stack, Any]:
    stack = Stack(seed=sim.derive_seed(name), sysctl=dict(sysctl))
    iface = stack.add_interface("eth0", LinkKind.ETHERNET, mac=bytes.fromhex(mac))
    stack.add_ip4(iface, f"{ip}/24")
    return stack, iface


class _Side:
    """One application: writes its data, then either close()s at once (when it expects nothing back,
    so close() races the data still queued: it must not lose any) or half-closes with shutdown(SHUT_WR)
    and reads to EOF before closing."""

    def __init__(self, sock: TcpSocket | None, data: bytes, chunk: int, read_chunk: int, half_close: bool,
                 expects: bool) -> None:
        self.sock = sock
        self.data = data
        self.sent = 0
        self.chunk = chunk
        self.read_chunk = read_chunk
        self.half_close = half_close
        self.expects = expects
        self.shut = False
        self.got = bytearray()
        self.eof = False
        self.write_done = False
        self.closed = False
        self.error: int | None = None

    def pump(self, now: float) -> None:
        sock = self.sock
        if sock is None or self.closed:
            return
        while not self.write_done and sock.state in ("ESTABLISHED", "CLOSE_WAIT"):
            if self.sent < len(self.data):
                try:
                    self.sent += sock.send(memoryview(self.data)[self.sent:self.sent + self.chunk], now)
                except BlockingIOError:
                    break
                except OSError as exc:
                    self.error = exc.errno
                    self.write_done = True
                continue
            self.write_done = True
        if self.write_done and self.half_close and not self.shut and sock.state in ("ESTABLISHED", "CLOSE_WAIT"):
            self.shut = True
            sock.shutdown(1, now)
        if self.write_done and not self.expects and not self.half_close:
            sock.close(now)
            self.closed = True
            return
        while not self.eof:
            try:
                chunk = sock.recv(self.read_chunk, now)
            except BlockingIOError:
                break
            except OSError as exc:
                self.error = exc.errno
                self.eof = True
                break
            if not chunk:
                self.eof = True
            self.got += chunk
        if self.eof and self.write_done:
            sock.close(now)
            self.closed = True


# Virtual seconds a scenario may take.  At 30% loss both ways without timestamps, Karn's rule keeps
# the RTO backed off (no valid RTT sample) and a transfer crawls for over an hour of protocol time,
# as it would on Linux; simulated time costs almost no CPU, so allow it rather than skip such cases.
SCENARIO_TIMEOUT = 4 * 3600.0


def run(s: Scenario, timeout: float = SCENARIO_TIMEOUT) -> Outcome:
    sim = Simulation(s.seed)
    a, ia = make_host(sim, "a", "020000000a01", IP_A, s.sysctl_a)
    b, ib = make_host(sim, "b", "020000000b01", IP_B, s.sysctl_b)
    link = sim.connect(a, ia, b, ib, ImpairSpec.parse(s.spec_ab), ImpairSpec.parse(s.spec_ba), latency=s.latency)
    listener = b.socket(AF_INET, SOCK_STREAM)
    assert isinstance(listener, TcpSocket)
    listener.rcvbuf = s.rcvbuf_b
    listener.nodelay = s.nodelay
    listener.bind(("", PORT))
    listener.listen(8)
    client = a.socket(AF_INET, SOCK_STREAM)
    assert isinstance(client, TcpSocket)
    client.rcvbuf = s.rcvbuf_a
    client.nodelay = s.nodelay
    with contextlib.suppress(BlockingIOError):
        client.connect((IP_B, PORT), sim.now)
    a_data = payload(f"{s.seed}:a", s.a_sends)
    b_data = payload(f"{s.seed}:b", s.b_sends)
    side_a = _Side(client, a_data, s.chunk, s.read_chunk, s.shutdown_a or s.b_sends > 0, s.b_sends > 0)
    side_b = _Side(None, b_data, s.chunk, s.read_chunk, False, s.a_sends > 0)

    def step() -> bool:
        now = sim.now
        if side_b.sock is None:
            with contextlib.suppress(BlockingIOError):
                side_b.sock = listener.accept(now)[0]
        side_a.pump(now)
        side_b.pump(now)
        return side_a.closed and side_b.closed

    done = sim.run_until(step, timeout)
    if done:
        listener.close(sim.now)
        # Let TIME-WAIT and every retransmission run out: both tables must end empty.  A FIN whose
        # ACKs are all lost is retried tcp_retries2 (15) times with the RTO capped at 120 s, about
        # 15 minutes in all, so a shorter bound fails on an unlucky run of losses, not on a bug.
        sim.run_until(lambda: not a.tcp.conns and not b.tcp.conns, 1000.0)  # type: ignore[union-attr]
    states = (client.state, side_b.sock.state if side_b.sock is not None else "-")
    completed = done and not a.tcp.conns and not b.tcp.conns  # type: ignore[union-attr]
    return Outcome(s, completed, bytes(side_a.got), bytes(side_b.got), a_data, b_data, sim.now - 1000.0,
                   dict(a.stats), dict(b.stats), states,
                   {"ab": dict(link.ab.stats), "ba": dict(link.ba.stats) if link.ba else {}})


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="Replay seeded TCP scenarios and describe each outcome.")
    parser.add_argument("seeds", nargs="+", type=int, metavar="SEED")
    parser.add_argument("--cc", default="cubic", help="congestion control on both sides (default cubic)")
    parser.add_argument("--no-rack", dest="rack", action="store_false", help="net.ipv4.tcp_recovery=0 on both sides")
    args = parser.parse_args(argv)
    for seed in args.seeds:
        print(run(Scenario.from_seed(seed, args.cc, args.rack)).describe())


if __name__ == "__main__":
    main(sys.argv[1:])
