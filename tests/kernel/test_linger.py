"""Resets and what a reader then sees, against the Linux kernel.  SO_LINGER with a zero timeout
(socket(7)), both ways: close() resets the connection instead of closing it with a FIN, and the side
that receives such a reset with bytes still unread reads those bytes first, then ECONNRESET, while
getpeername() already says ENOTCONN (what the stdlib's ssl checks before a handshake, gh-108310;
patches/ssl.py does the same).  A reset that comes after the peer's FIN (drawn by writing into a peer
that closed) still reads as EOF, as Linux's tcp_recvmsg checks the FIN before the error.  Each case is
first run kernel to kernel, and the stack must answer what Linux answered."""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
from collections.abc import Iterator

import pytest
from lab.helpers import KernelPeer

from kernel.test_tcp import finish, kernel_program, read_line, tcp_socket
from pytcp_green.green.sockets import GreenSocket
from pytcp_green.patches._sockopts import set_option
from pytcp_green.stack.sockbase import POLLERR, POLLHUP
from pytcp_green.stack.stack import SOCK_STREAM

pytestmark = pytest.mark.lab

LINGER_ZERO = struct.pack("ii", 1, 0)
DATA = b"DELETE /data HTTP/1.0\r\n\r\n"

# Accept one connection, wait until the peer reset it, then report what getpeername and two recv calls
# give.  With argv[2] == "self", it also plays the client, kernel to kernel.  Prints one line:
# peername_errno data_hex second_recv_errno.
RESET_RECEIVER = r"""
import select, socket, struct, sys
srv = socket.socket()
srv.bind((sys.argv[1], 0))
srv.listen(1)
port = srv.getsockname()[1]
if sys.argv[2] == "self":
    c = socket.create_connection((sys.argv[1], port))
print(port, flush=True)
conn, _ = srv.accept()
if sys.argv[2] == "self":
    c.sendall(b"DELETE /data HTTP/1.0\r\n\r\n")
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
p = select.poll()
p.register(conn, select.POLLRDHUP)
p.poll(30000)  # POLLHUP (and POLLERR) come with the reset only
try:
    conn.getpeername()
    peer = 0
except OSError as exc:
    peer = exc.errno
data = conn.recv(100)
try:
    conn.recv(100)
    second = 0
except OSError as exc:
    second = exc.errno
print(peer, data.hex(), second, flush=True)
"""

# Connect to argv[1]:argv[2], send the request, and wait for what the stack sends back.
RESET_SENDER = r"""
import socket, struct, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
c.sendall(b"DELETE /data HTTP/1.0\r\n\r\n")
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close()
print("sent", flush=True)
"""


# The peer closes (FIN); we write, which its kernel answers with a RST; then report recv and SO_ERROR.
# argv[1] "self": both ends here (Linux's answer); else connect to argv[1]:argv[2] and close at once.
FIN_THEN_RST = r"""
import select, socket, sys
if sys.argv[1] == "self":
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    c = socket.create_connection(srv.getsockname())
    conn, _ = srv.accept()
    c.close()
    p = select.poll()
    p.register(conn, select.POLLRDHUP)
    p.poll(30000)
    conn.send(b"x")
    p.register(conn, select.POLLERR)
    p.poll(30000)  # the reset is in
    print(len(conn.recv(100)), conn.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), flush=True)
else:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30).close()
    print("closed", flush=True)
"""


@contextlib.contextmanager
def _accepted_from(kernel: KernelPeer, program: str, done: str) -> Iterator[GreenSocket]:
    """The stack connection a kernel ``program`` (given the stack's address and a listener's port) made
    and finished with, once it printed ``done``; closed after, with the listener."""
    listener = tcp_socket(kernel, timeout=30)
    listener.bind((kernel.stack_ip, 0))
    listener.listen(1)
    try:
        with kernel_program(kernel, program, kernel.stack_ip, str(listener.getsockname()[1])) as proc:
            conn, _ = listener.accept()
            assert read_line(proc) == done
            finish(proc)
        try:
            yield conn
        finally:
            conn.close()
    finally:
        listener.close()


def test_a_reset_after_the_peers_fin_reads_as_eof_as_on_linux(kernel: KernelPeer) -> None:
    linux = kernel.python(FIN_THEN_RST, "self")
    assert linux.returncode == 0, linux.stderr
    assert linux.stdout.split() == ["0", str(errno.EPIPE)]  # EOF, and the reset's error left for SO_ERROR
    with _accepted_from(kernel, FIN_THEN_RST, "closed") as conn:
        assert conn.recv(100) == b""  # the FIN
        conn.send(b"x")
        assert conn.wait_for(POLLERR, timeout=30) & POLLERR  # the kernel's reset for it
        got = [str(len(conn.recv(100))), str(conn.take_error())]
    assert got == linux.stdout.split()


def _linux_answer(kernel: KernelPeer) -> list[str]:
    with kernel_program(kernel, RESET_RECEIVER, kernel.kernel_ip, "self") as proc:
        read_line(proc)
        return finish(proc).split()


def test_a_linger_zero_close_on_the_stack_resets_and_the_kernel_reads_the_bytes_first(kernel: KernelPeer) -> None:
    linux = _linux_answer(kernel)
    assert linux == [str(errno.ENOTCONN), DATA.hex(), str(errno.ECONNRESET)]
    stats = kernel.host.stack.stats
    before = stats["tcp.abort_on_data"]
    with kernel_program(kernel, RESET_RECEIVER, kernel.kernel_ip, "stack") as proc:
        port = int(read_line(proc))
        sock = tcp_socket(kernel, timeout=30)
        sock.connect((kernel.kernel_ip, port))
        sock.sendall(DATA)
        options: dict[tuple[int, int], int | bytes] = {}
        set_option(sock, SOCK_STREAM, options, socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
        assert options[(socket.SOL_SOCKET, socket.SO_LINGER)] == LINGER_ZERO  # getsockopt reads it back
        sock.close()
        assert finish(proc).split() == linux
    assert stats["tcp.abort_on_data"] == before + 1


def test_a_kernel_reset_behind_data_reads_as_linux_reads_it(kernel: KernelPeer) -> None:
    linux = _linux_answer(kernel)
    with _accepted_from(kernel, RESET_SENDER, "sent") as conn:
        assert conn.wait_for(POLLHUP, timeout=30)  # POLLHUP and POLLERR come with the reset only
        with pytest.raises(OSError) as peer:
            conn.getpeername()
        data = conn.recv(100)
        with pytest.raises(OSError) as second:
            conn.recv(100)
    assert [str(peer.value.errno), data.hex(), str(second.value.errno)] == linux
