"""IP_RECVERR / IPV6_RECVERR with MSG_ERRQUEUE on UDP sockets (ip(7), ipv6(7)), against the kernel.

The same program runs over the stack and over the kernel: a datagram to a closed port on the
loopback comes back as an ICMP port unreachable, and everything recvmsg(MSG_ERRQUEUE) reports -
the quoted payload, the destination, struct sock_extended_err with the offender's sockaddr,
MSG_ERRQUEUE/MSG_TRUNC/MSG_CTRUNC, POLLERR, SO_ERROR before and after, EAGAIN on an empty queue,
the queue purged when the option goes off - must be the kernel's.
"""

from __future__ import annotations

import pytest

from .helpers import run_patched

PROGRAM = """
import select, socket
v6 = {v6}
fam, host = (socket.AF_INET6, "::1") if v6 else (socket.AF_INET, "127.0.0.1")
level, opt = (socket.IPPROTO_IPV6, 25) if v6 else (socket.IPPROTO_IP, 11)  # IPV6_RECVERR, IP_RECVERR
closed = socket.socket(fam, socket.SOCK_DGRAM); closed.bind((host, 0))
port = closed.getsockname()[1]; closed.close()
s = socket.socket(fam, socket.SOCK_DGRAM); s.bind((host, 0))
p = select.poll(); p.register(s, 0)
def errq(size=100, anc=1024):
    data, items, flags, addr = s.recvmsg(size, anc, 0x2000)  # MSG_ERRQUEUE
    return [data.hex(), [[l, t, d.hex()] for l, t, d in items], flags, addr[0], addr[1] == port]
def bounce():
    s.sendto(b"hello there", (host, port))
    return [ev for _, ev in p.poll(5000)]
res = {{"off": s.getsockopt(level, opt)}}
s.setsockopt(level, opt, 1)
res["on"] = s.getsockopt(level, opt)
res["empty"] = attempt(errq)
res["poll"] = bounce()
res["so_error_peek"] = [ev for _, ev in p.poll(0)]
res["item"] = errq()
res["so_error_after"] = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
res["drained"] = attempt(errq)
res["poll_after"] = p.poll(0)
bounce()
res["cut"] = errq(4, socket.CMSG_LEN(0))
bounce()
res["send_with_one_pending"] = attempt(bounce)
s.setsockopt(level, opt, 0)
res["purged"] = attempt(errq)
# Off, an unconnected socket hears nothing of it (Linux sets sk_err only on connected ones).
s.sendto(b"hello there", (host, port))
res["off_poll"] = p.poll(200)
report(res)
"""


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_error_queue_reports_what_the_kernel_reports(v6: bool) -> None:
    program = PROGRAM.format(v6=v6)
    stack = run_patched(program)
    kernel = run_patched(program, patch="")
    assert stack == kernel
    assert stack["poll"] == [8] and stack["item"][2] == 0x2000 and stack["item"][0] == b"hello there".hex()
    assert stack["drained"] == "errno 11"
