"""MSG_OOB through the drop-in, run once patched over the stack and once over the kernel's loopback:
the same script must give the same answers (recv(MSG_OOB) and its errnos, SO_OOBINLINE, select's
exceptional list, poll's POLLPRI, epoll's EPOLLPRI, recvmsg's MSG_OOB flag, UDP's refusal).  The
exchange with a kernel peer over a link, and the segments on the wire, are tests/kernel/test_urgent.py."""

from __future__ import annotations

from .helpers import run_patched

SCRIPT = """
import select, socket
out = {}
srv = socket.create_server(("127.0.0.1", 0))
def pair(inline=False):
    c = socket.create_connection(srv.getsockname())
    s, _ = srv.accept()
    if inline:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
    return c, s
def read_all(sock, n):  # the first read (it stops at the mark), then the rest however it comes
    parts = []
    while sum(map(len, parts)) < n:
        parts.append(sock.recv(100))
    return [parts[0].decode(), b"".join(parts[1:]).decode()]
def wait_pri(sock):
    p = select.poll()
    p.register(sock, select.POLLPRI)
    return p.poll(10000) == [(sock.fileno(), select.POLLPRI)]

c, s = pair()
out["none_yet"] = attempt(lambda: c.recv(1, socket.MSG_OOB).decode())
out["inline_opt"] = c.getsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE)
s.send(b"abc")
s.send(b"!", socket.MSG_OOB)
s.send(b"def")
out["pollpri"] = wait_pri(c)
out["select_x"] = select.select([], [], [c], 0) == ([], [], [c])
ep = select.epoll()
ep.register(c, select.EPOLLPRI)
out["epollpri"] = ep.poll(0) == [(c.fileno(), select.EPOLLPRI)]
out["peek"] = c.recv(1, socket.MSG_OOB | socket.MSG_PEEK).decode()
data, anc, flags, addr = c.recvmsg(1, 0, socket.MSG_OOB)
out["oob"] = [data.decode(), flags == socket.MSG_OOB]
out["again"] = attempt(lambda: c.recv(1, socket.MSG_OOB).decode())
out["pri_after"] = [select.select([], [], [c], 0)[2] == [], ep.poll(0)]
out["stream"] = read_all(c, 6)
ep.close(); c.close(); s.close()

c, s = pair()
s.sendall(b"xy!", socket.MSG_OOB)  # only the last byte is the out-of-band one
s.send(b"z")
out["pollpri2"] = wait_pri(c)
out["stream2"] = read_all(c, 2)
out["late_oob"] = attempt(lambda: c.recv(1, socket.MSG_OOB).decode())  # still unread: the reader stopped at the mark
out["stream2b"] = read_all(c, 1)
c.close(); s.close()

c, s = pair(inline=True)
out["inline_opt2"] = c.getsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE)
s.send(b"abc")
s.send(b"!", socket.MSG_OOB)
s.send(b"def")
out["pollpri3"] = wait_pri(c)
out["inline_oob"] = attempt(lambda: c.recv(1, socket.MSG_OOB).decode())
out["inline_stream"] = read_all(c, 7)
c.close(); s.close()

u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
out["udp"] = attempt(lambda: u.sendto(b"x", socket.MSG_OOB, ("127.0.0.1", 9)))
u.close(); srv.close()
report(out)
"""


def test_msg_oob_answers_as_over_the_kernel() -> None:
    patched = run_patched(SCRIPT)
    assert patched == run_patched(SCRIPT, patch="")
    assert patched["oob"] == ["!", True] and patched["stream"] == ["abc", "def"]
    assert patched["inline_stream"] == ["abc", "!def"] and patched["none_yet"] == "errno 22"
