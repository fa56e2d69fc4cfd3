"""A stack socket's descriptor closed the ways CPython's test_socket closes one (another object on the same
number, the module's ``socket.close(fd)``, the owner under a ``socket(fileno=)`` wrapper, a detached one),
and ``socket(family, type, proto, fileno=)`` reporting what it was given: the same script runs over the
kernel and patched, and both must answer alike."""

from __future__ import annotations

import errno

from .helpers import run_patched

SCRIPT = """
import errno, socket
def code(f):
    try:
        f()
        return 0
    except OSError as e:
        return errno.errorcode[e.errno]
res = {}
a = socket.socket(); a.bind(("127.0.0.1", 0))
socket.socket(fileno=a.fileno()).close()  # the same descriptor, closed through another object
res["other_object_closed_it"] = [code(lambda: a.listen(1)), code(a.close)]
b = socket.socket(); b.bind(("127.0.0.1", 0))
socket.close(b.fileno())
res["module_close"] = [code(lambda: b.listen(1)), code(b.close)]
owner = socket.socket()
wrapper = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0, owner.fileno())
owner.close()
res["owner_closed_under_wrapper"] = code(lambda: wrapper.setblocking(False))
wrapper.detach()
listener = socket.socket(); listener.bind(("127.0.0.1", 0)); listener.listen(1)
address = listener.getsockname()
socket.close(listener.detach())  # a detached descriptor closed: the listener is gone
res["detached_then_closed"] = code(lambda: socket.create_connection(address, timeout=10).close())
with socket.socket(family=999, type=77 | socket.SOCK_NONBLOCK, proto=23, fileno=socket.socket().detach()) as s:
    res["given"] = [int(s.family), int(s.type), s.proto]
try:
    socket.close(None)
except TypeError:
    res["close_none"] = "TypeError"
res["close_minus_one"] = code(lambda: socket.close(-1))
report(res)
"""


def test_closing_a_descriptor_and_fileno_arguments_answer_as_over_the_kernel() -> None:
    kernel = run_patched(SCRIPT, patch="")
    assert kernel == {"other_object_closed_it": ["EBADF", "EBADF"], "module_close": ["EBADF", "EBADF"],
                      "owner_closed_under_wrapper": "EBADF", "detached_then_closed": "ECONNREFUSED",
                      "given": [999, 77, 23], "close_none": "TypeError",
                      "close_minus_one": errno.errorcode[errno.EBADF]}
    assert run_patched(SCRIPT) == kernel
