"""``select.epoll`` and ``selectors.EpollSelector`` over stack sockets and a pipe together (epoll(7)).

The same program runs over the stack and over the kernel (its loopback): every answer, events and
errno values alike, must be the kernel's.  Descriptors are reported by name, since the numbers differ.
"""

from __future__ import annotations

from .helpers import run_patched

PROGRAM = """
import errno, os, select, selectors, socket
E = select
def names(events, table):
    return sorted([table[fd], ev] for fd, ev in events)
res = {}
ep = select.epoll()
a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind(("127.0.0.1", 0))
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r, w = os.pipe()
t = {a.fileno(): "udp", r: "pipe"}
ep.register(a, E.EPOLLIN)
ep.register(r, E.EPOLLIN)
res["idle"] = ep.poll(0)
b.sendto(b"wake", a.getsockname())
res["udp"] = names(ep.poll(5), t)
os.write(w, b"p")
res["both"] = names(ep.poll(5), t)
res["max1"] = len(ep.poll(0, 1))
try:
    ep.poll(0, 0)
except ValueError as e:
    res["max0"] = str(e)
res["twice"] = attempt(lambda: ep.register(a, E.EPOLLIN))
a.recv(10); os.read(r, 1)
ep.modify(a, E.EPOLLOUT)
res["out"] = names(ep.poll(5), t)
ep.unregister(a)
res["unregistered"] = attempt(lambda: ep.unregister(a))
res["modify_missing"] = attempt(lambda: ep.modify(a, E.EPOLLIN))

# One-shot on the pipe: reported once, then silent though still readable, until modify re-arms it.
ep.modify(r, E.EPOLLIN | E.EPOLLONESHOT)
os.write(w, b"q")
res["oneshot"] = [names(ep.poll(5), t), ep.poll(0)]
ep.modify(r, E.EPOLLIN | E.EPOLLONESHOT)
res["rearmed"] = names(ep.poll(5), t)
ep.unregister(r)

# TCP, edge-triggered: one report per edge (data read to EAGAIN, then more);
# then the peer's FIN (RDHUP), then both ways shut (HUP).
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
cli = socket.create_connection(srv.getsockname())
conn, _ = srv.accept()
t[conn.fileno()] = "tcp"
ep.register(conn, E.EPOLLIN | E.EPOLLRDHUP | E.EPOLLET)
res["et_quiet"] = ep.poll(0)
cli.send(b"x")
res["et_first"] = names(ep.poll(5), t)
res["et_again"] = ep.poll(0)
conn.setblocking(False)
res["drained"] = [conn.recv(10).decode(), attempt(lambda: conn.recv(10))]  # read to EAGAIN, as ET asks
conn.setblocking(True)
cli.send(b"y")
res["et_second"] = names(ep.poll(5), t)
ep.modify(conn, E.EPOLLIN | E.EPOLLRDHUP)  # level-triggered from here on
cli.shutdown(socket.SHUT_WR)
while True:
    got = names(ep.poll(5), t)
    if got[0][1] & E.EPOLLRDHUP:
        break
res["rdhup"] = got
conn.shutdown(socket.SHUT_WR)
res["hup"] = names(ep.poll(5), t)
# A closed stack socket leaves the set.
conn.close()
res["closed_left"] = ep.poll(0)

# EpollSelector, a context-managed epoll, and the closed object's errors.
with selectors.EpollSelector() as sel:
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); c.bind(("127.0.0.1", 0))
    sel.register(c, selectors.EVENT_READ, "udp")
    sel.register(r, selectors.EVENT_READ, "pipe")
    b.sendto(b"hi", c.getsockname())
    keys = sel.select(5)
    while len(keys) < 2:
        keys = sel.select(5)
    res["selector"] = sorted([key.data, ev] for key, ev in keys)
    res["selector_fileno"] = sel._selector.fileno() >= 0
with select.epoll() as ctx:
    res["ctx_open"] = not ctx.closed
res["ctx_closed"] = ctx.closed
ep.close()
for call in ("poll", "register"):
    try:
        getattr(ep, call)(*([] if call == "poll" else [r]))
    except ValueError as e:
        res["closed_" + call] = str(e)
res["type"] = type(ep).__name__
report(res)
"""


def test_epoll_mixing_a_stack_socket_and_a_pipe_answers_as_the_kernel() -> None:
    stack = run_patched(PROGRAM)
    kernel = run_patched(PROGRAM, patch="")
    assert stack == kernel
    assert stack["udp"] == [["udp", 1]] and stack["both"] == [["pipe", 1], ["udp", 1]]
    assert stack["oneshot"] == [[["pipe", 1]], []] and stack["et_again"] == []
    assert stack["twice"] == "errno 17" and stack["closed_poll"] == "I/O operation on closed epoll object"


FROMFD = """
import errno, os, select, socket
a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind(("127.0.0.1", 0))
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r, w = os.pipe()
t = {a.fileno(): "udp", r: "pipe"}
res = {}
ep = select.epoll()
ep2 = select.epoll.fromfd(ep.fileno())  # the same kernel epoll: one set, two objects
res["same_fd"] = ep2.fileno() == ep.fileno()
ep2.register(a, select.EPOLLIN)
ep2.register(r, select.EPOLLIN)
res["twice_other_object"] = attempt(lambda: ep.register(a, select.EPOLLIN))
b.sendto(b"x", a.getsockname()); os.write(w, b"y")
seen = {}
while len(seen) < 2:  # level-triggered: each poll reports whatever is ready by then
    seen.update((t[fd], ev) for fd, ev in ep.poll(5))
res["seen_by_the_first"] = sorted([name, ev] for name, ev in seen.items())
ep.unregister(a)
res["unregistered_in_both"] = attempt(lambda: ep2.unregister(a))
ep.close()
res["other_after_close"] = attempt(lambda: ep2.poll(0))
report(res)
"""


def test_epoll_fromfd_shares_the_set_as_the_kernel() -> None:
    """Found by CPython's test_epoll.test_fromfd: an object from fromfd(fd) is the same epoll set."""
    stack = run_patched(FROMFD)
    assert stack == run_patched(FROMFD, patch="")
    assert stack == {"same_fd": True, "twice_other_object": "errno 17",
                     "seen_by_the_first": [["pipe", 1], ["udp", 1]], "unregistered_in_both": "errno 2",
                     "other_after_close": "errno 9"}
