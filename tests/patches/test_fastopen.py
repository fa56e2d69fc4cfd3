"""TCP Fast Open (RFC 7413) through the drop-in, stack to stack over its loopback: ``TCP_FASTOPEN`` on
the listener, ``sendto(MSG_FASTOPEN)`` and ``TCP_FASTOPEN_CONNECT`` on the client.  The first
connection fetches a cookie; the next ones carry their data in the SYN, which the server reads from a
connection it accepted before the handshake completed.  The kernel-facing checks are in
tests/kernel/test_fastopen.py."""

from __future__ import annotations

import pytest

from .helpers import run_patched

PROGRAM = """
    import hashlib, socket, gevent
    from pytcp_green.patches import _state
    stack = _state.current_host().stack
    stack.sysctl["net.ipv4.tcp_fastopen"] = TFO
    srv = socket.create_server(("127.0.0.1", 0))
    srv.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 5)
    seen = []
    def serve(n):
        for _ in range(n):
            conn, _peer = srv.accept()
            with conn:
                first = conn.recv(65536)
                seen.append(len(first))
                rest = first
                while data := conn.recv(65536):
                    rest += data
                conn.sendall(hashlib.sha256(rest).digest())
    def fetch(payload, how):
        cl = socket.socket()
        if how == "connect":
            cl.setsockopt(socket.IPPROTO_TCP, 30, 1)  # TCP_FASTOPEN_CONNECT
            cl.connect(srv.getsockname())
            cl.sendall(payload)
        else:
            sent = cl.sendto(payload, socket.MSG_FASTOPEN, srv.getsockname())
            cl.sendall(payload[sent:])
        cl.shutdown(socket.SHUT_WR)
        digest = cl.recv(64)
        cl.close()
        return digest == hashlib.sha256(payload).digest()
    g = gevent.spawn(serve, 3)
    payload = bytes(i * 7 % 251 for i in range(100_000))
    ok = [attempt(lambda: fetch(payload, "sendto")), attempt(lambda: fetch(payload, "sendto")),
          attempt(lambda: fetch(payload[:900], "connect"))]
    if ok == [True] * 3:
        g.get(timeout=30)
    else:
        g.kill()  # nothing connected: the server still waits in accept
    s = stack.stats
    report({"ok": ok, "first_reads": seen,
            "stats": {k: s[k] for k in ("tcp.tfo_cookie_req", "tcp.tfo_cookie_reqd", "tcp.tfo_active",
                                        "tcp.tfo_active_fail", "tcp.tfo_passive", "tcp.tfo_passive_fail")}})
"""


def test_second_connection_carries_its_data_in_the_syn() -> None:
    out = run_patched(PROGRAM.replace("TFO", "3"))
    assert out["ok"] == [True, True, True]
    # The loopback's MTU is 65536: the SYN of a cookie holder carries up to the cached MSS less 40.
    assert out["stats"] == {"tcp.tfo_cookie_req": 1, "tcp.tfo_cookie_reqd": 1, "tcp.tfo_active": 2,
                            "tcp.tfo_active_fail": 0, "tcp.tfo_passive": 2, "tcp.tfo_passive_fail": 0}
    assert out["first_reads"][1] > 0 and out["first_reads"][2] == 900


@pytest.mark.parametrize("tfo", [0, 2])
def test_without_the_client_bit_msg_fastopen_is_refused(tfo: int) -> None:
    out = run_patched(PROGRAM.replace("TFO", str(tfo)))
    assert out["ok"] == ["errno 95"] * 3  # EOPNOTSUPP, as Linux (sendto and setsockopt)
