"""asyncio's selector event loop over stack sockets: bulk writes through the transport and TLS (its
sslproto over our plain sockets) against a stdlib-ssl server in a thread, as CPython's asyncio tests do."""

from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from .helpers import run_patched

PAYLOAD = 20_000_000  # far past what the send buffer holds, so the transport waits for POLLOUT many times


def test_a_transport_write_far_past_the_send_buffer_arrives_whole() -> None:
    """Found by CPython's test_asyncio.test_ssl (test_create_connection_ssl_1 hung): the send limit follows the
    peer's window, so a socket poll() had found unwritable could become writable, and later unwritable again,
    with no wake-up armed (only a full send() armed one); the loop slept with room in the buffer."""
    seed = 7
    expected = hashlib.sha256(random.Random(seed).randbytes(PAYLOAD)).hexdigest()
    out = run_patched(f"""
        import asyncio, hashlib, random, socket, threading
        listener = socket.create_server(("127.0.0.1", 0)); listener.settimeout(60)
        got = {{}}
        def serve():
            conn, _ = listener.accept()
            conn.settimeout(60)
            digest, n = hashlib.sha256(), 0
            while n < {PAYLOAD}:
                data = conn.recv(65536)  # a slow reader: the client's window closes and reopens
                if not data:
                    break
                digest.update(data); n += len(data)
            got["n"], got["sha"] = n, digest.hexdigest()
            conn.sendall(b"OK"); conn.close()
        server = threading.Thread(target=serve); server.start()
        async def client():
            reader, writer = await asyncio.open_connection(*listener.getsockname())
            writer.write(random.Random({seed}).randbytes({PAYLOAD}))
            answer = await reader.readexactly(2)
            writer.close(); await writer.wait_closed()
            return answer.decode()
        got["answer"] = asyncio.run(asyncio.wait_for(client(), 60))
        server.join(); listener.close()
        report(got)
    """)
    assert out == {"n": PAYLOAD, "sha": expected, "answer": "OK"}


@pytest.fixture
def cert(tmp_path: Path) -> tuple[str, str]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command for a test cert")
    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "2", "-subj", "/CN=localhost"], check=True, capture_output=True)
    return str(crt), str(key)


def test_asyncio_tls_client_gets_the_bytes_before_the_servers_half_close(cert: tuple[str, str]) -> None:
    """Found by CPython's test_asyncio.test_ssl (test_shutdown_timeout_handler_*): its server wraps an object
    that only delegates to the accepted socket, which our wrap_socket did not take for a stack socket.  The
    server sends, half-closes (SHUT_WR) and reads the client's close; the client's protocol sees the bytes,
    then the end of the connection, with no error."""
    crt, key = cert
    out = run_patched(f"""
        import asyncio, socket, ssl, threading
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); sctx.load_cert_chain({crt!r}, {key!r})
        cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); cctx.check_hostname = False; cctx.verify_mode = ssl.CERT_NONE
        listener = socket.create_server(("127.0.0.1", 0)); listener.settimeout(30)
        class Delegate:  # as asyncio's tests wrap their server sockets
            def __init__(self, sock):
                self._sock = sock
            def __getattr__(self, name):
                return getattr(self._sock, name)
        res = {{}}
        def serve():
            conn, _ = listener.accept()
            with conn:
                tls = sctx.wrap_socket(Delegate(conn), server_side=True)
                res["taken_over"] = conn.fileno()
                tls.sendall(b"hello")
                res["server_got"] = tls.recv(100).decode()
                tls.sendall(b"extra bytes")
                tls.shutdown(socket.SHUT_WR)
                res["server_eof"] = tls.recv(100) == b""
                tls.close()
        server = threading.Thread(target=serve); server.start()
        async def client():
            loop = asyncio.get_running_loop()
            done = loop.create_future()
            received = []
            class Proto(asyncio.Protocol):
                def connection_made(self, transport):
                    self.transport = transport
                def data_received(self, data):
                    received.append(data)
                    if data == b"hello":
                        self.transport.write(b"world")
                def connection_lost(self, exc):
                    done.set_result(repr(exc))
            transport, _ = await loop.create_connection(Proto, *listener.getsockname(), ssl=cctx)
            lost = await asyncio.wait_for(done, 30)
            transport.close()
            return b"".join(received).decode(), lost
        res["client_got"], res["lost"] = asyncio.run(client())
        server.join(); listener.close()
        report(res)
    """)
    assert out == {"taken_over": -1, "server_got": "world", "client_got": "helloextra bytes", "lost": "None",
                   "server_eof": True}
