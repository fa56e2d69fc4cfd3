"""connect() again on a non-blocking socket whose first handshake was refused, and after one that
succeeded, as Linux answers (__inet_stream_connect): the failure is reported once (ECONNABORTED when
SO_ERROR already took the error) and the socket is disconnected, so the next connect starts afresh;
the first connect() after a completed handshake says 0, later ones EISCONN.  The same script runs over
the kernel and patched (asyncio's test_sock_client_connect_racing retries so)."""

from __future__ import annotations

from .helpers import run_patched

SCRIPT = """
import errno, select, socket
listener = socket.socket(); listener.bind(("127.0.0.1", 0)); address = listener.getsockname()
sock = socket.socket(); sock.setblocking(False)
codes = [errno.errorcode.get(sock.connect_ex(address), 0)]
select.select([], [sock], [], 10)  # the refusal is in
codes.append(errno.errorcode.get(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), 0))
listener.listen(1)
codes.append(errno.errorcode.get(sock.connect_ex(address), 0))  # reports the failure, disconnects
codes.append(errno.errorcode.get(sock.connect_ex(address), 0))  # a new attempt
select.select([], [sock], [], 10)
codes.append(errno.errorcode.get(sock.connect_ex(address), 0))  # the outcome: connected
codes.append(errno.errorcode.get(sock.connect_ex(address), 0))
report(codes)
"""


def test_connect_after_a_refused_handshake_and_after_a_completed_one_answers_as_the_kernel() -> None:
    kernel = run_patched(SCRIPT, patch="")
    assert kernel == ["EINPROGRESS", "ECONNREFUSED", "ECONNABORTED", "EINPROGRESS", 0, "EISCONN"]
    assert run_patched(SCRIPT) == kernel
