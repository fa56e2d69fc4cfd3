"""TCP between two real stacks (Ethernet, ARP, IPv4) on impaired links under the virtual clock.

Every transfer must arrive byte-exact (compared whole, which is stronger than comparing SHA-256s) with no
internal error counted anywhere; a failure names its seed, replayable with
``python -m tests.stack.tcp.scenario [--cc reno] [--no-rack] SEED``.
"""

from __future__ import annotations

import contextlib
import errno

import pytest

from pytcp_green.link.impair import ImpairSpec
from pytcp_green.sim.network import Simulation
from pytcp_green.stack.sockbase import AF_INET
from pytcp_green.stack.stack import SOCK_STREAM, Stack
from pytcp_green.stack.tcp import TcpSocket

from .scenario import IP_A, IP_B, Outcome, Scenario, make_host, payload, run

SCENARIOS = 1000
BATCH = 50


def _healthy(outcome: Outcome) -> bool:
    bad = ("stack.drop.internal_error", "stack.timer_error")
    return (outcome.completed and outcome.intact
            and not any(outcome.stats_a.get(k) or outcome.stats_b.get(k) for k in bad))


@pytest.mark.parametrize("first", range(0, SCENARIOS, BATCH), ids=lambda f: f"seeds {f}-{f + BATCH - 1}")
@pytest.mark.parametrize("rack", [True, False], ids=["rack", "no-rack"])
@pytest.mark.parametrize("cc", ["cubic", "reno"])
def test_seeded_scenarios(first: int, rack: bool, cc: str) -> None:
    """Loss 0-30 %, reordering, duplication, corruption, jitter, 100 µs-50 ms latency, windows from 2 KB
    to 1 MB, SACK/timestamps/window scaling on or off per side, data one way, the other or both, sizes
    0 B-300 KB, one-byte to 1 MB send()/recv() calls, close() racing queued data or half-close; every
    seed under each congestion control module, with RACK-TLP on and off (issue 13)."""
    scenarios = (Scenario.from_seed(seed, cc, rack) for seed in range(first, first + BATCH))
    failures = [o.describe() for o in map(run, scenarios) if not _healthy(o)]
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("sack", [True, False], ids=["sack", "newreno"])
@pytest.mark.parametrize("loss", [0, 5, 10, 20, 30])
def test_bulk_both_ways_recovers_from_loss(loss: int, sack: bool) -> None:
    spec = f"loss={loss}%,seed={loss}" if loss else "none"
    options = {"net.ipv4.tcp_sack": int(sack)}
    s = Scenario(seed=10_000 + loss, spec_ab=spec, spec_ba=spec, a_sends=200_000, b_sends=200_000,
                 sysctl_a=options, sysctl_b=options, shutdown_a=True)
    outcome = run(s)
    assert _healthy(outcome), outcome.describe()
    for stats in (outcome.stats_a, outcome.stats_b):
        assert not stats.get("tcp.rst_out") and not stats.get("tcp.rst_in"), outcome.describe()
        if loss:
            assert stats["tcp.retransmit"] > 0, outcome.describe()
        else:
            assert not stats.get("tcp.retransmit"), outcome.describe()
    if loss >= 5:
        recovered = outcome.stats_a["tcp.fast_retransmit"] + outcome.stats_b["tcp.fast_retransmit"]
        assert recovered > 0, outcome.describe()  # not everything waited for a timeout


def test_corruption_is_caught_by_checksums_and_repaired() -> None:
    s = Scenario(seed=77, spec_ab="corrupt=10%", spec_ba="corrupt=10%", a_sends=150_000, b_sends=150_000,
                 shutdown_a=True)
    outcome = run(s)
    assert _healthy(outcome), outcome.describe()
    dropped = outcome.stats_a.get("tcp.drop.bad_checksum", 0) + outcome.stats_b.get("tcp.drop.bad_checksum", 0)
    assert dropped > 0 and outcome.link["ab"]["corrupted"] > 0


# -- scripted scenarios ----------------------------------------------------------------------------------

def _pair(seed: int, spec: str = "none", latency: float = 0.01) -> tuple[Simulation, Stack, Stack]:
    sim = Simulation(seed)
    a, ia = make_host(sim, "a", "020000000a01", IP_A, {})
    b, ib = make_host(sim, "b", "020000000b01", IP_B, {})
    sim.connect(a, ia, b, ib, ImpairSpec.parse(spec), ImpairSpec.parse(spec), latency=latency)
    return sim, a, b


def _tcp(stack: Stack) -> TcpSocket:
    sock = stack.socket(AF_INET, SOCK_STREAM)
    assert isinstance(sock, TcpSocket)
    return sock


def _connect(sock: TcpSocket, addr: tuple[str, int], now: float) -> None:
    with pytest.raises(BlockingIOError) as info:
        sock.connect(addr, now)
    assert info.value.errno == errno.EINPROGRESS


def test_simultaneous_open_and_simultaneous_close() -> None:
    sim, a, b = _pair(1, latency=0.05)
    sa, sb = _tcp(a), _tcp(b)
    sa.bind(("", 5000))
    sb.bind(("", 6000))
    # Prime ARP so both SYNs are in flight at once.
    sim.run_until(lambda: False, 0)
    _connect(sa, (IP_B, 6000), sim.now)
    _connect(sb, (IP_A, 5000), sim.now)
    assert sim.run_until(lambda: sa.state == sb.state == "ESTABLISHED", 10)
    assert a.stats["tcp.passive_open"] == 0 and b.stats["tcp.passive_open"] == 0
    assert sa.tcb is not None and sa.tcb.stats["tcp.active_open"] == 1
    assert sa.send(b"ping", sim.now) == 4 and sb.send(b"pong", sim.now) == 4
    assert sim.run_until(lambda: bool(sa.poll_mask() & 1 and sb.poll_mask() & 1), 5)
    assert sa.recv(10, sim.now) == b"pong" and sb.recv(10, sim.now) == b"ping"
    sa.close(sim.now)
    sb.close(sim.now)  # both FINs cross: FIN-WAIT-1 -> CLOSING -> TIME-WAIT on both sides
    assert sim.run_until(lambda: sa.state == sb.state == "TIME_WAIT", 5)
    assert sim.run_until(lambda: not a.tcp.conns and not b.tcp.conns, 120)  # type: ignore[union-attr]


def test_half_close_keeps_the_other_direction_open() -> None:
    sim, a, b = _pair(2, "loss=5%")
    listener = _tcp(b)
    listener.bind(("", 80))
    listener.listen(1)
    client = _tcp(a)
    _connect(client, (IP_B, 80), sim.now)
    assert sim.run_until(lambda: bool(listener.poll_mask() & 1), 10)
    server, _ = listener.accept(sim.now)
    client.send(b"request", sim.now)
    client.shutdown(1, sim.now)  # SHUT_WR: our FIN follows the request
    got = bytearray()

    def server_saw_eof() -> bool:
        with contextlib.suppress(BlockingIOError):
            while chunk := server.recv(100, sim.now):
                got.extend(chunk)
            return True
        return False

    assert sim.run_until(server_saw_eof, 30) and bytes(got) == b"request"
    assert sim.run_until(lambda: client.state == "FIN_WAIT_2", 10)  # once the ACK of the FIN is back
    assert server.state == "CLOSE_WAIT"
    answer = payload("answer", 50_000)
    sent = 0
    received = bytearray()

    def exchange() -> bool:
        nonlocal sent
        with contextlib.suppress(BlockingIOError):
            while sent < len(answer):
                sent += server.send(answer[sent:], sim.now)
        if sent == len(answer) and server.state == "CLOSE_WAIT":
            server.close(sim.now)
        with contextlib.suppress(BlockingIOError):
            while chunk := client.recv(65536, sim.now):
                received.extend(chunk)
            return True
        return False

    assert sim.run_until(exchange, 120) and bytes(received) == answer
    assert client.state == "TIME_WAIT"
    with pytest.raises(OSError) as info:
        client.send(b"more", sim.now)
    assert info.value.errno == errno.EPIPE


def test_connection_refused_by_a_closed_port() -> None:
    sim, a, _b = _pair(3)
    client = _tcp(a)
    _connect(client, (IP_B, 81), sim.now)
    assert sim.run_until(lambda: bool(client.poll_mask() & 0x008), 5)  # POLLERR
    assert client.take_error() == errno.ECONNREFUSED


def test_two_hundred_connections_in_a_row_leave_nothing_behind() -> None:
    sim, a, b = _pair(4, latency=0.001)
    listener = _tcp(b)
    listener.bind(("", 80))
    listener.listen(16)
    for i in range(200):
        client = _tcp(a)
        _connect(client, (IP_B, 80), sim.now)
        assert sim.run_until(lambda: bool(listener.poll_mask() & 1), 5), i
        server, _ = listener.accept(sim.now)
        client.send(b"hello %d" % i, sim.now)
        client.close(sim.now)
        data = bytearray()

        def drained(srv: TcpSocket = server, buf: bytearray = data) -> bool:
            with contextlib.suppress(BlockingIOError):
                while chunk := srv.recv(100, sim.now):
                    buf.extend(chunk)
                return True
            return False

        assert sim.run_until(drained, 5) and bytes(data) == b"hello %d" % i
        server.close(sim.now)
    listener.close(sim.now)
    assert sim.run_until(lambda: not a.tcp.conns and not b.tcp.conns, 200)  # type: ignore[union-attr]
    assert not a.tcp.ports.in_use(80) and not b.tcp.ports.in_use(80)  # type: ignore[union-attr]
    assert not any(a.tcp.ports.in_use(p) for p in range(32768, 61000))  # type: ignore[union-attr]
    assert b.stats["tcp.passive_open"] == 200 and not b.stats.get("tcp.rst_out") and not a.stats.get("tcp.rst_out")


def test_bulk_over_loopback_with_its_64k_mtu() -> None:
    """Loopback's MTU is 65536 but an IPv4 datagram holds 65535 bytes: the MSS must respect the latter."""
    sim = Simulation(5)
    stack = Stack(seed=sim.derive_seed("lo"))
    sim.loopback(stack, "lo")
    listener = _tcp(stack)
    listener.bind(("127.0.0.1", 80))
    listener.listen(1)
    client = _tcp(stack)
    _connect(client, ("127.0.0.1", 80), sim.now)
    assert sim.run_until(lambda: bool(listener.poll_mask() & 1), 5)
    server, _ = listener.accept(sim.now)
    data = payload("loopback", 1_000_000)
    sent = 0
    got = bytearray()

    def pump() -> bool:
        nonlocal sent
        with contextlib.suppress(BlockingIOError):
            while sent < len(data):
                sent += client.send(data[sent:], sim.now)
        with contextlib.suppress(BlockingIOError):
            while chunk := server.recv(1 << 20, sim.now):
                got.extend(chunk)
        return len(got) == len(data)

    assert sim.run_until(pump, 30) and bytes(got) == data
    assert not stack.stats.get("tcp.tx_error") and not stack.stats.get("ip4.drop.too_big")
    assert client.tcb is not None and client.tcb.snd_mss == 65535 - 40
