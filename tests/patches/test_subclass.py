"""Sockets stay correct when a library subclasses them (project issue 16).

CPython's socket methods are C functions that never call each other through the object, so a
subclass may override any of them in terms of another: PySocks' ``socksocket.recv()`` calls
``self.recvfrom()``.  Ours must not call a public method through ``self`` either:

* a tripwire subclass wraps every public method and records any call that arrives while another
  public method of the same object is running; plain TCP and UDP, and TLS, use them all;
* one subclass per "override M to call N" pair (PySocks' among them) moves 300 KB each way over
  a stack TCP connection and compares the SHA-256 of what arrived.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from .helpers import run_patched

# The public methods a subclass may override; the tripwire wraps them all.
TRIPWIRE = """
import socket, ssl, hashlib, gevent, os
PUBLIC = ["recv", "recv_into", "recvfrom", "recvfrom_into", "recvmsg", "recvmsg_into", "send", "sendall",
          "sendto", "sendmsg", "sendfile", "makefile", "connect", "connect_ex", "accept", "bind", "listen",
          "close", "shutdown", "detach", "dup", "settimeout", "gettimeout", "setblocking", "getblocking",
          "fileno", "getsockname", "getpeername", "setsockopt", "getsockopt", "get_inheritable",
          "set_inheritable", "read", "write", "do_handshake", "unwrap", "getpeercert", "pending"]
nested = []

def tripwire(cls):
    def wrap(name, base):
        def method(self, *args, **kwargs):
            # Per greenlet: another greenlet's call on the same socket (getsockname while a
            # server greenlet waits in accept) is not a call through self.
            calls = self.__dict__.setdefault("_in_public", {})
            me = gevent.getcurrent()
            outer = calls.get(me)
            if outer is not None:
                nested.append(f"{cls.__name__}.{outer} -> {name}")
            calls[me] = name
            try:
                return base(self, *args, **kwargs)
            finally:
                if outer is None:
                    del calls[me]
                else:
                    calls[me] = outer
        return method
    return type("Trip" + cls.__name__, (cls,), {n: wrap(n, getattr(cls, n)) for n in PUBLIC if hasattr(cls, n)})

TripSocket = tripwire(socket.socket)
"""


def test_no_public_method_calls_another_through_self_tcp_and_udp() -> None:
    out = run_patched(TRIPWIRE + textwrap.dedent("""
        payload = os.urandom(200_000)
        listener = TripSocket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(10)
        got = {}
        def serve():
            conn, _ = listener.accept()
            s = TripSocket(fileno=conn.detach())
            s.settimeout(10)
            parts, buf = [], bytearray(7000)
            ops = [lambda: s.recv(5000), lambda: bytes(buf[:s.recv_into(buf)]), lambda: s.recvfrom(6000)[0],
                   lambda: bytes(buf[:s.recvfrom_into(buf)[0]]), lambda: s.recvmsg(4000)[0]]
            i = 0
            while True:
                data = ops[i % len(ops)]()
                i += 1
                if not data:
                    break
                parts.append(data)
            got["digest"] = hashlib.sha256(b"".join(parts)).hexdigest()
            s.sendall(b"done")
            s.shutdown(socket.SHUT_WR)
            s.close()
        g = gevent.spawn(serve)
        c = TripSocket(socket.AF_INET, socket.SOCK_STREAM)
        c.settimeout(10)
        assert c.gettimeout() == 10 and c.getblocking()
        c.connect_ex(listener.getsockname())
        c.getpeername(); c.getsockname(); c.fileno(); c.get_inheritable(); c.set_inheritable(False)
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1); c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        view = memoryview(payload)
        step = 25_000
        chunks = [view[i:i + step] for i in range(0, len(view), step)]
        for n, chunk in enumerate(chunks):
            if n % 5 == 0:
                c.sendall(chunk)
            elif n % 5 == 1:
                sent = c.send(chunk); c.sendall(chunk[sent:])
            elif n % 5 == 2:
                sent = c.sendto(chunk, listener.getsockname()); c.sendall(chunk[sent:])
            elif n % 5 == 3:
                sent = c.sendmsg([chunk]); c.sendall(chunk[sent:])
            else:
                f = c.makefile("wb"); f.write(chunk); f.close()
        c.shutdown(socket.SHUT_WR)
        with c.makefile("rb") as f:
            reply = f.read()
        d = c.dup(); d.close()
        c.close()
        g.join()
        listener.close()
        u1 = TripSocket(socket.AF_INET, socket.SOCK_DGRAM); u1.bind(("127.0.0.1", 0))
        u2 = TripSocket(socket.AF_INET, socket.SOCK_DGRAM); u2.connect(u1.getsockname())
        u2.setblocking(True)
        u2.send(b"one"); u2.sendto(b"two", u1.getsockname()); u2.sendmsg([b"thr", b"ee"])
        dgrams = [u1.recvfrom(100)[0], u1.recv(100), u1.recvmsg(100)[0]]
        u1.close(); u2.close()
        report({"nested": nested, "intact": got["digest"] == hashlib.sha256(payload).hexdigest(),
                "reply": reply.decode(), "dgrams": [d.decode() for d in dgrams]})
    """))
    assert out == {"nested": [], "intact": True, "reply": "done", "dgrams": ["one", "two", "three"]}


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command for a test cert")
def test_no_public_method_of_a_tls_socket_calls_another_through_self(tmp_path: Path) -> None:
    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    out = run_patched(TRIPWIRE + textwrap.dedent(f"""
        TripSSL = tripwire(ssl.SSLSocket)
        payload = os.urandom(300_000)
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); sctx.load_cert_chain({str(crt)!r}, {str(key)!r})
        sctx.sslsocket_class = TripSSL
        listener = sctx.wrap_socket(socket.create_server(("127.0.0.1", 0)), server_side=True)
        got = {{}}
        def serve():
            conn, _ = listener.accept()
            parts, buf = [], bytearray(9000)
            i = 0
            while True:
                data = [lambda: conn.recv(5000), lambda: bytes(buf[:conn.recv_into(buf)]),
                        lambda: conn.read(3000)][i % 3]()
                i += 1
                if not data:
                    break
                parts.append(data)
            got["digest"] = hashlib.sha256(b"".join(parts)).hexdigest()
            conn.unwrap()  # the client's close_notify came: answer it
            conn.close()
        g = gevent.spawn(serve)
        cctx = ssl.create_default_context(cafile={str(crt)!r})
        cctx.sslsocket_class = TripSSL
        c = cctx.wrap_socket(socket.socket(), server_hostname="localhost", do_handshake_on_connect=False)
        c.settimeout(10)
        c.connect(listener.getsockname())
        c.do_handshake()
        c.getpeercert(); c.pending()
        view = memoryview(payload)
        for n, start in enumerate(range(0, len(view), 30_000)):
            chunk = view[start:start + 30_000]
            if n % 4 == 0:
                c.sendall(chunk)
            elif n % 4 == 1:
                sent = c.send(chunk); c.sendall(chunk[sent:])
            elif n % 4 == 2:
                sent = c.write(chunk); c.sendall(chunk[sent:])
            else:
                f = c.makefile("wb"); f.write(chunk); f.close()
        c.unwrap()
        c.close()
        g.join()
        listener.close()
        report({{"nested": nested, "intact": got["digest"] == hashlib.sha256(payload).hexdigest()}})
    """))
    assert out == {"nested": [], "intact": True}


# Each override calls another public method through ``self``, as PySocks' do (its recv() calls recvfrom()).
OVERRIDES = {
    "recv->recvfrom": "def recv(self, n, flags=0):\n    return self.recvfrom(n, flags)[0]",
    "recv->recv_into": ("def recv(self, n, flags=0):\n    b = bytearray(n)\n"
                        "    return bytes(b[:self.recv_into(b, n, flags)])"),
    "recv->makefile": ("def recv(self, n, flags=0):\n    with self.makefile('rb', buffering=0) as f:\n"
                       "        return f.read(n)"),
    "recvfrom->recv": "def recvfrom(self, n, flags=0):\n    return self.recv(n, flags), None",
    "recv_into->recv": ("def recv_into(self, b, nbytes=0, flags=0):\n    data = self.recv(nbytes or len(b), flags)\n"
                        "    b[:len(data)] = data\n    return len(data)"),
    "recv_into->recvfrom_into": ("def recv_into(self, b, nbytes=0, flags=0):\n"
                                 "    return self.recvfrom_into(b, nbytes, flags)[0]"),
    "recvfrom_into->recv_into": ("def recvfrom_into(self, b, nbytes=0, flags=0):\n"
                                 "    return self.recv_into(b, nbytes, flags), None"),
    "send->sendto": "def send(self, data, flags=0):\n    return self.sendto(data, flags, self.getpeername())",
    "send->sendmsg": "def send(self, data, flags=0):\n    return self.sendmsg([data], [], flags)",
    "send->makefile": ("def send(self, data, flags=0):\n    with self.makefile('wb', buffering=0) as f:\n"
                       "        return f.write(data)"),
    "sendall->send": ("def sendall(self, data, flags=0):\n    view = memoryview(data)\n"
                      "    while view:\n        view = view[self.send(view, flags):]"),
    "sendto->send": "def sendto(self, data, *args):\n    return self.send(data)",
    "sendmsg->sendall": "def sendmsg(self, buffers, *args):\n    data = b''.join(buffers)\n    self.sendall(data)\n"
                        "    return len(data)",
    "connect->connect_ex": ("def connect(self, address):\n    err = self.connect_ex(address)\n"
                            "    if err:\n        raise OSError(err, 'connect')"),
    "connect_ex->connect": "def connect_ex(self, address):\n    self.connect(address)\n    return 0",
    "settimeout->setblocking": ("def settimeout(self, value):\n    self.setblocking(value is None)\n"
                                "    socket.socket.settimeout(self, value)"),
    "setblocking->settimeout": "def setblocking(self, flag):\n    self.settimeout(None if flag else 0.0)",
    "close->shutdown": ("def close(self):\n    try:\n        self.shutdown(socket.SHUT_RDWR)\n    except OSError:\n"
                        "        pass\n    super().close()"),
    "shutdown->getpeername": "def shutdown(self, how):\n    self.getpeername()\n    super().shutdown(how)",
    "dup->fileno": "def dup(self):\n    self.fileno()\n    return super().dup()",
    "accept->getsockname": "def accept(self):\n    self.getsockname()\n    return super().accept()",
}


@pytest.mark.parametrize("override", sorted(OVERRIDES))
def test_overriding_one_method_in_terms_of_another_keeps_data_intact(override: str) -> None:
    out = run_patched(f"""
        import socket, hashlib, gevent, os, textwrap
        namespace = {{"socket": socket}}
        exec("class Sub(socket.socket):\\n" + textwrap.indent({OVERRIDES[override]!r}, "    "), namespace)
        Sub = namespace["Sub"]
        up, down = os.urandom(300_000), os.urandom(300_000)
        listener = Sub(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        got = {{}}
        def pump(s, data, key):
            # Each side sends its bytes and reads the other's: every override sits on a data path.
            def send_all():
                s.sendall(data)
                s.send(b"")
                s.shutdown(socket.SHUT_WR)
            sender = gevent.spawn(send_all)
            parts, buf = [], bytearray(8192)
            while True:
                n = [lambda: len(p := s.recv(8192)) and parts.append(p) or len(p),
                     lambda: (k := s.recv_into(buf)) and parts.append(bytes(buf[:k])) or k,
                     lambda: len(p := s.recvfrom(8192)[0]) and parts.append(p) or len(p),
                     lambda: (k := s.recvfrom_into(buf)[0]) and parts.append(bytes(buf[:k])) or k][len(parts) % 4]()
                if not n:
                    break
            sender.join()
            got[key] = hashlib.sha256(b"".join(parts)).hexdigest()
        def serve():
            conn, _ = listener.accept()
            s = Sub(fileno=conn.detach())
            s.settimeout(20)
            pump(s, down, "up")
            s.dup().close()
            s.close()
        g = gevent.spawn(serve)
        c = Sub(socket.AF_INET, socket.SOCK_STREAM)
        c.settimeout(20)
        c.setblocking(True)
        c.connect(listener.getsockname())
        pump(c, up, "down")
        c.close()
        g.join()
        listener.close()
        report({{"up": got["up"] == hashlib.sha256(up).hexdigest(),
                "down": got["down"] == hashlib.sha256(down).hexdigest()}})
    """)
    assert out == {"up": True, "down": True}
