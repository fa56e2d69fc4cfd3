"""Congestion control: the module interface, reno and CUBIC (RFC 9438), choosing them by sysctl and by
TCP_CONGESTION (as Linux answers it), PRR (RFC 6937) in fast recovery and HyStart++ (RFC 9406)."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import pytest
from kernel.test_tcp import BULK_PEER, finish, fresh_host, kernel_program, read_line, stack_exchange, tcp_socket
from patches.helpers import run_patched

from pytcp_green.patches._sockopts import get_option, set_option
from pytcp_green.stack.stack import SOCK_STREAM
from pytcp_green.stack.sysctl import DEFAULTS
from pytcp_green.stack.tcp.cc import MODULES, create
from pytcp_green.stack.tcp.cc.cubic import ALPHA, BETA, C, Cubic
from pytcp_green.stack.tcp.cc.reno import Reno
from pytcp_green.stack.wire.tcp import ACK, sack_option

from .host import Peer
from .test_behaviour import data_segments, establish

MSS = 1460


def ack_clock(cc: Cubic | Reno, start: float, rtt: float, rounds: int) -> list[tuple[float, float]]:
    """Acknowledge a full window per RTT, one segment per ACK spread evenly over the round trip (the
    sender always cwnd-limited); return (time, cwnd in segments) at the start of every round."""
    now = start
    seen = []
    for _ in range(rounds):
        seen.append((now - start, cc.cwnd / MSS))
        window = cc.cwnd
        segments = window // MSS
        for i in range(segments):
            cc.on_ack(MSS, MSS, cc.cwnd, now + rtt * (i + 1) / segments)  # the window stays full
        now += rtt
    return seen


# -- the modules ------------------------------------------------------------------------------------

def test_cubic_after_a_loss_follows_w_cubic_of_rfc9438() -> None:
    """§4.6: ssthresh = 0.7 * FlightSize; §4.2: the window then tracks W_cubic(t) = C(t-K)^3 + W_max
    with K = cbrt((W_max - cwnd_epoch)/C): concave up to W_max at t = K, convex beyond it."""
    cc = Cubic(MSS)
    rtt = 0.1
    cc.on_rtt(rtt, 0, 0, 0.0)
    cc.cwnd = 100 * MSS
    cc.on_loss(100 * MSS, MSS, 10.0)
    assert cc.ssthresh == int(100 * MSS * BETA)
    cc.cwnd = cc.ssthresh  # what fast recovery leaves (RFC 6937 ends at ssthresh)
    k = ((100 - 70) / C) ** (1 / 3)
    trace = ack_clock(cc, 10.0, rtt, 80)
    assert cc.k == pytest.approx(k) and cc.w_max == pytest.approx(100)

    def formula(t: float) -> float:
        return C * (t - k) ** 3 + 100

    for t, cwnd in trace:
        if t <= 5.5:
            # cwnd aims at W_cubic one RTT ahead and gets there within the round
            assert formula(t) - 0.5 <= cwnd <= formula(t + rtt) + 0.5, (t, cwnd, formula(t))
        else:
            # later W_est (§4.3), one segment per RTT once past W_max, overtakes the flat cubic
            assert cwnd >= formula(t) - 0.5, (t, cwnd, formula(t))
    at_k = min(trace, key=lambda p: abs(p[0] - k))
    assert at_k[1] == pytest.approx(100, abs=0.5)  # the plateau at W_max, reached at t = K


def test_cubic_reno_friendly_region_grows_like_reno_on_a_short_rtt() -> None:
    """§4.3: with a short RTT W_cubic is flat near W_max, and W_est (alpha_cubic segments per round
    trip) is what moves the window."""
    cc = Cubic(MSS)
    cc.on_rtt(0.001, 0, 0, 0.0)
    cc.cwnd = 20 * MSS
    cc.on_loss(20 * MSS, MSS, 0.0)
    cc.cwnd = cc.ssthresh
    start = cc.cwnd / MSS
    ack_clock(cc, 0.0, 0.001, 10)
    assert cc.cwnd / MSS == pytest.approx(start + 10 * ALPHA, abs=1.0)


def test_cubic_fast_convergence_and_timeout() -> None:
    """§4.7: a loss before the previous W_max is reached lowers W_max to cwnd * (1 + beta) / 2; §4.8:
    a timeout collapses cwnd to one segment and the next stage starts at K = 0."""
    cc = Cubic(MSS)
    cc.cwnd = 100 * MSS
    cc.on_loss(100 * MSS, MSS, 0.0)
    cc.cwnd = 80 * MSS
    cc.on_loss(80 * MSS, MSS, 1.0)
    assert cc.w_max == pytest.approx(80 * (1 + BETA) / 2)
    cc.on_timeout(80 * MSS, MSS, True, 2.0)
    assert cc.cwnd == MSS and cc.ssthresh == int(80 * MSS * BETA)
    cc.cwnd = cc.ssthresh
    cc.on_ack(MSS, MSS, cc.cwnd, 3.0)
    assert cc.k == 0 and cc.w_max == pytest.approx(cc.ssthresh / MSS)


def test_cubic_idle_period_does_not_count_as_growth_time() -> None:
    """Linux's CA_EVENT_TX_START (RFC 9438 §5.8): the epoch moves forward by the idle time."""
    cc = Cubic(MSS)
    cc.cwnd = 50 * MSS
    cc.on_loss(50 * MSS, MSS, 0.0)
    cc.cwnd = cc.ssthresh
    cc.on_ack(MSS, MSS, cc.cwnd, 1.0)
    epoch = cc.epoch
    assert epoch == 1.0
    cc.on_tx_start(31.0)
    cc.on_tx_start(32.0)  # a second call without an ACK in between moves it by the extra second only
    assert cc.epoch == epoch + 31.0


def test_reno_halves_and_grows_one_segment_per_window() -> None:
    cc = Reno(MSS)
    assert cc.cwnd == 14600 and cc.name == "reno"
    cc.cwnd = 20 * MSS
    cc.on_loss(20 * MSS, MSS, 0.0)
    assert cc.ssthresh == 10 * MSS
    cc.cwnd = cc.ssthresh
    ack_clock(cc, 0.0, 0.05, 5)
    assert cc.cwnd == 15 * MSS


def test_every_module_starts_with_iw10_and_slow_start_doubles() -> None:
    for name in MODULES:
        cc = create(name, MSS)
        assert cc.cwnd == 10 * MSS and cc.name == name  # RFC 6928
        cc.on_ack(2 * MSS, MSS, cc.cwnd, 0.0)
        assert cc.cwnd == 12 * MSS


# -- choosing one ------------------------------------------------------------------------------------

def test_sysctl_default_is_cubic_and_lists_match_the_modules() -> None:
    assert DEFAULTS["net.ipv4.tcp_congestion_control"] == "cubic"
    assert set(str(DEFAULTS["net.ipv4.tcp_available_congestion_control"]).split()) == set(MODULES)
    peer = Peer()
    establish(peer)
    assert peer.tcb is not None and isinstance(peer.tcb.cc, Cubic)
    peer = Peer({"net.ipv4.tcp_congestion_control": "reno"})
    establish(peer)
    assert peer.tcb is not None and isinstance(peer.tcb.cc, Reno)


def test_tcp_congestion_per_socket_switches_a_live_connection_and_refuses_unknown_names() -> None:
    peer = Peer()
    establish(peer)
    sock, tcb = peer.sock, peer.tcb
    assert sock is not None and tcb is not None
    assert sock.congestion == "cubic"
    tcb.cc.cwnd = 33 * MSS
    sock.set_congestion("reno")
    assert isinstance(tcb.cc, Reno) and tcb.cc.cwnd == 33 * MSS  # the window carries over
    with pytest.raises(OSError) as info:
        sock.set_congestion("vegas")
    assert info.value.errno == errno.ENOENT and sock.congestion == "reno"


def test_unknown_default_falls_back_to_reno_as_linux() -> None:
    peer = Peer({"net.ipv4.tcp_congestion_control": "nosuch"})
    establish(peer)
    assert peer.tcb is not None and peer.tcb.cc.name == "reno"


def test_not_allowed_module_is_eperm() -> None:
    peer = Peer({"net.ipv4.tcp_allowed_congestion_control": "cubic"})
    sock = peer.active_open()
    with pytest.raises(OSError) as info:
        sock.set_congestion("reno")
    assert info.value.errno == errno.EPERM


def _kernel_and_patched_answers(code: str) -> tuple[object, object]:
    namespace: dict[str, object] = {}
    body = "import socket, errno\n" + code
    exec(compile(body, "<kernel>", "exec"), namespace)  # the same calls on a kernel socket
    return namespace["result"], run_patched(body + "\nreport(result)\n")


def test_tcp_congestion_sockopt_answers_as_the_kernel() -> None:
    """setsockopt/getsockopt(IPPROTO_TCP, TCP_CONGESTION) through the patched socket give what the
    kernel gives: the name NUL-padded to 16 bytes (or cut to buflen), ENOENT for an unknown one."""
    code = """
s = socket.socket()
result = {}
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"reno")
result["16"] = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).hex()
result["4"] = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 4).hex()
result["100"] = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 100).hex()
try:
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"no-such-cc")
except OSError as e:
    result["unknown"] = e.errno
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"cubic\\0junk")
result["cubic"] = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).rstrip(b"\\0").decode()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    u.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"reno")
except OSError as e:
    result["udp"] = e.errno
s.close(); u.close()
"""
    kernel, patched = _kernel_and_patched_answers(code)
    assert patched == kernel
    assert kernel == {"16": b"reno".ljust(16, b"\0").hex(), "4": b"reno".hex(),
                      "100": b"reno".ljust(16, b"\0").hex(), "unknown": errno.ENOENT, "cubic": "cubic",
                      "udp": errno.ENOPROTOOPT}


def test_tcp_congestion_default_on_a_fresh_patched_socket_is_cubic() -> None:
    got = run_patched("""
        import socket
        s = socket.socket()
        report(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).rstrip(b"\\0").decode())
    """)
    assert got == "cubic"
    assert socket.TCP_CONGESTION == 13


@pytest.mark.parametrize(("name", "factor"), [("reno", 0.5), ("cubic", BETA)])
def test_fast_retransmit_sets_ssthresh_by_the_chosen_module(name: str, factor: float) -> None:
    """RFC 5681 eq. 4 for reno, RFC 9438 §4.6 for cubic, on a connection's first SACK recovery."""
    peer = Peer({"net.ipv4.tcp_sack": 1, "net.ipv4.tcp_congestion_control": name})
    establish(peer, sack=True)
    sock, tcb = peer.sock, peer.tcb
    assert sock is not None and tcb is not None
    sock.send(b"s" * (MSS * 10), peer.now)
    base = data_segments(peer.out())[0].seq
    peer.send(ACK, ack=base, options=sack_option([(base + MSS, base + MSS * 10)]))
    assert peer.host.stats["tcp.fast_retransmit"] == 1
    assert tcb.cc.ssthresh == int(10 * MSS * factor)


# -- against the kernel --------------------------------------------------------------------------------

@pytest.mark.lab
@pytest.mark.parametrize("name", ["reno", "cubic"])
def test_each_module_moves_data_to_the_kernel_intact_through_loss(tmp_path: Path, name: str) -> None:
    """A stack socket with TCP_CONGESTION set through the socket option path, 2 MB each way with the
    kernel through 2% loss: both hashes match and the chosen module did the work."""
    with fresh_host(tmp_path, impair="loss=2%,seed=21") as kernel:
        args = ("listen", kernel.kernel_ip, "0", str(2_000_000), "5")
        with kernel_program(kernel, BULK_PEER, *args) as proc:
            port = int(read_line(proc))
            sock = tcp_socket(kernel)
            set_option(sock, SOCK_STREAM, {}, socket.IPPROTO_TCP, socket.TCP_CONGESTION, name.encode())
            assert get_option(sock, kernel.family, SOCK_STREAM, {}, socket.IPPROTO_TCP, socket.TCP_CONGESTION,
                              16) == name.encode().ljust(16, b"\0")
            sock.connect((kernel.kernel_ip, port))
            tcb = sock.core.tcb
            assert tcb.cc.name == name
            sent, got_n, got = stack_exchange(sock, 2_000_000, 6)
            k_sent_n, k_sent, k_got_n, k_got = finish(proc).split()
        assert (int(k_got_n), k_got) == (2_000_000, sent), "stack -> kernel: the kernel received other bytes"
        assert (got_n, got) == (int(k_sent_n), k_sent), "kernel -> stack: the stack received other bytes"
        stats = kernel.host.stack.stats
        assert stats["tcp.retransmit"] > 0 and stats["tcp.rst_in"] == stats["tcp.rst_out"] == 0
