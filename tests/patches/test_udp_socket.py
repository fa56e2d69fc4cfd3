"""The patched socket class over UDP on the stack's loopback: data, timeouts, options, fds, lifecycle."""

from __future__ import annotations

import errno
import hashlib

from .helpers import run_patched


def test_udp_echo_over_loopback_through_the_patched_socket_module() -> None:
    out = run_patched("""
        import socket, hashlib, gevent
        server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        server.bind(("127.0.0.1", 0))
        def echo():
            for _ in range(20):
                data, peer = server.recvfrom(65535)
                server.sendto(hashlib.sha256(data).digest() + data[::-1], peer)
        g = gevent.spawn(echo)
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.settimeout(10)
        results = []
        for i in range(20):
            payload = bytes((i * 7 + j) % 256 for j in range(1 + i * 997))
            client.sendto(payload, server.getsockname())
            reply, source = client.recvfrom(65535)
            results.append(reply == hashlib.sha256(payload).digest() + payload[::-1] and source == server.getsockname())
        g.join()
        report({"all_ok": all(results), "count": len(results), "isinstance": isinstance(client, socket.socket),
                "family": int(client.family), "type": int(client.type), "proto": client.proto,
                "family_name": client.family.name, "type_name": client.type.name})
        client.close(); server.close()
    """)
    # proto is what socket() was given (0 here), as over the kernel; SO_PROTOCOL says 17.
    assert out == {"all_ok": True, "count": 20, "isinstance": True, "family": 2, "type": 2, "proto": 0,
                   "family_name": "AF_INET", "type_name": "SOCK_DGRAM"}


def test_recv_variants_peek_and_truncation() -> None:
    out = run_patched("""
        import socket
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind(("127.0.0.1", 0))
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); b.connect(a.getsockname())
        a.connect(b.getsockname())
        b.send(b"0123456789")
        peeked = a.recv(100, socket.MSG_PEEK)
        buf = bytearray(4)
        n, addr = a.recvfrom_into(buf)
        b.sendall(memoryview(b"abcdef"))
        buf2 = bytearray(10)
        n2 = a.recv_into(buf2, 3)
        b.sendto(b"xyz", a.getsockname())
        msg = a.recvmsg(100)
        report({"peeked": peeked.decode(), "into": [n, buf.decode(), list(addr) == list(b.getsockname())],
                "into2": [n2, bytes(buf2[:n2]).decode()], "msg": [msg[0].decode(), msg[1], msg[2]],
                "peer": list(a.getpeername()) == list(b.getsockname())})
        a.close(); b.close()
    """)
    assert out == {"peeked": "0123456789", "into": [4, "0123", True], "into2": [3, "abc"],
                   "msg": ["xyz", [], 0], "peer": True}


def test_timeouts_nonblocking_and_defaults() -> None:
    out = run_patched("""
        import socket, errno
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0))
        res = {"default": s.gettimeout(), "blocking": s.getblocking()}
        s.setblocking(False)
        res["nb"] = [s.gettimeout(), s.getblocking()]
        try:
            s.recv(10)
        except BlockingIOError as e:
            res["eagain"] = e.errno
        s.settimeout(0.01)
        try:
            s.recvfrom(10)
        except TimeoutError as e:
            res["timeout"] = [type(e).__name__, str(e), isinstance(e, socket.timeout)]
        try:
            s.recv(10, socket.MSG_DONTWAIT)
        except BlockingIOError as e:
            res["dontwait"] = e.errno
        for bad in (-1, "x"):
            try:
                s.settimeout(bad)
            except (ValueError, TypeError) as e:
                res.setdefault("bad", []).append(type(e).__name__)
        socket.setdefaulttimeout(2.5)
        t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        res["new_default"] = t.gettimeout()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
        res["sock_nonblock"] = [u.gettimeout(), int(u.type)]
        for x in (s, t, u): x.close()
        report(res)
    """)
    assert out == {"default": None, "blocking": True, "nb": [0.0, False], "eagain": errno.EAGAIN,
                   "timeout": ["TimeoutError", "timed out", True], "dontwait": errno.EAGAIN,
                   "bad": ["ValueError", "TypeError"], "new_default": 2.5, "sock_nonblock": [0.0, 2]}


def test_socket_options() -> None:
    out = run_patched("""
        import socket, struct
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        g = s.getsockopt
        res = {"reuseaddr0": g(socket.SOL_SOCKET, socket.SO_REUSEADDR),
               "reuseport0": g(socket.SOL_SOCKET, socket.SO_REUSEPORT),
               "type": g(socket.SOL_SOCKET, socket.SO_TYPE), "error": g(socket.SOL_SOCKET, socket.SO_ERROR),
               "broadcast0": g(socket.SOL_SOCKET, socket.SO_BROADCAST)}
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 5))
        res.update({"reuseaddr1": g(socket.SOL_SOCKET, socket.SO_REUSEADDR),
                    "reuseport1": g(socket.SOL_SOCKET, socket.SO_REUSEPORT),
                    "broadcast1": g(socket.SOL_SOCKET, socket.SO_BROADCAST),
                    "rcvbuf": g(socket.SOL_SOCKET, socket.SO_RCVBUF),
                    "keepalive": g(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                    "linger": list(struct.unpack("ii", g(socket.SOL_SOCKET, socket.SO_LINGER, 8))),
                    "type_bytes": list(struct.unpack("i", g(socket.SOL_SOCKET, socket.SO_TYPE, 4)))})
        try:
            s.setsockopt(socket.SOL_SOCKET, 12345, 1)
        except OSError as e:
            res["unknown"] = e.errno
        s.close()
        report(res)
    """)
    assert out == {"reuseaddr0": 0, "reuseport0": 0, "type": 2, "error": 0, "broadcast0": 0,
                   "reuseaddr1": 1, "reuseport1": 1, "broadcast1": 1, "rcvbuf": 131072, "keepalive": 1,
                   "linger": [1, 5], "type_bytes": [2], "unknown": errno.ENOPROTOOPT}


def test_broadcast_needs_so_broadcast_and_errors_carry_errno() -> None:
    out = run_patched("""
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        res = {}
        try:
            s.sendto(b"x", ("255.255.255.255", 9))
        except OSError as e:
            res["eacces"] = e.errno
        try:
            s.sendto(b"x", ("127.0.0.1", 70000))
        except OverflowError as e:
            res["overflow"] = str(e)
        try:
            s.connect("127.0.0.1")
        except TypeError as e:
            res["type"] = str(e)
        s.close()
        try:
            s.send(b"x")
        except OSError as e:
            res["ebadf"] = e.errno
        res["fileno_closed"] = s.fileno()
        report(res)
    """)
    assert out == {"eacces": errno.EACCES, "overflow": "sendto(): port must be 0-65535.",
                   "type": "AF_INET address must be tuple, not str", "ebadf": errno.EBADF, "fileno_closed": -1}


def test_fileno_is_a_real_unique_fd_that_polls_readable_with_the_socket() -> None:
    out = run_patched("""
        import socket, os, stat
        kernel_select = pytcp_green.get_original("select", "select")
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind(("127.0.0.1", 0))
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        fa, fb = a.fileno(), b.fileno()
        res = {"unique": fa != fb and fa >= 0 and fb >= 0, "valid": os.fstat(fa) is not None,
               "stable": a.fileno() == fa}
        res["before"] = kernel_select([fa], [fa], [], 0)[:2] == ([], [fa])
        b.sendto(b"ping", a.getsockname())
        import select
        select.select([a], [], [])  # let the loopback deliver, then ask the kernel about the fd
        res["after_data"] = kernel_select([fa], [], [], 0)[0] == [fa]
        a.recv(10)
        res["after_recv"] = kernel_select([fa], [], [], 0)[0] == []
        a.close(); b.close()
        from pytcp_green.patches.socket import handle_for_fd
        res["unmapped"] = handle_for_fd(fa) is None and handle_for_fd(fb) is None
        def eventfds():
            return sum(os.readlink(f"/proc/self/fd/{n}") == "anon_inode:[eventfd]" for n in os.listdir("/proc/self/fd")
                       if os.path.exists(f"/proc/self/fd/{n}"))
        before = eventfds()
        socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(50)]
        res["fds_distinct"] = len({s.fileno() for s in socks}) == 50
        res["grew"] = eventfds() - before
        for s in socks:
            s.close()
        res["leaked"] = eventfds() - before
        report(res)
    """)
    assert out == {"unique": True, "valid": True, "stable": True, "before": True, "after_data": True,
                   "after_recv": True, "unmapped": True, "fds_distinct": True, "grew": 50, "leaked": 0}


def test_dup_detach_fromfd_keep_the_same_stack_socket() -> None:
    out = run_patched("""
        import socket
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind(("127.0.0.1", 0))
        addr = a.getsockname()
        c = a.dup()
        res = {"dup_fd_differs": c.fileno() != a.fileno(), "dup_name": c.getsockname() == addr}
        a.close()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(b"via dup", addr)
        res["dup_recv"] = c.recv(100).decode()
        fd = c.detach()
        res["detached_closed"] = c.fileno()
        d = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, 0, fileno=fd)
        s.sendto(b"after detach", addr)
        res["readopted"] = [d.fileno() == fd, d.recv(100).decode()]
        e = socket.fromfd(d.fileno(), socket.AF_INET, socket.SOCK_DGRAM)
        d.close()
        s.sendto(b"via fromfd", addr)
        res["fromfd"] = [e.getsockname() == addr, e.recv(100).decode()]
        e.close()
        # Every object closed: the port is free again.
        f = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        f.bind(addr)
        res["port_free"] = True
        f.close(); s.close()
        report(res)
    """)
    assert out == {"dup_fd_differs": True, "dup_name": True, "dup_recv": "via dup", "detached_closed": -1,
                   "readopted": [True, "after detach"], "fromfd": [True, "via fromfd"], "port_free": True}


def test_unclosed_socket_warns_resourcewarning() -> None:
    out = run_patched("""
        import socket, warnings, gc
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            del s
            gc.collect()
        t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t.bind(("127.0.0.1", port))  # the collected socket released its port
        t.close()
        report([w.category.__name__ + ":" + str(w.message).split(" ")[0] for w in caught])
    """)
    assert out == ["ResourceWarning:unclosed"]


def test_other_families_fall_through_to_the_kernel_and_other_ip_types_are_refused() -> None:
    out = run_patched("""
        import socket, errno
        a, b = socket.socketpair()
        a.sendall(b"unix ok")
        res = {"pair": b.recv(100).decode(), "family": a.family.name, "isinstance": isinstance(a, socket.socket)}
        u = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        res["unix_type"] = u.type.name
        u.close(); a.close(); b.close()
        try:
            socket.socket(socket.AF_INET, socket.SOCK_RDM)
        except OSError as e:
            res["rdm"] = e.errno
        report(res)
    """)
    assert out == {"pair": "unix ok", "family": "AF_UNIX", "isinstance": True, "unix_type": "SOCK_DGRAM",
                   "rdm": errno.ESOCKTNOSUPPORT}


def test_ipv6_sockets_are_stack_sockets_over_the_loopback() -> None:
    out = run_patched("""
        import socket
        from pytcp_green.patches.socket import handle_for_fd
        a = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); a.bind(("::1", 0))
        b = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        b.sendto(b"over ::1", a.getsockname())
        data, src = a.recvfrom(100)
        res = {"has_ipv6": socket.has_ipv6, "on_stack": handle_for_fd(a.fileno()) is not None,
               "data": data.decode(), "src_len": len(src), "name": list(a.getsockname())[0],
               "family": a.family.name}
        a.close(); b.close()
        report(res)
    """)
    assert out == {"has_ipv6": True, "on_stack": True, "data": "over ::1", "src_len": 4, "name": "::1",
                   "family": "AF_INET6"}


def test_subclassing_the_patched_socket_class() -> None:
    out = run_patched("""
        import socket
        class Mine(socket.socket):
            def hello(self):
                return "hi " + self.type.name
        m = Mine(socket.AF_INET, socket.SOCK_DGRAM)
        m.bind(("127.0.0.1", 0))
        m.sendto(b"self", m.getsockname())
        res = [m.hello(), m.recv(10).decode(), isinstance(m, socket.socket), type(m).__name__]
        m.close()
        report(res)
    """)
    assert out == ["hi SOCK_DGRAM", "self", True, "Mine"]


def test_hash_of_a_large_datagram_survives_fragmentation_on_loopback() -> None:
    payload_hash = hashlib.sha256(bytes(range(256)) * 200).hexdigest()
    out = run_patched("""
        import socket, hashlib
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind(("127.0.0.1", 0))
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        b.sendto(bytes(range(256)) * 200, a.getsockname())
        report(hashlib.sha256(a.recv(65535)).hexdigest())
        a.close(); b.close()
    """)
    assert out == payload_hash


def test_sendmsg_and_recvmsg_check_their_arguments_as_cpython() -> None:
    """Found by CPython's test_socket (testSendmsgBadArgs/BadCmsg/BadMultiCmsg, testRecvmsg(Into)BadArgs):
    every bad argument raises TypeError/ValueError before anything is sent or received."""
    out = run_patched("""
        import socket
        def _raises(call, *args):
            try:
                call(*args)
            except Exception as e:
                return e
            return None
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind(("127.0.0.1", 0))
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); b.connect(a.getsockname())
        bad_send = [(b"not in an iterable",), (object(),), ([object()],), ([b"x", object()],), ([b"x"], object()),
                    ([b"x"], [object()]), ([b"x"], [(object(), 0, b"d")]), ([b"x"], [(0, 0, object())]),
                    ([b"x"], [(0, 0)]), ([b"x"], [(0, 0, b"d", 42)]), ([b"x"], [0, 0, b""]),
                    ([b"x"], [], object()), ([b"x"], [], 0, object())]
        res = {"send": [type(e).__name__ for e in (_raises(b.sendmsg, *args) for args in bad_send)]}
        bad_recv = [(-1, 0, 0), (10, -1, 0), ([bytearray(10)], 0, 0), (object(), 0, 0), (10, object(), 0),
                    (10, 0, object())]
        res["recv"] = [type(e).__name__ for e in (_raises(a.recvmsg, *args) for args in bad_recv)]
        bad_into = [(object(),), ([b"readonly"],), ([bytearray(4)], -1), ([bytearray(4)], 0, object())]
        res["into"] = [type(e).__name__ for e in (_raises(a.recvmsg_into, *args) for args in bad_into)]
        b.sendmsg([b"do", b"ne"])
        res["after"] = a.recvmsg(10)[0].decode()
        report(res)
    """)
    assert out == {"send": ["TypeError"] * 13, "recv": ["ValueError", "ValueError"] + ["TypeError"] * 4,
                   "into": ["TypeError", "TypeError", "ValueError", "TypeError"], "after": "done"}



def test_sendto_arguments_and_getnameinfo_flowinfo_as_cpython() -> None:
    """Found by CPython's test_socket (testSendtoErrors, test_flowinfo, testNewAttributes)."""
    out = run_patched("""
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0))
        res = {"proto": s.proto, "so_protocol": s.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL)}
        for name, args in (("none2", (b"x", None)), ("none3", (b"x", 0, None)), ("one", (b"x",)),
                           ("four", (b"x", 0, s.getsockname(), 4)), ("flags", (b"x", "bar", s.getsockname()))):
            try:
                s.sendto(*args)
            except TypeError as e:
                res[name] = str(e)
        s.sendto(b"ok", 0, s.getsockname())
        res["got"] = s.recv(10).decode()
        try:
            socket.getnameinfo(("::1", 0, 0xFFFFFFFF), 0)
        except OverflowError as e:
            res["flowinfo"] = str(e)
        s.close()
        report(res)
    """)
    assert out.pop("flags")
    assert out == {"proto": 0, "so_protocol": 17, "none2": "AF_INET address must be tuple, not NoneType",
                   "none3": "AF_INET address must be tuple, not NoneType",
                   "one": "sendto() takes 2 or 3 arguments (1 given)",
                   "four": "sendto() takes 2 or 3 arguments (4 given)",
                   "got": "ok", "flowinfo": "getnameinfo(): flowinfo must be 0-1048575."}


def test_recvmsg_flags_a_cut_datagram_msg_trunc() -> None:
    """Found by CPython's test_socket (testRecvmsgTrunc): a datagram longer than the buffer is cut, the rest
    discarded, and recvmsg()/recvmsg_into() say so with MSG_TRUNC, as over the kernel."""
    out = run_patched("""
        import socket
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind(("127.0.0.1", 0))
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for payload in (b"0123456789", b"abcdefghij", b"short", b"ABCDEFGHIJ"):
            b.sendto(payload, a.getsockname())
        res = {}
        data, _anc, flags, _addr = a.recvmsg(4, 0, socket.MSG_PEEK)
        res["peek"] = [data.decode(), flags == socket.MSG_TRUNC]
        data, _anc, flags, _addr = a.recvmsg(4)
        res["cut"] = [data.decode(), flags == socket.MSG_TRUNC]
        buf = bytearray(3), bytearray(3)
        n, _anc, flags, _addr = a.recvmsg_into(buf)
        res["into"] = [n, b"".join(buf).decode(), flags == socket.MSG_TRUNC]
        data, _anc, flags, _addr = a.recvmsg(100)
        res["whole"] = [data.decode(), flags]
        res["next"] = a.recv(100).decode()  # the cut datagrams' rest is gone
        a.close(); b.close()
        report(res)
    """)
    assert out == {"peek": ["0123", True], "cut": ["0123", True], "into": [6, "abcdef", True],
                   "whole": ["short", 0], "next": "ABCDEFGHIJ"}
