"""TLS over stack sockets through ssl.MemoryBIO: client and server side, requests over https."""

from __future__ import annotations

import errno
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from .helpers import run_patched

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command for a test cert")


@pytest.fixture
def cert(tmp_path: Path) -> tuple[str, str]:
    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return str(crt), str(key)


def test_tls_echo_client_and_server_side_and_unwrap(cert: tuple[str, str]) -> None:
    crt, key = cert
    out = run_patched(f"""
        import ssl, socket, gevent, hashlib
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); sctx.load_cert_chain({crt!r}, {key!r})
        listener = sctx.wrap_socket(socket.create_server(("127.0.0.1", 0)), server_side=True)
        def serve():
            conn, _ = listener.accept()
            with conn:
                f = conn.makefile("rb")
                line = f.readline()
                conn.sendall(hashlib.sha256(line).hexdigest().encode() + b"\\n")
                f.close()
                plain = conn.unwrap()
                plain.sendall(b"plain after unwrap")
                plain.close()
        g = gevent.spawn(serve)
        cctx = ssl.create_default_context(cafile={crt!r})
        raw = socket.create_connection(listener.getsockname(), timeout=10)
        c = cctx.wrap_socket(raw, server_hostname="localhost")
        line = b"x" * 20000 + b"\\n"
        c.sendall(line)
        digest = c.makefile("rb").readline().strip().decode()
        res = {{"digest_ok": digest == hashlib.sha256(line).hexdigest(), "version": c.version(),
               "peer_cn": dict(x[0] for x in c.getpeercert()["subject"])["commonName"],
               "isinstance": [isinstance(c, ssl.SSLSocket), isinstance(c, socket.socket)],
               "raw_closed": raw.fileno()}}
        p = c.unwrap()
        res["after_unwrap"] = p.recv(100).decode()
        # As the stdlib's: unwrap() hands back the same object, now plain; unwrapping again is an error.
        res["unwrap_self"] = p is c
        try:
            c.unwrap()
        except ValueError:
            res["second_unwrap"] = "ValueError"
        p.close(); g.get(); listener.close()
        report(res)
    """)
    assert out == {"digest_ok": True, "version": "TLSv1.3", "peer_cn": "localhost", "isinstance": [True, True],
                   "raw_closed": -1, "after_unwrap": "plain after unwrap",
                   "unwrap_self": True, "second_unwrap": "ValueError"}


def test_certificate_errors_surface_as_in_the_stdlib(cert: tuple[str, str]) -> None:
    crt, key = cert
    out = run_patched(f"""
        import ssl, socket, gevent
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); sctx.load_cert_chain({crt!r}, {key!r})
        listener = socket.create_server(("127.0.0.1", 0))
        def serve():
            conn, _ = listener.accept()
            try:
                sctx.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                pass
            conn.close()
        g = gevent.spawn(serve)
        ctx = ssl.create_default_context()  # the system CAs do not know our self-signed cert
        res = {{}}
        try:
            ctx.wrap_socket(socket.create_connection(listener.getsockname(), timeout=10), server_hostname="localhost")
        except ssl.SSLCertVerificationError as e:
            res["verify"] = e.verify_message
        g.get(); listener.close()
        report(res)
    """)
    assert out == {"verify": "self-signed certificate"}


def test_requests_over_https_to_http_server_in_one_patched_process(cert: tuple[str, str], tmp_path: Path) -> None:
    crt, key = cert
    body = bytes(i * 13 % 256 for i in range(50_000))
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "f.bin").write_bytes(body)
    out = run_patched(f"""
        import ssl, http.server, threading, hashlib, requests
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); sctx.load_cert_chain({crt!r}, {key!r})
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **k):
                super().__init__(*a, directory={str(tmp_path / "www")!r}, **k)
            def log_message(self, *a):
                pass
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
        server.socket = sctx.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"https://localhost:{{server.server_address[1]}}/f.bin"
        with requests.Session() as s:
            hashes = [hashlib.sha256(s.get(url, verify={crt!r}, timeout=10).content).hexdigest() for _ in range(3)]
        server.shutdown(); server.server_close()
        report(hashes)
    """)
    assert out == [hashlib.sha256(body).hexdigest()] * 3


def test_module_level_wrap_socket_and_get_server_certificate_use_the_stack(cert: tuple[str, str]) -> None:
    """Found by CPython's test_ssl: gevent's ssl.wrap_socket built a kernel-fd SSLSocket (ENOTSOCK on a stack
    socket), its get_server_certificate had no ``timeout``, and ssl.create_connection was gevent's (a kernel
    socket)."""
    crt, key = cert
    out = run_patched(f"""
        import ssl, socket, gevent, warnings
        from pytcp_green.patches import socket as ours
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); sctx.load_cert_chain({crt!r}, {key!r})
        listener = socket.create_server(("127.0.0.1", 0))
        def serve():
            for _ in range(2):
                conn, _ = listener.accept()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    tls = ssl.wrap_socket(conn, server_side=True, certfile={crt!r}, keyfile={key!r})
                with tls:
                    data = tls.recv(100)
                    if data:
                        tls.sendall(data.upper())
        server = gevent.spawn(serve)
        port = listener.getsockname()[1]
        pem = ssl.get_server_certificate(("127.0.0.1", port), timeout=10)
        res = {{"same_cert": ssl.PEM_cert_to_DER_cert(pem) == ssl.PEM_cert_to_DER_cert(open({crt!r}).read())}}
        res["create_connection_is_ours"] = ssl.create_connection is socket.create_connection is ours.create_connection
        plain = socket.create_connection(("127.0.0.1", port))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            client = ssl.wrap_socket(plain)
        res["kind"] = type(client).__module__
        client.sendall(b"hello")
        res["echo"] = client.recv(100).decode()
        client.close(); server.join(timeout=10); listener.close()
        report(res)
    """)
    assert out == {"same_cert": True, "create_connection_is_ours": True, "kind": "pytcp_green.patches.ssl",
                   "echo": "HELLO"}


def test_callbacks_see_our_sslsocket_and_msg_callback_keeps_the_patch(cert: tuple[str, str]) -> None:
    """Found by CPython's test_ssl: setting ``_msg_callback`` went through gevent's setter, which rebinds
    ssl.SSLContext to gevent's class (every later context then built kernel-fd sockets: ENOTSOCK); OpenSSL's
    callbacks got the SSLObject (gevent's wrapper then failed on ``_sslsock``); sslsocket_class was ignored."""
    crt, key = cert
    out = run_patched(f"""
        import ssl, socket, gevent
        ours = ssl.SSLContext
        seen = {{}}
        class Mine(ssl.SSLSocket):
            pass
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); sctx.load_cert_chain({crt!r}, {key!r})
        sctx.sslsocket_class = Mine
        def sni(conn, name, ctx):
            seen["sni"] = (type(conn).__name__, name)
        sctx.sni_callback = sni
        cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); cctx.check_hostname = False; cctx.verify_mode = ssl.CERT_NONE
        def msg(conn, direction, version, content_type, msg_type, data):
            seen.setdefault("msg", type(conn).__name__)
        cctx._msg_callback = msg
        res = {{"still_patched": ssl.SSLContext is ours, "getter": cctx._msg_callback is msg}}
        listener = socket.create_server(("127.0.0.1", 0))
        def serve():
            conn, _ = listener.accept()
            with sctx.wrap_socket(conn, server_side=True) as tls:
                seen["server_class"] = type(tls).__name__
                tls.sendall(tls.recv(10))
        server = gevent.spawn(serve)
        with cctx.wrap_socket(socket.create_connection(listener.getsockname()), server_hostname="localhost") as c:
            c.sendall(b"ping")
            res["echo"] = c.recv(10).decode()
        server.join(timeout=10); listener.close()
        res.update(seen)
        report(res)
    """)
    assert out == {"still_patched": True, "getter": True, "echo": "ping", "sni": ["Mine", "localhost"],
                   "msg": "SSLSocket", "server_class": "Mine"}


def test_tls_reads_record_by_record_so_select_sees_waiting_records(cert: tuple[str, str]) -> None:
    """Found by CPython's test_ssl (test_asyncore_server, test_starttls hung): a non-blocking server that
    selects before each recv.  The client's data follows its handshake at once; had the handshake's read
    swallowed it into the memory BIO, the socket would never poll readable again."""
    crt, key = cert
    out = run_patched(f"""
        import ssl, socket, select, gevent
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); sctx.load_cert_chain({crt!r}, {key!r})
        cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); cctx.check_hostname = False; cctx.verify_mode = ssl.CERT_NONE
        listener = socket.create_server(("127.0.0.1", 0))
        res = {{}}
        def serve():
            conn, _ = listener.accept()
            conn.setblocking(False)
            tls = sctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    select.select([tls], [], [], 10)
            got = b""
            while not got.endswith(b"\\n"):
                if tls.pending() == 0:
                    res.setdefault("selects", []).append(bool(select.select([tls], [], [], 10)[0]))
                try:
                    got += tls.recv(100)
                except ssl.SSLWantReadError:
                    continue
            tls.setblocking(True)
            tls.sendall(got.upper())
            tls.close()
        server = gevent.spawn(serve)
        with cctx.wrap_socket(socket.create_connection(listener.getsockname())) as c:
            c.sendall(b"foo\\n")
            res["reply"] = c.recv(100).decode()
        server.join(timeout=20); listener.close()
        report(res)
    """)
    assert out["reply"] == "FOO\n"
    assert out["selects"] and all(out["selects"])


def test_an_alert_is_sent_before_the_handshake_error_is_raised(cert: tuple[str, str]) -> None:
    """Found by CPython's test_ssl (test_wrong_cert_tls13): when OpenSSL failed a handshake, the alert it had
    written stayed in the memory BIO; the peer then saw a bare close (or a reset) instead of the alert."""
    crt, key = cert
    out = run_patched(f"""
        import ssl, socket, gevent
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); sctx.load_cert_chain({crt!r}, {key!r})
        sctx.verify_mode = ssl.CERT_REQUIRED; sctx.load_verify_locations({crt!r})
        cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); cctx.check_hostname = False; cctx.verify_mode = ssl.CERT_NONE
        cctx.minimum_version = ssl.TLSVersion.TLSv1_3
        listener = socket.create_server(("127.0.0.1", 0))
        res = {{}}
        def serve():
            conn, _ = listener.accept()
            try:
                sctx.wrap_socket(conn, server_side=True)
            except ssl.SSLError as e:
                res["server"] = e.reason
            conn.close()
        server = gevent.spawn(serve)
        with cctx.wrap_socket(socket.create_connection(listener.getsockname())) as c:
            try:
                c.read(10)  # TLS 1.3: the client's handshake ended before the server checked its certificate
            except OSError as e:
                res["client"] = [type(e).__name__, getattr(e, "reason", None)]
        server.join(timeout=10); listener.close()
        report(res)
    """)
    assert out == {"server": "PEER_DID_NOT_RETURN_A_CERTIFICATE",
                   "client": ["SSLError", "TLSV13_ALERT_CERTIFICATE_REQUIRED"]}


def test_connect_ex_blocking_and_non_blocking(cert: tuple[str, str]) -> None:
    """Found by CPython's test_ssl (test_connect_ex: the handshake ran twice, UNEXPECTED_MESSAGE;
    test_non_blocking_connect_ex: no TLS object to hand-shake with after EINPROGRESS)."""
    crt, key = cert
    out = run_patched(f"""
        import ssl, socket, select, gevent
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); sctx.load_cert_chain({crt!r}, {key!r})
        cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); cctx.check_hostname = False; cctx.verify_mode = ssl.CERT_NONE
        listener = socket.create_server(("127.0.0.1", 0))
        def serve():
            for _ in range(2):
                conn, _ = listener.accept()
                with sctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(tls.recv(10).upper())
        server = gevent.spawn(serve)
        res = {{}}
        with cctx.wrap_socket(socket.socket()) as s:
            res["rc"] = s.connect_ex(listener.getsockname())
            s.sendall(b"one")
            res["one"] = s.recv(10).decode()
        with cctx.wrap_socket(socket.socket(), do_handshake_on_connect=False) as s:
            s.setblocking(False)
            res["nb_rc"] = s.connect_ex(listener.getsockname()) in (0, 115)
            select.select([], [s], [], 10)
            while True:
                try:
                    s.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    select.select([s], [], [], 10)
            s.setblocking(True)
            s.sendall(b"two")
            res["two"] = s.recv(10).decode()
        server.join(timeout=10); listener.close()
        report(res)
    """)
    assert out == {"rc": 0, "one": "ONE", "nb_rc": True, "two": "TWO"}


def test_sslobj_offers_the_certificate_chain_getters(cert: tuple[str, str]) -> None:
    """Found by CPython's test_ssl (test_internal_chain_client/_server): the stdlib's ``_sslobj`` is the C
    object, which has get_verified_chain/get_unverified_chain; ours must answer the same certificates."""
    crt, key = cert
    out = run_patched(f"""
        import ssl, socket, gevent
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); sctx.load_cert_chain({crt!r}, {key!r})
        listener = socket.create_server(("127.0.0.1", 0))
        def serve():
            conn, _ = listener.accept()
            with sctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        server = gevent.spawn(serve)
        cctx = ssl.create_default_context(cafile={crt!r})
        with cctx.wrap_socket(socket.create_connection(listener.getsockname()), server_hostname="localhost") as c:
            der = c.getpeercert(True)
            verified = c._sslobj.get_verified_chain()
            unverified = c._sslobj.get_unverified_chain()
            res = {{"verified": [x.public_bytes(ssl._ssl.ENCODING_DER) == der for x in verified],
                    "unverified": [x.public_bytes(ssl._ssl.ENCODING_DER) == der for x in unverified]}}
            c.sendall(b"x")
        server.join(timeout=10); listener.close()
        report(res)
    """)
    assert out == {"verified": [True], "unverified": [True]}  # a self-signed certificate: a chain of one


def test_bytes_left_by_a_peer_that_reset_before_the_handshake_are_refused(cert: tuple[str, str]) -> None:
    """Found by CPython's test_ssl (test_preauth_data_to_tls_server): as the stdlib's since 3.11.5 (gh-108310),
    wrapping a socket that is no longer connected but still holds received bytes raises SSLError rather than
    letting plain bytes pass for the peer's TLS data; an unconnected socket without bytes wraps as before."""
    crt, key = cert
    out = run_patched(f"""
        import errno, ssl, socket, struct
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); sctx.load_cert_chain({crt!r}, {key!r})
        listener = socket.create_server(("127.0.0.1", 0))
        client = socket.create_connection(listener.getsockname())
        conn, _ = listener.accept()
        client.sendall(b"DELETE /data HTTP/1.0\\r\\n\\r\\n")
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # a RST behind the bytes
        # The loopback delivers in order: once a later connection is accepted, the bytes and the RST are in.
        later = socket.create_connection(listener.getsockname())
        listener.accept()[0].close(); later.close()
        res = {{"peer": attempt(conn.getpeername)}}
        try:
            sctx.wrap_socket(conn, server_side=True)
        except ssl.SSLError as e:
            res["error"] = [e.args[0] == errno.ENOTCONN, e.args[1], e.reason, e.library]
        res["closed"] = conn.fileno()
        fresh = sctx.wrap_socket(socket.socket(), server_side=True)  # not connected, nothing received: fine
        res["fresh"] = type(fresh).__name__
        fresh.close(); listener.close()
        report(res)
    """)
    reason = "Closed before TLS handshake with data in recv buffer."
    assert out == {"peer": f"errno {errno.ENOTCONN}", "error": [True, reason, reason, None], "closed": -1,
                   "fresh": "SSLSocket"}
