"""The patched socket class over TCP on the stack's loopback, and unmodified HTTP libraries over it."""

from __future__ import annotations

import errno
import hashlib

import pytest

from .helpers import run_patched

HTTP_BODY_SIZE = 3_000_000


def _body_sha() -> str:
    return hashlib.sha256(bytes(i * 31 % 251 for i in range(HTTP_BODY_SIZE))).hexdigest()


def test_stream_echo_connect_accept_makefile_shutdown() -> None:
    out = run_patched("""
        import socket, hashlib, gevent
        srv = socket.create_server(("127.0.0.1", 0))
        def serve():
            conn, peer = srv.accept()
            with conn, conn.makefile("rb") as f:
                data = f.read()
                conn.sendall(hashlib.sha256(data).digest())
        g = gevent.spawn(serve)
        cl = socket.create_connection(srv.getsockname(), timeout=10)
        payload = bytes(i * 7 % 256 for i in range(200_000))
        cl.sendall(payload)
        cl.shutdown(socket.SHUT_WR)
        digest = cl.recv(100)
        eof = cl.recv(100)
        g.get()
        res = {"digest_ok": digest == hashlib.sha256(payload).digest(), "eof": eof.decode(),
               "type": cl.type.name, "proto": cl.proto, "peer_ok": cl.getpeername() == srv.getsockname(),
               "acceptconn": [srv.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN),
                              cl.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)],
               "reuseaddr_server": srv.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)}
        cl.close(); srv.close()
        report(res)
    """)
    assert out == {"digest_ok": True, "eof": "", "type": "SOCK_STREAM", "proto": 6, "peer_ok": True,
                   "acceptconn": [1, 0], "reuseaddr_server": 1}


def test_connect_errors_nonblocking_connect_and_so_error() -> None:
    out = run_patched("""
        import socket, errno, select
        res = {}
        s = socket.socket()
        try:
            s.connect(("127.0.0.1", 1))
        except ConnectionRefusedError as e:
            res["refused"] = e.errno
        s.close()
        s = socket.socket()
        res["connect_ex_refused"] = s.connect_ex(("127.0.0.1", 1))
        s.close()
        srv = socket.create_server(("127.0.0.1", 0))
        s = socket.socket()
        s.setblocking(False)
        res["einprogress"] = s.connect_ex(srv.getsockname())
        select.select([], [s], [])
        res["so_error"] = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        conn, _ = srv.accept()
        res["accepted_timeout"] = conn.gettimeout()
        s.close(); conn.close()
        s = socket.socket(); s.setblocking(False)
        try:
            s.connect(("127.0.0.1", 1))
        except BlockingIOError as e:
            res["nb_connect"] = e.errno
        select.select([], [s], [])
        res["nb_refused_so_error"] = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        s.close(); srv.close()
        report(res)
    """)
    assert out == {"refused": errno.ECONNREFUSED, "connect_ex_refused": errno.ECONNREFUSED,
                   "einprogress": errno.EINPROGRESS, "so_error": 0, "accepted_timeout": None,
                   "nb_connect": errno.EINPROGRESS, "nb_refused_so_error": errno.ECONNREFUSED}


def test_tcp_options_and_nonblocking_accept() -> None:
    out = run_patched("""
        import socket, errno
        s = socket.socket()
        g = s.getsockopt
        res = {"nodelay0": g(socket.IPPROTO_TCP, socket.TCP_NODELAY),
               "keepalive0": g(socket.SOL_SOCKET, socket.SO_KEEPALIVE)}
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 5)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 4)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 2500)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 100000)
        res.update({"nodelay": g(socket.IPPROTO_TCP, socket.TCP_NODELAY),
                    "keepalive": g(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                    "keep": [g(socket.IPPROTO_TCP, o)
                             for o in (socket.TCP_KEEPIDLE, socket.TCP_KEEPINTVL, socket.TCP_KEEPCNT)],
                    "user_timeout": g(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
                    "sndbuf": g(socket.SOL_SOCKET, socket.SO_SNDBUF),
                    "type": g(socket.SOL_SOCKET, socket.SO_TYPE)})
        s.bind(("127.0.0.1", 0)); s.listen(5); s.setblocking(False)
        try:
            s.accept()
        except BlockingIOError as e:
            res["accept_eagain"] = e.errno
        s.close()
        report(res)
    """)
    assert out == {"nodelay0": 0, "keepalive0": 0, "nodelay": 1, "keepalive": 1, "keep": [30, 5, 4],
                   "user_timeout": 2500, "sndbuf": 200000, "type": 1, "accept_eagain": errno.EAGAIN}


def test_makefile_keeps_the_socket_open_until_its_files_close() -> None:
    out = run_patched("""
        import socket
        a, b = socket.socketpair(socket.AF_INET)
        f = a.makefile("rwb")
        a.close()  # closed, but the file still holds it
        res = {"repr_closed": "[closed]" in repr(a), "fileno_while_file_open": a.fileno() >= 0}
        b.sendall(b"line one\\n")
        res["readline"] = f.readline().decode()
        f.write(b"reply\\n"); f.flush()
        res["got"] = b.recv(100).decode()
        f.close()
        res["fileno_after"] = a.fileno()
        res["eof_at_peer"] = b.recv(100).decode()
        b.close()
        report(res)
    """)
    assert out == {"repr_closed": True, "fileno_while_file_open": True, "readline": "line one\n",
                   "got": "reply\n", "fileno_after": -1, "eof_at_peer": ""}


def test_sendall_timeout_covers_the_whole_call() -> None:
    out = run_patched("""
        import socket
        srv = socket.create_server(("127.0.0.1", 0))
        cl = socket.create_connection(srv.getsockname())
        conn, _ = srv.accept()  # never reads: the windows fill up
        cl.settimeout(0.2)
        try:
            cl.sendall(b"x" * 50_000_000)
        except TimeoutError as e:
            res = {"timeout": str(e)}
        conn.close(); cl.close(); srv.close()
        report(res)
    """)
    assert out == {"timeout": "timed out"}


HTTP_SERVER = """
import http.server, threading, hashlib, os, tempfile, atexit
tmp = tempfile.TemporaryDirectory()
atexit.register(tmp.cleanup)
root = tmp.name
with open(os.path.join(root, "blob.bin"), "wb") as f:
    f.write(bytes(i * 31 % 251 for i in range(BODY_SIZE)))
class Quiet(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **k):
        super().__init__(*a, directory=root, **k)
    def log_message(self, *a):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
threading.Thread(target=server.serve_forever, daemon=True).start()
port = server.server_address[1]
""".replace("BODY_SIZE", str(HTTP_BODY_SIZE))


def test_requests_and_urllib_to_http_server_in_one_patched_process() -> None:
    out = run_patched(HTTP_SERVER + """
import hashlib, os, requests, urllib.request, http.client
res = {}
r = requests.get(f"http://127.0.0.1:{port}/blob.bin", timeout=10)
res["requests"] = [r.status_code, hashlib.sha256(r.content).hexdigest()]
with requests.Session() as s:
    res["keepalive"] = [hashlib.sha256(s.get(f"http://localhost:{port}/blob.bin", timeout=10).content).hexdigest()
                        for _ in range(3)]
with urllib.request.urlopen(f"http://127.0.0.1:{port}/blob.bin", timeout=10) as resp:
    res["urllib"] = hashlib.sha256(resp.read()).hexdigest()
missing = requests.get(f"http://127.0.0.1:{port}/nope", timeout=10)
res["404"] = missing.status_code
# No kernel TCP/UDP socket was ever opened by this process.
fds = [f"/proc/self/fd/{n}" for n in os.listdir("/proc/self/fd")]
res["kernel_inet_sockets"] = [p for p in fds if os.path.exists(p) and os.readlink(p).startswith("socket:")]
server.shutdown(); server.server_close()
report(res)
""")
    sha = _body_sha()
    assert out == {"requests": [200, sha], "keepalive": [sha] * 3, "urllib": sha, "404": 404,
                   "kernel_inet_sockets": []}


@pytest.mark.parametrize("module", ["socketserver", "xmlrpc"])
def test_stdlib_servers_and_clients(module: str) -> None:
    if module == "socketserver":
        code = """
            import socketserver, threading, socket
            class Echo(socketserver.StreamRequestHandler):
                def handle(self):
                    self.wfile.write(self.rfile.readline().upper())
            srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            with socket.create_connection(srv.server_address) as c:
                c.sendall(b"hello there\\n")
                data = c.makefile("rb").readline()
            srv.shutdown(); srv.server_close()
            report(data.decode())
        """
        expected = "HELLO THERE\n"
    else:
        code = """
            from xmlrpc.server import SimpleXMLRPCServer
            from xmlrpc.client import ServerProxy
            import threading
            srv = SimpleXMLRPCServer(("127.0.0.1", 0), logRequests=False)
            srv.register_function(lambda a, b: a + b, "add")
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            result = ServerProxy(f"http://127.0.0.1:{srv.server_address[1]}/").add(40, 2)
            srv.shutdown(); srv.server_close()
            report(result)
        """
        expected = 42
    assert run_patched(code) == expected


def test_gevent_pywsgi_and_stream_server_run_over_the_stack() -> None:
    out = run_patched("""
        import socket, requests
        from gevent.pywsgi import WSGIServer
        from gevent.server import StreamServer
        def app(env, start):
            start("200 OK", [("Content-Type", "text/plain")])
            return [env["PATH_INFO"].encode()]
        web = WSGIServer(("127.0.0.1", 0), app, log=None)
        web.start()
        def echo(sock, addr):
            with sock.makefile("rwb") as f:
                f.write(f.readline().strip()[::-1] + b"\\n"); f.flush()
        stream = StreamServer(("127.0.0.1", 0), echo)
        stream.start()
        with requests.Session() as s:
            bodies = [s.get(f"http://127.0.0.1:{web.server_port}/p{i}", timeout=10).text for i in range(3)]
        with socket.create_connection(("127.0.0.1", stream.server_port), timeout=10) as c:
            c.sendall(b"abc\\n")
            echoed = c.makefile("rb").readline()
        res = {"bodies": bodies, "echo": echoed.decode(),
               "listener_is_ours": type(web.socket).__module__ == "pytcp_green.patches.socket"}
        web.stop(); stream.stop()
        report(res)
    """)
    assert out == {"bodies": ["/p0", "/p1", "/p2"], "echo": "cba\n", "listener_is_ours": True}


def test_asyncio_streams_over_the_stack() -> None:
    out = run_patched("""
        import asyncio, hashlib
        async def main():
            async def handle(reader, writer):
                data = await reader.readexactly(100_000)
                writer.write(hashlib.sha256(data).digest()); await writer.drain(); writer.close()
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            payload = bytes(i % 253 for i in range(100_000))
            writer.write(payload); await writer.drain()
            digest = await reader.readexactly(32)
            writer.close(); server.close(); await server.wait_closed()
            return digest == hashlib.sha256(payload).digest()
        report(asyncio.run(main()))
    """)
    assert out is True


def test_int_arguments_overflow_as_cpython_parses_a_c_int() -> None:
    """Found by CPython's test_socket (testShutdown_overflow, test_listen_backlog_overflow)."""
    out = run_patched("""
        import socket
        res = {}
        with socket.create_server(("127.0.0.1", 0)) as srv, socket.create_connection(srv.getsockname()) as c:
            for name, call in (("shutdown", lambda: c.shutdown(2**31)), ("listen", lambda: srv.listen(2**31)),
                               ("shutdown_type", lambda: c.shutdown(1.0))):
                try:
                    call()
                except (OverflowError, TypeError) as e:
                    res[name] = type(e).__name__
            c.shutdown(socket.SHUT_RDWR)
            res["after"] = "ok"
        report(res)
    """)
    assert out == {"shutdown": "OverflowError", "listen": "OverflowError", "shutdown_type": "TypeError",
                   "after": "ok"}


def test_create_connection_uses_the_socket_module_class_when_it_is_ours() -> None:
    """Found by CPython's test_socket (test_create_connection_timeout mocks socket.socket)."""
    out = run_patched("""
        import socket
        made = []
        class Mock(socket.socket):
            def connect(self, address):
                made.append(address)
                raise TimeoutError("mock")
        real, socket.socket = socket.socket, Mock
        try:
            socket.create_connection(("127.0.0.1", 1234))
        except TimeoutError as e:
            res = {"error": str(e), "made": [list(a) for a in made]}
        finally:
            socket.socket = real
        report(res)
    """)
    assert out == {"error": "mock", "made": [["127.0.0.1", 1234]]}


def test_detaching_a_socket_made_on_another_objects_fd_leaves_the_owner_in_charge() -> None:
    """Found by CPython's test_httplib (test_response_fileno hung): socket(fileno=owner.fileno()) then
    detach() kept a reference, so closing the owner never closed the connection."""
    out = run_patched("""
        import socket
        with socket.create_server(("127.0.0.1", 0)) as srv:
            c = socket.create_connection(srv.getsockname())
            peer, _ = srv.accept()
            peer.settimeout(10)
            borrowed = socket.socket(fileno=c.fileno())
            borrowed.sendall(b"via borrowed")
            res = {"detached_fd_is_owners": borrowed.detach() == c.fileno()}
            c.sendall(b"; via owner")
            c.close()
            got = b""
            while True:
                chunk = peer.recv(100)
                if not chunk:
                    break
                got += chunk
            res["got"] = got.decode()
            peer.close()
        report(res)
    """)
    assert out == {"detached_fd_is_owners": True, "got": "via borrowed; via owner"}


RECV_INTO = """
    import socket, hashlib, threading
    srv = socket.create_server(("127.0.0.1", 0))
    payload = bytes(i * 13 % 256 for i in range(300_000))
    def serve():
        conn, _ = srv.accept()
        with conn:
            conn.sendall(payload)
    g = threading.Thread(target=serve)  # a greenlet when patched
    g.start()
    cl = socket.create_connection(srv.getsockname(), timeout=10)
    buf = bytearray(70_000)
    view = memoryview(buf)
    got, sizes = hashlib.sha256(), set()
    first = cl.recv(5, socket.MSG_PEEK)
    while True:
        n = cl.recv_into(view[10:], 50_000)      # into a slice, at most nbytes
        if not n:
            break
        sizes.add(n <= 50_000)
        got.update(view[10:10 + n])
    g.join()
    res = {"intact": got.digest() == hashlib.sha256(payload).digest(), "bounded": sizes == {True},
           "peeked": first == payload[:5], "head_untouched": bytes(buf[:10]) == bytes(10)}
    cl.close(); srv.close()
    report(res)
"""


def test_recv_into_fills_the_callers_buffer_and_ends_with_zero_at_eof() -> None:
    expected = {"intact": True, "bounded": True, "peeked": True, "head_untouched": True}
    assert run_patched(RECV_INTO) == expected
    assert run_patched(RECV_INTO, patch="") == expected  # the same program over the kernel
