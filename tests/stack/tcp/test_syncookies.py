"""SYN cookies (Linux's design, net.ipv4.tcp_syncookies): the cookie codec, and a listener whose SYN
queue is full completing handshakes by cookie; with cookies off, the oldest half-open child goes."""

from __future__ import annotations

import itertools

import pytest

from pytcp_green.stack.sockbase import AF_INET, AF_INET6
from pytcp_green.stack.sysctl import Sysctl
from pytcp_green.stack.tcp.syncookies import (
    MSS_TABLE4,
    MSS_TABLE6,
    SynCookies,
    decode_ts,
    encode_ts,
    minute,
    mss_index,
    mss_of,
)
from pytcp_green.stack.wire.tcp import ACK, PSH, RST, SYN, TcpSegment, build_tcp, syn_options

from .host import LOCAL, PORT, REMOTE, FakeHost, flags_of

M32 = 0xFFFFFFFF
LOCAL6 = bytes.fromhex("20010db8000000000000000000000001")
REMOTE6 = bytes.fromhex("20010db8000000000000000000000002")
ALL_OPTIONS = {"net.ipv4.tcp_timestamps": 1, "net.ipv4.tcp_sack": 1, "net.ipv4.tcp_window_scaling": 1}


def cookies() -> SynCookies:
    return SynCookies(bytes(range(64)))


# -- the codec -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("v6", [False, True])
@pytest.mark.parametrize("count", [0, 1, 255, 256, 0xFFFFFFFF])
def test_cookie_round_trip_keeps_the_mss_index(v6: bool, count: int) -> None:
    c = cookies()
    laddr, raddr = (LOCAL6, REMOTE6) if v6 else (LOCAL, REMOTE)
    for index in range(4):
        for peer_isn in (0, 1, 0x7FFFFFFF, M32):
            cookie = c.make(laddr, 80, raddr, 40000, peer_isn, count, index)
            assert c.check(laddr, 80, raddr, 40000, peer_isn, count, cookie) == index
            assert c.check(laddr, 80, raddr, 40000, peer_isn, (count + 1) & M32, cookie) == index


@pytest.mark.parametrize(("v6", "table"), [(False, MSS_TABLE4), (True, MSS_TABLE6)])
def test_mss_is_the_largest_table_entry_not_above_the_peers(v6: bool, table: tuple[int, ...]) -> None:
    assert table == ((1220, 1420, 1440, 8940) if v6 else (536, 1300, 1440, 1460))  # Linux's msstab
    for index, mss in enumerate(table):
        assert mss_index(mss, v6) == index and mss_of(index, v6) == mss
        assert mss_index(mss + 1, v6) == index
        if index:
            assert mss_index(mss - 1, v6) == index - 1
    assert mss_index(100, v6) == 0  # below the table: its smallest entry, as Linux
    assert mss_index(65535, v6) == 3


def test_cookie_expires_after_two_minutes() -> None:
    c = cookies()
    made = 119.9  # minute 1
    cookie = c.make(LOCAL, 80, REMOTE, 40000, 7, minute(made), 2)
    assert c.check(LOCAL, 80, REMOTE, 40000, 7, minute(120.0), cookie) == 2  # minute 2: still valid
    assert c.check(LOCAL, 80, REMOTE, 40000, 7, minute(180.0), cookie) is None  # minute 3: too old
    assert c.check(LOCAL, 80, REMOTE, 40000, 7, minute(59.0), cookie) is None  # from the future


def test_tampered_cookie_or_other_tuple_is_rejected() -> None:
    c = cookies()
    count = minute(1000.0)
    cookie = c.make(LOCAL, 80, REMOTE, 40000, 7, count, 3)
    for bit in range(2, 32):  # the two lowest bits only move the MSS index within the table, as in Linux
        assert c.check(LOCAL, 80, REMOTE, 40000, 7, count, cookie ^ (1 << bit)) is None
    assert c.check(LOCAL, 80, REMOTE, 40001, 7, count, cookie) is None
    assert c.check(LOCAL, 81, REMOTE, 40000, 7, count, cookie) is None
    assert c.check(LOCAL, 80, bytes((198, 18, 0, 3)), 40000, 7, count, cookie) is None
    assert c.check(LOCAL, 80, REMOTE, 40000, 7 + 1000, count, cookie) is None
    assert SynCookies(bytes(64)).check(LOCAL, 80, REMOTE, 40000, 7, count, cookie) is None


@pytest.mark.parametrize("ts_now", [0, 63, 64, 1000, 0x7FFFFFFF, M32])
def test_options_round_trip_through_the_timestamp(ts_now: int) -> None:
    for wscale, sack, ecn in itertools.product([None, *range(15)], [False, True], [False, True]):
        ts = encode_ts(ts_now, wscale, sack, ecn)
        assert 0 <= (ts_now - ts) & M32 < 128  # never ahead of the clock, at most two steps behind
        assert decode_ts(ts) == (wscale, sack, ecn)
    assert decode_ts(0x0F | 0x10) == (None, True, False)
    assert decode_ts(0x2E) == (14, False, True)


def test_the_cookie_secret_follows_the_stack_seed() -> None:
    a, b, other = FakeHost(seed=3).tcp.cookies, FakeHost(seed=3).tcp.cookies, FakeHost(seed=4).tcp.cookies
    assert a.make(LOCAL, 80, REMOTE, 1, 2, 3, 1) == b.make(LOCAL, 80, REMOTE, 1, 2, 3, 1)
    assert a.make(LOCAL, 80, REMOTE, 1, 2, 3, 1) != other.make(LOCAL, 80, REMOTE, 1, 2, 3, 1)


# -- a listener under a SYN flood ----------------------------------------------------------------------

class Listener:
    """A FakeHost with a listener on PORT whose SYN queue holds ``max_syn`` half-open children."""

    def __init__(self, v6: bool = False, max_syn: int = 2, syncookies: int = 1) -> None:
        self.local, self.remote = (LOCAL6, REMOTE6) if v6 else (LOCAL, REMOTE)
        self.host = FakeHost({**ALL_OPTIONS, "net.ipv4.tcp_max_syn_backlog": max_syn,
                              "net.ipv4.tcp_syncookies": syncookies})
        if v6:
            self.host.is_local = lambda addr: addr in (LOCAL, LOCAL6)  # type: ignore[method-assign]
        self.now = 1000.0
        self.sock = self.host.tcp.socket(AF_INET6 if v6 else AF_INET)
        self.sock.bind(("", PORT))
        self.sock.listen(16)
        self.stats = self.host.stats

    def send(self, port: int, flags: int, seq: int, ack: int = 0, *, options: bytes = b"",
             ts: tuple[int, int] | None = None, data: bytes = b"", window: int = 65535) -> list[TcpSegment]:
        segment = build_tcp(self.remote, self.local, port, PORT, seq & M32, ack & M32, flags, window,
                            options=options, ts=ts, payload=data)
        self.host.tcp.receive(self.remote, self.local, memoryview(segment), self.now)
        return self.out()

    def out(self) -> list[TcpSegment]:
        segments = [TcpSegment.parse(memoryview(raw)) for _, _, raw in self.host.sent]
        self.host.sent.clear()
        self.host.gso_sizes.clear()
        return segments

    def flood(self, count: int, first_port: int = 20000) -> None:
        for port in range(first_port, first_port + count):
            self.send(port, SYN, 5000 + port, options=syn_options(1460, 7, True, (1, 0)))


@pytest.mark.parametrize("v6", [False, True])
@pytest.mark.parametrize(("mss", "wscale", "sack"),
                         [(1460, 7, True), (1300, None, True), (536, 0, False), (9000, 14, False)])
def test_full_syn_queue_completes_a_handshake_by_cookie(v6: bool, mss: int, wscale: int | None,
                                                         sack: bool) -> None:
    lst = Listener(v6)
    lst.flood(2)
    assert lst.sock.half_open == 2 and lst.stats["tcp.syncookies_sent"] == 0
    conns = len(lst.host.tcp.conns)
    (synack,) = lst.send(40000, SYN, 0xFFFFFFF0, options=syn_options(mss, wscale, sack, (777, 0)))
    assert flags_of(synack) == SYN | ACK and synack.ack == 0xFFFFFFF1
    assert lst.stats["tcp.syncookies_sent"] == 1 and lst.stats["tcp.req_q_full_do_cookies"] == 1
    assert len(lst.host.tcp.conns) == conns  # nothing kept
    assert synack.ts_val is not None and synack.ts_ecr == 777 and synack.sack_perm == sack
    assert (synack.wscale is not None) == (wscale is not None)
    # The final ACK carries data: the connection is made, the data delivered, accept() returns it.
    lst.send(40000, ACK | PSH, 0xFFFFFFF1, synack.seq + 1, ts=(778, synack.ts_val), data=b"GET /", window=1000)
    assert lst.stats["tcp.syncookies_recv"] == 1 and lst.stats["tcp.syncookies_failed"] == 0
    child, addr = lst.sock.accept(lst.now)
    tcb = child.tcb
    assert tcb is not None and child.state == "ESTABLISHED" and addr[1] == 40000
    table = MSS_TABLE6 if v6 else MSS_TABLE4
    assert tcb.snd_mss == min(table[mss_index(mss, v6)], tcb.adv_mss)
    assert tcb.snd_wscale == (wscale or 0) and tcb.sack_ok == sack and tcb.ts_ok
    assert tcb.snd_wnd == 1000 << (wscale or 0)
    assert child.recv(100, lst.now) == b"GET /"
    assert child.send(b"200 OK", lst.now) == 6
    (data,) = [s for s in lst.out() if s.payload]
    assert bytes(data.payload) == b"200 OK" and data.seq == (synack.seq + 1) & M32
    assert data.ts_val is not None and (data.ts_val - synack.ts_val) & M32 < 128  # the SYN-ACK's clock
    assert data.ts_ecr == 778


def test_without_timestamps_the_options_are_lost_as_on_linux() -> None:
    lst = Listener()
    lst.flood(2)
    (synack,) = lst.send(40000, SYN, 100, options=syn_options(1460, 7, True, None))
    assert synack.mss == 1460 and synack.wscale is None and not synack.sack_perm and synack.ts_val is None
    lst.send(40000, ACK, 101, synack.seq + 1)
    child, _ = lst.sock.accept(lst.now)
    tcb = child.tcb
    assert tcb is not None and tcb.snd_wscale == 0 and tcb.rcv_wscale == 0 and not tcb.sack_ok and not tcb.ts_ok
    assert tcb.snd_mss == 1460


def test_invalid_cookie_is_dropped_and_counted() -> None:
    lst = Listener()
    lst.flood(2)
    (synack,) = lst.send(40000, SYN, 100)
    assert lst.send(40000, ACK, 101, synack.seq + 1 + 0x400) == []  # not our cookie: no RST, nothing made
    assert lst.send(40001, ACK, 101, synack.seq + 1) == []  # another tuple
    assert lst.stats["tcp.syncookies_failed"] == 2 and lst.stats["tcp.syncookies_recv"] == 0
    with pytest.raises(BlockingIOError):
        lst.sock.accept(lst.now)


def test_cookie_older_than_two_minutes_is_rejected() -> None:
    lst = Listener()
    lst.flood(2)
    lst.now = 1019.0  # minute 16
    (synack,) = lst.send(40000, SYN, 100)
    lst.now = 1140.0  # minute 19; the SYN-ACK retries have freed the queue meanwhile
    lst.host.timers.run_due(lst.now)
    lst.flood(2, 30000)
    lst.send(30002, SYN, 100)  # a fresh cookie: ACKs are still checked
    assert lst.send(40000, ACK, 101, synack.seq + 1) == []
    assert lst.stats["tcp.syncookies_failed"] == 1 and lst.stats["tcp.syncookies_recv"] == 0


def test_ack_without_a_recent_cookie_is_reset_as_before() -> None:
    lst = Listener()
    (rst,) = lst.send(40000, ACK, 101, 12345)
    assert flags_of(rst) == RST and rst.seq == 12345
    assert lst.stats["tcp.syncookies_failed"] == 0


def test_syncookies_2_always_sends_cookies() -> None:
    lst = Listener(syncookies=2)
    (synack,) = lst.send(40000, SYN, 100)
    assert lst.sock.half_open == 0 and lst.stats["tcp.syncookies_sent"] == 1
    lst.send(40000, ACK, 101, synack.seq + 1)
    assert lst.sock.accept(lst.now)[0].state == "ESTABLISHED"


def test_syncookies_0_drops_the_oldest_half_open_child() -> None:
    lst = Listener(syncookies=0)
    lst.flood(2)
    oldest = (LOCAL, PORT, REMOTE, 20000)
    assert oldest in lst.host.tcp.conns
    (synack,) = lst.send(40000, SYN, 100)
    assert lst.stats["tcp.syncookies_sent"] == 0 and lst.stats["tcp.req_q_full_drop"] == 1
    assert oldest not in lst.host.tcp.conns and lst.sock.half_open == 2
    lst.send(40000, ACK, 101, synack.seq + 1)
    assert lst.sock.accept(lst.now)[0].state == "ESTABLISHED" and lst.sock.half_open == 1
    (rst,) = lst.send(45000, ACK, 101, synack.seq + 1)  # no cookies: an unknown ACK is reset
    assert flags_of(rst) == RST


def test_sysctl_default_is_linuxs() -> None:
    assert Sysctl()["net.ipv4.tcp_syncookies"] == 1


@pytest.mark.parametrize("v6", [False, True])
def test_a_syn_without_options_gets_the_smallest_table_mss(v6: bool) -> None:
    lst = Listener(v6)
    lst.flood(2)
    (synack,) = lst.send(40000, SYN, 100)  # no MSS option: 536 (IPv4) / 1220 (IPv6) assumed
    assert synack.ts_val is None and synack.wscale is None and not synack.sack_perm
    lst.send(40000, ACK, 101, synack.seq + 1)
    tcb = lst.sock.accept(lst.now)[0].tcb
    assert tcb is not None and tcb.snd_mss == (1220 if v6 else 536)
